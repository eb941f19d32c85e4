"""Tokens/s of the engine's pretraining path (Trainer + events callback) against a bare torch loop.

Same model (same init), same packed data, same batch, same optimizer, schedule and clipping, in the
same process; the two are interleaved (engine, bare, engine, bare, …) and the median of each is
compared, so the machine's drift hits both alike. Prints one JSON line. Target: ratio ≥ 0.85 at
about 3M parameters on CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/pretrain_overhead.py [--steps 60] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import TrainerCallback, get_cosine_schedule_with_warmup, set_seed  # noqa: E402

from engine.data.packing import pack_for_causal_lm  # noqa: E402
from engine.data.sources import load_documents  # noqa: E402
from engine.data.tokenizer_training import train_tokenizer  # noqa: E402
from engine.devices import resolve  # noqa: E402
from engine.jobs.pretrain import CausalCollator, build_trainer  # noqa: E402
from engine.protocol import EventWriter  # noqa: E402
from engine.rundir import RunDirectory  # noqa: E402
from engine.runner import JobContext  # noqa: E402
from engine.specs import parse_spec  # noqa: E402
from engine.training.models import build_model  # noqa: E402

WARMUP_STEPS = 5


def bench_spec(steps: int):
    return parse_spec({
        "kind": "pretrain", "name": "bench",
        "data": {"sources": ["builtin:python-docs"], "eval_fraction": 0.0, "max_documents": 4000},
        "tokenizer": {"train": {"vocab_size": 4096}},
        "model": {"architecture": "llama", "hidden_size": 192, "layers": 6, "heads": 6, "context_length": 128},
        "train": {"max_steps": steps, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 10,
                  "log_every": 10, "checkpoint_every": 10_000, "eval_every": 10_000, "sample_every": 10_000},
        "resources": {"device": "cpu"},
    })


class StepClock(TrainerCallback):
    def __init__(self):
        self.times: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter())


def tokens_per_s(times: list[float], tokens_per_step: int) -> float:
    measured = times[WARMUP_STEPS:]
    return tokens_per_step * (len(measured) - 1) / (measured[-1] - measured[0])


def run_engine(spec, tokenizer, blocks, workdir: Path) -> float:
    set_seed(spec.seed)
    run = RunDirectory.create(workdir, f"engine-{time.monotonic_ns()}")
    ctx = JobContext(spec=spec, run=run, events=EventWriter(run.events_path))
    model = build_model(spec.model, tokenizer)
    trainer = build_trainer(ctx, resolve(spec.resources), model, tokenizer, blocks, None, model.num_parameters())
    clock = StepClock()
    trainer.add_callback(clock)
    trainer.train()
    ctx.events.close()
    return tokens_per_s(clock.times, spec.train.batch_size * spec.model.context_length)


def run_bare(spec, tokenizer, blocks) -> float:
    """The reference: the loop a careful person writes by hand, with the same optimisation recipe."""
    set_seed(spec.seed)
    model = build_model(spec.model, tokenizer)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": spec.train.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=spec.train.learning_rate)
    scheduler = get_cosine_schedule_with_warmup(optimizer, spec.train.warmup_steps, spec.train.max_steps)
    loader = torch.utils.data.DataLoader(blocks, batch_size=spec.train.batch_size, shuffle=True,
                                         collate_fn=CausalCollator(), drop_last=True)
    times, step = [], 0
    while step < spec.train.max_steps:
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), spec.train.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if step % spec.train.log_every == 0:
                loss.item()  # a real loop reads the loss to log it, which synchronises like Trainer does
            step += 1
            times.append(time.perf_counter())
            if step >= spec.train.max_steps:
                break
    return tokens_per_s(times, spec.train.batch_size * spec.model.context_length)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    spec = bench_spec(args.steps)
    documents = load_documents(spec.data, spec.seed)
    tokenizer = train_tokenizer(iter(documents["train"]["text"]), spec.tokenizer.train,
                                model_max_length=spec.model.context_length)
    blocks = pack_for_causal_lm(documents["train"], tokenizer, spec.model.context_length)
    parameters = build_model(spec.model, tokenizer).num_parameters()
    engine_runs, bare_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            engine_runs.append(run_engine(spec, tokenizer, blocks, Path(tmp)))
            bare_runs.append(run_bare(spec, tokenizer, blocks))
    engine_tps, bare_tps = statistics.median(engine_runs), statistics.median(bare_runs)
    print(json.dumps({
        "bench": "pretrain_overhead", "device": "cpu", "threads": torch.get_num_threads(),
        "parameters": parameters, "batch": spec.train.batch_size, "context": spec.model.context_length,
        "steps": args.steps, "rounds": args.rounds,
        "engine_tokens_per_s": round(engine_tps), "bare_tokens_per_s": round(bare_tps),
        "engine_runs": [round(x) for x in engine_runs], "bare_runs": [round(x) for x in bare_runs],
        "ratio": round(engine_tps / bare_tps, 3), "target_ratio": 0.85,
    }))


if __name__ == "__main__":
    main()
