"""RLHF with PPO: prompts → the policy, its reference, the reward model and the value model → rounds
of rollouts (the policy answers a batch of prompts, the reward model scores the answers, a KL
penalty to the reference is taken off token by token) and PPO updates (GAE, clipped surrogate,
clipped value loss) → the improved policy, merged into one model when trained with LoRA.

The maths is in engine/rlhf/ppo_math.py, the models in ppo_models.py, the rollouts in
ppo_rollout.py, the update and the checkpoints in ppo_update.py. With `evaluation.task` set, the
policy answers held-out prompts of a built-in task before, during and after training: greedy and
sampled exact-answer accuracy, and the reward of its sampled answers.
"""

from __future__ import annotations

import random

from engine.devices import Placement
from engine.generate.prompts import Prompt, load_prompts, prompt_token_ids
from engine.models import check_positions
from engine.rlhf.policy_model import save_policy as save_trained_policy
from engine.rlhf.ppo_models import PPOModels, load_models, locate
from engine.rlhf.ppo_rollout import Rollout, answer, rollout, row_seed, scores
from engine.rlhf.ppo_update import IterationStats, PPOUpdater
from engine.runner import Cancelled, JobContext
from engine.specs.generate import PromptSource
from engine.specs.ppo import PPOSpec
from engine.tasks.generators import check
from engine.progress import ProgressMeter
from engine.training.batches import decide_packing
from engine.training.loop import begin_training
from engine.training.reporting import mirror_metrics

SAMPLES = 3  # answers shown as sample events at each sample_every


def run(ctx: JobContext) -> dict:
    spec: PPOSpec = ctx.spec
    placement = begin_training(ctx)  # seeds: what loading initialises at random (a new value head) is the same each run
    mirror_metrics(ctx)  # our own loop: its metric events go to the trackers of train.report_to
    prompts = read_prompts(ctx)
    held_out = read_held_out_prompts(ctx)
    models = load_all_models(ctx, placement, prompts + held_out)
    encoded = encode(ctx, models, prompts)
    held_out_encoded = encode(ctx, models, held_out)
    updater = PPOUpdater(spec, models)
    record = resume(ctx, updater)

    if record["iteration"] == 0 and held_out:
        record["eval_before"] = evaluate(ctx, models, held_out, held_out_encoded, 0)
    progress = ProgressMeter(ctx, "train", spec.train.iterations, "iterations")
    progress.update(record["iteration"])
    for iteration in range(record["iteration"] + 1, spec.train.iterations + 1):
        if ctx.cancel_requested.is_set():
            if iteration > 1:
                save_checkpoint(ctx, updater, iteration - 1, record)
            raise Cancelled()
        batch = batch_prompts(len(prompts), iteration, spec.train.rollout_batch_size, spec.seed)
        seeds = [row_seed(spec.seed, iteration, row) for row in range(len(batch))]
        rolled = rollout(models, [prompts[i] for i in batch], [encoded[i] for i in batch], seeds, spec.sampling,
                         spec.ppo.missing_eos_penalty)
        stats = updater.step(rolled, iteration)
        report_iteration(ctx, iteration, rolled, stats, record)
        progress.update(iteration)
        if held_out and iteration % spec.train.eval_every == 0:
            record["eval_after"] = evaluate(ctx, models, held_out, held_out_encoded, iteration)
        if iteration % spec.train.checkpoint_every == 0 and iteration < spec.train.iterations:
            save_checkpoint(ctx, updater, iteration, record)
        record["iteration"] = iteration

    if held_out and spec.train.iterations % spec.train.eval_every:
        record["eval_after"] = evaluate(ctx, models, held_out, held_out_encoded, spec.train.iterations)
    return save_policy(ctx, models, record)


def read_prompts(ctx: JobContext) -> list[Prompt]:
    spec = ctx.spec
    ctx.events.progress("prompts", 0, None, "prompts")
    prompts, blank = load_prompts(spec.prompts, spec.seed)
    if blank:
        ctx.events.log("warning", f"{blank:,} blank prompt{'s' if blank != 1 else ''} skipped.")
    ctx.events.log("info", f"Prompts: {len(prompts):,} from {', '.join(spec.prompts.sources)}; "
                           f"{spec.train.rollout_batch_size} answered per iteration.")
    return prompts


