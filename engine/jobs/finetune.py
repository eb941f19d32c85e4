"""Fine-tune a pretrained causal language model: base model → instruction records rendered through
the chat template (loss on the answers) → the method's PEFT adapter (or every weight) → the
transformers Trainer with events → adapter / model, optionally merged, with a model card.

Exact match, BLEU and ROUGE-L are measured by generating answers to held-out records before
training (the baseline), at every evaluation, and at the end.
"""

from __future__ import annotations

import logging

import datasets
from transformers import Trainer, TrainerCallback, TrainingArguments

from engine.devices import Placement, check_fits
from engine.errors import DataError
from engine.finetune.generation import GenerationScorer
from engine.finetune.memory import estimate
from engine.finetune.model import (Quantized4bitGuard, attach_adapter, check_long_context, load_model, meta_model,
                                   model_config, targeted_shapes)
from engine.finetune.records import load_records
from engine.finetune.rendering import add_marker_tokens, chat_template, render_records, turn_mask
from engine.models import load_tokenizer, locate_model
from engine.runner import JobContext
from engine.specs.finetune import FinetuneSpec
from engine.training.arguments import training_arguments
from engine.training.batches import BatchTrainer, TokenCounts, collator, plan_batches, trainer_loss
from engine.training.events_callback import EventsCallback
from engine.training.loop import begin_training, train
from engine.training.model_card import adapter_usage, model_card, usage
from engine.training.outputs import save_model_folder, whole_weights, write_metrics
from engine.training.results import final_eval_loss

log = logging.getLogger(__name__)


def run(ctx: JobContext) -> dict:
    spec: FinetuneSpec = ctx.spec
    placement = begin_training(ctx)
    base = locate_model(spec.model.path, ctx.run.path.parent.parent, "model.path", "base").path
    ctx.events.log("info", f"Fine-tuning {base} with {spec.method.name}.")
    long_context = check_long_context(model_config(base, spec.model.trust_remote_code), spec, f"the base model {base}")
    if long_context:
        ctx.events.log("warning", long_context)
    if spec.model.rope_scaling is not None:
        ctx.events.log("info", f"RoPE scaling: {spec.model.rope_scaling.type}, factor {spec.model.rope_scaling.factor:g}.")

    train_records, eval_records, data_format = load_data(ctx)
    tokenizer = load_tokenizer(base, "model.path", spec.model.trust_remote_code)
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
    model = load_model(base, spec, placement.device, placement.dtype)
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
    train(ctx, trainer)

    final = {"step": trainer.state.global_step, "trainable_parameters": trainable}
    if eval_set is not None:
        final["eval_loss"] = final_eval_loss(trainer)
    after = scorer.score(model) if scorer.records else {}
    if after:
        ctx.events.metric(trainer.state.global_step, "eval", after)
        emit_samples(ctx, trainer.state.global_step, scorer)
    final.update({f"{k}_before": v for k, v in before.items()})
    final.update({f"{k}_after": v for k, v in after.items()})
    final.update(save_outputs(ctx, trainer, tokenizer, final, base, len(new_tokens)))
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
                                     spec.data.overflow, turn_mask(spec.data))
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
        return [{"input_ids": r.input_ids, "labels": r.labels} for r in rows], stats

    train_rows, stats = rendered(train_records, "training")
    if not train_rows:
        raise DataError(f"No training record is left to learn from: of {stats.records:,}, {stats.dropped_too_long:,} "
                        f"are longer than data.max_length ({spec.data.max_length} tokens, data.overflow: "
                        f"{spec.data.overflow}) and {stats.dropped_no_answer:,} have no answer left to learn once cut "
                        f"to it.",
                        "Raise data.max_length (up to the model's positions), or set data.overflow: truncate; records "
                        "whose prompt fills data.max_length need a shorter prompt.")
    eval_rows, _ = rendered(eval_records, "held-out")
    ctx.events.metric(0, "data", {"train_records": len(train_rows), "eval_records": len(eval_rows),
                                  "truncated": stats.truncated, "dropped": stats.dropped_too_long})
    train_set = datasets.Dataset.from_list(train_rows)
    eval_set = datasets.Dataset.from_list(eval_rows) if eval_rows else None
    return train_set, eval_set


def check_memory(ctx: JobContext, base: str, placement: Placement, vocab: int) -> None:
    spec = ctx.spec
    needed, parameters = memory_needed(spec, base, placement, vocab)
    check_fits(needed.bytes, placement, f"{spec.method.name} fine-tuning of a {parameters / 1e6:,.1f}M-parameter model",
               "Pick a lighter method (lora instead of full; qlora on a CUDA GPU), lower train.batch_size or "
               "data.max_length, or turn on train.gradient_checkpointing.")


