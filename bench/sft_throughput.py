"""Trained tokens/s and peak memory of the engine's fine-tuning path against the plain padded Trainer.

A llama-shaped model (≥ 20M parameters: 32,000-token vocabulary, 256 wide, 6 layers; random init,
nothing downloads) fine-tuned in full on a generated instruction set whose lengths are long-tailed as
real ones are (median ~150 tokens, 1% above 1,500, cut at max_length 2,048; answers a third of each
record, the loss on answers only). Both paths see the same records in the same order with the same
init, optimizer, schedule and batch size:

- plain: transformers' Trainer, batches right-padded to their longest record, the model's own loss;
- engine: the finetune recipe's `build_trainer` with `train.packing: auto` and the default loss
  (packed rows where one row computes less than padded ones, batch by batch; chunked cross-entropy at
  the trained positions); `--packing on` packs every batch, for comparison;
- compiled: the engine path with `train.compile: true` (torch.compile, inductor), which decides that
  option's default: its steady tokens/s and its whole wall time, compilation included.

Each path trains in its own child process, so that its peak RSS is its own; the parent prints one JSON
line. Trained tokens are answer tokens (the ones with a loss); tokens/s is timed over the steps after
the first few. Targets: ≥ 2.0× trained tokens/s and ≤ 0.7× peak memory, loss curves within noise.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/sft_throughput.py [--steps 12] [--records 2000] [--no-compiled] [--packing on]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

WARMUP_STEPS = 3
VOCAB, MAX_LENGTH, MEDIAN, TAIL = 32_000, 2048, 150, 1500


def bench_spec(steps: int, packing: str = "auto", compile: bool = False):
    from engine.specs import parse_spec

    return parse_spec({
        "kind": "finetune", "name": "bench", "model": {"path": "generated"},
        "data": {"sources": ["generated"], "max_length": MAX_LENGTH, "eval_fraction": 0.0},
        "method": {"name": "full"},
        "train": {"max_steps": steps, "batch_size": 8, "learning_rate": 3e-4, "warmup_steps": 2, "log_every": 1,
                  "checkpoint_every": 100_000, "eval_every": 100_000, "packing": packing, "compile": compile},
        "evaluation": {"generate_examples": 0, "before_training": False},
        "resources": {"device": "cpu"},
    })


def generated_records(count: int, seed: int) -> list[dict]:
    """Records of lognormal length (median MEDIAN, 1% above TAIL, at most MAX_LENGTH): a prompt of
    Zipf-distributed tokens, then an answer (a third of the record, the loss on it) that is the prompt's
    tokens shifted by one id, something a model can start to learn in a few steps."""
    import numpy as np

    rng = np.random.default_rng(seed)
    sigma = math.log(TAIL / MEDIAN) / 2.326  # the 99th percentile of a standard normal
    lengths = np.clip(np.exp(rng.normal(math.log(MEDIAN), sigma, count)).astype(int), 8, MAX_LENGTH)
    records = []
    for n in lengths:
        answer = max(1, int(n) // 3)
        prompt = (rng.zipf(1.3, int(n) - answer) % (VOCAB - 1)) + 1
        reply = (prompt[:answer] % (VOCAB - 2)) + 1
        reply = np.resize(reply, answer)
        records.append({"input_ids": prompt.tolist() + reply.tolist(),
                        "labels": [-100] * len(prompt) + reply.tolist()})
    return records


def model():
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=VOCAB, hidden_size=256, intermediate_size=688, num_hidden_layers=6, num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH, pad_token_id=0, bos_token_id=1, eos_token_id=2))


def train_one(path: str, steps: int, records: int, packing: str = "auto") -> dict:
    """Train one path in this process; its figures, with this process's peak RSS."""
    import datasets
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

    from engine.devices import resolve
    from engine.finetune.generation import GenerationScorer
    from engine.jobs.finetune import build_trainer
    from engine.protocol import EventWriter
    from engine.rundir import RunDirectory
    from engine.runner import JobContext
    from engine.training.arguments import training_arguments
    from engine.training.batches import PaddedCollator

    spec = bench_spec(steps, packing, compile=path == "compiled")
    rows = generated_records(records, spec.seed)
    trained_of = [sum(1 for x in r["labels"][1:] if x != -100) for r in rows]
    dataset = datasets.Dataset.from_list([{**r, "index": i} for i, r in enumerate(rows)])
    set_seed(spec.seed)
    net = model()
    parameters = net.num_parameters()
    rss_model = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    class Counting:
        """The collator of the path, counting the trained tokens and the records' widths it batches."""

        def __init__(self, inner):
            self.inner, self.trained, self.slots, self.real = inner, [], [], []

        def __call__(self, features):
            self.trained.append(sum(trained_of[f["index"]] for f in features))
            self.real.append(sum(len(f["input_ids"]) for f in features))
            batch = self.inner([{k: f[k] for k in ("input_ids", "labels")} for f in features])
            self.slots.append(batch["input_ids"].numel())
            return batch

    class Clock(TrainerCallback):
        times: list[float] = []
        started = 0.0

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory.create(Path(tmp), f"bench-{path}")
        ctx = JobContext(spec=spec, run=run, events=EventWriter(run.events_path))
        placement = resolve(spec.resources)
        if path == "plain":
            args = TrainingArguments(**training_arguments(ctx, placement, has_eval=False, remove_unused_columns=False))
            trainer = Trainer(model=net, args=args, train_dataset=dataset,
                              data_collator=PaddedCollator(0, keep_trained_logits=False))
        else:
            no_tokenizer = SimpleNamespace(eos_token_id=2, pad_token_id=0)  # the records are token ids already
            trainer = build_trainer(ctx, placement, net, None, dataset, None,
                                    GenerationScorer(no_tokenizer, None, [], 1), parameters)
            ctx.events.close()
        counting = Counting(trainer.data_collator)
        trainer.data_collator = counting
        clock = Clock()
        trainer.add_callback(clock)
        trainer.train()
        plan = [e for e in run.events_path.read_text().splitlines() if "Batches:" in e]
    times = clock.times[WARMUP_STEPS - 1:]
    trained = sum(counting.trained[WARMUP_STEPS:len(clock.times)])
    started = clock.started
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return {"path": path, "parameters": parameters, "steps": len(clock.times),
            "trained_tokens_per_s": trained / (times[-1] - times[0]),
            "slots": sum(counting.slots), "real": sum(counting.real), "trained_tokens": sum(counting.trained[:len(clock.times)]),
            "seconds": clock.times[-1] - clock.times[0], "wall_seconds": clock.times[-1] - started, "losses": losses,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "rss_after_model_mb": rss_model,
            "plan": json.loads(plan[0])["message"] if plan else "plain Trainer, padded", "threads": torch.get_num_threads()}


