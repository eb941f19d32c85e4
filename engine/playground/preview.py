"""`studio-engine preview EVALUATE_SPEC`: each variant's prompt for the first example(s), as text and
as each model reads it (its chat template applied, markers and bos shown), without loading any
weights: only the tokenizers. A model whose tokenizer cannot be loaded (a hub id offline) is
reported and skipped; a bad data file, row or template fails as the run would. Benchmark tasks are
listed: a local task file is read (a missing file or data file fails as the run would); a registry
name is checked when the run starts, which reads the harness's registry and the task's data."""

from __future__ import annotations

import textwrap
from pathlib import Path

from engine.errors import UserError
from engine.playground.data import prepare
from engine.playground.templates import apply_chat_template
from engine.specs.evaluate import EvaluateSpec


def preview(spec: EvaluateSpec, workspace: Path | None, sample: int | None = None) -> dict:
    tasks = _tasks(spec)
    if spec.data is None:
        return {"kind": "evaluate", "examples": 0, "notes": [], "rows": [], "tasks": tasks}
    plan = prepare(spec)
    models = _tokenizers(spec, workspace)
    rows = []
    for i, example in enumerate(plan.examples[:sample or 1]):
        variants = []
        for v, variant in enumerate(plan.variants):
            prompt = plan.prompts[v][i]
            per_model = []
            for label, tokenizer, template, problem in models:
                if tokenizer is None:
                    per_model.append({"model": label, "error": problem})
                    continue
                shown = apply_chat_template(prompt, tokenizer, template, example.where)
                per_model.append({"model": label, "chat_template": template is not None,
                                  "model_input": shown.model_input, "tokens": len(shown.token_ids)})
            variants.append({"name": variant.name, "preset": variant.preset, "template": variant.template,
                             "system": prompt.system, "prompt": prompt.text, "models": per_model})
        rows.append({"id": example.id, "where": example.where, "expected": example.expected, "variants": variants})
    return {"kind": "evaluate", "examples": len(plan.examples), "notes": plan.notes, "rows": rows, "tasks": tasks}


def _tasks(spec: EvaluateSpec) -> list[dict]:
    """The benchmark tasks: a local task's name and data files (its YAML read), a registry name as given."""
    from engine.playground.harness import local_task_config
    from engine.specs.evaluate import is_local_task

    found = []
    for i, entry in enumerate(spec.harness.tasks if spec.harness else []):
        if not is_local_task(entry):
            found.append({"entry": entry, "name": entry, "source": "registry"})
            continue
        config = local_task_config(entry, f"harness.tasks[{i}]")
        found.append({"entry": entry, "name": config["task"], "source": "local",
                      "output_type": config.get("output_type"), "dataset_path": config.get("dataset_path"),
                      "data_files": (config.get("dataset_kwargs") or {}).get("data_files")})
    return found


def preview_text(result: dict) -> str:
    lines = []
    for task in result.get("tasks") or []:
        if task["source"] == "registry":
            lines.append(f"benchmark task {task['name']}: from the harness's registry (found, and its data read, "
                         f"when the run starts)")
        else:
            lines.append(f"benchmark task {task['name']}: {task['entry']} ({task['output_type'] or 'task'}), data "
                         f"{task['data_files'] or task['dataset_path']}")
    if not result["rows"]:
        return "\n".join(lines or ["Nothing to preview."])
    lines.append(f"{result['examples']:,} examples in the data; the prompts of the first {len(result['rows'])}:")
    lines += [f"warning: {note}" for note in result["notes"]]
    for row in result["rows"]:
        lines += ["", f"== {row['id']} ({row['where']}); expected: {row['expected']!r}"]
        for variant in row["variants"]:
            lines += ["", f"-- variant {variant['name']} ({variant['preset']})"]
            if variant["system"]:
                lines += ["   system:", _indent(variant["system"])]
            lines += ["   prompt:", _indent(variant["prompt"])]
            for model in variant["models"]:
                if "error" in model:
                    lines.append(f"   {model['model']}: not shown ({model['error']})")
                    continue
                layout = "chat template" if model["chat_template"] else "no chat template"
                lines += [f"   {model['model']} reads ({layout}, {model['tokens']} tokens):",
                          _indent(model["model_input"])]
    return "\n".join(lines)


def _tokenizers(spec: EvaluateSpec, workspace: Path | None) -> list[tuple]:
    """(label, tokenizer or None, chat template or None, why there is no tokenizer) per model."""
    from engine.generate.models import prompt_template, resolve_models
    from engine.models import choice_tokenizer

    try:
        choices = resolve_models(spec.models, workspace)
    except UserError as e:
        return [(m.label or m.path, None, None, e.message) for m in spec.models]
    found = []
    for choice in choices:
        try:
            tokenizer = choice_tokenizer(choice)
            template = prompt_template(tokenizer, spec.chat_template, choice.label, lambda level, message: None)
        except UserError as e:
            found.append((choice.label, None, None, e.message))
            continue
        found.append((choice.label, tokenizer, template, None))
    return found


def _indent(text: str) -> str:
    return textwrap.indent(text, "      ", lambda line: True)
