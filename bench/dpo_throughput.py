"""Tokens/s and peak memory of DPO training, packed (padding-free) against padded.

The model of bench/sft_throughput.py (a llama of ≥ 20M parameters, random init) with a LoRA adapter (rank 16 on the
attention and MLP projections; the reference is the policy with its adapter off), on preference pairs of that
bench's long-tailed lengths (median ~150 tokens, 1% above 1,500, at most 2,048): each pair's prompt and chosen
answer are one generated record, its rejected answer the answer of the next. Both arms are the DPO recipe's own
`build_trainer` (TRL's DPOTrainer, the sigmoid loss), with the same pairs in the same order, init, optimizer,
schedule and batch size:

- padded: TRL's batch, every chosen and rejected conversation right-padded to the batch's longest
  (`train.packing: off`);
- packed: `train.packing: auto`, the default — the batch's conversations end to end in one row where that
  computes less than padded rows, for the policy's forward and the reference's (`--packing on`: every batch).

Each arm trains in its own child process, so that its peak RSS is its own; the parent prints one JSON line.
Tokens are the conversations' real tokens; tokens/s is timed over the steps after the first few.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/dpo_throughput.py [--steps 10] [--pairs 400] [--packing on]
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
        "kind": "dpo", "name": "bench", "model": {"path": "generated"},
        "data": {"sources": ["generated"], "max_length": MAX_LENGTH, "eval_fraction": 0.0},
        "method": {"name": "lora", "lora": {"rank": 16, "alpha": 32}},
        "train": {"max_steps": steps, "batch_size": BATCH, "learning_rate": 1e-4, "warmup_steps": 2, "log_every": 1,
                  "checkpoint_every": 100_000, "eval_every": 100_000, "packing": packing},
        "evaluation": {"task": "none"},
        "resources": {"device": "cpu"},
    })


def generated_pairs(count: int, seed: int) -> list[dict]:
    """{"prompt_ids", "chosen_ids", "rejected_ids"} as the DPO job tokenizes pairs."""
    records = generated_records(count + 1, seed)

    def split(record: dict) -> tuple[list[int], list[int]]:
        start = next(i for i, label in enumerate(record["labels"]) if label != -100)
        return record["input_ids"][:start], record["input_ids"][start:]

    parts = [split(r) for r in records]
    return [{"prompt_ids": parts[i][0], "chosen_ids": parts[i][1], "rejected_ids": parts[i + 1][1]}
            for i in range(count)]


def train_one(arm: str, steps: int, count: int, packing: str) -> dict:
    """Train one arm in this process; its figures, with this process's peak RSS."""
    import datasets
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast, TrainerCallback, set_seed

    from engine.devices import resolve
    from engine.jobs.dpo import build_trainer
    from engine.protocol import EventWriter
    from engine.rlhf.policy_model import Policy
    from engine.rundir import RunDirectory
    from engine.runner import JobContext

    spec = bench_spec(steps, packing if arm == "packed" else "off")
    rows = generated_pairs(count, spec.seed)
    set_seed(spec.seed)
    net = model()
    parameters = net.num_parameters()

    class Clock(TrainerCallback):
        times: list[float] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter())

    # What the trainer needs of a tokenizer (the pairs are token ids already): the special tokens.
    tokens = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel({"<pad>": 0, "<s>": 1, "</s>": 2}, "<pad>")),
                                     pad_token="<pad>", bos_token="<s>", eos_token="</s>")

    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory.create(Path(tmp), f"bench-{arm}")
        events: list[dict] = []
        ctx = JobContext(spec=spec, run=run, events=EventWriter(run.events_path, [events.append]))
        placement = resolve(spec.resources)
        policy = Policy(net, tokens, None, None, [2])
        trainer, _ = build_trainer(ctx, placement, policy, datasets.Dataset.from_list(rows), None, None)
        clock = Clock()
        trainer.add_callback(clock)
        trainer.train()
        ctx.events.close()
    times = clock.times[WARMUP_STEPS - 1:]
    train = [e["values"] for e in events if e["type"] == "metric" and e.get("split") == "train"]
    per_step = [sum(len(r["prompt_ids"]) * 2 + len(r["chosen_ids"]) + len(r["rejected_ids"])
                    for r in rows[s * BATCH:(s + 1) * BATCH]) for s in range(len(clock.times))]
    batches = next((e["message"] for e in events if e["type"] == "log" and e["message"].startswith("Batches:")), "")
    return {"arm": arm, "parameters": parameters, "steps": len(clock.times), "batches": batches,
            "tokens_per_s": sum(per_step[WARMUP_STEPS:]) / (times[-1] - times[0]), "seconds": times[-1] - times[0],
            "padding_efficiency": [v.get("padding_efficiency") for v in train],
            "losses": [h["loss"] for h in trainer.state.log_history if "loss" in h],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def child(arm: str, args) -> dict:
    return run_arm(__file__, arm, ["--steps", str(args.steps), "--pairs", str(args.pairs), "--packing", args.packing])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pairs", type=int, default=400)
    parser.add_argument("--packing", choices=["auto", "on"], default="auto")
    parser.add_argument("--child", choices=["padded", "packed"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_one(args.child, args.steps, args.pairs, args.packing)))
        return
    padded, packed = child("padded", args), child("packed", args)
    print(json.dumps({
        "bench": "dpo_throughput", "device": "cpu", "threads": padded["threads"], "packing": args.packing,
        "parameters": padded["parameters"], "steps": args.steps, "pairs_per_step": BATCH, "max_length": MAX_LENGTH,
        "padded_tokens_per_s": round(padded["tokens_per_s"], 1), "packed_tokens_per_s": round(packed["tokens_per_s"], 1),
        "speedup": round(packed["tokens_per_s"] / padded["tokens_per_s"], 2),
        "padded_peak_rss_mb": round(padded["peak_rss_mb"]), "packed_peak_rss_mb": round(packed["peak_rss_mb"]),
        "memory_ratio": round(packed["peak_rss_mb"] / padded["peak_rss_mb"], 2),
        "padding_efficiency": {"padded": padded["padding_efficiency"], "packed": packed["padding_efficiency"]},
        "batches": packed["batches"],
        "loss_max_rel_diff": round(max(abs(a - b) / abs(a) for a, b in zip(padded["losses"], packed["losses"])), 5),
        "padded_losses": [round(x, 4) for x in padded["losses"]], "packed_losses": [round(x, 4) for x in packed["losses"]],
    }))


if __name__ == "__main__":
    main()
