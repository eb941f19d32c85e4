"""Fine-tune a pretrained causal language model: base model → instruction records rendered through
the chat template (loss on the answers) → the method's PEFT adapter (or every weight) → the
transformers Trainer with events → adapter / model, optionally merged, with a model card.

Exact match, BLEU and ROUGE-L are measured by generating answers to held-out records before
training (the baseline), at every evaluation, and at the end.
"""

from __future__ import annotations

import json
import logging
import os

import datasets
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from engine.devices import Placement, check_fits, resolve
from engine.distributed_config import describe, trainer_arguments
from engine.errors import DataError
from engine.finetune.generation import GenerationScorer
from engine.finetune.memory import estimate
from engine.finetune.model import (
    Quantized4bitGuard, attach_adapter, linear_module_names, load_model, load_tokenizer, meta_model, resolve_base,
)
from engine.finetune.records import load_records
from engine.launch import inside_launcher
from engine.finetune.rendering import add_marker_tokens, chat_template, render_records
from engine.rundir import atomic_directory, atomic_write_text
from engine.runner import Cancelled, JobContext
from engine.specs import FinetuneSpec, spec_to_yaml
from engine.training.events_callback import EventsCallback
from engine.training.results import final_eval_loss
from engine.training.reporting import start_reporting, trainer_reporting

log = logging.getLogger(__name__)


def run(ctx: JobContext) -> dict:
    spec: FinetuneSpec = ctx.spec
    datasets.disable_progress_bars()
    set_seed(spec.seed)
    placement = resolve(spec.resources)
    start_reporting(ctx)
    base = resolve_base(spec.model.path, ctx.run.path.parent.parent)
    ctx.events.log("info", f"Fine-tuning {base} with {spec.method.name} on {placement.device} in {placement.precision}.")
    if inside_launcher():
        backend = "gloo" if placement.device == "cpu" else "nccl"
        ctx.events.log("info", f"{os.environ.get('WORLD_SIZE', '?')} processes in one {spec.resources.strategy} group "
                               f"over {backend}; rank 0 reports. {describe(spec.resources)}")

    train_records, eval_records, data_format = load_data(ctx)
    tokenizer = load_tokenizer(base, spec.model.trust_remote_code)
    template, new_tokens = None, []
    if data_format != "text":  # plain text (continued pretraining) needs no chat template
        template = chat_template(tokenizer, spec.data.chat_template)
        added = add_marker_tokens(tokenizer, spec.data.chat_template)
        new_tokens = list(range(len(tokenizer) - added, len(tokenizer)))  # added tokens take the last ids
        tokenizer.chat_template = template  # saved with the adapter: generation uses the template it learned
    train_set, eval_set = prepare_data(ctx, tokenizer, template, train_records, eval_records)
    ctx.check_cancelled()

    check_memory(ctx, base, placement, len(tokenizer))
    ctx.events.progress("model", 0, None, "model")
    dtype = torch.bfloat16 if placement.bf16 else torch.float16 if placement.fp16 else torch.float32
    model = load_model(base, spec, placement.device, dtype)
    if new_tokens:
        model.resize_token_embeddings(len(tokenizer))
        ctx.events.log("info", f"Added {len(new_tokens)} chat-template tokens to the vocabulary.")
    scorer = GenerationScorer(tokenizer, template, eval_records[:spec.evaluation.generate_examples],
                              spec.evaluation.max_new_tokens)
    before = measure_before(ctx, model, scorer)
    model, trainable = attach_adapter(spec, model, spec.train.max_steps, base, new_tokens)
    parameters = sum(p.numel() for p in model.parameters())
    ctx.events.log("info", f"{trainable:,} trainable parameters of {parameters:,} ({trainable / parameters:.2%}).")

    trainer = build_trainer(ctx, placement, model, tokenizer, train_set, eval_set, scorer, parameters)
    trainer.train(resume_from_checkpoint=str(ctx.resume_from) if ctx.resume_from else None)
    if ctx.cancel_requested.is_set() and trainer.state.global_step < spec.train.max_steps:
        raise Cancelled()

    final = {"step": trainer.state.global_step, "trainable_parameters": trainable}
    if eval_set is not None:
        final["eval_loss"] = final_eval_loss(trainer)
    after = scorer.score(model) if scorer.records else {}
    if after:
        ctx.events.metric(trainer.state.global_step, "eval", after)
        emit_samples(ctx, trainer.state.global_step, scorer)
    final.update({f"{k}_before": v for k, v in before.items()})
    final.update({f"{k}_after": v for k, v in after.items()})
    final.update(save_outputs(ctx, trainer.model, tokenizer, final))
    return final


