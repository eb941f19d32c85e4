"""Evaluate prompt variants × models on a file of inputs with expected outputs: read the examples and
render every variant's prompt (a bad row or template stops the run here, before any model loads) →
each model in turn answers every example with every variant → each final answer is scored against
the expected one → a table of figures per variant × model.

Outputs, in output/:
- results.jsonl: one line per example × variant × model, in model, variant, example order:
  {"id", "where", "variant", "model", "prompt" (the rendered user message), "system",
  "model_input" (what the model read: chat template, markers and bos included), "answer" (all it
  said), "final_answer" (what the metrics compare: engine/playground/templates.extract_answer),
  "expected", "scores" {metric: value}, "latency_s", "tokens", "prompt_tokens", "finish"
  ("stop" or "length"), "seed" (null when greedy)}; results.csv holds the same, flattened;
- metrics.csv and metrics.json: the table, one row per variant × model: examples, each metric,
  mean latency_s, tokens and prompt_tokens, and `stopped` (the share of answers a stop token ended).

Events: `progress` (stage "evaluate", answers done of all, ETA, plus the `variant` and `model`
being answered); one `metric` event per variant × model as soon as its cell is done (split "eval",
step 0, plus `variant` and `model` fields); a `sample` per cell; `artifact`s for results.jsonl
(dataset) and metrics.json (report, its meta holding the table).
"""

from __future__ import annotations

import csv
import gc
import io
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from engine.devices import Placement, resolve
from engine.errors import DataError
from engine.evaluate_specs import EvaluateSpec
from engine.generate.models import ModelChoice, load, prompt_template, resolve_models, stop_ids
from engine.generate.sampling import Answer, candidate_seed, generate
from engine.playground.data import Plan, prepare
from engine.playground.metrics import aggregate, score
from engine.playground.templates import RenderedPrompt, apply_chat_template, extract_answer
from engine.rundir import atomic_write_text
from engine.runner import JobContext
from engine.specs import spec_to_yaml

FIGURES = ("latency_s", "tokens", "prompt_tokens", "stopped")  # measured in every cell, beside the metrics


def run(ctx: JobContext) -> dict:
    spec: EvaluateSpec = ctx.spec
    placement = resolve(spec.resources)
    plan = plan_prompts(ctx)
    models = resolve_models(spec.models, ctx.run.path.parent.parent)
    ctx.events.log("info", f"{len(plan.examples):,} examples × {len(plan.variants)} variant"
                           f"{'s' if len(plan.variants) > 1 else ''} × {len(models)} model"
                           f"{'s' if len(models) > 1 else ''}, on {placement.device} in {placement.precision}.")
    progress = Progress(ctx, len(plan.examples) * len(plan.variants) * len(models))
    results, table = [], []
    for choice in models:
        ctx.check_cancelled()
        with loaded_model(ctx, choice, placement) as loaded:
            for v, variant in enumerate(plan.variants):
                lines = answer_variant(ctx, loaded, plan, v, progress)
                results.extend(lines)
                table.append(score_cell(ctx, variant.name, choice.label, lines))
    write_outputs(ctx, results, table)
    return summarize(ctx, plan, models, results, table)


def plan_prompts(ctx: JobContext) -> Plan:
    spec = ctx.spec
    ctx.events.progress("prompts", 0, None, "prompts")
    plan = prepare(spec)
    for note in plan.notes:
        ctx.events.log("warning", note)
    ctx.events.log("info", f"Examples: {len(plan.examples):,} from {spec.data.path}; variants: "
                           f"{', '.join(f'{v.name} ({v.preset})' for v in plan.variants)}.")
    return plan


@dataclass
class LoadedModel:
    choice: ModelChoice
    model: Any  # None once freed
    tokenizer: Any
    template: str | None  # the chat template its prompts go through; None = the text as is
    stops: list[int]