def read_held_out_prompts(ctx: JobContext) -> list[Prompt]:
    """The built-in task's held-out prompts (none when evaluation.task is none)."""
    evaluation = ctx.spec.evaluation
    if evaluation.task == "none":
        return []
    source = PromptSource(sources=["builtin:tasks"], task=evaluation.task, task_examples=evaluation.examples,
                          task_seed=evaluation.seed)
    return load_prompts(source, evaluation.seed)[0]


def load_all_models(ctx: JobContext, placement: Placement, prompts: list[Prompt]) -> PPOModels:
    spec = ctx.spec
    ctx.events.progress("model", 0, None, "models")
    located = locate(spec, ctx.run.path.parent.parent, prompts, ctx.events.log)
    ctx.events.log("info", f"Policy {located.policy.description}, reward model {located.reward}; the value model "
                           f"starts from the {'reward model' if spec.value_model == 'reward' else 'policy'}. "
                           f"{spec.method.name} on {placement.device} in {placement.precision}.")
    if spec.sampling.top_k or spec.sampling.top_p < 1.0 or spec.sampling.repetition_penalty != 1.0:
        ctx.events.log("warning", "sampling.top_k, top_p or repetition_penalty is set: answers are drawn from the "
                                  "distribution they change, but PPO's log-probabilities are those of the model's own "
                                  "(at the temperature), so the update is off-policy. Set top_k: 0, top_p: 1 and "
                                  "repetition_penalty: 1 unless you need them.")
    models = load_models(spec, located, placement.device, placement.dtype, ctx.events.log)
    models.policy_packing = decide_packing(ctx, models.policy.config, spec.method.name)
    models.value_packing = decide_packing(ctx, models.value.body.config, spec.method.name)
    ctx.events.log("info", "Prompt + answer batches of the policy and the reference: "
                           f"{models.policy_packing.describe()}; of the value model: {models.value_packing.describe()}.")
    trainable = sum(p.numel() for p in models.trainable_parameters())
    ctx.events.log("info", f"{trainable:,} trainable parameters (policy and value model); prompts laid out with "
                           f"{'the prompt text as is' if models.template is None else 'the chat template'}, answers "
                           f"end at {', '.join(models.tokenizer.convert_ids_to_tokens(models.stops)) or 'the limit'}.")
    return models


def encode(ctx: JobContext, models: PPOModels, prompts: list[Prompt]) -> list[list[int]]:
    """Each prompt's token ids, checked against the policy's context length."""
    encoded = [prompt_token_ids(prompt, models.tokenizer, models.template) for prompt in prompts]
    answer_tokens = max(ctx.spec.sampling.max_new_tokens, ctx.spec.evaluation.max_new_tokens)
    for prompt, ids in zip(prompts, encoded):
        check_positions(models.policy.config, len(ids) + answer_tokens,
                        f"{prompt.where} (prompt {prompt.id}) with answers of {answer_tokens:,} tokens", "the policy",
                        "Lower sampling.max_new_tokens (and evaluation.max_new_tokens), or leave out that prompt.")
    return encoded


def resume(ctx: JobContext, updater: PPOUpdater) -> dict:
    """The run's record: the last iteration done (0 on a fresh start), figures kept for the summary."""
    if ctx.resume_from is None:
        return {"iteration": 0, "rewards": [], "kls": []}
    record = updater.load(ctx.resume_from)
    ctx.events.log("info", f"Resumed from {ctx.resume_from.name}: iteration {record['iteration']} of "
                           f"{ctx.spec.train.iterations}.")
    return record


def batch_prompts(count: int, iteration: int, size: int, seed: int) -> list[int]:
    """The prompts of `iteration` (from 1): the prompts in a seeded order, epoch after epoch, each
    epoch shuffled anew; it depends on nothing else, so a resumed run picks the same ones."""
    orders: dict[int, list[int]] = {}
    picked = []
    for k in range((iteration - 1) * size, iteration * size):
        epoch, position = divmod(k, count)
        if epoch not in orders:
            orders[epoch] = random.Random(f"ppo-order:{seed}:{epoch}").sample(range(count), count)
        picked.append(orders[epoch][position])
    return picked