def load_data(ctx: JobContext) -> tuple[list[dict], list[dict], str]:
    spec = ctx.spec
    ctx.events.progress("data", 0, None, "records")
    train_records, eval_records, data_format = load_records(spec.data, spec.seed)
    shown = spec.data.format if spec.data.format != "auto" else f"{data_format} (detected)"
    ctx.events.log("info", f"Data: {len(train_records):,} training and {len(eval_records):,} held-out records, "
                           f"format {shown}.")
    return train_records, eval_records, data_format


def prepare_data(ctx: JobContext, tokenizer, template: str | None, train_records: list[dict],
                 eval_records: list[dict]):
    """Rendered train and eval sets (input_ids, labels)."""
    spec = ctx.spec

    def rendered(records: list[dict], split: str):
        rows, stats = render_records(records, tokenizer, template, spec.data.loss_on, spec.data.max_length,
                                     spec.data.overflow)
        if stats.truncated or stats.dropped_too_long:
            ctx.events.log("warning", f"{stats.truncated + stats.dropped_too_long:,} {split} records are longer than "
                                      f"data.max_length ({spec.data.max_length} tokens; the longest has "
                                      f"{stats.longest:,}): {stats.truncated:,} truncated, {stats.dropped_too_long:,} "
                                      f"dropped (data.overflow: {spec.data.overflow}).")
        if stats.fallback:
            ctx.events.log("warning", f"{stats.fallback:,} {split} records are trained on every token: the chat "
                                      f"template rewrites earlier turns, so the answers cannot be told apart.")
        if stats.dropped_no_answer:
            ctx.events.log("warning", f"{stats.dropped_no_answer:,} {split} records have no answer left to learn "
                                      f"(nothing labelled after truncation): skipped.")
        return [{"input_ids": r.input_ids, "labels": r.labels} for r in rows], stats.truncated, stats.dropped_too_long

    train_rows, truncated, dropped = rendered(train_records, "training")
    if not train_rows:
        raise DataError(f"No training record is left to learn from ({dropped} dropped as too long).",
                        "Raise data.max_length, or set data.overflow: truncate.")
    eval_rows, _, _ = rendered(eval_records, "held-out")
    ctx.events.metric(0, "data", {"train_records": len(train_rows), "eval_records": len(eval_rows),
                                  "truncated": truncated, "dropped": dropped})
    train_set = datasets.Dataset.from_list(train_rows)
    eval_set = datasets.Dataset.from_list(eval_rows) if eval_rows else None
    return train_set, eval_set


def check_memory(ctx: JobContext, base: str, placement: Placement, vocab: int) -> None:
    spec = ctx.spec
    structure = meta_model(base, spec.model.trust_remote_code)
    config = structure.config
    parameters = sum(p.numel() for p in structure.parameters())
    targets = len(spec.method.lora.target_modules or linear_module_names(structure))
    per_method = estimate(spec, parameters, config.hidden_size, config.num_hidden_layers,
                          getattr(config, "intermediate_size", None) or 4 * config.hidden_size, vocab, targets,
                          2 if placement.precision != "fp32" else 4)
    needed = per_method[spec.method.name]
    check_fits(needed.bytes, placement, f"{spec.method.name} fine-tuning of a {parameters / 1e6:,.1f}M-parameter model",
               "Pick a lighter method (lora instead of full; qlora on a CUDA GPU), lower train.batch_size or "
               "data.max_length, or turn on train.gradient_checkpointing.")


def measure_before(ctx: JobContext, model, scorer: GenerationScorer) -> dict:
    spec = ctx.spec
    if not (spec.evaluation.before_training and scorer.records) or ctx.resume_from:
        return {}
    if spec.method.name == "qlora":
        # Generating runs the 4-bit model in no-grad mode, which can cut the LoRA layers off from
        # their gradients (see Quantized4bitGuard): no baseline rather than a silently broken run.
        ctx.events.log("warning", "No baseline measurement for QLoRA: generating with a 4-bit model before training "
                                  "can stop gradients reaching the adapters.")
        return {}
    ctx.events.progress("generate", 0, len(scorer.records), "answers")
    values = scorer.score(model)
    model.train()
    ctx.events.metric(0, "eval", values)
    emit_samples(ctx, 0, scorer)
    ctx.events.log("info", "Before training: " + ", ".join(f"{k} {v:.3g}" for k, v in values.items()))
    return values


def emit_samples(ctx: JobContext, step: int, scorer: GenerationScorer) -> None:
    for prompt, text in scorer.samples():
        ctx.events.sample(step, prompt, text)


