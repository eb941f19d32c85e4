"""What the DPO and GRPO recipes share around their TRL trainer: the training arguments every TRL
config takes from `train:` and `resources:`, the task evaluation before training, the training
call with cancel and resume, and the saved policy."""

from __future__ import annotations

import json

import torch

from engine.devices import Placement
from engine.distributed_config import trainer_arguments
from engine.launch import inside_launcher
from engine.rlhf.policy_eval import TaskEvaluator, emit_task_eval
from engine.rlhf.policy_model import model_card, save_policy
from engine.rundir import atomic_write_text
from engine.runner import Cancelled, JobContext
from engine.specs import spec_to_yaml
from engine.training.reporting import trainer_reporting


def dtype_of(placement: Placement) -> torch.dtype:
    return torch.bfloat16 if placement.bf16 else torch.float16 if placement.fp16 else torch.float32


def trainer_config(ctx: JobContext, placement: Placement, has_eval: bool) -> dict:
    """The arguments of a TRL config (DPOConfig, GRPOConfig) that come from `train:` and `resources:`."""
    spec, train = ctx.spec, ctx.spec.train
    return dict(
        output_dir=str(ctx.run.checkpoints_dir),
        max_steps=train.max_steps,
        gradient_accumulation_steps=train.gradient_accumulation,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.schedule if train.schedule != "constant" else "constant_with_warmup",
        warmup_steps=train.warmup_steps,
        max_grad_norm=train.max_grad_norm or None,
        # TRL turns these on by default (bf16 even on a CPU, gradient checkpointing everywhere): the
        # spec's resources decide the precision, and the small models this runs on need no checkpointing.
        bf16=placement.bf16,
        fp16=placement.fp16,
        activation_checkpointing=False,
        use_cpu=placement.device == "cpu",
        ddp_backend="gloo" if placement.device == "cpu" and inside_launcher() else None,
        logging_strategy="steps",
        logging_steps=train.log_every,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=train.eval_every,
        save_strategy="steps",
        save_steps=train.checkpoint_every,
        save_total_limit=train.keep_checkpoints,
        seed=spec.seed,
        data_seed=spec.seed,
        trust_remote_code=spec.model.trust_remote_code,
        **trainer_reporting(ctx),
        disable_tqdm=True,
        **trainer_arguments(spec.resources),
    )


def task_accuracy_before(ctx: JobContext, model, evaluator: TaskEvaluator | None) -> dict[str, float]:
    if evaluator is None or ctx.resume_from:
        return {}
    ctx.events.progress("evaluate", 0, len(evaluator.prompts), "answers")
    values = emit_task_eval(ctx, 0, evaluator, model)
    if values:
        ctx.events.log("info", "Before training: " + ", ".join(f"{k} {v:.3g}" for k, v in values.items()))
    return values


def train(ctx: JobContext, trainer) -> None:
    """Run the trainer (from the last checkpoint when resuming); Cancelled when the user stopped it early."""
    trainer.train(resume_from_checkpoint=str(ctx.resume_from) if ctx.resume_from else None)
    if ctx.cancel_requested.is_set() and trainer.state.global_step < ctx.spec.train.max_steps:
        raise Cancelled()


def finish(ctx: JobContext, trainer, tokenizer, template: str | None, evaluator: TaskEvaluator | None,
           before: dict[str, float], summary: dict) -> dict:
    """Task accuracy after training, the policy saved to output/policy, and the run's summary."""
    step = trainer.state.global_step
    after = emit_task_eval(ctx, step, evaluator, trainer.model) if evaluator is not None else {}
    summary = {"step": step, **summary}
    summary.update({f"{k}_before": v for k, v in before.items()})
    summary.update({f"{k}_after": v for k, v in after.items()})
    spec = ctx.spec
    target = ctx.run.output_dir / "policy"
    if not ctx.primary:  # one process writes the policy (the others of a launch hold the same weights)
        return summary
    ctx.events.progress("save", 0, None, "model")
    merged = save_policy(trainer.model, tokenizer, template, target,
                         model_card(spec.kind, spec, summary, spec_to_yaml(spec)))
    ctx.events.artifact("model", str(target), {"method": spec.method.name, "merged": merged, "role": "policy"})
    summary["policy"] = str(target)
    atomic_write_text(ctx.run.output_dir / "metrics.json", json.dumps(summary, indent=1))
    return summary