def report_iteration(ctx: JobContext, iteration: int, rolled: Rollout, stats: IterationStats, record: dict) -> None:
    score = rolled.scores
    reward_mean = score.mean().item()
    values = {"reward_mean": reward_mean, "reward_std": score.std().item() if len(score) > 1 else 0.0,
              "kl": stats.kl, "kl_coef": stats.kl_coef, "entropy": rolled.entropy,
              "policy_loss": stats.policy_loss, "value_loss": stats.value_loss,
              "clip_fraction": stats.clip_fraction, "approx_kl": stats.approx_kl,
              "value_clip_fraction": stats.value_clip_fraction, "padding_efficiency": stats.padding_efficiency,
              "response_length": rolled.mask.sum(1).mean().item(),
              "stopped": sum(rolled.stopped) / len(rolled.stopped)}
    ctx.events.metric(iteration, "train", values)
    record["rewards"].append(reward_mean)
    record["kls"].append(stats.kl)
    if iteration % ctx.spec.train.sample_every == 0 or iteration == 1:
        emit_samples(ctx, iteration, rolled.prompts, rolled.texts, score.tolist())


def emit_samples(ctx: JobContext, step: int, prompts: list[Prompt], texts: list[str], rewards: list[float]) -> None:
    """`sample` events with the answer's reward in `reward` and in the text."""
    for prompt, text, reward in list(zip(prompts, texts, rewards))[:SAMPLES]:
        expected = prompt.meta.get("answer", prompt.meta.get("reference"))
        note = f"reward {reward:.3f}" + (f"; expected: {expected}" if expected else "")
        ctx.events.emit("sample", step=step, prompt=prompt.text, text=f"{text}   ({note})", reward=round(reward, 4))


def evaluate(ctx: JobContext, models: PPOModels, prompts: list[Prompt], encoded: list[list[int]],
             step: int) -> dict:
    """Greedy and sampled exact-answer accuracy on the held-out task prompts, and the reward model's
    mean score of the sampled answers (the same seeds at every evaluation)."""
    spec = ctx.spec
    ctx.events.progress("evaluate", 0, len(prompts), "prompts")
    length = {"max_new_tokens": spec.evaluation.max_new_tokens}
    greedy = answer(models, prompts, encoded, None, spec.sampling.model_copy(update={**length, "do_sample": False}))
    seeds = [row_seed(spec.evaluation.seed, 0, row) for row in range(len(prompts))]
    sampled = answer(models, prompts, encoded, seeds, spec.sampling.model_copy(update=length))
    rewards = scores(models, sampled, spec.sampling.batch_size)
    task = spec.evaluation.task
    values = {"task_accuracy": sum(check(task, p.meta, t) for p, t in zip(prompts, greedy.texts)) / len(prompts),
              "task_accuracy_sampled": sum(check(task, p.meta, t) for p, t in zip(prompts, sampled.texts)) / len(prompts),
              "reward_mean": rewards.mean().item()}
    ctx.events.metric(step, "eval", values)
    ctx.events.log("info", f"{'Before training' if step == 0 else f'Iteration {step}'}: " +
                           ", ".join(f"{k} {v:.3g}" for k, v in values.items()) + " on held-out prompts.")
    return values


def save_checkpoint(ctx: JobContext, updater: PPOUpdater, iteration: int, record: dict) -> None:
    path = updater.save(ctx.run.checkpoints_dir, iteration, {k: v for k, v in record.items() if k != "iteration"},
                        ctx.spec.train.keep_checkpoints)
    ctx.events.artifact("checkpoint", str(path), {"iteration": iteration})


def save_policy(ctx: JobContext, models: PPOModels, record: dict) -> dict:
    """output/policy: a whole model (LoRA merged in) with its tokenizer and a model card, loadable
    with AutoModelForCausalLM; and the summary, also in output/metrics.json."""
    spec = ctx.spec
    rewards, kls = record["rewards"], record["kls"]
    summary = {"iterations": spec.train.iterations, "policy": str(ctx.run.output_dir / "policy"),
               "reward_mean_before": round(rewards[0], 4) if rewards else None,
               "reward_mean_after": round(rewards[-1], 4) if rewards else None,
               "kl_final": round(kls[-1], 4) if kls else None}
    for when in ("before", "after"):
        for name, value in record.get(f"eval_{when}", {}).items():
            summary[f"eval_{name}_{when}"] = round(value, 4)
    save_trained_policy(ctx, models.policy, models.tokenizer, models.template, summary,
                        f" against the reward model `{spec.reward_model}`")
    return summary