@contextmanager
def loaded_model(ctx: JobContext, choice: ModelChoice, placement: Placement) -> Iterator[LoadedModel]:
    """One model on the device, with its prompt layout and stop tokens; freed when the block ends."""
    spec = ctx.spec
    ctx.events.log("info", f"Loading {choice.label}: {choice.description}.")
    dtype = torch.bfloat16 if placement.bf16 else torch.float16 if placement.fp16 else torch.float32
    torch.manual_seed(spec.seed)  # anything loading initialises at random (new embedding rows) is the same each run
    model, tokenizer = load(choice, placement.device, dtype, ctx.events.log)
    held = LoadedModel(choice, model, tokenizer, None, [])
    try:
        held.template = prompt_template(tokenizer, spec.chat_template, choice.label, ctx.events.log)
        held.stops = stop_ids(model, tokenizer, held.template)
        ctx.events.log("info", f"{choice.label}: prompts laid out with "
                               f"{'the prompt text as is' if held.template is None else 'a chat template'}.")
        yield held
    finally:
        # The caller's name for `held` outlives the block: drop the weights here, before the next model loads.
        held.model = model = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def answer_variant(ctx: JobContext, loaded: LoadedModel, plan: Plan, v: int, progress: Progress) -> list[dict]:
    """The result lines of variant `v` from one model, in example order."""
    spec, variant, choice = ctx.spec, plan.variants[v], loaded.choice
    prompts = [apply_chat_template(p, loaded.tokenizer, loaded.template, e.where)
               for p, e in zip(plan.prompts[v], plan.examples)]
    check_context(ctx, loaded.model, choice, variant.name, plan, prompts)
    lines: list[dict | None] = [None] * len(prompts)
    # Longest prompts first, so a batch holds prompts of similar length (less padding); each
    # answer's own seed makes its text independent of this order.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i].token_ids))
    for start in range(0, len(order), spec.sampling.batch_size):
        ctx.check_cancelled()
        batch = order[start:start + spec.sampling.batch_size]
        seeds = [candidate_seed(spec.seed, choice.index, i, v) if spec.sampling.do_sample else None for i in batch]
        began = time.monotonic()
        answers = generate(loaded.model, loaded.tokenizer, [prompts[i].token_ids for i in batch], seeds,
                           spec.sampling, loaded.stops)
        seconds = time.monotonic() - began
        for i, seed, answer in zip(batch, seeds, answers):
            lines[i] = result_line(ctx, plan, v, i, choice, prompts[i], answer, seconds, seed)
        progress.advance(len(batch), seconds, variant.name, choice.label,
                         last=start + spec.sampling.batch_size >= len(order))
    return lines


def result_line(ctx: JobContext, plan: Plan, v: int, i: int, choice: ModelChoice, prompt: RenderedPrompt,
                answer: Answer, seconds: float, seed: int | None) -> dict:
    """One line of results.jsonl: example i asked by variant v, answered and scored."""
    scoring, variant, example = ctx.spec.scoring, plan.variants[v], plan.examples[i]
    final = extract_answer(answer.text, variant.preset, variant.answer_pattern)
    pattern = example.pattern if example.pattern is not None else variant.regex
    return {"id": example.id, "where": example.where, "variant": variant.name, "model": choice.label,
            "prompt": prompt.text, "system": prompt.system, "model_input": prompt.model_input,
            "answer": answer.text, "final_answer": final, "expected": example.expected,
            "scores": score(final, example.expected, scoring.metrics, pattern, scoring.case_sensitive),
            "latency_s": round(seconds, 4), "tokens": answer.tokens, "prompt_tokens": len(prompt.token_ids),
            "finish": answer.finish, "seed": seed}


def check_context(ctx: JobContext, model, choice: ModelChoice, variant: str, plan: Plan, prompts: list) -> None:
    positions = getattr(model.config, "max_position_embeddings", None)
    longest = max(range(len(prompts)), key=lambda i: len(prompts[i].token_ids))
    size, wanted = len(prompts[longest].token_ids), ctx.spec.sampling.max_new_tokens
    if positions and size + wanted > positions:
        raise DataError(f"{plan.examples[longest].where}: variant '{variant}' makes a prompt of {size:,} tokens for "
                        f"{choice.label}; with sampling.max_new_tokens ({wanted:,}) that is more than the "
                        f"{positions:,} positions the model has.",
                        "Lower sampling.max_new_tokens, fewer few-shot examples (examples.k), or shorten that row.")


