"""`studio-engine preview EVALUATE_SPEC`: each variant's prompt for the first example(s), as text and
as each model reads it (its chat template applied, markers and bos shown), without loading any
weights: only the tokenizers. A model whose tokenizer cannot be loaded (a hub id offline) is
reported and skipped; a bad data file, row or template fails as the run would."""

from __future__ import annotations

import textwrap
from pathlib import Path

from engine.errors import UserError
from engine.evaluate_specs import EvaluateSpec
from engine.playground.data import prepare
from engine.playground.templates import apply_chat_template

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def preview(spec: EvaluateSpec, workspace: Path | None, sample: int | None = None) -> dict:
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
    return {"kind": "evaluate", "examples": len(plan.examples), "notes": plan.notes, "rows": rows}


def preview_text(result: dict) -> str:
    lines = [f"{result['examples']:,} examples in the data; the prompts of the first {len(result['rows'])}:"]
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
    from transformers import AutoTokenizer

    from engine.generate.models import prompt_template, resolve_models

    try:
        choices = resolve_models(spec.models, workspace)
    except UserError as e:
        return [(m.label or m.path, None, None, e.message) for m in spec.models]
    found = []
    for choice in choices:
        adapter = choice.adapter and any((Path(choice.adapter) / n).exists() for n in _TOKENIZER_FILES)
        try:
            tokenizer = AutoTokenizer.from_pretrained(choice.adapter if adapter else choice.base,
                                                      trust_remote_code=choice.trust_remote_code)
            template = prompt_template(tokenizer, spec.chat_template, choice.label, lambda level, message: None)
        except UserError as e:
            found.append((choice.label, None, None, e.message))
            continue
        except Exception as e:  # noqa: BLE001 - a missing or damaged tokenizer raises many types
            found.append((choice.label, None, None, f"its tokenizer could not be loaded: {str(e).splitlines()[0]}"))
            continue
        found.append((choice.label, tokenizer, template, None))
    return found


def _indent(text: str) -> str:
    return textwrap.indent(text, "      ", lambda line: True)