def child(path: str, args) -> dict:
    # Imported here: bench/gpu/bench.py imports this module with its own folder first on sys.path, where
    # `bench` is that script, not this package.
    from bench.arms import run_arm

    return run_arm(__file__, path, ["--steps", str(args.steps), "--records", str(args.records), "--packing", args.packing])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--no-compiled", action="store_true", help="skip the arm with train.compile on")
    parser.add_argument("--packing", choices=["auto", "on"], default="auto",
                        help="train.packing of the engine's arms (auto: batch by batch where packing computes less)")
    parser.add_argument("--child", choices=["plain", "engine", "compiled"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_one(args.child, args.steps, args.records, args.packing)))
        return
    plain, engine = child("plain", args), child("engine", args)
    compiled = None if args.no_compiled else child("compiled", args)
    pairs = list(zip(plain["losses"], engine["losses"]))
    figures = {
        "bench": "sft_throughput", "device": "cpu", "threads": plain["threads"], "parameters": plain["parameters"],
        "steps": args.steps, "batch": 8, "max_length": MAX_LENGTH, "engine_plan": engine["plan"],
        "plain_trained_tokens_per_s": round(plain["trained_tokens_per_s"], 1),
        "engine_trained_tokens_per_s": round(engine["trained_tokens_per_s"], 1),
        "speedup": round(engine["trained_tokens_per_s"] / plain["trained_tokens_per_s"], 2),
        "plain_peak_rss_mb": round(plain["peak_rss_mb"]), "engine_peak_rss_mb": round(engine["peak_rss_mb"]),
        "memory_ratio": round(engine["peak_rss_mb"] / plain["peak_rss_mb"], 2),
        "rss_after_model_mb": round(plain["rss_after_model_mb"]),
        "plain_padding_efficiency": round(plain["real"] / plain["slots"], 3),
        "engine_padding_efficiency": round(engine["real"] / engine["slots"], 3),
        "loss_max_rel_diff": round(max(abs(a - b) / abs(a) for a, b in pairs), 5),
        "plain_losses": [round(x, 4) for x in plain["losses"]],
        "engine_losses": [round(x, 4) for x in engine["losses"]],
        "plain_seconds": round(plain["seconds"], 1), "engine_seconds": round(engine["seconds"], 1),
        "target_speedup": 2.0, "target_memory_ratio": 0.7,
    }
    if compiled is not None:
        figures.update({
            "compiled_trained_tokens_per_s": round(compiled["trained_tokens_per_s"], 1),
            "compile_speedup": round(compiled["trained_tokens_per_s"] / engine["trained_tokens_per_s"], 2),
            # The whole run, first steps and compilation included: what a user waits for.
            "engine_wall_seconds": round(engine["wall_seconds"], 1),
            "compiled_wall_seconds": round(compiled["wall_seconds"], 1),
            "compiled_peak_rss_mb": round(compiled["peak_rss_mb"]),
            "compiled_loss_max_rel_diff": round(max(abs(a - b) / abs(a) for a, b in
                                                    zip(engine["losses"], compiled["losses"])), 5),
        })
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
