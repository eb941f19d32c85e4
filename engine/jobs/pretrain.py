"""Pretrain a language model from scratch: corpus → tokenizer → packed blocks → model → Trainer → saved model.

One recipe, read top to bottom. The heavy lifting is in transformers' Trainer (loop, mixed
precision, accumulation, clipping, schedules, checkpoints with optimizer/scheduler/RNG state and
exact data-position resume); this file only wires the spec to it.
"""

from __future__ import annotations

import logging

import torch
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase, Trainer, TrainingArguments

from engine.data.packing import pack_for_causal_lm, pack_for_masked_lm
from engine.data.sources import load_documents
from engine.data.tokenizer_training import load_tokenizer, train_tokenizer
from engine.devices import Placement, check_fits
from engine.errors import DataError
from engine.rundir import atomic_directory
from engine.runner import JobContext
from engine.sizing import training_memory
from engine.specs.pretrain import PretrainSpec
from engine.training.arguments import training_arguments
from engine.training.events_callback import EventsCallback
from engine.training.loop import begin_training, train
from engine.training.model_card import model_card, usage
from engine.training.outputs import save_model_folder, whole_weights
from engine.training.models import build_model
from engine.training.results import final_eval_loss, last_train_loss

log = logging.getLogger(__name__)


def run(ctx: JobContext) -> dict:
    spec: PretrainSpec = ctx.spec
    placement = begin_training(ctx)

    documents = load_corpus(ctx)
    ctx.check_cancelled()
    tokenizer = prepare_tokenizer(ctx, documents["train"])
    ctx.check_cancelled()
    train_blocks, eval_blocks = pack_blocks(ctx, documents, tokenizer)
    ctx.check_cancelled()
    estimate = training_memory(spec.model, len(tokenizer), spec.train.batch_size,
                               mixed_precision=placement.precision != "fp32",
                               gradient_checkpointing=spec.train.gradient_checkpointing)
    check_fits(estimate.training_bytes, placement, f"a {estimate.parameters / 1e6:,.1f}M-parameter model")
    model = build_model(spec.model, tokenizer)
    parameters = model.num_parameters()
    ctx.events.log("info", f"Model: {spec.model.architecture}, {parameters / 1e6:.2f}M parameters, "
                           f"{len(train_blocks)} training blocks of {spec.model.context_length} tokens.")

    trainer = build_trainer(ctx, placement, model, tokenizer, train_blocks, eval_blocks, parameters)
    train(ctx, trainer)

    final = {"step": trainer.state.global_step, "parameters": parameters, "train_loss": last_train_loss(trainer)}
    if eval_blocks is not None:
        eval_loss = final_eval_loss(trainer)
        final.update(eval_loss=eval_loss, eval_perplexity=float(torch.exp(torch.tensor(eval_loss))))
    final["model"] = save_final_model(ctx, trainer, tokenizer, final)
    return final


def load_corpus(ctx: JobContext):
    def progress(message: str, done: int, total: int | None) -> None:
        ctx.events.progress("corpus", done, total, "sources")
        if message.startswith("reading"):
            ctx.events.log("info", message[0].upper() + message[1:] + "…")

    documents = load_documents(ctx.spec.data, ctx.spec.seed, progress)
    chars = sum(len(t) for t in documents["train"]["text"])
    ctx.events.log("info", f"Corpus: {len(documents['train'])} training and {len(documents['eval'])} "
                           f"held-out documents, {chars / 1e6:.2f}M characters.")
    return documents


def prepare_tokenizer(ctx: JobContext, train_documents) -> PreTrainedTokenizerBase:
    """Train the tokenizer (or load the given one) once; a resumed run reuses the saved one."""
    spec = ctx.spec
    saved = ctx.run.path / "tokenizer"
    if saved.exists():
        return load_tokenizer(str(saved))
    if spec.tokenizer.path:
        tokenizer = load_tokenizer(spec.tokenizer.path)
    else:
        ctx.events.progress("tokenizer", 0, None, "tokenizer")
        tokenizer = train_tokenizer(iter(train_documents["text"]), spec.tokenizer.train,
                                    model_max_length=spec.model.context_length,
                                    objective=spec.model.resolved_objective)
        ctx.events.log("info", f"Trained a {spec.tokenizer.train.algorithm} tokenizer of {len(tokenizer)} tokens.")
    if ctx.primary:  # every process trains the same tokenizer; one writes it
        with atomic_directory(saved) as tmp:
            tokenizer.save_pretrained(tmp)
    ctx.events.artifact("tokenizer", str(saved), {"vocab_size": len(tokenizer)})
    return tokenizer


