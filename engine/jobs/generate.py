"""Generate a labeling batch: prompts (files, a dataset, or generated tasks) → each model in turn (a
base model, a checkpoint, a base model with a PEFT adapter) answers every prompt
`candidates_per_model` times, each candidate sampled from its own recorded seed → one line per
prompt in output/candidates.jsonl, ready to import into a labeling queue.

A line: {"id", "prompt", "candidates": [{"text", "model", "seed", "meta": {"tokens", "finish"
("stop" or "length"), "correct" (built-in tasks)}}], "meta": {"source", and "reference",
"messages" or "task", "input", "answer" when known}}. Candidates come model by model, in the
order of `models`. output/generation.json records what reproduces them: the resolved models, the
chat template and stop tokens each got, the sampling settings and the seed rule
(engine/generate/sampling.py explains why a seed reproduces its candidate in any batch).
"""

from __future__ import annotations

import gc
import json
import time

import torch
import transformers

from engine.devices import Placement, resolve
from engine.generate.models import load, prompt_template, resolve_models, stop_ids
from engine.generate.prompts import Prompt, load_prompts, prompt_token_ids
from engine.generate.sampling import candidate_seed, generate
from engine.models import ModelChoice, check_positions
from engine.rundir import atomic_write_text
from engine.progress import ProgressMeter
from engine.runner import JobContext
from engine.specs import spec_to_yaml
from engine.specs.generate import GenerateSpec
from engine.tasks.generators import check

SAMPLE_PROMPTS = 2  # prompts shown as sample events, per model


def run(ctx: JobContext) -> dict:
    spec: GenerateSpec = ctx.spec
    placement = resolve(spec.resources)
    prompts = read_prompts(ctx)
    models = resolve_models(spec.models, ctx.run.path.parent.parent)
    n = spec.candidates_per_model
    ctx.events.log("info", f"{len(prompts):,} prompts × {len(models)} model{'s' if len(models) > 1 else ''} × "
                           f"{n} candidate{'s' if n > 1 else ''}, on {placement.device} in {placement.precision}.")
    progress = ProgressMeter(ctx, "generate", len(prompts) * len(models), "prompt×model", start=0)
    answers, layouts = [], []
    for choice in models:
        ctx.check_cancelled()
        candidates, layout = answer_prompts(ctx, choice, prompts, placement, progress)
        answers.append(candidates)
        layouts.append(layout)
    items = [{"id": prompt.id, "prompt": prompt.text,
              "candidates": [candidate for per_model in answers for candidate in per_model[i]], "meta": prompt.meta}
             for i, prompt in enumerate(prompts)]
    path = write_batch(ctx, items, layouts, placement)
    return summarize(ctx, models, items, path)


def read_prompts(ctx: JobContext) -> list[Prompt]:
    spec = ctx.spec
    ctx.events.progress("prompts", 0, None, "prompts")
    prompts, blank = load_prompts(spec.prompts, spec.seed)
    if blank:
        ctx.events.log("warning", f"{blank:,} blank prompt{'s' if blank != 1 else ''} skipped.")
    ctx.events.log("info", f"Prompts: {len(prompts):,} from {', '.join(spec.prompts.sources)}.")
    return prompts


def answer_prompts(ctx: JobContext, choice: ModelChoice, prompts: list[Prompt], placement: Placement,
                   progress: ProgressMeter) -> tuple[list[list[dict]], dict]:
    """The candidates of every prompt from one model (a list per prompt), and how it was prompted."""
    spec, n = ctx.spec, ctx.spec.candidates_per_model
    ctx.events.progress("model", choice.index, len(spec.models), "models")
    ctx.events.log("info", f"Loading {choice.label}: {choice.description}.")
    torch.manual_seed(spec.seed)  # anything loading initialises at random (new embedding rows) is the same each run
    model, tokenizer = load(choice, placement.device, placement.dtype, ctx.events.log)
    try:
        template = prompt_template(tokenizer, spec.chat_template, choice.label, ctx.events.log)
        stops = stop_ids(model, tokenizer, template)
        laid_out = ("the prompt text as is" if template is None else "its own chat template"
                    if spec.chat_template in ("auto", "model") else f"the {spec.chat_template} template")
        ctx.events.log("info", f"{choice.label}: prompts laid out with {laid_out}; answers end at "
                               f"{', '.join(tokenizer.convert_ids_to_tokens(stops)) or 'max_new_tokens only'}.")
        encoded = [prompt_token_ids(prompt, tokenizer, template) for prompt in prompts]
        check_context(ctx, model, choice, prompts, encoded)
        # Longest prompts first, so a batch holds prompts of similar length (less padding); the
        # per-candidate seeds make the texts independent of this order.
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        rows = [(p, c) for p in order for c in range(n)]
        candidates: list[list[dict | None]] = [[None] * n for _ in prompts]
        for start in range(0, len(rows), spec.sampling.batch_size):
            ctx.check_cancelled()
            batch = rows[start:start + spec.sampling.batch_size]
            seeds = [candidate_seed(spec.seed, choice.index, p, c) if spec.sampling.do_sample else None
                     for p, c in batch]
            began = time.monotonic()
            texts = generate(model, tokenizer, [encoded[p] for p, _ in batch], seeds, spec.sampling, stops)
            for (p, c), seed, answer in zip(batch, seeds, texts):
                meta = {"tokens": answer.tokens, "finish": answer.finish}
                if "task" in prompts[p].meta:
                    meta["correct"] = check(prompts[p].meta["task"], prompts[p].meta, answer.text)
                candidates[p][c] = {"text": answer.text, "model": choice.label, "seed": seed, "meta": meta}
            progress.advance(len(batch) / n, time.monotonic() - began, force=start + len(batch) == len(rows))
    finally:
        del model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    emit_samples(ctx, choice, prompts, candidates, progress)
    layout = {"label": choice.label, "base": choice.base, "adapter": choice.adapter,
              "chat_template": template, "stop_token_ids": stops}
    return candidates, layout


