"""The fine-tuning wizard's preview: the detected data format, a few records rendered through the
chat template with the trained tokens marked, how many records are too long, the base model's
structure, and the memory each method would need here. Loads no weights (the model is built on
the meta device), so it answers in seconds even for a large model.

The terminal view shows a record as training sees it: cut at data.max_length (the cut marked), the
trained tokens in green on a terminal, between ⟦ ⟧ elsewhere (`marked_text`, which the preference
kinds' preview uses too)."""

from __future__ import annotations

import os
import sys

from engine.devices import available_memory_bytes, resolve
from engine.finetune.memory import METHOD_NOTES, estimate
from engine.finetune.model import linear_module_names, meta_model, targeted_shapes
from engine.finetune.records import load_records
from engine.finetune.rendering import add_marker_tokens, chat_template, render, template_choice, turn_mask
from engine.finetune.rendering import preview as render_preview
from engine.models import load_tokenizer, locate_model, model_positions
from engine.specs.finetune import FinetuneSpec
from engine.training.batches import plan_summary

EXAMPLES = 5
OPEN, CLOSE = "⟦", "⟧"  # around trained tokens where colour cannot show them
GREEN, DIM, RESET = "\033[32m", "\033[2m", "\033[0m"


def preview(spec: FinetuneSpec, workspace, sample: int | None = None) -> dict:
    base = locate_model(spec.model.path, workspace, "model.path", "base").path
    tokenizer = load_tokenizer(base, "model.path", spec.model.trust_remote_code)
    train, held_out, data_format = load_records(spec.data, spec.seed)
    template = None
    layout = template_choice(tokenizer, spec.data.chat_template)  # what "auto" means for this model
    if data_format != "text":  # plain text needs no chat template
        template = chat_template(tokenizer, spec.data.chat_template)
        add_marker_tokens(tokenizer, spec.data.chat_template)
    records = train + held_out
    mask = turn_mask(spec.data)
    measured = records[:sample or 2000]
    too_long = sum(1 for r in measured
                   if (rendered := render(r, tokenizer, template, spec.data.loss_on, spec.data.max_length,
                                          "truncate", mask)) is not None and rendered.truncated)

    structure = meta_model(base, spec.model.trust_remote_code)
    config = structure.config
    parameters = sum(p.numel() for p in structure.parameters())
    linear = linear_module_names(structure)
    placement = resolve(spec.resources)
    available = available_memory_bytes(placement)
    per_method = estimate(spec, parameters, config.hidden_size, config.num_hidden_layers, len(tokenizer),
                          targeted_shapes(structure, spec.method.lora.target_modules),
                          2 if placement.precision != "fp32" else 4, cpu=placement.device == "cpu")
    methods = {}
    for name, memory in per_method.items():
        needs_cuda = name == "qlora" and not placement.device.startswith("cuda")
        methods[name] = {"gb": round(memory.gib, 3), "trainable": memory.trainable, "note": METHOD_NOTES[name],
                         "fits": (available is None or memory.bytes <= available) and not needs_cuda,
                         "needs_cuda": needs_cuda}
    return {
        "kind": "finetune", "format": data_format, "format_detected": spec.data.format == "auto",
        "fields": sorted({k for r in records[:50] for k in r.get("fields", [])}),
        "records": {"train": len(train), "eval": len(held_out)}, "measured": len(measured), "too_long": too_long,
        "overflow": spec.data.overflow,
        "max_length": spec.data.max_length,
        "examples": [render_preview(r, tokenizer, template, spec.data.loss_on, spec.data.max_length, mask)
                     | {"messages": r.get("messages"), "reference": r.get("reference"), "where": r.get("where")}
                     for r in records[:EXAMPLES]],
        "model": {"path": base, "architecture": config.model_type, "parameters": parameters,
                  "positions": model_positions(config),
                  "chat_template": layout, "linear_modules": linear, "default_targets": linear},
        "training": plan_summary(spec.train, config, placement.device, spec.method.name),
        "memory": {"device": placement.device, "available_gb": None if available is None else round(available / 2**30, 1),
                   "methods": methods},
    }


def preview_text(result: dict) -> str:
    model, memory = result["model"], result["memory"]
    lines = [f"Base model: {model['path']} ({model['architecture']}, {model['parameters'] / 1e6:,.1f}M parameters)",
             f"Data: {result['records']['train']:,} training and {result['records']['eval']:,} held-out records, format "
             f"{result['format']}{' (detected)' if result['format_detected'] else ''}; {result['too_long']:,} of "
             f"{result['measured']:,} measured are too long ({result['overflow']})."]
    if model.get("positions") and result["max_length"] > model["positions"]:
        lines.append(f"data.max_length ({result['max_length']:,}) is more than the {model['positions']:,} positions "
                     f"the model reads: the run will refuse it. Set data.max_length to at most that.")
    if result["examples"]:
        example, color = result["examples"][0], use_color()
        trained = sum(t["trained"] for t in example["tokens"])
        marks = "in green" if color else f"between {OPEN} {CLOSE}"
        lines.append(f"First record ({example['where']}), {example['length']:,} tokens, {trained:,} trained ({marks}):")
        fate = "the record is dropped (data.overflow: drop)" if result["overflow"] == "drop" else "not trained"
        lines.append(marked_text(example["tokens"], color, cut=(
            f"✂ data.max_length ({result['max_length']:,} tokens) ends here: {example['length'] - result['max_length']:,} "
            f"more tokens, {fate}" if example["truncated"] else None)))
    if result.get("training"):
        training = result["training"]
        why = f" ({training['why_padded']})" if not training["packed"] and training.get("why_padded") else ""
        lines.append(f"Training path: {training['text']}{why}")
    available = f"{memory['available_gb']} GiB available" if memory["available_gb"] is not None else ""
    lines.append(f"Memory on {memory['device']} ({available}):")
    for name, m in memory["methods"].items():
        flag = "needs CUDA" if m["needs_cuda"] else ("fits" if m["fits"] else "DOES NOT FIT")
        lines.append(f"  {name:<8} {m['gb']:>8.3f} GiB  {m['trainable']:>13,} trainable  {flag}")
    return "\n".join(lines)


def use_color() -> bool:
    """Colour on a terminal, unless NO_COLOR is set (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def marked_text(tokens: list[dict], color: bool, cut: str | None = None) -> str:
    """The text of `tokens` ({"text", "trained"}) with the trained runs marked (green, or between ⟦ ⟧),
    then `cut`, the line that says where and why a longer sequence was cut, when given."""
    out, inside = [], False
    for token in tokens:
        if token["trained"] != inside:
            inside = token["trained"]
            out.append((GREEN if inside else RESET) if color else (OPEN if inside else CLOSE))
        out.append(token["text"])
    if inside:
        out.append(RESET if color else CLOSE)
    text = "".join(out)
    if cut:
        text += "\n" + (f"{DIM}{cut}{RESET}" if color else cut)
    return text
