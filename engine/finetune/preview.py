"""The fine-tuning wizard's preview: the detected data format, a few records rendered through the
chat template with the trained tokens marked, how many records are too long, the base model's
structure, and the memory each method would need here. Loads no weights (the model is built on
the meta device), so it answers in seconds even for a large model."""

from __future__ import annotations

from engine.devices import available_memory_bytes, resolve
from engine.finetune.memory import METHOD_NOTES, estimate
from engine.finetune.model import linear_module_names, load_tokenizer, meta_model, resolve_base
from engine.finetune.records import load_records
from engine.finetune.rendering import add_marker_tokens, chat_template, preview as render_preview, render
from engine.finetune_specs import FinetuneSpec

EXAMPLES = 5


def preview(spec: FinetuneSpec, workspace, sample: int | None = None) -> dict:
    base = resolve_base(spec.model.path, workspace)
    tokenizer = load_tokenizer(base, spec.model.trust_remote_code)
    train, held_out, data_format = load_records(spec.data, spec.seed)
    template = None
    if data_format != "text":  # plain text needs no chat template
        template = chat_template(tokenizer, spec.data.chat_template)
        add_marker_tokens(tokenizer, spec.data.chat_template)
    records = train + held_out
    measured = records[:sample or 2000]
    too_long = sum(1 for r in measured
                   if (rendered := render(r, tokenizer, template, spec.data.loss_on, spec.data.max_length, "truncate"))
                   is not None and rendered.truncated)

    structure = meta_model(base, spec.model.trust_remote_code)
    config = structure.config
    parameters = sum(p.numel() for p in structure.parameters())
    linear = linear_module_names(structure)
    placement = resolve(spec.resources)
    available = available_memory_bytes(placement)
    per_method = estimate(spec, parameters, config.hidden_size, config.num_hidden_layers,
                          getattr(config, "intermediate_size", None) or 4 * config.hidden_size, len(tokenizer),
                          len(spec.method.lora.target_modules or linear), 2 if placement.precision != "fp32" else 4)
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
        "examples": [render_preview(r, tokenizer, template, spec.data.loss_on, spec.data.max_length)
                     | {"messages": r.get("messages"), "reference": r.get("reference")}
                     for r in records[:EXAMPLES]],
        "model": {"path": base, "architecture": config.model_type, "parameters": parameters,
                  "chat_template": spec.data.chat_template, "linear_modules": linear, "default_targets": linear},
        "memory": {"device": placement.device, "available_gb": None if available is None else round(available / 2**30, 1),
                   "methods": methods},
    }


def preview_text(result: dict) -> str:
    model, memory = result["model"], result["memory"]
    lines = [f"Base model: {model['path']} ({model['architecture']}, {model['parameters'] / 1e6:,.1f}M parameters)",
             f"Data: {result['records']['train']:,} training and {result['records']['eval']:,} held-out records, format "
             f"{result['format']}{' (detected)' if result['format_detected'] else ''}; {result['too_long']:,} of "
             f"{result['measured']:,} measured are too long ({result['overflow']})."]
    if result["examples"]:
        example = result["examples"][0]
        trained = sum(t["trained"] for t in example["tokens"])
        lines.append(f"First record, {example['length']} tokens ({trained} trained):\n{example['text']}")
    available = f"{memory['available_gb']} GiB available" if memory["available_gb"] is not None else ""
    lines.append(f"Memory on {memory['device']} ({available}):")
    for name, m in memory["methods"].items():
        flag = "needs CUDA" if m["needs_cuda"] else ("fits" if m["fits"] else "DOES NOT FIT")
        lines.append(f"  {name:<8} {m['gb']:>8.3f} GiB  {m['trainable']:>13,} trainable  {flag}")
    return "\n".join(lines)
