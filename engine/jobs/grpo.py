"""Group-relative policy optimisation: prompts → the policy (the SFT model, its adapter merged in) →
TRL's GRPOTrainer samples `group_size` answers per prompt, scores each with the reward (the
built-in task's checker, or a reward model) and moves the policy towards the answers that beat
their group's mean, with a KL leash (β) to the reference → the policy, merged, in output/policy.

The reference model is automatic: with LoRA it is the policy with its adapter switched off; with full
training (and β > 0), TRL loads the start model frozen. With evaluation.task, the policy answers
held-out prompts of a built-in task (greedy and sampled) before, during and after training.
"""

from __future__ import annotations

import datasets
from transformers import TrainerCallback
from trl import GRPOConfig, GRPOTrainer

from engine.devices import Placement
from engine.finetune.rendering import text_ids
from engine.generate.models import stop_ids
from engine.generate.prompts import Prompt, load_prompts
from engine.models import check_positions, locate_model, model_positions, resolve_choice
from engine.rlhf.checker_reward import QUESTION, checker_reward
from engine.rlhf.grpo_rewards import FIELD, PROMPT_INDEX, RewardModelScorer, RewardRecorder, load_reward_model
from engine.rlhf.policy_eval import TaskEvalCallback, TaskEvaluator
from engine.rlhf.policy_events import GRPO_METRICS, PolicyEventsCallback
from engine.rlhf.policy_model import (
    Policy,
    load_policy,
    lora_config,
    prompt_template,
    prompt_text,
    save_start_model,
)
from engine.rlhf.policy_training import finish, run_packed, task_accuracy_before
from engine.runner import JobContext
from engine.specs.grpo import GRPOSpec
from engine.training.arguments import training_arguments
from engine.training.batches import CountingTokens, TokenCounts, decide_packing
from engine.training.loop import begin_training, train

SAMPLE_ANSWERS = 2  # sample events per log step: answers with their rewards


def run(ctx: JobContext) -> dict:
    spec: GRPOSpec = ctx.spec
    placement = begin_training(ctx)
    prompts = read_prompts(ctx)
    policy, changed = load_the_policy(ctx, placement, prompts)
    train_set = prompt_dataset(ctx, policy, prompts)
    reward = RewardRecorder(reward_function(ctx, placement, policy, prompts))
    ctx.check_cancelled()

    evaluator = None
    if spec.evaluation.task != "none":
        seen = {p.meta["input"] for p in prompts if "input" in p.meta}
        evaluator = TaskEvaluator(spec.evaluation, policy.tokenizer, policy.template, policy.stops,
                                  sampling=spec.sampling, exclude=seen, seed=spec.seed)
    before = task_accuracy_before(ctx, policy.model, evaluator)
    if spec.method.name == "full" and spec.beta > 0 and changed:
        # TRL loads the frozen reference of full training from the policy's folder, which must then
        # hold the start model (the SFT adapter merged in), not the base model alone.
        save_start_model(ctx, policy.model, policy.tokenizer)

    trainer, events = build_trainer(ctx, placement, policy, train_set, reward, prompts, evaluator)
    train(ctx, trainer)
    final = {"prompts": len(prompts), "reward_first": events.first_train.get("reward"),
             "reward_last": events.last["train"].get("reward")}
    return finish(ctx, trainer, policy.tokenizer, policy.template, evaluator, before,
                  {k: v for k, v in final.items() if v is not None})


def read_prompts(ctx: JobContext) -> list[Prompt]:
    spec = ctx.spec
    ctx.events.progress("prompts", 0, None, "prompts")
    prompts, blank = load_prompts(spec.prompts, spec.seed)
    if blank:
        ctx.events.log("warning", f"{blank:,} blank prompt{'s' if blank != 1 else ''} skipped.")
    ctx.events.log("info", f"Prompts: {len(prompts):,} from {', '.join(spec.prompts.sources)}.")
    return prompts


def load_the_policy(ctx: JobContext, placement: Placement, prompts: list[Prompt]) -> tuple[Policy, bool]:
    spec = ctx.spec
    choice = resolve_choice(spec.model, ctx.run.path.parent.parent, "model")
    ctx.events.progress("model", 0, None, "model")
    ctx.events.log("info", f"GRPO of {choice.description} ({spec.group_size} answers per prompt, reward from "
                           f"{spec.reward.source}, β {spec.beta}, {spec.method.name}).")
    model, tokenizer, changed = load_policy(choice, placement.device, placement.dtype, ctx.events.log)
    several = next((p.where for p in prompts if len([m for m in p.messages if m["role"] != "system"]) > 1), None)
    template = prompt_template(tokenizer, spec.chat_template, several, "chat_template", choice.label, ctx.events.log)
    stops = stop_ids(model, tokenizer, template)
    # TRL ends each sampled answer at the model's end tokens: the template's end-of-turn marker too.
    model.generation_config.eos_token_id = stops
    return Policy(model, tokenizer, choice, template, stops), changed