class PaddingCollator:
    """Right-pads input_ids with the pad token and labels with -100 (no loss on padding)."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad, dtype=torch.long)
        labels = torch.full((len(features), width), -100, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask}


class GenerationEvalCallback(TrainerCallback):
    """Exact match, BLEU and ROUGE-L of generated answers at every evaluation; and, for QLoRA, the
    check that the adapters received gradients in the first step."""

    def __init__(self, ctx: JobContext, scorer: GenerationScorer, guard: Quantized4bitGuard | None):
        self.ctx, self.scorer, self.guard = ctx, scorer, guard

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        if self.guard is not None and state.global_step == 0:
            self.guard.check()

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if self.scorer.records and model is not None and state.global_step < state.max_steps:
            self.ctx.events.metric(state.global_step, "eval", self.scorer.score(model))
            emit_samples(self.ctx, state.global_step, self.scorer)
            model.train()


def build_trainer(ctx: JobContext, placement: Placement, model, tokenizer, train_set, eval_set,
                  scorer: GenerationScorer, parameters: int) -> Trainer:
    spec, train = ctx.spec, ctx.spec.train
    optimizer = train.optimizer if train.optimizer != "auto" else (
        "paged_adamw_8bit" if spec.method.name == "qlora" and placement.device.startswith("cuda") else "adamw_torch")
    args = TrainingArguments(
        output_dir=str(ctx.run.checkpoints_dir),
        max_steps=train.max_steps,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.schedule if train.schedule != "constant" else "constant_with_warmup",
        warmup_steps=train.warmup_steps,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm or None,
        optim=optimizer,
        activation_checkpointing=train.gradient_checkpointing and spec.method.name != "qlora",
        bf16=placement.bf16,
        fp16=placement.fp16,
        use_cpu=placement.device == "cpu",
        ddp_backend="gloo" if placement.device == "cpu" and inside_launcher() else None,
        ddp_find_unused_parameters=False if spec.method.name != "adalora" else None,
        logging_strategy="steps",
        logging_steps=train.log_every,
        eval_strategy="steps" if eval_set is not None else "no",
        eval_steps=train.eval_every,
        save_strategy="steps",
        save_steps=train.checkpoint_every,
        save_total_limit=train.keep_checkpoints,
        seed=spec.seed,
        data_seed=spec.seed,
        **trainer_reporting(ctx),
        disable_tqdm=True,
        remove_unused_columns=False,
        **trainer_arguments(spec.resources),
    )
    mean_length = sum(len(ids) for ids in train_set["input_ids"]) / len(train_set)
    events = EventsCallback(ctx, sequences_per_step=train.batch_size * train.gradient_accumulation,
                            tokens_per_sequence=int(mean_length), parameters=parameters)
    guard = Quantized4bitGuard(model) if spec.method.name == "qlora" else None
    return Trainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                   data_collator=PaddingCollator(tokenizer.pad_token_id), processing_class=tokenizer,
                   callbacks=[events, GenerationEvalCallback(ctx, scorer, guard)])


def save_outputs(ctx: JobContext, model, tokenizer, final: dict) -> dict:
    """Adapter (PEFT layout) or full model; the merged model when asked; a model card in each."""
    spec = ctx.spec
    card = model_card(spec, final)
    outputs = {}
    if spec.method.name == "full":
        target = ctx.run.output_dir / "model"
        with atomic_directory(target) as tmp:
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "README.md").write_text(card, encoding="utf-8")
        ctx.events.artifact("model", str(target), {"method": "full"})
        return {"model": str(target)}
    target = ctx.run.output_dir / "adapter"
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(card, encoding="utf-8")
    ctx.events.artifact("adapter", str(target), {"method": spec.method.name})
    outputs["adapter"] = str(target)
    if spec.output.merge:
        merged_target = ctx.run.output_dir / "merged"
        merged = model.merge_and_unload()
        with atomic_directory(merged_target) as tmp:
            merged.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            (tmp / "README.md").write_text(card, encoding="utf-8")
        ctx.events.artifact("model", str(merged_target), {"method": spec.method.name, "merged": True})
        outputs["merged"] = str(merged_target)
    atomic_write_text(ctx.run.output_dir / "metrics.json", json.dumps(final, indent=1))
    return outputs


def model_card(spec: FinetuneSpec, final: dict) -> str:
    metrics = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in final.items())
    if spec.method.name == "full":
        use = ("from transformers import AutoModelForCausalLM, AutoTokenizer\n"
               "model = AutoModelForCausalLM.from_pretrained(\"path/to/this/folder\")")
    else:
        use = ("from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n"
               "model = AutoPeftModelForCausalLM.from_pretrained(\"path/to/this/folder\")")
    return f"""---
library_name: {"transformers" if spec.method.name == "full" else "peft"}
base_model: {spec.model.path}
tags: [atelier, fine-tuning, {spec.method.name}]
---

# {spec.name}

Fine-tuned from `{spec.model.path}` with Atelier ({spec.method.name}), on {", ".join(spec.data.sources)}
(format {spec.data.format}, loss on {spec.data.loss_on}).

## Final metrics

| metric | value |
|---|---|
{metrics}

## Use

```python
{use}
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
```

## Training spec

```yaml
{spec_to_yaml(spec).rstrip()}
```
"""