def pack_blocks(ctx: JobContext, documents, tokenizer):
    spec = ctx.spec
    pack = pack_for_masked_lm if spec.model.resolved_objective == "mlm" else pack_for_causal_lm
    ctx.events.progress("packing", 0, None, "blocks")
    train_blocks = pack(documents["train"], tokenizer, spec.model.context_length)
    if not len(documents["eval"]):
        return train_blocks, None
    try:
        eval_blocks = pack(documents["eval"], tokenizer, spec.model.context_length)
    except DataError:
        ctx.events.log("warning", "The held-out documents are shorter than one context: no eval loss. "
                                  "Raise data.eval_fraction or lower model.context_length.")
        return train_blocks, None
    keep = min(len(eval_blocks), spec.train.eval_batches * spec.train.batch_size)
    return train_blocks, eval_blocks.select(range(keep))


class CausalCollator:
    """Stack packed blocks; labels are the inputs (the model shifts them). Packed blocks hold no padding,
    so no label is masked — DataCollatorForLanguageModeling would mask every token equal to pad, which
    is eos for many tokenizers."""

    def __call__(self, features: list[dict]) -> dict:
        input_ids = torch.tensor([f["input_ids"] for f in features], dtype=torch.long)
        return {"input_ids": input_ids, "labels": input_ids.clone()}


def build_trainer(ctx: JobContext, placement: Placement, model, tokenizer, train_blocks, eval_blocks,
                  parameters: int) -> Trainer:
    spec, train = ctx.spec, ctx.spec.train
    args = TrainingArguments(**training_arguments(ctx, placement, has_eval=eval_blocks is not None,
                                                  remove_unused_columns=False))
    if spec.model.resolved_objective == "mlm":
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=spec.model.mlm_probability)
        sample = None
    else:
        collator = CausalCollator()
        sample = _sampler(tokenizer, train.sample_prompts, train.sample_max_new_tokens)
    callback = EventsCallback(ctx, sequences_per_step=train.batch_size * train.gradient_accumulation,
                              tokens_per_sequence=spec.model.context_length, parameters=parameters,
                              sample=sample, sample_every=train.sample_every)
    return Trainer(model=model, args=args, train_dataset=train_blocks, eval_dataset=eval_blocks,
                   data_collator=collator, processing_class=tokenizer, callbacks=[callback])


def _sampler(tokenizer, prompts: list[str], max_new_tokens: int):
    """Greedy continuations of fixed prompts: deterministic, and it draws nothing from the RNG, so
    sampling never changes the training run (exact resume holds with or without samples)."""

    @torch.no_grad()
    def sample(model) -> list[tuple[str, str]]:
        was_training = model.training
        model.eval()
        results = []
        for prompt in prompts:
            inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(model.device)
            if tokenizer.bos_token_id is not None:
                bos = torch.tensor([[tokenizer.bos_token_id]], device=model.device)
                inputs["input_ids"] = torch.cat([bos, inputs["input_ids"]], dim=1)
                inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    repetition_penalty=1.3, no_repeat_ngram_size=3,
                                    pad_token_id=tokenizer.pad_token_id)
            text = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
            results.append((prompt, text))
        model.train(was_training)
        return results

    return sample


def save_final_model(ctx: JobContext, trainer: Trainer, tokenizer, final: dict) -> str:
    """output/model: a save_pretrained folder (safetensors) with the tokenizer and a model card."""
    spec = ctx.spec
    masked = spec.model.resolved_objective == "mlm"
    card = model_card(spec, final, tags=["pretraining", spec.model.architecture],
                      description=f"A {spec.model.architecture} language model pretrained from scratch with Atelier "
                                  f"(objective: {spec.model.resolved_objective}).",
                      use=usage("AutoModelForMaskedLM" if masked else "AutoModelForCausalLM"))
    with whole_weights(trainer) as state_dict:
        target = save_model_folder(ctx, "model", trainer.model, tokenizer, card, meta=dict(final),
                                   state_dict=state_dict)
    return str(target)
