"""The fast training path on one GPU: a Llama-3.1-8B-shaped model (random init: nothing downloads) with
LoRA and QLoRA, the engine's path (packed or padded; fused kernels on or off) against plain Hugging Face
(transformers' Trainer, SDPA attention, padded batches, the model's own loss); and the MFU of a
124M GPT-2-shaped model pretrained in bf16. Started by bench/gpu/run.sh.

On the GPU every arm runs in its own child process (Liger patches model classes for the whole process,
and peak memory must be the arm's own) and appends its figures to OUT/results.json and OUT/results.md
as soon as it ends, so a run stopped by its time limit still leaves what it measured. `--tiny` runs the
same arms on a tiny shape on the CPU, in this one process (the test suite does: the imports are most
of its cost; its memory figures are then the process's, not each arm's).

Goals on the same card: QLoRA ≥ 2× tokens/s and ≤ 0.4× peak VRAM against plain HF; MFU ≥ 45% for the
124M pretraining.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

# Llama 3.1 8B's shape (config.json of meta-llama/Llama-3.1-8B) and a tiny one with the same proportions
# where it matters (grouped-query attention, widths divisible by 32 for 4-bit layers on CPUs).
SHAPES = {
    "llama8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, max_position_embeddings=512),
}
GPT2_124M = dict(n_embd=768, n_layer=12, n_head=12, vocab_size=50257, n_positions=1024)
GPT2_TINY = dict(n_embd=64, n_layer=2, n_head=2, vocab_size=512, n_positions=128)
# bf16 dense peak of the card, for MFU (NVIDIA's datasheets: SXM parts; PCIe H100 is 756 TFLOPs).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12}

LIGER_AVAILABLE = None  # the engine's own check, kept while an unfused arm replaces it
# name: (method, path, packing, fused)
ARMS = {  # in order of what the goals need first: a run cut short by its time limit keeps those
    "qlora-plain": ("qlora", "plain", False, False),
    "qlora-packed-fused": ("qlora", "engine", True, True),
    "pretrain-124m": ("full", "pretrain", True, False),
    "lora-plain": ("lora", "plain", False, False),
    "lora-packed-fused": ("lora", "engine", True, True),
    "lora-packed": ("lora", "engine", True, False),
    "lora-padded-fused": ("lora", "engine", False, True),
    "qlora-packed": ("qlora", "engine", True, False),
}


def sizes(tiny: bool) -> SimpleNamespace:
    if tiny:
        return SimpleNamespace(shape="tiny", batch=4, max_length=128, median=40, tail=110, records=64, steps=4,
                               warmup=1, block=128, pretrain_batch=4)
    return SimpleNamespace(shape="llama8b", batch=4, max_length=2048, median=300, tail=1500, records=400, steps=8,
                           warmup=3, block=1024, pretrain_batch=32)


def save_base(folder: Path, tiny: bool, device: str) -> None:
    """The random-init llama, saved in bf16 so the engine's own loader (and its 4-bit quantization) reads it;
    built on the GPU where there is one (seconds for 8B parameters, minutes on the CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(**SHAPES["tiny" if tiny else "llama8b"], pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(folder)


def records(s: SimpleNamespace, vocab: int) -> list[dict]:
    """Long-tailed instruction records as bench/sft_throughput.py makes them, at this shape's lengths."""
    import sft_throughput

    sft_throughput.MEDIAN, sft_throughput.TAIL, sft_throughput.MAX_LENGTH = s.median, s.tail, s.max_length
    sft_throughput.VOCAB = vocab
    return sft_throughput.generated_records(s.records, 0)


def spec_of(base: Path, method: str, packing: bool, s: SimpleNamespace, device: str):
    from engine.specs import parse_spec

    return parse_spec({
        "kind": "finetune", "name": "gpu-bench", "model": {"path": str(base)},
        "data": {"sources": ["generated"], "max_length": s.max_length, "eval_fraction": 0.0},
        "method": {"name": method, "lora": {"rank": 16, "alpha": 32, "dropout": 0.0}},
        # Activations of 32 layers × 8k tokens do not fit 80 GB without checkpointing: every arm checkpoints.
        "train": {"max_steps": s.steps, "batch_size": s.batch, "learning_rate": 1e-4, "warmup_steps": 1,
                  "log_every": 1, "checkpoint_every": 100_000, "eval_every": 100_000,
                  "packing": "on" if packing else "off", "gradient_checkpointing": s.shape != "tiny"},
        "evaluation": {"generate_examples": 0, "before_training": False},
        "resources": {"device": device},
    })


class Meter:
    """Peak memory of this process (max allocated on CUDA, peak RSS on the CPU) and step times."""

    def __init__(self, device: str):
        import torch

        self.device, self.times = device, []
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def peak_mb(self) -> float:
        import torch

        if self.device == "cuda":
            return torch.cuda.max_memory_allocated() / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def callback(self):
        from transformers import TrainerCallback

        times = self.times

        class Clock(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                times.append(time.perf_counter())

        return Clock()


def finetune_arm(name: str, base: Path, s: SimpleNamespace, device: str) -> dict:
    import datasets
    from transformers import Trainer, TrainingArguments

    from engine.devices import resolve
    from engine.finetune.generation import GenerationScorer
    from engine.finetune.model import attach_adapter, load_model
    from engine.jobs.finetune import build_trainer
    from engine.protocol import EventWriter
    from engine.rundir import RunDirectory
    from engine.runner import JobContext
    from engine.training import batches
    from engine.training.arguments import training_arguments

    global LIGER_AVAILABLE
    LIGER_AVAILABLE = batches.liger_available
    method, path, packing, fused = ARMS[name]
    if not fused:  # the engine chooses Liger wherever it is installed on CUDA: this arm measures without it
        batches.liger_available = lambda device: False
    spec = spec_of(base, method, packing, s, device)
    placement = resolve(spec.resources)
    rows = records(s, SHAPES[s.shape]["vocab_size"])
    trained_of = [sum(1 for x in r["labels"][1:] if x != -100) for r in rows]
    dataset = datasets.Dataset.from_list([{**r, "index": i} for i, r in enumerate(rows)])
    meter = Meter(device)
    model = load_model(str(base), spec, placement.device, placement.dtype)
    if path == "plain":
        model.config._attn_implementation = "sdpa"
    model, trainable = attach_adapter(spec, model, s.steps, str(base), [])
    no_tokenizer = SimpleNamespace(eos_token_id=2, pad_token_id=0, save_pretrained=lambda folder: None)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory.create(Path(tmp), "gpu-bench")
        ctx = JobContext(spec=spec, run=run, events=EventWriter(run.events_path))
        if path == "plain":
            args = TrainingArguments(**training_arguments(ctx, placement, has_eval=False, remove_unused_columns=False))
            trainer = Trainer(model=model, args=args, train_dataset=dataset,
                              data_collator=batches.PaddedCollator(0, keep_trained_logits=False))
            plan = "plain Hugging Face: padded, SDPA, the model's own loss"
        else:
            trainer = build_trainer(ctx, placement, model, no_tokenizer, dataset, None,
                                    GenerationScorer(no_tokenizer, None, [], 1), sum(p.numel() for p in model.parameters()))
            plan = None
        inner = trainer.data_collator
        counted: list[int] = []

        def counting(features):
            counted.append(sum(trained_of[f["index"]] for f in features))
            return inner([{k: f[k] for k in ("input_ids", "labels")} for f in features])

        trainer.data_collator = counting
        trainer.add_callback(meter.callback())
        trainer.train()
        ctx.events.close()
        if plan is None:
            plan = next(json.loads(e)["message"] for e in run.events_path.read_text().splitlines() if "Batches:" in e)
    times = meter.times[s.warmup - 1:]
    tokens = sum(counted[s.warmup:len(meter.times)])
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"arm": name, "method": method, "path": path, "plan": plan, "trainable": trainable,
            "trained_tokens_per_s": round(tokens / (times[-1] - times[0]), 1), "peak_memory_mb": round(meter.peak_mb()),
            "steps": len(meter.times), "first_loss": round(losses[0], 4), "last_loss": round(losses[-1], 4)}


def pretrain_arm(s: SimpleNamespace, device: str, tiny: bool) -> dict:
    """Tokens/s and MFU of a GPT-2-shaped model pretrained in bf16 on full blocks (random tokens: the
    arithmetic is what is measured), through the engine's training arguments (fused AdamW, bf16)."""
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config, Trainer, TrainingArguments

    from engine.devices import resolve
    from engine.protocol import EventWriter
    from engine.rundir import RunDirectory
    from engine.runner import JobContext
    from engine.specs import parse_spec
    from engine.training.arguments import training_arguments

    shape = GPT2_TINY if tiny else GPT2_124M
    spec = parse_spec({"kind": "pretrain", "name": "gpu-bench", "data": {"sources": ["generated"]},
                       "model": {"architecture": "gpt2", "context_length": shape["n_positions"]},
                       "train": {"max_steps": s.steps, "batch_size": s.pretrain_batch, "warmup_steps": 1,
                                 "log_every": 1, "checkpoint_every": 100_000, "eval_every": 100_000},
                       "resources": {"device": device}})
    placement = resolve(spec.resources)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(GPT2Config(**shape, attn_implementation="sdpa"))
    parameters = model.num_parameters()
    block = shape["n_positions"]
    blocks = torch.randint(0, shape["vocab_size"], (s.pretrain_batch * s.steps, block))
    dataset = datasets.Dataset.from_dict({"input_ids": blocks.tolist(), "labels": blocks.tolist()})
    meter = Meter(device)
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory.create(Path(tmp), "gpu-bench")
        ctx = JobContext(spec=spec, run=run, events=EventWriter(run.events_path))
        args = TrainingArguments(**training_arguments(ctx, placement, has_eval=False))
        trainer = Trainer(model=model, args=args, train_dataset=dataset)
        trainer.add_callback(meter.callback())
        trainer.train()
        ctx.events.close()
    times = meter.times[s.warmup - 1:]
    tokens_per_s = s.pretrain_batch * block * (len(times) - 1) / (times[-1] - times[0])
    # Training FLOPs per token: 6 per parameter, plus attention's 12 × layers × width × block (PaLM, app. B).
    flops_per_token = 6 * parameters + 12 * shape["n_layer"] * shape["n_embd"] * block
    card = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in card), None)
    return {"arm": "pretrain-124m", "method": "full", "path": "pretrain", "parameters": parameters,
            "precision": placement.precision, "tokens_per_s": round(tokens_per_s, 1),
            "peak_memory_mb": round(meter.peak_mb()),
            "mfu": round(tokens_per_s * flops_per_token / peak, 4) if peak else None, "card": card}


