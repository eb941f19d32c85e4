"""Tokens/s and peak memory of reward-model training, packed (padding-free) against padded.

The model of bench/sft_throughput.py (a llama of ≥ 20M parameters, random init) with a one-score head, on
preference pairs whose conversations have that bench's long-tailed lengths (median ~150 tokens, 1% above
1,500, at most 2,048): each pair's chosen conversation is one generated record, its rejected one the next.
Both arms are the reward recipe's own `build_trainer` (TRL's RewardTrainer), with the same pairs in the same
order, init, optimizer, schedule and batch size:

- padded: TRL's batch, every conversation right-padded to the batch's longest (`train.packing: off`);
- packed: the batch's conversations end to end in one row, each score read at its last token.

Each arm trains in its own child process, so that its peak RSS is its own; the parent prints one JSON line.
Tokens are the conversations' real tokens; tokens/s is timed over the steps after the first few.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/reward_throughput.py [--steps 10] [--pairs 400]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.arms import run_arm  # noqa: E402
from bench.sft_throughput import MAX_LENGTH, WARMUP_STEPS, generated_records, model  # noqa: E402

BATCH = 4  # pairs per step: 8 conversations, as the fine-tuning bench's batch


def bench_spec(steps: int, packing: str):
    from engine.specs import parse_spec

    return parse_spec({
        "kind": "reward", "name": "bench", "model": {"path": "generated"},
        "data": {"sources": ["generated"], "max_length": MAX_LENGTH, "eval_fraction": 0.1},
        "method": {"name": "full"},
        "train": {"max_steps": steps, "batch_size": BATCH, "learning_rate": 3e-4, "warmup_steps": 2, "log_every": 1,
                  "checkpoint_every": 100_000, "eval_every": 100_000, "packing": packing},
        "resources": {"device": "cpu"},
    })


def generated_pairs(count: int, seed: int) -> list[dict]:
    records = [r["input_ids"] for r in generated_records(count + 1, seed)]
    return [{"chosen_ids": records[i], "rejected_ids": records[i + 1]} for i in range(count)]


def score_model():
    import torch
    from transformers import AutoModelForSequenceClassification

    config = model().config
    config.num_labels = 1
    torch.manual_seed(0)
    return AutoModelForSequenceClassification.from_config(config)


def train_one(arm: str, steps: int, count: int) -> dict:
    """Train one arm in this process; its figures, with this process's peak RSS."""
    import torch
    from transformers import TrainerCallback, set_seed

    from engine.devices import resolve
    from engine.protocol import EventWriter
    from engine.rlhf.reward_scoring import PairScorer
    from engine.rlhf.reward_training import build_trainer
    from engine.rundir import RunDirectory
    from engine.runner import JobContext
    from engine.training.batches import Packing

    spec = bench_spec(steps, "on" if arm == "packed" else "off")
    rows = generated_pairs(count, spec.seed)
    set_seed(spec.seed)
    net = score_model()
    net.config.pad_token_id = 0
    parameters = net.num_parameters()

    class Counting:
        """The arm's collator, counting the real tokens and the slots (rows × width) it batches."""

        def __init__(self, inner):
            self.inner, self.real, self.slots = inner, [], []

        def __call__(self, features):
            self.real.append(sum(len(f["chosen_ids"]) + len(f["rejected_ids"]) for f in features))
            batch = self.inner(features)
            self.slots.append(batch["input_ids"].numel())
            return batch

    class Clock(TrainerCallback):
        times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    class Tokens:  # what the trainer needs of a tokenizer: the records are token ids already
        pad_token_id, eos_token_id, eos_token, pad_token = 0, 2, "</s>", "<pad>"

        def get_vocab(self):
            return {"<pad>": 0, "</s>": 2}

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory.create(Path(tmp), f"bench-{arm}")
        ctx = JobContext(spec=spec, run=run, events=EventWriter(run.events_path))
        placement = resolve(spec.resources)
        trainer = build_trainer(ctx, placement, net, Tokens(), rows, PairScorer([], 0, BATCH), parameters,
                                packing=Packing(arm == "packed"))
        trainer.processing_class = None  # nothing to save with the checkpoints
        counting = Counting(trainer.data_collator)
        trainer.data_collator = counting
        clock = Clock()
        trainer.add_callback(clock)
        trainer.train()
        ctx.events.close()
    times = clock.times[WARMUP_STEPS - 1:]
    real = sum(counting.real[WARMUP_STEPS:len(clock.times)])
    return {"arm": arm, "parameters": parameters, "steps": len(clock.times),
            "tokens_per_s": real / (times[-1] - times[0]), "seconds": times[-1] - times[0],
            "slots": sum(counting.slots[:len(clock.times)]), "real": sum(counting.real[:len(clock.times)]),
            "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def child(arm: str, args) -> dict:
    return run_arm(__file__, arm, ["--steps", str(args.steps), "--pairs", str(args.pairs)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--child", choices=["padded", "packed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_one(args.child, args.steps, args.pairs)))
        return
    padded, packed = child("padded", args), child("packed", args)
    print(json.dumps({
        "bench": "reward_throughput", "device": "cpu", "threads": padded["threads"],
        "parameters": padded["parameters"], "steps": args.steps, "pairs_per_step": BATCH, "max_length": MAX_LENGTH,
        "padded_tokens_per_s": round(padded["tokens_per_s"], 1), "packed_tokens_per_s": round(packed["tokens_per_s"], 1),
        "speedup": round(packed["tokens_per_s"] / padded["tokens_per_s"], 2),
        "padded_peak_rss_mb": round(padded["peak_rss_mb"]), "packed_peak_rss_mb": round(packed["peak_rss_mb"]),
        "memory_ratio": round(packed["peak_rss_mb"] / padded["peak_rss_mb"], 2),
        "padded_padding_efficiency": round(padded["real"] / padded["slots"], 3),
        "loss_max_rel_diff": round(max(abs(a - b) / abs(a) for a, b in zip(padded["losses"], packed["losses"])), 5),
        "padded_losses": [round(x, 4) for x in padded["losses"]], "packed_losses": [round(x, 4) for x in packed["losses"]],
    }))


if __name__ == "__main__":
    main()
