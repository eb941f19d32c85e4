"""Train a reward model: preference pairs (labeling queues or preference files) → the starting model
(usually the SFT model, its LoRA adapter merged) with a one-score head → full training or LoRA →
TRL's RewardTrainer (Bradley–Terry loss) with events → output/reward_model, one folder that loads
with AutoModelForSequenceClassification.

Pairwise accuracy (the share of held-out pairs whose chosen answer scores higher) and the mean
margin are measured before training, every `train.eval_every` steps, and at the end.
"""

from __future__ import annotations

import json
import logging
import os

import torch

from engine.devices import resolve
from engine.distributed_config import describe
from engine.errors import DataError
from engine.launch import inside_launcher
from engine.rlhf.preferences import LoadedPairs, load_pairs
from engine.rlhf.reward_data import reward_template, tokenize_pairs
from engine.rlhf.reward_model import (
    check_memory, load_score_model, load_tokenizer, lora_config, resolve_policy_model, standalone,
)
from engine.rlhf.reward_scoring import PairScorer
from engine.rundir import atomic_directory, atomic_write_text
from engine.runner import Cancelled, JobContext
from engine.specs import RewardSpec, spec_to_yaml
from engine.training.reporting import start_reporting

log = logging.getLogger(__name__)

NOTES_SHOWN = 5  # notes of left-out records logged one by one; the rest are counted


def run(ctx: JobContext) -> dict:
    spec: RewardSpec = ctx.spec
    placement = resolve(spec.resources)
    start_reporting(ctx)
    workspace = ctx.run.path.parent.parent
    if inside_launcher():
        backend = "gloo" if placement.device == "cpu" else "nccl"
        ctx.events.log("info", f"{os.environ.get('WORLD_SIZE', '?')} processes in one {spec.resources.strategy} group "
                               f"over {backend}; rank 0 reports. {describe(spec.resources)}")

    pairs = load_preferences(ctx, workspace)
    choice = resolve_policy_model(spec.model, workspace)
    ctx.events.log("info", f"Reward model from {choice.description} with {spec.method.name} on {placement.device} "
                           f"in {placement.precision}.")
    # transformers, TRL and PEFT take seconds to import: only now, so that bad input is reported at once.
    from transformers import set_seed

    from engine.rlhf.reward_training import build_trainer
    set_seed(spec.seed)  # before the model: the score head starts random
    tokenizer = load_tokenizer(choice)
    template, added = reward_template(tokenizer, spec.data.chat_template, pairs.train + pairs.held_out)
    train_rows, held_out, dropped = prepare_pairs(ctx, tokenizer, template, pairs)
    ctx.check_cancelled()

    check_memory(spec, choice, placement)
    ctx.events.progress("model", 0, None, "model")
    dtype = torch.bfloat16 if placement.bf16 else torch.float16 if placement.fp16 else torch.float32
    model = load_score_model(choice, dtype, ctx.run.path, ctx.events.log)
    new_tokens = list(range(len(tokenizer) - added, len(tokenizer)))  # added tokens take the last ids
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
        if added:
            ctx.events.log("info", f"Added {added} chat-template tokens to the vocabulary.")
    model.config.pad_token_id = tokenizer.pad_token_id  # the head reads the last token that is not padding
    model.to(placement.device)
    scorer = PairScorer(held_out, tokenizer.pad_token_id, spec.train.batch_size)
    before = measure_before(ctx, model, scorer)
    model, trainable = attach_method(spec, model, new_tokens)
    parameters = sum(p.numel() for p in model.parameters())
    ctx.events.log("info", f"{trainable:,} trainable parameters of {parameters:,} ({trainable / parameters:.2%}).")

    trainer = build_trainer(ctx, placement, model, tokenizer, train_rows, scorer, parameters)
    trainer.train(resume_from_checkpoint=str(ctx.resume_from) if ctx.resume_from else None)
    if ctx.cancel_requested.is_set() and trainer.state.global_step < spec.train.max_steps:
        raise Cancelled()

    step = trainer.state.global_step
    after = scorer.measure(trainer.model)
    if after:
        ctx.events.metric(step, "eval", after)
    final = {"step": step, "trainable_parameters": trainable, "train_pairs": len(train_rows),
             "held_out_pairs": len(held_out), "dropped": dropped}
    final.update({k: v for k, v in after.items() if k != "loss"})
    if "loss" in after:
        final["eval_loss"] = after["loss"]
    final.update({f"{k}_before": v for k, v in before.items() if k != "loss"})
    if trainer.is_world_process_zero():
        final.update(save_outputs(ctx, trainer.model, tokenizer, choice.description, final))
    return final