def check_context(ctx: JobContext, model, choice: ModelChoice, prompts: list[Prompt], encoded: list[list[int]]) -> None:
    longest = max(range(len(encoded)), key=lambda i: len(encoded[i]))
    check_positions(model.config, len(encoded[longest]) + ctx.spec.sampling.max_new_tokens,
                    f"{prompts[longest].where} (prompt {prompts[longest].id}, {len(encoded[longest]):,} tokens) with "
                    f"sampling.max_new_tokens ({ctx.spec.sampling.max_new_tokens:,})", choice.label,
                    "Lower sampling.max_new_tokens, or shorten or leave out that prompt.")


def emit_samples(ctx: JobContext, choice: ModelChoice, prompts: list[Prompt], candidates: list[list[dict]],
                 progress: ProgressMeter) -> None:
    for prompt, answers in list(zip(prompts, candidates))[:SAMPLE_PROMPTS]:
        expected = prompt.meta.get("answer", prompt.meta.get("reference"))
        text = f"{choice.label}: {answers[0]['text']}" + (f"   (expected: {expected})" if expected else "")
        ctx.events.sample(int(progress.done), prompt.text, text)


def write_batch(ctx: JobContext, items: list[dict], layouts: list[dict], placement: Placement):
    """candidates.jsonl and generation.json, each written whole or not at all."""
    spec = ctx.spec
    ctx.run.output_dir.mkdir(parents=True, exist_ok=True)
    path = ctx.run.output_dir / "candidates.jsonl"
    atomic_write_text(path, "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items))
    record = {
        "models": layouts,
        "candidates_per_model": spec.candidates_per_model,
        "sampling": spec.sampling.model_dump(mode="json"),
        "seed": spec.seed,
        "seed_rule": "candidate c of prompt p (line p of candidates.jsonl) from model m, all from 0: "
                     "int.from_bytes(hashlib.blake2b(f'{seed}/{m}/{p}/{c}'.encode(), digest_size=4).digest(), "
                     "'big') >> 1; each row samples from torch.Generator().manual_seed(that seed) by the Gumbel-max "
                     "trick (engine/generate/sampling.py); null for greedy decoding",
        "device": placement.device, "precision": placement.precision,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "spec": spec_to_yaml(spec),
    }
    atomic_write_text(ctx.run.output_dir / "generation.json", json.dumps(record, indent=1, ensure_ascii=False))
    total = sum(len(item["candidates"]) for item in items)
    ctx.events.artifact("dataset", str(path), {"format": "labeling-batch", "prompts": len(items),
                                               "candidates": total, "models": [m["label"] for m in layouts]})
    return path


def summarize(ctx: JobContext, models: list[ModelChoice], items: list[dict], path) -> dict:
    per_model = {}
    for choice in models:
        mine = [c for item in items for c in item["candidates"] if c["model"] == choice.label]
        figures = {"candidates": len(mine),
                   "stopped": round(sum(c["meta"]["finish"] == "stop" for c in mine) / len(mine), 4),
                   "mean_tokens": round(sum(c["meta"]["tokens"] for c in mine) / len(mine), 2)}
        if "correct" in mine[0]["meta"]:  # built-in tasks: the share the checker found right
            figures["accuracy"] = round(sum(c["meta"]["correct"] for c in mine) / len(mine), 4)
        per_model[choice.label] = figures
        ctx.events.log("info", f"{choice.label}: {len(mine):,} candidates, {figures['stopped']:.0%} ended by a stop "
                               f"token, {figures['mean_tokens']:.1f} tokens on average"
                               + (f", {figures['accuracy']:.0%} correct" if "accuracy" in figures else "") + ".")
    return {"prompts": len(items), "candidates": sum(f["candidates"] for f in per_model.values()),
            "output": str(path), "per_model": per_model}