def memory_needed(spec: FinetuneSpec, base: str, placement: Placement, vocab: int):
    """The estimate of the spec's method on the base model (the preflight's, and bench/memory_estimate.py's),
    and the model's parameter count."""
    structure = meta_model(base, spec.model.trust_remote_code)
    config = structure.config
    parameters = sum(p.numel() for p in structure.parameters())
    per_method = estimate(spec, parameters, config.hidden_size, config.num_hidden_layers, vocab,
                          targeted_shapes(structure, spec.method.lora.target_modules),
                          2 if placement.precision != "fp32" else 4, cpu=placement.device == "cpu")
    return per_method[spec.method.name], parameters


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
    plan = plan_batches(ctx, model, placement.device, spec.method.name)
    ctx.events.log("info", f"Batches: {plan.describe()}.")
    args = TrainingArguments(**training_arguments(
        ctx, placement, has_eval=eval_set is not None, remove_unused_columns=False, plan=plan,
        # No metric reads the eval logits (generation is scored apart): the loss alone is kept.
        prediction_loss_only=True,
        # 4-bit layers are not checkpointed by the Trainer's hook (PEFT prepares QLoRA models itself).
        activation_checkpointing=train.gradient_checkpointing and spec.method.name != "qlora",
        # AdaLoRA prunes ranks, leaving parameters without gradients in some steps.
        ddp_find_unused_parameters=False if spec.method.name != "adalora" else None))
    counts = TokenCounts()
    events = EventsCallback(ctx, sequences_per_step=train.batch_size * train.gradient_accumulation,
                            tokens_per_sequence=0, parameters=parameters, counts=counts)
    guard = Quantized4bitGuard(model) if spec.method.name == "qlora" else None
    return BatchTrainer(model=model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                        data_collator=collator(plan, pad_token_of(tokenizer, model), placement.device, model.config),
                        processing_class=tokenizer,
                        compute_loss_func=trainer_loss(plan, model),
                        callbacks=[events, GenerationEvalCallback(ctx, scorer, guard)], counts=counts)


def pad_token_of(tokenizer, model) -> int:
    """The padding token: the tokenizer's, else the model's own (a trainer given token ids without a tokenizer)."""
    pad = tokenizer.pad_token_id if tokenizer is not None else None
    return pad if pad is not None else (model.config.pad_token_id or 0)


def save_outputs(ctx: JobContext, trainer: Trainer, tokenizer, final: dict, base: str, added_tokens: int) -> dict:
    """Adapter (PEFT layout) or full model; the merged model when asked; a model card in each (an
    adapter's says how to load it on `base`, which got `added_tokens` chat-template tokens);
    metrics.json. Rank 0 writes; every rank takes part in gathering sharded weights."""
    spec, model = ctx.spec, trainer.model
    with whole_weights(trainer) as state_dict:
        if spec.method.name == "full":
            target = save_model_folder(ctx, "model", model, tokenizer, model_card_of(spec, final),
                                       meta={"method": "full"}, state_dict=state_dict)
            outputs = {"model": str(target)}
        else:  # a PEFT model saves the adapter's weights (of the gathered state dict, under FSDP)
            target = save_model_folder(ctx, "adapter", model, tokenizer, model_card_of(spec, final, (base, added_tokens)),
                                       artifact="adapter", meta={"method": spec.method.name}, state_dict=state_dict)
            outputs = {"adapter": str(target)}
            if spec.output.merge:
                merged = save_model_folder(ctx, "merged", model.merge_and_unload(), tokenizer,
                                           model_card_of(spec, final),
                                           meta={"method": spec.method.name, "merged": True})
                outputs["merged"] = str(merged)
    write_metrics(ctx, final)
    return outputs


def model_card_of(spec: FinetuneSpec, final: dict, adapter_on: tuple[str, int] | None = None) -> str:
    """The card of the full model (or merged one), or of the adapter on `adapter_on` (the base
    model's folder, and how many chat-template tokens the run added to its vocabulary)."""
    return model_card(spec, final, tags=["fine-tuning", spec.method.name], base_model=spec.model.path,
                      library="peft" if adapter_on else "transformers",
                      description=f"Fine-tuned from `{spec.model.path}` with Atelier ({spec.method.name}), on "
                                  f"{', '.join(spec.data.sources)} (format {spec.data.format}, loss on "
                                  f"{spec.data.loss_on}).",
                      use=adapter_usage(*adapter_on) if adapter_on else usage("AutoModelForCausalLM"))