def score_cell(ctx: JobContext, variant: str, model: str, lines: list[dict]) -> dict:
    """The table row of one variant × model, sent as a `metric` event as soon as it is known."""
    scoring = ctx.spec.scoring
    values = aggregate([line["scores"] for line in lines], [line["final_answer"] for line in lines],
                       [line["expected"] for line in lines], scoring.metrics, scoring.case_sensitive)
    n = len(lines)
    values |= {"latency_s": round(sum(line["latency_s"] for line in lines) / n, 4),
               "tokens": round(sum(line["tokens"] for line in lines) / n, 2),
               "prompt_tokens": round(sum(line["prompt_tokens"] for line in lines) / n, 2),
               "stopped": round(sum(line["finish"] == "stop" for line in lines) / n, 4)}
    ctx.events.emit("metric", step=0, split="eval", values=values, variant=variant, model=model)
    first = lines[0]
    ctx.events.sample(0, first["prompt"], f"{model} / {variant}: {first['answer']}   (expected: {first['expected']})")
    return {"variant": variant, "model": model, "examples": n, **values}


class Progress:
    """`progress` events counted in answers, with an ETA from the generation rate so far and the
    variant × model being answered; at most one a second, and one at the end of each variant × model."""

    def __init__(self, ctx: JobContext, total: int):
        self.ctx, self.total, self.done, self.busy, self.shown = ctx, total, 0, 0.0, 0.0

    def advance(self, answers: int, seconds: float, variant: str, model: str, last: bool = False) -> None:
        self.done, self.busy = self.done + answers, self.busy + seconds
        if not last and time.monotonic() - self.shown < 1.0:
            return
        self.shown = time.monotonic()
        eta = self.busy / self.done * (self.total - self.done)
        self.ctx.events.emit("progress", stage="evaluate", done=self.done, total=self.total, unit="answers",
                             eta_s=round(eta, 1), variant=variant, model=model)
        self.ctx.update_status(self.done)


def write_outputs(ctx: JobContext, results: list[dict], table: list[dict]) -> None:
    """results.jsonl/.csv and metrics.json/.csv, each written whole or not at all."""
    spec, out = ctx.spec, ctx.run.output_dir
    out.mkdir(parents=True, exist_ok=True)
    columns = ["variant", "model", "examples", *spec.scoring.metrics, *FIGURES]
    atomic_write_text(out / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
    # yes/no scores as 1/0, so that a spreadsheet averages them
    flat = [{k: v for k, v in r.items() if k != "scores"}
            | {k: int(v) if isinstance(v, bool) else v for k, v in r["scores"].items()} for r in results]
    atomic_write_text(out / "results.csv", _csv(flat, ["id", "variant", "model", "expected", "final_answer",
                                                       *spec.scoring.metrics, "latency_s", "tokens", "prompt_tokens",
                                                       "finish", "seed", "answer", "prompt", "system",
                                                       "model_input", "where"]))
    atomic_write_text(out / "metrics.csv", _csv(table, columns))
    record = {"columns": columns, "table": table, "metrics": list(spec.scoring.metrics),
              "case_sensitive": spec.scoring.case_sensitive, "spec": spec_to_yaml(spec)}
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=1, ensure_ascii=False))
    ctx.events.artifact("dataset", str(out / "results.jsonl"), {"format": "evaluation-results", "lines": len(results),
                                                                "csv": str(out / "results.csv")})
    ctx.events.artifact("report", str(out / "metrics.json"), {"table": table, "csv": str(out / "metrics.csv")})


def summarize(ctx: JobContext, plan: Plan, models: list[ModelChoice], results: list[dict], table: list[dict]) -> dict:
    lead = ctx.spec.scoring.metrics[0]
    ranked = [row for row in table if row[lead] is not None]
    best = max(ranked, key=lambda row: row[lead]) if ranked else None
    for row in table:
        figures = ", ".join(f"{name} {row[name]:.4g}" for name in ctx.spec.scoring.metrics if row[name] is not None)
        ctx.events.log("info", f"{row['model']} / {row['variant']}: {figures}; {row['latency_s']:.3g} s and "
                               f"{row['tokens']:.1f} tokens per answer.")
    return {"examples": len(plan.examples), "variants": [v.name for v in plan.variants],
            "models": [m.label for m in models], "answers": len(results),
            "best": best and {"metric": lead, "variant": best["variant"], "model": best["model"], "value": best[lead]},
            "output": str(ctx.run.output_dir)}


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
