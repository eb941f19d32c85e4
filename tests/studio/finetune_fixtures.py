"""Constructed engine answers for the Fine-tune page's tests: a finetune preview (the shape of
`studio-engine preview SPEC --json`), a stand-in engine that prints it, the events of a finished
fine-tuning run, and model folders as earlier runs leave them."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

from engine.protocol import PROTOCOL_VERSION

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _tokens(parts: list[tuple[str, bool]]) -> list[dict]:
    return [{"text": text, "id": 100 + i, "trained": trained} for i, (text, trained) in enumerate(parts)]


EXAMPLES = [
    {"messages": [{"role": "user", "content": "Add 12 + 30."}, {"role": "assistant", "content": "42"}],
     "text": "<|im_start|>user\nAdd 12 + 30.<|im_end|>\n<|im_start|>assistant\n42<|im_end|>\n",
     "tokens": _tokens([("<|im_start|>", False), ("user", False), ("\n", False), ("Add", False), (" 12", False),
                        (" +", False), (" 30", False), (".", False), ("<|im_end|>", False), ("\n", False),
                        ("<|im_start|>", False), ("assistant", False), ("\n", False), ("42", True),
                        ("<|im_end|>", True), ("\n", False)]),
     "length": 16, "truncated": False, "reference": "42"},
    {"messages": [{"role": "user", "content": "Add 7 + 5."}, {"role": "assistant", "content": "12"}],
     "text": "<|im_start|>user\nAdd 7 + 5.<|im_end|>\n<|im_start|>assistant\n12<|im_end|>\n",
     "tokens": _tokens([("<|im_start|>", False), ("user", False), ("\n", False), ("Add", False), (" 7", False),
                        (" +", False), (" 5", False), (".", False), ("<|im_end|>", False), ("\n", False),
                        ("<|im_start|>", False), ("assistant", False), ("\n", False), ("1", True), ("2", True),
                        ("<|im_end|>", True)]),
     "length": 40, "truncated": True, "reference": "12"},
]


def preview_answer(path: str = "/models/tiny", lora_fits: bool = True) -> dict:
    """A preview as the engine gives it, for a 1.3M-parameter llama on a CPU with 23.1 GiB free."""
    return {
        "kind": "finetune", "format": "alpaca", "format_detected": True, "fields": ["instruction", "input", "output"],
        "records": {"train": 900, "eval": 100}, "measured": 1000, "too_long": 3, "overflow": "truncate",
        "examples": EXAMPLES,
        "model": {"path": path, "architecture": "llama", "parameters": 1_328_256, "chat_template": "model",
                  "linear_modules": LINEAR, "default_targets": LINEAR},
        "training": {"packed": True, "loss": "trained positions", "compiled": False, "why_padded": None,
                     "text": "packed, padding-free; logits at trained positions only; not compiled"},
        "memory": {"device": "cpu", "available_gb": 23.1, "methods": {
            "full": {"gb": 48.0, "fits": False, "trainable": 1_328_256, "needs_cuda": False,
                     "note": "weights + gradients + AdamW state"},
            "lora": {"gb": 0.02, "fits": lora_fits, "trainable": 123_456, "needs_cuda": False},
            "qlora": {"gb": 0.01, "fits": False, "trainable": 123_456, "needs_cuda": True, "note": "needs CUDA"},
            "adalora": {"gb": 0.03, "fits": True, "trainable": 187_000},
            "prefix": {"gb": 0.02, "fits": True, "trainable": 20_480},
            "prompt": {"gb": 0.02, "fits": True, "trainable": 2_560},
            "ptuning": {"gb": 0.02, "fits": True, "trainable": 35_328},
        }},
    }


def stand_in_preview_engine(tmp_path: Path) -> tuple[list[str], Path]:
    """An `entry` for LocalEngine whose `preview` answers `preview_answer` for the spec's base model,
    and fails as the engine does when the model folder does not exist. Each call is logged."""
    log = tmp_path / "preview-calls.jsonl"
    script = tmp_path / "stand_in_finetune_preview.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, sys, yaml
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from tests.studio.finetune_fixtures import preview_answer
        args = sys.argv[1:]
        with open({str(log)!r}, "a") as f:
            f.write(json.dumps(args) + "\\n")
        spec = yaml.safe_load(open(args[args.index("preview") + 1]))
        path = spec["model"]["path"]
        if not os.path.isdir(path):
            print(f"studio-engine: The base model {{path}} (model.path) does not exist.\\n"
                  "What to do: Give a model folder, a run id of this workspace, or a hub id such as owner/name.",
                  file=sys.stderr)
            sys.exit(1)
        print(json.dumps(preview_answer(path)))
    """), encoding="utf-8")
    return [sys.executable, str(script)], log


def preview_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def write_model_run(workspace: Path, run_id: str, kind: str, folder: str = "model", name: str = "") -> Path:
    """A run folder holding a model as a finished run leaves it (config.json and weights)."""
    run_dir = workspace / "runs" / run_id
    model = run_dir / "output" / folder
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama"}), encoding="utf-8")
    (model / "model.safetensors").write_bytes(b"")
    (run_dir / "spec.yaml").write_text(f"kind: {kind}\nname: {name or run_id.split('-')[0]}\n", encoding="utf-8")
    return model


def finetune_events(run_id: str = "ft-20261123-120000-abcd", t0: float = 1_800_000_000.0) -> list[dict]:
    """The events of a finished LoRA run with merge (constructed, in the engine's shapes)."""
    events: list[dict] = []

    def emit(type_: str, **fields) -> None:
        events.append({"v": PROTOCOL_VERSION, "seq": len(events), "t": t0 + len(events), "type": type_, **fields})

    spec = {"kind": "finetune", "name": "ft", "model": {"path": "/models/tiny"}, "train": {"max_steps": 40},
            "method": {"name": "lora"}, "output": {"merge": True}}
    emit("started", run_id=run_id, spec=spec, host="here", pid=1, engine_version="0.1.0", devices=[])
    emit("progress", stage="data", done=0, total=None, unit="records")
    emit("metric", step=0, split="data", values={"train_records": 900, "eval_records": 100, "truncated": 3,
                                                  "dropped": 0})
    emit("metric", step=0, split="eval", values={"exact_match": 0.1, "bleu": 2.5, "rouge_l": 0.2})
    for step in range(10, 41, 10):
        emit("metric", step=step, split="train", values={"loss": 3.0 - step / 20, "lr": 2e-4, "grad_norm": 1.0})
        emit("progress", stage="train", done=step, total=40, unit="step", eta_s=40 - step)
        if step % 20 == 0:
            emit("metric", step=step, split="eval", values={"loss": 2.5 - step / 25, "perplexity": 5.0})
            emit("metric", step=step, split="eval", values={"exact_match": step / 50, "bleu": step, "rouge_l": 0.5})
    # Paths inside the workspace are written relative to it.
    emit("artifact", kind="adapter", path=f"runs/{run_id}/output/adapter", meta={"method": "lora"})
    emit("artifact", kind="model", path=f"runs/{run_id}/output/merged", meta={"method": "lora", "merged": True})
    emit("finished", status="completed", summary={"exact_match_before": 0.1, "exact_match_after": 0.8,
                                                  "bleu_before": 2.5, "bleu_after": 40.0, "rouge_l_before": 0.2,
                                                  "rouge_l_after": 0.5, "eval_loss": 0.9,
                                                  "adapter": f"runs/{run_id}/output/adapter",
                                                  "merged": f"runs/{run_id}/output/merged"})
    return events
