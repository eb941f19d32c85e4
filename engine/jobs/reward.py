"""Train a reward model: preference pairs (labeling queues or preference files) → the starting model
(usually the SFT model, its LoRA adapter merged) with a one-score head → full training or LoRA →
TRL's RewardTrainer (Bradley–Terry loss) with events → output/reward_model, one folder that loads
with AutoModelForSequenceClassification.

Pairwise accuracy (the share of held-out pairs whose chosen answer scores higher) and the mean
margin are measured before training, every `train.eval_every` steps, and at the end.
"""

from __future__ import annotations

import logging


from engine.errors import DataError
from engine.finetune.model import check_max_length, model_config
from engine.models import choice_tokenizer, resolve_choice
from engine.rlhf.preferences import LoadedPairs, load_pairs
from engine.rlhf.reward_data import reward_template, tokenize_pairs
from engine.rlhf.reward_model import check_memory, load_score_model, lora_config, standalone
from engine.rlhf.reward_scoring import PairScorer
from engine.runner import JobContext
from engine.specs.reward import RewardSpec
from engine.training.batches import decide_packing
from engine.training.loop import begin_training, train
from engine.training.model_card import model_card, usage
from engine.training.outputs import save_model_folder, whole_weights, write_metrics

log = logging.getLogger(__name__)

NOTES_SHOWN = 5  # notes of left-out records logged one by one; the rest are counted


def run(ctx: JobContext) -> dict:
    spec: RewardSpec = ctx.spec
    placement = begin_training(ctx)  # seeds before the model: the score head starts random
    workspace = ctx.run.path.parent.parent

    pairs = load_preferences(ctx, workspace)
    choice = resolve_choice(spec.model, workspace, "model")
    ctx.events.log("info", f"Reward model from {choice.description} with {spec.method.name}.")
    check_max_length(model_config(choice.base, choice.trust_remote_code), spec.data.max_length,
                     f"the model {choice.label}")
    # TRL and PEFT take seconds to import: only now, so that bad input is reported at once.
    from engine.rlhf.reward_training import build_trainer
    tokenizer = choice_tokenizer(choice)
    template, added = reward_template(tokenizer, spec.data.chat_template, pairs.train + pairs.held_out)
    train_rows, held_out, dropped = prepare_pairs(ctx, tokenizer, template, pairs)
    ctx.check_cancelled()

    check_memory(spec, choice, placement)
    ctx.events.progress("model", 0, None, "model")
    model = load_score_model(choice, placement.dtype, ctx.run.path, ctx.events.log)
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

    packing = decide_packing(ctx, model.config, spec.method.name)
    ctx.events.log("info", f"Batches: {packing.describe()} (each score read at its conversation's last token)."
                   if packing.packed else "Batches: padded.")
    trainer = build_trainer(ctx, placement, model, tokenizer, train_rows, scorer, parameters, packing=packing)
    train(ctx, trainer)

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
    final.update(save_outputs(ctx, trainer, tokenizer, choice.description, final))
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


def save_outputs(ctx: JobContext, trainer, tokenizer, source: str, final: dict) -> dict:
    """output/reward_model: weights (LoRA merged in), tokenizer with the chat template it was trained
    with, and a model card; output/metrics.json."""
    spec = ctx.spec
    card = model_card(spec, final, tags=["reward-model", spec.method.name], base_model=spec.model.path,
                      description=f"A reward model (one score per conversation) trained from `{source}` with Atelier "
                                  f"({spec.method.name}, Bradley–Terry loss) on {', '.join(spec.data.sources)}.",
                      use=REWARD_USE)
    with whole_weights(trainer) as state_dict:
        target = save_model_folder(ctx, "reward_model", standalone(trainer.model), tokenizer, card,
                                   meta={"method": spec.method.name, "reward_model": True}, state_dict=state_dict)
    write_metrics(ctx, final)
    return {"reward_model": str(target)}


REWARD_USE = usage("AutoModelForSequenceClassification") + """
# The conversation (prompt and the answer to score) laid out with the chat template saved here; the
# tokenizer puts bos first when it was trained with one.
text = tokenizer.apply_chat_template(messages, tokenize=False)
score = model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()"""
