"""The one builder of training arguments: what every Trainer-based kind (pretrain, finetune, reward,
dpo, grpo) takes from its spec's `train:` and `resources:` blocks, as keyword arguments for
transformers' TrainingArguments or the TRL config that extends it (RewardConfig, DPOConfig, …).

A kind adds what only it has (TRL's beta, a reward model's centring, …) as overrides; nothing here
is written again in a recipe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.devices import Placement
from engine.launch import inside_launcher
from engine.runner import JobContext
from engine.training.reporting import trainer_reporting
from engine.training.strategy import trainer_arguments as strategy_arguments

if TYPE_CHECKING:
    from engine.training.batches import BatchPlan

# The spec's schedule names → transformers' (a constant rate still warms up).
SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def optimizer_name(ctx: JobContext, placement: Placement) -> str:
    """train.optimizer as transformers names it; auto = paged 8-bit AdamW for QLoRA on CUDA (its
    optimizer state would otherwise take the memory QLoRA saves), fused AdamW otherwise."""
    choice = getattr(ctx.spec.train, "optimizer", "auto")
    method = getattr(getattr(ctx.spec, "method", None), "name", None)
    if choice == "auto":
        return "paged_adamw_8bit" if method == "qlora" and placement.device.startswith("cuda") else "adamw_torch_fused"
    return {"adamw": "adamw_torch", "adamw_fused": "adamw_torch_fused", "paged_adamw_8bit": "paged_adamw_8bit"}[choice]


def training_arguments(ctx: JobContext, placement: Placement, *, has_eval: bool, plan: BatchPlan | None = None,
                       **overrides: Any) -> dict:
    """Keyword arguments for TrainingArguments (or a TRL config) from `train:` and `resources:`:
    steps, batch sizes, accumulation, schedule, clipping, precision, checkpoints into the run, logging,
    seeds, trackers (`report_to`), the strategy for several processes (FSDP, DeepSpeed ZeRO; offload)
    and the gloo backend on CPUs; torch.compile (`train.compile`) and, for a kind that batches through
    engine/training/batches.py, the loss kernel of its `plan`. `overrides` replace or add keys."""
    spec, train = ctx.spec, ctx.spec.train
    arguments = dict(
        output_dir=str(ctx.run.checkpoints_dir),
        max_steps=train.max_steps,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.gradient_accumulation,
        learning_rate=train.learning_rate,
        lr_scheduler_type=SCHEDULES[train.schedule],
        warmup_steps=train.warmup_steps,
        weight_decay=train.weight_decay,
        max_grad_norm=train.max_grad_norm or None,
        optim=optimizer_name(ctx, placement),
        # TRL turns gradient checkpointing on by default; the spec decides (off: small models need none).
        activation_checkpointing=train.gradient_checkpointing,
        # TRL's default is bf16 whenever fp16 is off, even on a CPU: the placement decides.
        bf16=placement.bf16,
        fp16=placement.fp16,
        use_cpu=placement.device == "cpu",
        ddp_backend="gloo" if placement.device == "cpu" and inside_launcher() else None,
        logging_strategy="steps",
        logging_steps=train.log_every,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=train.eval_every,
        save_strategy="steps",
        save_steps=train.checkpoint_every,
        save_total_limit=None,  # train.keep_checkpoints: rotated by engine/training/checkpoints.py, crash-safe
        dataloader_num_workers=train.dataloader_workers,
        seed=spec.seed,
        data_seed=spec.seed,
        torch_compile=getattr(train, "compile", False),
        use_liger_kernel=plan is not None and plan.loss == "liger",
        disable_tqdm=True,  # progress reaches the user as events; bars would only fill engine.log
        **trainer_reporting(ctx),
        **strategy_arguments(spec.resources),
    )
    arguments.update(overrides)
    return arguments
