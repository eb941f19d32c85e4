"""Direct preference optimisation: labeled pairs (a labeling queue or preference files) → the policy
(the SFT model, its adapter merged in) → pairs as the token ids fine-tuning uses → TRL's DPOTrainer
(sigmoid or IPO loss, β), or TRL's reference-free ORPOTrainer / CPOTrainer (ORPO; SimPO, which is
CPO's simpo loss with no behaviour-cloning term), with LoRA or on every weight → the policy, merged,
in output/policy.

DPO's and IPO's reference model is automatic: with LoRA it is the policy with its adapter switched
off; with full training, TRL loads the start model frozen. ORPO and SimPO use none. Pairwise figures
(reward accuracy and margin of the implicit reward) are logged for training and held-out pairs; with
evaluation.task, the policy also answers held-out prompts of a built-in task before, during and
after training.
"""

from __future__ import annotations

import datasets
from trl import DPOConfig, DPOTrainer

from engine.devices import Placement
from engine.errors import DataError
from engine.finetune.rendering import IGNORE
from engine.rlhf.dpo_pairs import question_of, several_turns, tokenize_pairs
from engine.rlhf.policy_eval import TaskEvalCallback, TaskEvaluator
from engine.rlhf.policy_events import DPO_METRICS, PolicyEventsCallback
from engine.rlhf.policy_model import Policy, lora_config, save_start_model
from engine.rlhf.policy_training import finish, load_preference_policy, run_packed, task_accuracy_before
from engine.rlhf.preferences import LoadedPairs, load_pairs
from engine.runner import JobContext
from engine.specs.dpo import DPOSpec
from engine.training.arguments import training_arguments
from engine.training.batches import CountingTokens, Packing, TokenCounts, decide_packing
from engine.training.loop import begin_training, train


def run(ctx: JobContext) -> dict:
    spec: DPOSpec = ctx.spec
    placement = begin_training(ctx)
    pairs = load_preferences(ctx)
    policy, changed = load_the_policy(ctx, placement, pairs)
    train_set, eval_set = tokenize(ctx, policy, pairs)
    ctx.check_cancelled()

    evaluator = None
    if spec.evaluation.task != "none":
        seen = {question_of(p) for p in pairs.train + pairs.held_out}
        evaluator = TaskEvaluator(spec.evaluation, policy.tokenizer, policy.template, policy.stops, exclude=seen,
                                  seed=spec.seed)
    before = task_accuracy_before(ctx, policy.model, evaluator)
    if spec.method.name == "full" and changed and not spec.reference_free:
        # TRL loads the frozen reference of full training from the policy's folder, which must then
        # hold the start model (the SFT adapter merged in), not the base model alone.
        save_start_model(ctx, policy.model, policy.tokenizer)

    trainer, events = build_trainer(ctx, placement, policy, train_set, eval_set, evaluator)
    train(ctx, trainer)
    final = {"train_pairs": len(train_set), "held_out_pairs": len(eval_set) if eval_set is not None else 0}
    if eval_set is not None:
        if trainer.state.global_step % spec.train.eval_every:
            trainer.evaluate()  # the held-out figures of the final policy
        final.update({k: events.last["eval"][k] for k in ("reward_accuracy", "reward_margin")})
    else:  # no held-out pairs: the figures of the last training steps
        final.update({f"train_{k}": events.last["train"][k] for k in ("reward_accuracy", "reward_margin")})
    return finish(ctx, trainer, policy.tokenizer, policy.template, evaluator, before, final)


def load_preferences(ctx: JobContext) -> LoadedPairs:
    spec = ctx.spec
    ctx.events.progress("data", 0, None, "pairs")
    pairs = load_pairs(spec.data.sources, ctx.run.path.parent.parent, spec.data.eval_fraction, spec.seed)
    for note in pairs.notes:
        ctx.events.log("warning", note)
    ctx.events.log("info", f"Preferences: {len(pairs.train):,} training and {len(pairs.held_out):,} held-out pairs "
                           f"from {', '.join(spec.data.sources)}.")
    return pairs


def load_the_policy(ctx: JobContext, placement: Placement, pairs: LoadedPairs) -> tuple[Policy, bool]:
    spec = ctx.spec
    what = {"orpo": f"ORPO (λ {spec.beta})", "simpo": f"SimPO (β {spec.beta}, γ/β {spec.simpo_gamma})"}.get(
        spec.loss_type, f"DPO ({spec.loss_type} loss, β {spec.beta})")
    return load_preference_policy(ctx, placement, several_turns(pairs.train + pairs.held_out), what)


