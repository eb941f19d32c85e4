"""Kahneman–Tversky optimisation: answers judged good or bad one at a time (a single-answer labeling
queue, TRL unpaired or LLaMA-Factory kto_tag files; pairs count as one good and one bad answer) → the
policy (the SFT model, its adapter merged in) → the answers as the token ids fine-tuning uses →
TRL's KTOTrainer (KTO or unpaired APO-zero loss, β, the weights of good and bad answers; with LoRA or
on every weight) → the policy, merged, in output/policy.

The reference model is automatic, as in DPO: with LoRA the policy with its adapter switched off, with
full training the start model, frozen. The rewards of good and bad answers (and their margin) and
KTO's KL estimate are logged for training and held-out answers; with evaluation.task, the policy also
answers held-out prompts of a built-in task before, during and after training.
"""

from __future__ import annotations

import random

import datasets
from trl import KTOConfig, KTOTrainer

from engine.devices import Placement
from engine.errors import DataError
from engine.rlhf.dpo_pairs import question_of, several_turns, tokenize_judged
from engine.rlhf.policy_eval import TaskEvalCallback, TaskEvaluator
from engine.rlhf.policy_events import KTO_METRICS, PolicyEventsCallback
from engine.rlhf.policy_model import Policy, lora_config, save_start_model
from engine.rlhf.policy_training import finish, load_preference_policy, run_packed, task_accuracy_before
from engine.rlhf.preferences import LoadedJudged, load_judged
from engine.runner import JobContext
from engine.specs.kto import KTOSpec
from engine.training.arguments import training_arguments
from engine.training.batches import CountingTokens, TokenCounts, decide_packing
from engine.training.loop import begin_training, train


def run(ctx: JobContext) -> dict:
    spec: KTOSpec = ctx.spec
    placement = begin_training(ctx)
    answers = load_answers(ctx)
    policy, changed = load_preference_policy(ctx, placement, several_turns(answers.train + answers.held_out),
                                             f"KTO ({spec.loss_type} loss, β {spec.beta})")
    train_set, eval_set = tokenize(ctx, policy, answers)
    ctx.check_cancelled()

    evaluator = None
    if spec.evaluation.task != "none":
        seen = {question_of(a) for a in answers.train + answers.held_out}
        evaluator = TaskEvaluator(spec.evaluation, policy.tokenizer, policy.template, policy.stops, exclude=seen,
                                  seed=spec.seed)
    before = task_accuracy_before(ctx, policy.model, evaluator)
    if spec.method.name == "full" and changed:
        # As in DPO: TRL loads the frozen reference of full training from the policy's folder.
        save_start_model(ctx, policy.model, policy.tokenizer)

    trainer, events = build_trainer(ctx, placement, policy, train_set, eval_set, evaluator)
    train(ctx, trainer)
    final = {"train_answers": len(train_set), "held_out_answers": len(eval_set) if eval_set is not None else 0}
    if eval_set is not None:
        if trainer.state.global_step % spec.train.eval_every:
            trainer.evaluate()  # the held-out figures of the final policy
        final.update({k: v for k, v in events.last["eval"].items() if k in ("reward_margin", "kl")})
    else:
        final.update({f"train_{k}": v for k, v in events.last["train"].items() if k in ("reward_margin", "kl")})
    return finish(ctx, trainer, policy.tokenizer, policy.template, evaluator, before, final)


def load_answers(ctx: JobContext) -> LoadedJudged:
    spec = ctx.spec
    ctx.events.progress("data", 0, None, "answers")
    answers = load_judged(spec.data.sources, ctx.run.path.parent.parent, spec.data.eval_fraction, spec.seed)
    for note in answers.notes:
        ctx.events.log("warning", note)
    good = sum(a.good for a in answers.train)
    bad = len(answers.train) - good
    ctx.events.log("info", f"Judged answers: {len(answers.train):,} training ({good:,} good, {bad:,} bad) and "
                           f"{len(answers.held_out):,} held-out from {', '.join(spec.data.sources)}.")
    if not good or not bad:
        raise DataError(f"All {len(answers.train):,} training answers are judged {'good' if good else 'bad'}: KTO "
                        "learns from the contrast between good and bad answers.",
                        "Add answers of the other verdict (label more items, or give pairs).")
    # The KTO paper keeps desirable_weight × good / (undesirable_weight × bad) within [1, 4/3].
    ratio = spec.desirable_weight * good / (spec.undesirable_weight * bad)
    if not 1.0 <= ratio <= 4 / 3:
        ctx.events.log("warning", f"desirable_weight × good answers is {ratio:.2f} × undesirable_weight × bad ones; the "
                                  f"KTO paper advises 1 to 1.33 (e.g. desirable_weight "
                                  f"{spec.undesirable_weight * bad / good:.2f}–{spec.undesirable_weight * bad / good * 4 / 3:.2f}).")
    return answers