def load_preferences(ctx: JobContext, workspace) -> LoadedPairs:
    spec = ctx.spec
    ctx.events.progress("data", 0, None, "pairs")
    pairs = load_pairs(spec.data.sources, workspace, spec.data.eval_fraction, spec.seed)
    for note in pairs.notes[:NOTES_SHOWN]:
        ctx.events.log("warning", f"Left out: {note}")
    if len(pairs.notes) > NOTES_SHOWN:
        ctx.events.log("warning", f"… and {len(pairs.notes) - NOTES_SHOWN:,} more records left out (engine.log has "
                                  f"them all).")
        for note in pairs.notes[NOTES_SHOWN:]:
            log.info("left out: %s", note)
    ctx.events.log("info", f"Preferences: {len(pairs.train):,} training and {len(pairs.held_out):,} held-out pairs "
                           f"from {', '.join(spec.data.sources)}.")
    if not pairs.held_out:
        ctx.events.log("warning", "No held-out pairs: pairwise accuracy cannot be measured. Raise data.eval_fraction "
                                  "or add pairs with other prompts.")
    return pairs


def prepare_pairs(ctx: JobContext, tokenizer, template: str, pairs: LoadedPairs):
    """Training and held-out rows ({"chosen_ids", "rejected_ids"}), and how many pairs were too long."""
    spec = ctx.spec
    limit = spec.data.max_length
    train = tokenize_pairs(pairs.train, tokenizer, template, limit)
    held_out = tokenize_pairs(pairs.held_out, tokenizer, template, limit)
    dropped = train.dropped + held_out.dropped
    if dropped:
        longest = max(train.longest, held_out.longest)
        ctx.events.log("warning", f"{dropped:,} pairs are longer than data.max_length ({limit} tokens with the "
                                  f"prompt; the longest has {longest:,}) and were dropped: {train.dropped:,} training, "
                                  f"{held_out.dropped:,} held-out.")
    if not train.rows:
        raise DataError(f"No training pair is left to learn from: all {train.dropped:,} are longer than "
                        f"data.max_length ({limit} tokens).", "Raise data.max_length.")
    ctx.events.metric(0, "data", {"train_pairs": len(train.rows), "held_out_pairs": len(held_out.rows),
                                  "dropped": dropped})
    return train.rows, held_out.rows, dropped


def measure_before(ctx: JobContext, model, scorer: PairScorer) -> dict:
    """Held-out accuracy of the untrained head (about chance), so the chart shows the gain."""
    if ctx.resume_from or not scorer.rows:
        return {}
    ctx.events.progress("evaluate", 0, len(scorer.rows), "pairs")
    values = scorer.measure(model)
    ctx.events.metric(0, "eval", values)
    ctx.events.log("info", f"Before training: pairwise accuracy {values['pairwise_accuracy']:.3f}, mean margin "
                           f"{values['mean_margin']:.3g} on {len(scorer.rows):,} held-out pairs.")
    return values


def attach_method(spec: RewardSpec, model, new_tokens: list[int]):
    """Full: every weight trains. LoRA: adapters on the linear layers, the score head in full."""
    if spec.method.name == "lora":
        import peft

        model = peft.get_peft_model(model, lora_config(spec.method, model, new_tokens))
    model.train()
    return model, sum(p.numel() for p in model.parameters() if p.requires_grad)


def save_outputs(ctx: JobContext, model, tokenizer, source: str, final: dict) -> dict:
    """output/reward_model: weights (LoRA merged in), tokenizer with the chat template it was trained
    with, and a model card; output/metrics.json."""
    target = ctx.run.output_dir / "reward_model"
    merged = standalone(model)
    with atomic_directory(target) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(model_card(ctx.spec, source, final), encoding="utf-8")
    ctx.events.artifact("model", str(target), {"method": ctx.spec.method.name, "reward_model": True})
    atomic_write_text(ctx.run.output_dir / "metrics.json", json.dumps(final, indent=1))
    return {"reward_model": str(target)}


def model_card(spec: RewardSpec, source: str, final: dict) -> str:
    metrics = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in final.items())
    return f"""---
library_name: transformers
base_model: {spec.model.path}
tags: [atelier, reward-model, {spec.method.name}]
---

# {spec.name}

A reward model (one score per conversation) trained from `{source}` with Atelier ({spec.method.name}, Bradley–Terry
loss) on {", ".join(spec.data.sources)}.

## Final metrics

| metric | value |
|---|---|
{metrics}

## Use

```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained("path/to/this/folder")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
# The conversation (prompt and the answer to score) laid out with the chat template saved here; the
# tokenizer puts bos first when it was trained with one.
text = tokenizer.apply_chat_template(messages, tokenize=False)
score = model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()
```

## Training spec

```yaml
{spec_to_yaml(spec).rstrip()}
```
"""
