"""Evaluate models by two backends that share each loaded model: prompt variants on a file of inputs
with expected outputs (`data`), and benchmark tasks of lm-evaluation-harness (`harness`).

Read the examples and render every variant's prompt, and find every benchmark task and read its data
(a bad row, template, task name or data file, or a hub dataset offline, stops the run here, before
any model loads) → each model in turn answers every example with every variant, each final answer
scored against the expected one, then runs every task → a table of figures per variant × model, and
scores with standard errors per task × model.

Outputs, in output/:
- results.jsonl: one line per example × variant × model, in model, variant, example order:
  {"id", "where", "variant", "model", "prompt" (the rendered user message), "system",
  "model_input" (what the model read: chat template, markers and bos included), "answer" (all it
  said), "final_answer" (what the metrics compare: engine/playground/templates.extract_answer),
  "expected", "expected_calls" (the calls a row offering tools expects, else null), "scores" {metric:
  value}, "latency_s", "tokens", "prompt_tokens", "finish"
  ("stop" or "length"), "seed" (null when greedy)}; results.csv holds the same, flattened;
- metrics.csv and metrics.json: the table, one row per variant × model: examples, each metric,
  mean latency_s, tokens and prompt_tokens, and `stopped` (the share of answers a stop token ended);
  metrics.json also holds each row's standard errors. When rows expect tool calls, their answers are
  scored by call, as fine-tuning's evaluation scores them (engine/finetune/tool_calls.calls_match: the
  same functions in order, arguments compared as JSON values): that is their exact_match, their
  final_answer is the calls found in the answer (one JSON object a line), and the table gets a
  call_accuracy column, the share over those rows alone;
- harness.json: the benchmark scores, one entry per task (and group) × model: {"model", "task",
  "values" {metric: score}, "stderr" {metric: standard error}, "examples", "higher_is_better"},
  with the tasks as found and the harness's version; harness.csv: one line per score;
  harness_samples.jsonl: one line per scored example (model, task, doc_id, target, response, scores).

Events: `progress` (stage "evaluate": answers done of all, plus the `variant` and `model` being
answered; stage "benchmark": tasks done of all, plus the `task` and `model`); one `metric` event per
variant × model and per task × model as soon as it is done (split "eval", step 0, `values`, their
`stderr`, plus `variant` or `task`, and `model`); a `sample` per cell; `artifact`s for results.jsonl
(dataset), metrics.json and harness.json (reports, their meta holding the tables).
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
from engine.finetune.tool_calls import calls_in, calls_match, calls_text
from engine.generate.models import load, prompt_template, resolve_models, stop_ids
from engine.generate.sampling import Answer, candidate_seed, generate
from engine.models import ModelChoice, check_positions
from engine.playground.data import Plan, prepare
from engine.playground.harness import HarnessTask, TaskScore, evaluate_task, load_tasks
from engine.playground.metrics import aggregate, score, stderrs
from engine.playground.templates import RenderedPrompt, apply_chat_template, extract_answer
from engine.rundir import atomic_write_text
from engine.progress import ProgressMeter
from engine.runner import JobContext
from engine.specs import spec_to_yaml
from engine.specs.evaluate import EvaluateSpec

FIGURES = ("latency_s", "tokens", "prompt_tokens", "stopped")  # measured in every cell, beside the metrics
CALLS = "call_accuracy"  # the column of rows that expect tool calls (fine-tuning's name for the same figure)


def run(ctx: JobContext) -> dict:
    spec: EvaluateSpec = ctx.spec
    placement = resolve(spec.resources)
    plan = plan_prompts(ctx) if spec.data is not None else None
    tasks, manager = plan_tasks(ctx) if spec.harness is not None else ([], None)
    models = resolve_models(spec.models, ctx.run.path.parent.parent)
    asked = ([f"{len(plan.examples):,} examples × {len(plan.variants)} variant{'s' if len(plan.variants) > 1 else ''}"]
             if plan else []) + ([f"{len(tasks)} benchmark task{'s' if len(tasks) > 1 else ''}"] if tasks else [])
    ctx.events.log("info", f"{' and '.join(asked)} × {len(models)} model{'s' if len(models) > 1 else ''}, on "
                           f"{placement.device} in {placement.precision}.")
    answers = ProgressMeter(ctx, "evaluate", len(plan.examples) * len(plan.variants) * len(models), "answers",
                            start=0) if plan else None
    benchmark = ProgressMeter(ctx, "benchmark", len(tasks) * len(models), "tasks", start=0) if tasks else None
    results, table, scores, samples = [], [], [], []
    for choice in models:
        ctx.check_cancelled()
        with loaded_model(ctx, choice, placement) as loaded:
            for v, variant in enumerate(plan.variants if plan else []):
                lines = answer_variant(ctx, loaded, plan, v, answers)
                results.extend(lines)
                table.append(score_cell(ctx, variant.name, choice.label, lines))
            for task in tasks:
                ctx.check_cancelled()
                found, lines = run_task(ctx, loaded, task, manager, benchmark)
                scores.extend(found)
                samples.extend(lines)
    if plan:
        write_outputs(ctx, results, table)
    if tasks:
        write_benchmark(ctx, tasks, scores, samples)
    return summarize(ctx, plan, models, results, table, scores)


def plan_prompts(ctx: JobContext) -> Plan:
    spec = ctx.spec
    ctx.events.progress("prompts", 0, None, "prompts")
    plan = prepare(spec)
    for note in plan.notes:
        ctx.events.log("warning", note)
    ctx.events.log("info", f"Examples: {len(plan.examples):,} from {spec.data.path}; variants: "
                           f"{', '.join(f'{v.name} ({v.preset})' for v in plan.variants)}.")
    return plan


def plan_tasks(ctx: JobContext) -> tuple[list[HarnessTask], object]:
    ctx.events.progress("tasks", 0, None, "tasks")
    tasks, manager = load_tasks(ctx.spec.harness, ctx.events.log)
    ctx.events.log("info", "Benchmark tasks: " + ", ".join(
        f"{t.name} ({t.local})" if t.local else t.name for t in tasks) + ".")
    return tasks, manager


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
    torch.manual_seed(spec.seed)  # anything loading initialises at random (new embedding rows) is the same each run
    model, tokenizer = load(choice, placement.device, placement.dtype, ctx.events.log)
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


def answer_variant(ctx: JobContext, loaded: LoadedModel, plan: Plan, v: int, progress: ProgressMeter) -> list[dict]:
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
        progress.advance(len(batch), seconds, variant=variant.name, model=choice.label,
                         force=start + spec.sampling.batch_size >= len(order))
    return lines


def result_line(ctx: JobContext, plan: Plan, v: int, i: int, choice: ModelChoice, prompt: RenderedPrompt,
                answer: Answer, seconds: float, seed: int | None) -> dict:
    """One line of results.jsonl: example i asked by variant v, answered and scored."""
    scoring, variant, example = ctx.spec.scoring, plan.variants[v], plan.examples[i]
    pattern = example.pattern if example.pattern is not None else variant.regex
    if example.calls:
        final = calls_text(calls_in(answer.text))
    else:
        final = extract_answer(answer.text, variant.preset, variant.answer_pattern)
    scores = score(final, example.expected, scoring.metrics, pattern, scoring.case_sensitive)
    if plan.calls:
        scores |= call_scores(answer.text, example.calls, scoring.metrics)
    return {"id": example.id, "where": example.where, "variant": variant.name, "model": choice.label,
            "prompt": prompt.text, "system": prompt.system, "model_input": prompt.model_input,
            "answer": answer.text, "final_answer": final, "expected": example.expected,
            "expected_calls": example.calls, "scores": scores,
            "latency_s": round(seconds, 4), "tokens": answer.tokens, "prompt_tokens": len(prompt.token_ids),
            "finish": answer.finish, "seed": seed}


def call_scores(answer: str, expected: list[dict] | None, metrics: list[str]) -> dict[str, bool | None]:
    """The by-call figures of one answer in a plan where rows expect tool calls: for a row that does,
    exact_match (when asked for) and call_accuracy are whether the answer makes exactly those calls;
    for a row that expects text, call_accuracy is None (the column's share counts call rows alone)."""
    if not expected:
        return {CALLS: None}
    made = calls_match(answer, expected)
    return {CALLS: made} | ({"exact_match": made} if "exact_match" in metrics else {})


def check_context(ctx: JobContext, model, choice: ModelChoice, variant: str, plan: Plan, prompts: list) -> None:
    longest = max(range(len(prompts)), key=lambda i: len(prompts[i].token_ids))
    size, wanted = len(prompts[longest].token_ids), ctx.spec.sampling.max_new_tokens
    check_positions(model.config, size + wanted,
                    f"{plan.examples[longest].where}: the prompt variant '{variant}' makes ({size:,} tokens) with "
                    f"sampling.max_new_tokens ({wanted:,})", choice.label,
                    "Lower sampling.max_new_tokens, fewer few-shot examples (examples.k), or shorten that row.")


def score_cell(ctx: JobContext, variant: str, model: str, lines: list[dict]) -> dict:
    """The table row of one variant × model, sent as a `metric` event as soon as it is known."""
    metrics = measured(ctx.spec.scoring.metrics, any(line["expected_calls"] for line in lines))
    values = aggregate([line["scores"] for line in lines], [line["final_answer"] for line in lines],
                       [line["expected"] for line in lines], metrics, ctx.spec.scoring.case_sensitive)
    n = len(lines)
    errors = stderrs([line["scores"] for line in lines], metrics)
    values |= {"latency_s": round(sum(line["latency_s"] for line in lines) / n, 4),
               "tokens": round(sum(line["tokens"] for line in lines) / n, 2),
               "prompt_tokens": round(sum(line["prompt_tokens"] for line in lines) / n, 2),
               "stopped": round(sum(line["finish"] == "stop" for line in lines) / n, 4)}
    ctx.events.emit("metric", step=0, split="eval", values=values, stderr=errors, variant=variant, model=model)
    first = lines[0]
    ctx.events.sample(0, first["prompt"], f"{model} / {variant}: {first['answer']}   (expected: {first['expected']})")
    return {"variant": variant, "model": model, "examples": n, **values, "stderr": errors}


def measured(metrics: list[str], calls: bool) -> list[str]:
    """The table's metric columns: the spec's, and call_accuracy when rows expect tool calls."""
    return [*metrics, CALLS] if calls else list(metrics)


def run_task(ctx: JobContext, loaded: LoadedModel, task: HarnessTask, manager, progress: ProgressMeter
             ) -> tuple[list[dict], list[dict]]:
    """One benchmark task on one model: a `metric` event per task (and group) scored, and their lines."""
    label = loaded.choice.label
    began = time.monotonic()
    found, samples = evaluate_task(task, manager, loaded.model, loaded.tokenizer, loaded.template, ctx.spec.harness,
                                   ctx.spec.seed)
    rows = []
    for found_score in found:
        ctx.events.emit("metric", step=0, split="eval", values=found_score.values, stderr=found_score.stderr,
                        task=found_score.task, model=label, examples=found_score.examples)
        rows.append(score_row(label, found_score))
    if samples:
        first = samples[0]
        ctx.events.sample(0, f"{first['task']} #{first['doc_id']}",
                          f"{label}: {first['response']}   (expected: {first['target']})")
    progress.advance(1, time.monotonic() - began, task=task.name, model=label, force=True)
    return rows, [{"model": label, **line} for line in samples]


def score_row(model: str, found: TaskScore) -> dict:
    return {"model": model, "task": found.task, "values": found.values, "stderr": found.stderr,
            "examples": found.examples, "higher_is_better": found.higher_is_better}


def write_outputs(ctx: JobContext, results: list[dict], table: list[dict]) -> None:
    """results.jsonl/.csv and metrics.json/.csv, each written whole or not at all."""
    spec, out = ctx.spec, ctx.run.output_dir
    out.mkdir(parents=True, exist_ok=True)
    metrics = measured(spec.scoring.metrics, any(r["expected_calls"] for r in results))
    columns = ["variant", "model", "examples", *metrics, *FIGURES]
    atomic_write_text(out / "results.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
    # yes/no scores as 1/0, so that a spreadsheet averages them
    flat = [{k: v for k, v in r.items() if k != "scores"}
            | {k: int(v) if isinstance(v, bool) else v for k, v in r["scores"].items()} for r in results]
    atomic_write_text(out / "results.csv", _csv(flat, ["id", "variant", "model", "expected", "final_answer",
                                                       *metrics, "latency_s", "tokens", "prompt_tokens",
                                                       "finish", "seed", "answer", "prompt", "system",
                                                       "model_input", "where"]))
    atomic_write_text(out / "metrics.csv", _csv(table, columns))
    record = {"columns": columns, "table": table, "metrics": metrics,
              "case_sensitive": spec.scoring.case_sensitive, "spec": spec_to_yaml(spec)}
    atomic_write_text(out / "metrics.json", json.dumps(record, indent=1, ensure_ascii=False))
    ctx.events.artifact("dataset", str(out / "results.jsonl"), {"format": "evaluation-results", "lines": len(results),
                                                                "csv": str(out / "results.csv")})
    ctx.events.artifact("report", str(out / "metrics.json"), {"table": table, "csv": str(out / "metrics.csv")})


def write_benchmark(ctx: JobContext, tasks: list[HarnessTask], scores: list[dict], samples: list[dict]) -> None:
    """harness.json/.csv and harness_samples.jsonl, each written whole or not at all."""
    import lm_eval

    out = ctx.run.output_dir
    out.mkdir(parents=True, exist_ok=True)
    record = {"tasks": [{"entry": t.entry, "name": t.name, "local": str(t.local) if t.local else None}
                        for t in tasks],
              "scores": scores, "settings": ctx.spec.harness.model_dump(mode="json"),
              "versions": {"lm_eval": lm_eval.__version__, "torch": torch.__version__}}
    atomic_write_text(out / "harness.json", json.dumps(record, indent=1, ensure_ascii=False))
    flat = [{"model": row["model"], "task": row["task"], "metric": metric, "value": value,
             "stderr": row["stderr"].get(metric), "examples": row["examples"]}
            for row in scores for metric, value in row["values"].items()]
    atomic_write_text(out / "harness.csv", _csv(flat, ["model", "task", "metric", "value", "stderr", "examples"]))
    atomic_write_text(out / "harness_samples.jsonl",
                      "".join(json.dumps(line, ensure_ascii=False, default=str) + "\n" for line in samples))
    ctx.events.artifact("report", str(out / "harness.json"), {"format": "benchmark-scores", "scores": scores,
                                                             "csv": str(out / "harness.csv"),
                                                             "samples": str(out / "harness_samples.jsonl")})


def summarize(ctx: JobContext, plan: Plan | None, models: list[ModelChoice], results: list[dict], table: list[dict],
              scores: list[dict]) -> dict:
    summary: dict = {"models": [m.label for m in models], "output": str(ctx.run.output_dir)}
    if plan is not None:
        lead = ctx.spec.scoring.metrics[0]
        ranked = [row for row in table if row[lead] is not None]
        best = max(ranked, key=lambda row: row[lead]) if ranked else None
        for row in table:
            figures = ", ".join(f"{name} {row[name]:.4g}" for name in ctx.spec.scoring.metrics if row[name] is not None)
            ctx.events.log("info", f"{row['model']} / {row['variant']}: {figures}; {row['latency_s']:.3g} s and "
                                   f"{row['tokens']:.1f} tokens per answer.")
        summary |= {"examples": len(plan.examples), "variants": [v.name for v in plan.variants],
                    "answers": len(results),
                    "best": best and {"metric": lead, "variant": best["variant"], "model": best["model"],
                                      "value": best[lead]}}
    if scores:
        benchmark: dict = {}
        for row in scores:
            benchmark.setdefault(row["model"], {})[row["task"]] = row["values"]
            figures = ", ".join(f"{name} {value:.4g}" + (f" ± {row['stderr'][name]:.2g}"
                                                         if row["stderr"].get(name) is not None else "")
                                for name, value in row["values"].items() if value is not None)
            ctx.events.log("info", f"{row['model']} / {row['task']}: {figures or 'no score'}"
                                   f" ({row['examples']} examples).")
        summary["benchmark"] = benchmark
    return summary


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
