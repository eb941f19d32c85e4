"""What every job spec module shares: the strict base model and the marker for Advanced fields."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ADVANCED = {"advanced": True}
RUN_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class StrictModel(BaseModel):
    # Unknown keys are errors: a typo must never fall back silently to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


Reporter = Literal["tensorboard", "wandb"]


class TrainingSettings(StrictModel):
    """What the `train:` block of every training job shares (pretrain, finetune, reward, dpo, grpo, ppo)."""

    # Off by default: the run's events already carry every metric (the studio charts them), so another
    # logger is the user's choice, not a cost every run pays (disk, start-up time, a package that an
    # older engine install may lack); W&B in particular sends the run off the machine.
    report_to: list[Reporter] = Field(
        [], title="Report to", json_schema_extra=ADVANCED,
        description="Also log the training metrics to these trackers: `tensorboard` (event files in the run's "
                    "tensorboard/ folder) and/or `wandb` (Weights & Biases; needs the wandb package and "
                    "`wandb login` or WANDB_API_KEY on the engine's machine). Empty = events only.")

    @field_validator("report_to")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class Resources(StrictModel):
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", title="Device", description="Where to train. `auto` picks CUDA, then Apple MPS, then the CPU.")
    gpus: int = Field(1, ge=1, le=1024, title="GPUs per node",
                      description="GPUs to use on each host. More than one launches torchrun.")
    nodes: int = Field(1, ge=1, le=1024, title="Nodes", description="Hosts to train on.", json_schema_extra=ADVANCED)
    hostfile: str | None = Field(None, title="Hostfile", json_schema_extra=ADVANCED,
                                 description="DeepSpeed/MPI-style hostfile listing the hosts for multi-node runs.")
    strategy: Literal["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = Field(
        "ddp", title="Distributed strategy", json_schema_extra=ADVANCED,
        description="How several GPUs share the work: data parallel, fully sharded, or DeepSpeed ZeRO.")
    offload: bool = Field(False, title="Offload to CPU", json_schema_extra=ADVANCED,
                          description="Keep optimizer state in CPU memory (FSDP/ZeRO only): slower, fits bigger models.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", title="Precision",
        description="Mixed precision. `auto` uses bf16 where the GPU supports it, else fp16 on CUDA, fp32 on CPU.")


class InferenceResources(StrictModel):
    """Where a job that only runs models forward (generation, scoring) runs: one process, one device."""

    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", title="Device", description="Where to run. `auto` picks CUDA, then Apple MPS, then the CPU.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", title="Precision",
        description="The weights' precision. `auto` uses bf16 where the GPU supports it, else fp16 on CUDA, "
                    "fp32 on CPU.")