def tokenize(ctx: JobContext, policy: Policy, answers: LoadedJudged):
    """The train and held-out answers as token ids (None for no held-out answers), in a seeded order:
    the trainer reads them in order (KTO's KL estimate pairs each answer with a neighbour's prompt)."""
    spec = ctx.spec

    def tokenized(split: list, name: str) -> list[dict]:
        result = tokenize_judged(split, policy.tokenizer, policy.template, spec.data.max_length)
        if result.too_long:
            ctx.events.log("warning", f"{result.too_long:,} {name} answers are longer than data.max_length "
                                      f"({spec.data.max_length} tokens with the prompt; the longest has "
                                      f"{result.longest:,}): dropped.")
        if result.empty:
            ctx.events.log("warning", f"{result.empty:,} {name} answers are empty: dropped.")
        rows = result.rows
        random.Random(spec.seed).shuffle(rows)
        return rows

    train_rows = tokenized(answers.train, "training")
    if len(train_rows) < 2:
        raise DataError(f"{len(train_rows)} training answer(s) are left after dropping those longer than "
                        f"data.max_length ({spec.data.max_length} tokens) and the empty ones; KTO needs at least 2.",
                        "Raise data.max_length, or give more (or shorter) answers.")
    eval_rows = tokenized(answers.held_out, "held-out")
    ctx.events.metric(0, "data", {"train_answers": len(train_rows), "eval_answers": len(eval_rows),
                                  "good": sum(r["label"] for r in train_rows)})
    return kto_dataset(train_rows, spec.train.batch_size), kto_dataset(eval_rows, spec.train.batch_size)


def kto_dataset(rows: list[dict], batch_size: int) -> datasets.Dataset | None:
    """Rows with KTO's mismatched completions for its KL estimate, built as TRL builds them: the
    completions rotated by one within each batch of `batch_size`."""
    if not rows:
        return None
    for start in range(0, len(rows), batch_size):
        batch = rows[start:start + batch_size]
        for row, other in zip(batch, batch[-1:] + batch[:-1]):
            row["KL_completion_ids"] = other["completion_ids"]
    return datasets.Dataset.from_list(rows)


class RenderedAnswersKTOTrainer(CountingTokens, KTOTrainer):
    """KTOTrainer on answers already tokenized by engine.rlhf.dpo_pairs (the ids fine-tuning uses) and
    given their KL completions by kto_dataset: TRL's own preparation would tokenize again, differently.
    It counts its batches' tokens."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


def build_trainer(ctx: JobContext, placement: Placement, policy: Policy, train_set, eval_set,
                  evaluator: TaskEvaluator | None) -> tuple[KTOTrainer, PolicyEventsCallback]:
    spec, train = ctx.spec, ctx.spec.train
    args = KTOConfig(**training_arguments(ctx, placement, has_eval=eval_set is not None, beta=spec.beta,
                                          loss_type=spec.loss_type, max_length=spec.data.max_length,
                                          desirable_weight=spec.desirable_weight,
                                          undesirable_weight=spec.undesirable_weight,
                                          train_sampling_strategy="sequential",
                                          trust_remote_code=spec.model.trust_remote_code))
    parameters = sum(p.numel() for p in policy.model.parameters())
    packing = decide_packing(ctx, policy.model.config, spec.method.name)
    counts = TokenCounts(packing)
    events = PolicyEventsCallback(ctx, KTO_METRICS, train.batch_size * train.gradient_accumulation, parameters,
                                  counts=counts)
    callbacks = [events]
    if evaluator is not None:
        callbacks.append(TaskEvalCallback(ctx, evaluator, train.eval_every))
    trainer = RenderedAnswersKTOTrainer(model=policy.model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                                        processing_class=policy.tokenizer, callbacks=callbacks,
                                        peft_config=lora_config(spec.method, policy.model), counts=counts)
    run_packed(ctx, trainer, packing)  # the KL estimate's forwards too
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    reference = "the policy with its adapter off" if spec.method.name == "lora" else "the frozen start model"
    ctx.events.log("info", f"{trainable:,} trainable parameters of {parameters:,} ({trainable / parameters:.2%}); "
                           f"reference: {reference}.")
    return trainer, events
