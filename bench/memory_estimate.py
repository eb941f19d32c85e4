"""The fine-tuning memory estimate (the preflight's and the method cards') against measured peaks.

Each method (full, LoRA, AdaLoRA, prefix, prompt; QLoRA where CUDA is) fine-tunes each of three
llama shapes (random init, saved to a temporary folder: nothing downloads) for a few steps through the
finetune recipe's own functions (load_model, attach_adapter, build_trainer), on records that fill
data.max_length, so the batch holds the tokens the estimate assumes. Each pair runs in its own child
process. Measured is what the run adds: on a CPU, peak RSS less the RSS before the model loads (the
imports and data are there before the preflight reads free memory); on CUDA, max allocated. One JSON
line per pair, then a summary line with the worst ratios. Target: estimate/measured within 0.75–1.25.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/memory_estimate.py [--steps 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {  # name: (hidden, layers, vocab, intermediate)
    "small": (128, 4, 8_000, 344),
    "medium": (256, 6, 32_000, 688),
    "large": (512, 8, 32_000, 1376),
}
METHODS = ["full", "lora", "adalora", "prefix", "prompt"]
BATCH, MAX_LENGTH = 4, 512


def save_model(folder: Path, shape: str) -> None:
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    hidden, layers, vocab, intermediate = SHAPES[shape]
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=hidden // 64, max_position_embeddings=MAX_LENGTH, pad_token_id=0, bos_token_id=1,
        eos_token_id=2)).save_pretrained(folder)


def spec_of(base: Path, method: str, steps: int, device: str):
    from engine.specs import parse_spec

    return parse_spec({
        "kind": "finetune", "name": "bench", "model": {"path": str(base)},
        "data": {"sources": ["generated"], "max_length": MAX_LENGTH, "eval_fraction": 0.0},
        "method": {"name": method},
        "train": {"max_steps": steps, "batch_size": BATCH, "warmup_steps": 0, "log_every": 1,
                  "checkpoint_every": 100_000, "eval_every": 100_000},
        "evaluation": {"generate_examples": 0, "before_training": False},
        "resources": {"device": device},
    })


def measure(base: Path, method: str, steps: int, device: str) -> dict:
    """Fine-tune `method` on the model in `base` in this process: its estimate and what it measured."""
    import datasets
    import torch
    from types import SimpleNamespace

    from engine.devices import resolve
    from engine.finetune.generation import GenerationScorer
    from engine.finetune.model import attach_adapter, load_model
    from engine.jobs.finetune import build_trainer, memory_needed
    from engine.protocol import EventWriter
    from engine.rundir import RunDirectory
    from engine.runner import JobContext

    spec = spec_of(base, method, steps, device)
    placement = resolve(spec.resources)
    vocab = SHAPES[base.name][2]
    estimate, parameters = memory_needed(spec, str(base), placement, vocab)
    generator = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(BATCH * steps):
        ids = torch.randint(3, vocab, (MAX_LENGTH,), generator=generator).tolist()
        rows.append({"input_ids": ids, "labels": [-100] * (MAX_LENGTH // 2) + ids[MAX_LENGTH // 2:]})
    dataset = datasets.Dataset.from_list(rows)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory.create(Path(tmp), "bench")
        ctx = JobContext(spec=spec, run=run, events=EventWriter(run.events_path))
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        model = load_model(str(base), spec, placement.device, placement.dtype)
        model, trainable = attach_adapter(spec, model, steps, str(base), [])
        no_tokenizer = SimpleNamespace(eos_token_id=2, pad_token_id=0, save_pretrained=lambda folder: None)  # ids already
        trainer = build_trainer(ctx, placement, model, no_tokenizer, dataset, None,
                                GenerationScorer(no_tokenizer, None, [], 1), parameters)
        trainer.train()
        ctx.events.close()
        plan = [json.loads(e)["message"] for e in run.events_path.read_text().splitlines() if "Batches:" in e]
    if device.startswith("cuda"):
        measured = torch.cuda.max_memory_allocated() - before
    else:
        measured = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before_rss
    return {"shape": base.name, "method": method, "device": device, "parameters": parameters,
            "trainable": trainable, "estimate_mb": round(estimate.bytes / 2**20), "measured_mb": round(measured / 2**20),
            "ratio": round(estimate.bytes / measured, 2), "plan": plan[0] if plan else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--methods", default=None, help="comma-separated; default: every method the device runs")
    parser.add_argument("--child", nargs=2, metavar=("BASE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), args.child[1], args.steps, args.device)))
        return
    methods = args.methods.split(",") if args.methods else METHODS + (["qlora"] if args.device == "cuda" else [])
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            base = Path(tmp) / shape
            save_model(base, shape)
            for method in methods:
                command = [sys.executable, __file__, "--child", str(base), method, "--steps", str(args.steps),
                           "--device", args.device]
                done = subprocess.run(command, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise SystemExit(f"{shape} {method} failed:\n{done.stderr[-4000:]}")
                results.append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(json.dumps(results[-1]), flush=True)
    ratios = [r["ratio"] for r in results]
    print(json.dumps({"bench": "memory_estimate", "device": args.device, "pairs": len(results),
                      "min_ratio": min(ratios), "max_ratio": max(ratios),
                      "within_25_percent": sum(0.75 <= r <= 1.25 for r in ratios), "target": [0.75, 1.25]}))


if __name__ == "__main__":
    main()