def prompt_dataset(ctx: JobContext, policy: Policy, prompts: list[Prompt]) -> datasets.Dataset:
    """One row per prompt: the text the policy continues, its place in `prompts`, and (built-in tasks)
    the question the checker checks the answers against."""
    spec = ctx.spec
    texts = [prompt_text(p, policy.tokenizer, policy.template) for p in prompts]
    lengths = [len(text_ids(t, policy.tokenizer)) for t in texts]
    longest = max(range(len(prompts)), key=lambda i: lengths[i])
    check_positions(policy.model.config, lengths[longest] + spec.sampling.max_new_tokens,
                    f"{prompts[longest].where} (prompt {prompts[longest].id}) with sampling.max_new_tokens "
                    f"({spec.sampling.max_new_tokens:,})", "the policy",
                    "Lower sampling.max_new_tokens, or shorten or leave out that prompt.")
    rows = [{"prompt": text, PROMPT_INDEX: i, QUESTION: p.meta.get("input", "")}
            for i, (text, p) in enumerate(zip(texts, prompts))]
    return datasets.Dataset.from_list(rows)


def reward_function(ctx: JobContext, placement: Placement, policy: Policy, prompts: list[Prompt]):
    spec = ctx.spec
    if spec.reward.source == "checker":
        return checker_reward(spec.prompts.task)
    folder = locate_model(spec.reward.reward_model, ctx.run.path.parent.parent, FIELD, "reward").path
    ctx.events.log("info", f"Reward model: {folder}.")
    model, tokenizer, template = load_reward_model(folder, policy.tokenizer, policy.choice.label, policy.template,
                                                   placement.device, placement.dtype,
                                                   spec.model.trust_remote_code)
    positions = model_positions(model.config) or 1 << 30
    return RewardModelScorer(model, tokenizer, template, prompts, positions)


class RenderedPromptsGRPOTrainer(CountingTokens, GRPOTrainer):
    """GRPOTrainer whose prompts are the texts `prompt_text` lays out, tokenized as fine-tuning and the
    generate job tokenize them (bos first where the tokenizer puts one, never twice): TRL would apply
    the chat template again, without bos, or add a second bos to a template that writes one. It counts
    its batches' tokens."""

    def _tokenize_prompts(self, prompts: list):
        return [text_ids(p, self.processing_class) for p in prompts], None, {}


class RewardSamplesCallback(TrainerCallback):
    """At each log step, a few of the latest answers with the reward they got, as sample events."""

    def __init__(self, ctx: JobContext, reward: RewardRecorder, prompts: list[Prompt]):
        self.ctx, self.reward, self.prompts = ctx, reward, prompts

    def on_log(self, args, state, control, logs=None, **kwargs):
        if "loss" not in (logs or {}):
            return
        for index, answer, value in self.reward.last[:SAMPLE_ANSWERS * args.num_generations:args.num_generations]:
            self.ctx.events.sample(state.global_step, self.prompts[index].text, f"{answer}   (reward {value:.3g})")


def build_trainer(ctx: JobContext, placement: Placement, policy: Policy, train_set, reward: RewardRecorder,
                  prompts: list[Prompt], evaluator: TaskEvaluator | None) -> tuple[GRPOTrainer, PolicyEventsCallback]:
    spec, train, sampling = ctx.spec, ctx.spec.train, ctx.spec.sampling
    args = GRPOConfig(**training_arguments(
        ctx, placement, has_eval=False, trust_remote_code=spec.model.trust_remote_code,
        num_generations=spec.group_size,
        # TRL counts answers, the spec prompts
        per_device_train_batch_size=train.batch_size * spec.group_size,
        per_device_eval_batch_size=train.batch_size * spec.group_size,
        beta=spec.beta,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=sampling.top_k,
        repetition_penalty=sampling.repetition_penalty,
        max_completion_length=sampling.max_new_tokens,
        disable_dropout=True,  # the old and new log-probabilities of an answer must come from the same function
    ))
    parameters = sum(p.numel() for p in policy.model.parameters())
    answers_per_step = train.batch_size * spec.group_size * train.gradient_accumulation
    packing = decide_packing(ctx, policy.model.config, spec.method.name)
    counts = TokenCounts(packing)
    events = PolicyEventsCallback(ctx, GRPO_METRICS, answers_per_step, parameters, counts=counts)
    callbacks = [events, RewardSamplesCallback(ctx, reward, prompts)]
    if evaluator is not None:
        callbacks.append(TaskEvalCallback(ctx, evaluator, train.eval_every))
    trainer = RenderedPromptsGRPOTrainer(model=policy.model, reward_funcs=reward, args=args, train_dataset=train_set,
                                         processing_class=policy.tokenizer, callbacks=callbacks,
                                         peft_config=lora_config(spec.method, policy.model), counts=counts)
    run_packed(ctx, trainer, packing)  # the update's forwards; sampling runs as generate runs it
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    reference = ("none (β 0)" if spec.beta == 0 else "the policy with its adapter off" if spec.method.name == "lora"
                 else "the frozen start model")
    ctx.events.log("info", f"{trainable:,} trainable parameters of {parameters:,} ({trainable / parameters:.2%}); "
                           f"{answers_per_step:,} answers per step; reference: {reference}.")
    return trainer, events