def tokenize(ctx: JobContext, policy: Policy, pairs: LoadedPairs):
    """The train and held-out pairs as token ids (None for no held-out pairs)."""
    spec = ctx.spec

    def tokenized(split: list, name: str):
        result = tokenize_pairs(split, policy.tokenizer, policy.template, spec.data.max_length)
        if result.too_long:
            ctx.events.log("warning", f"{result.too_long:,} {name} pairs are longer than data.max_length "
                                      f"({spec.data.max_length} tokens; the longest has {result.longest:,}): dropped.")
        if result.empty:
            ctx.events.log("warning", f"{result.empty:,} {name} pairs have an empty answer: dropped.")
        return result

    train_part = tokenized(pairs.train, "training")
    if not train_part.rows:
        raise DataError(f"No training pair is left: {train_part.too_long} of {len(pairs.train)} are longer than "
                        f"data.max_length ({spec.data.max_length} tokens; the longest has {train_part.longest:,}) "
                        f"and {train_part.empty} have an empty answer.",
                        "Raise data.max_length, or give pairs with shorter prompts and answers.")
    eval_part = tokenized(pairs.held_out, "held-out")
    ctx.events.metric(0, "data", {"train_pairs": len(train_part.rows), "eval_pairs": len(eval_part.rows),
                                  "dropped": train_part.too_long + train_part.empty + eval_part.too_long
                                  + eval_part.empty})
    eval_set = datasets.Dataset.from_list(eval_part.rows) if eval_part.rows else None
    return datasets.Dataset.from_list(train_part.rows), eval_set


class RenderedPairsDPOTrainer(CountingTokens, DPOTrainer):
    """DPOTrainer on pairs already tokenized by engine.rlhf.dpo_pairs (see there why): TRL's own
    preparation would tokenize conversations again, differently. It counts its batches' tokens."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        return dataset


def packing_of(ctx: JobContext, policy: Policy) -> Packing:
    """How this run's pairs train padding-free (engine/training/packed_rows.py): DPO and IPO where the architecture
    packs exactly. ORPO and SimPO (TRL's ORPO and CPO trainers) read the full logits of padded rows; the spec
    refuses `train.packing: on` with them."""
    spec = ctx.spec
    if spec.reference_free:
        if spec.train.packing == "auto":
            ctx.events.log("info", f"Padded batches: {spec.loss_type} reads every position's logits of padded rows "
                                   "(TRL's ORPO and CPO trainers).")
        return Packing(False)
    return decide_packing(ctx, policy.model.config, spec.method.name)


def cpo_rows(dataset):
    """Pairs tokenized by engine.rlhf.dpo_pairs as the rows TRL's ORPO and CPO trainers train on
    (their `tokenize_row` output): each answer after its prompt, labels only on the answer."""
    def row(pair: dict) -> dict:
        prompt = pair["prompt_ids"]
        out = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
        for name in ("chosen", "rejected"):
            answer = pair[f"{name}_ids"]
            out[f"{name}_input_ids"] = prompt + answer
            out[f"{name}_attention_mask"] = [1] * (len(prompt) + len(answer))
            out[f"{name}_labels"] = [IGNORE] * len(prompt) + answer
        return out
    return dataset.map(row, remove_columns=dataset.column_names) if dataset is not None else None


def rendered_rows(trainer_class):
    """`trainer_class` (ORPO or CPO) on rows already built by cpo_rows: its own `tokenize_row` would
    tokenize text prompts again, without the chat layout fine-tuning used."""
    return type(f"RenderedPairs{trainer_class.__name__}", (trainer_class,),
                {"tokenize_row": lambda self, feature, model=None: feature})


def build_trainer(ctx: JobContext, placement: Placement, policy: Policy, train_set, eval_set,
                  evaluator: TaskEvaluator | None) -> tuple[DPOTrainer, PolicyEventsCallback]:
    spec, train = ctx.spec, ctx.spec.train
    common = training_arguments(ctx, placement, has_eval=eval_set is not None, beta=spec.beta,
                                max_length=spec.data.max_length)
    parameters = sum(p.numel() for p in policy.model.parameters())
    packing = packing_of(ctx, policy)
    counts = TokenCounts(packing)
    events = PolicyEventsCallback(ctx, DPO_METRICS, train.batch_size * train.gradient_accumulation, parameters,
                                  counts=None if spec.reference_free else counts)
    callbacks = [events]
    if evaluator is not None:
        callbacks.append(TaskEvalCallback(ctx, evaluator, train.eval_every))
    peft = lora_config(spec.method, policy.model)
    if spec.reference_free:
        if spec.loss_type == "orpo":
            from trl.experimental.orpo import ORPOConfig as Config, ORPOTrainer as Trainer
            args = Config(**common)
        else:  # SimPO is CPO's simpo loss without CPO's behaviour-cloning term (the SimPO paper's setting)
            from trl.experimental.cpo import CPOConfig as Config, CPOTrainer as Trainer
            args = Config(**common, loss_type="simpo", cpo_alpha=0.0, simpo_gamma=spec.simpo_gamma * spec.beta)
        trainer = rendered_rows(Trainer)(model=policy.model, args=args, train_dataset=cpo_rows(train_set),
                                         eval_dataset=cpo_rows(eval_set), processing_class=policy.tokenizer,
                                         callbacks=callbacks, peft_config=peft)
        reference = "none (reference-free)"
    else:
        args = DPOConfig(**common, loss_type=[spec.loss_type], trust_remote_code=spec.model.trust_remote_code)
        trainer = RenderedPairsDPOTrainer(model=policy.model, args=args, train_dataset=train_set,
                                          eval_dataset=eval_set, processing_class=policy.tokenizer,
                                          callbacks=callbacks, peft_config=peft, counts=counts)
        reference = "the policy with its adapter off" if spec.method.name == "lora" else "the frozen start model"
        run_packed(ctx, trainer, packing)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    ctx.events.log("info", f"{trainable:,} trainable parameters of {parameters:,} ({trainable / parameters:.2%}); "
                           f"reference: {reference}.")
    return trainer, events