def write_results(out: Path, device: str, results: list[dict]) -> None:
    """results.json (every arm's figures and the ratios) and results.md (the same as tables)."""
    by = {r["arm"]: r for r in results}
    ratios = {}
    for method in ("lora", "qlora"):
        plain = by.get(f"{method}-plain")
        for name, r in by.items():
            if plain and name.startswith(method + "-") and name != plain["arm"] and "trained_tokens_per_s" in r:
                ratios[name] = {"speedup": round(r["trained_tokens_per_s"] / plain["trained_tokens_per_s"], 2),
                                "memory_ratio": round(r["peak_memory_mb"] / plain["peak_memory_mb"], 2)}
    card = next((r.get("card") for r in results if r.get("card")), device)
    (out / "results.json").write_text(json.dumps({"device": device, "card": card, "arms": results,
                                                  "against_plain": ratios,
                                                  "goals": {"qlora_speedup": 2.0, "qlora_memory_ratio": 0.4,
                                                            "mfu_124m": 0.45}}, indent=1))
    lines = [f"# GPU bench ({card})", "", "| arm | plan | trained tokens/s | peak memory MB | vs plain: speed | "
             "vs plain: memory | loss first → last |", "|---|---|---|---|---|---|---|"]
    for r in results:
        if "trained_tokens_per_s" in r:
            ratio = ratios.get(r["arm"], {})
            lines.append(f"| {r['arm']} | {r['plan']} | {r['trained_tokens_per_s']} | {r['peak_memory_mb']} | "
                         f"{ratio.get('speedup', '—')} | {ratio.get('memory_ratio', '—')} | "
                         f"{r['first_loss']} → {r['last_loss']} |")
    for r in results:
        if r["arm"] == "pretrain-124m":
            lines += ["", f"Pretraining, {r['parameters']:,} parameters in {r['precision']}: {r['tokens_per_s']} "
                          f"tokens/s, peak memory {r['peak_memory_mb']} MB, MFU {r['mfu']}."]
        if "error" in r:
            lines += ["", f"{r['arm']} failed: {r['error']}"]
    (out / "results.md").write_text("\n".join(lines) + "\n")


