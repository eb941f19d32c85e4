"""The configuration that the `resources` block turns into for several GPUs: FSDP settings or a
DeepSpeed ZeRO config, given to transformers' TrainingArguments. Pure data (no torch), so the
studio's review page shows exactly what the engine will use."""

from __future__ import annotations


def deepspeed_config(strategy: str, offload: bool, precision: str) -> dict:
    """A ZeRO-2/3 config; "auto" values are filled by transformers from the TrainingArguments."""
    stage = 3 if strategy == "deepspeed-zero3" else 2
    zero: dict = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True,
                  "reduce_bucket_size": "auto"}
    if stage == 3:
        zero.update({"stage3_prefetch_bucket_size": "auto", "stage3_param_persistence_threshold": "auto",
                     "stage3_gather_16bit_weights_on_model_save": True})
    if offload:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        if stage == 3:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"}, "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto", "train_batch_size": "auto",
    }


def trainer_arguments(resources) -> dict:
    """Extra TrainingArguments for the strategy (nothing for plain DDP or a single device)."""
    if resources.gpus * resources.nodes <= 1 or resources.strategy == "ddp":
        return {}
    if resources.strategy == "fsdp":
        # FSDP2 (fully_shard), every layer wrapped; parameters resharded after each forward pass.
        return {"fsdp": True, "fsdp_config": {"version": 2, "reshard_after_forward": True,
                                              "cpu_offload": resources.offload}}
    return {"deepspeed": deepspeed_config(resources.strategy, resources.offload, resources.precision)}


def describe(resources) -> str:
    """One paragraph for the review page and the run's log."""
    world = resources.gpus * resources.nodes
    if world <= 1:
        return "One process on one device."
    hosts = getattr(resources, "hosts", None)
    launcher = ("torchrun on each host over SSH, one c10d rendezvous on the first" if resources.nodes > 1 and hosts
                else "deepspeed launcher with the hostfile" if resources.nodes > 1 else "torchrun")
    what = {"ddp": "data parallel (DDP): every process holds the whole model",
            "fsdp": "fully sharded (FSDP): parameters, gradients and optimizer state split across processes",
            "deepspeed-zero2": "DeepSpeed ZeRO-2: gradients and optimizer state split across processes",
            "deepspeed-zero3": "DeepSpeed ZeRO-3: parameters too"}[resources.strategy]
    offload = ", optimizer state offloaded to CPU memory" if resources.offload and resources.strategy != "ddp" else ""
    return f"{world} processes ({resources.gpus} per node × {resources.nodes} nodes) started by {launcher}; {what}{offload}."