def write_environment(out: Path) -> None:
    import importlib.util
    import platform

    import peft
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    (out / "environment.json").write_text(json.dumps({
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "cuda": cuda, "card": torch.cuda.get_device_name() if cuda else platform.processor() or "cpu",
        "liger_kernel": importlib.util.find_spec("liger_kernel") is not None}))


def run_in_process(arm: str, base: Path, s: SimpleNamespace, device: str, tiny: bool) -> dict:
    try:
        return pretrain_arm(s, device, tiny) if arm == "pretrain-124m" else finetune_arm(arm, base, s, device)
    except Exception as error:  # one failed arm must not cost the others' figures
        return {"arm": arm, "error": f"{type(error).__name__}: {error}"[:300]}
    finally:
        if LIGER_AVAILABLE is not None:  # an unfused arm turned the engine's check off
            from engine.training import batches

            batches.liger_available = LIGER_AVAILABLE


def run_in_child(arm: str, base: Path, args) -> dict:
    command = [sys.executable, __file__, "--child", arm, str(base), "--out", str(args.out)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=args.arm_timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"arm": arm, "error": f"past its {args.arm_timeout} s"}
    if done.returncode != 0:
        (args.out / f"{arm}.stderr.txt").write_text(done.stderr[-20000:])
        return {"arm": arm, "error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tiny", action="store_true", help="a tiny shape on the CPU (the test suite's run)")
    parser.add_argument("--arms", default=",".join(ARMS))
    parser.add_argument("--arm-timeout", type=int, default=150, help="seconds one arm may take")
    parser.add_argument("--child", nargs=2, metavar=("ARM", "BASE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    s = sizes(args.tiny)
    device = "cpu" if args.tiny else "cuda"
    if args.child:
        arm, base = args.child
        figures = pretrain_arm(s, device, args.tiny) if arm == "pretrain-124m" else finetune_arm(arm, Path(base), s, device)
        print(json.dumps(figures))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    unknown = set(args.arms.split(",")) - set(ARMS)
    if unknown:
        raise SystemExit(f"--arms: no arm named {', '.join(sorted(unknown))}; the arms are {', '.join(ARMS)}.")
    write_environment(args.out)
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "llama"
        started = time.perf_counter()
        if args.tiny:
            save_base(base, True, device)
        else:  # the 8B model's init and save leave the GPU to the arms once this process ends
            subprocess.run([sys.executable, "-c", f"import sys; sys.path[:0] = {[str(ROOT), str(ROOT / 'bench')]!r}; "
                            f"from gpu.bench import save_base; from pathlib import Path; "
                            f"save_base(Path({str(base)!r}), False, 'cuda')"], check=True, cwd=ROOT / "bench")
        print(f"base model saved in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
        for arm in args.arms.split(","):
            results.append(run_in_process(arm, base, s, device, args.tiny) if args.tiny
                           else run_in_child(arm, base, args))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
            write_results(args.out, device, results)
    print(json.dumps({"bench": "gpu", "device": device, "arms": len(results),
                      "failed": [r["arm"] for r in results if "error" in r]}))


if __name__ == "__main__":
    main()
