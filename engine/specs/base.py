"""What every job spec module shares: the strict base model, the marker for Advanced fields, the
fields every kind has (name, seed), the `train:` block of the training kinds and `resources:`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.fields import FieldInfo

from engine.rundir import RUN_ID_CHARACTERS

ADVANCED = {"advanced": True}
RUN_NAME_PATTERN = f"^{RUN_ID_CHARACTERS}$"  # a run's id starts with its name: the same alphabet


class StrictModel(BaseModel):
    # Unknown keys are errors: a typo must never fall back silently to a default.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def run_name(default: Any) -> Any:
    """The `name` field of a spec (the run id starts with it); `...` makes it required."""
    return Field(default, min_length=1, max_length=64, pattern=RUN_NAME_PATTERN, title="Name",
                 description="Short name for the run (letters, digits, - _ .); the run id starts with it.")


def seed_field(description: str) -> Any:
    """The `seed` field of a spec: what it seeds, in the description."""
    return Field(0, ge=0, le=2**32 - 1, title="Seed", description=description)


TxtDocuments = Literal["file", "paragraph", "line"]


def txt_documents_field() -> Any:
    """The `txt_documents` field of a data section: what one document of a .txt file is."""
    return Field("file", title=".txt documents",
                 description="What one document of a .txt file is: `file` (the whole file), `paragraph` (each run of "
                             "lines between blank lines) or `line` (each line that holds text). A corpus written one "
                             "document a line needs `line`. Files of other types are not affected.")


def override(model: type[BaseModel], name: str, default: Any, description: str | None = None) -> Any:
    """Field `name` of `model` with another default (and description): pydantic changes a default only
    when a subclass declares the field again, and this keeps its bounds and title in one place."""
    changes: dict[str, Any] = {"default": default}
    if description is not None:
        changes["description"] = description
    return FieldInfo.merge_field_infos(model.model_fields[name], **changes)


Reporter = Literal["tensorboard", "wandb"]


class TrainingSettings(StrictModel):
    """What the `train:` block of every training job shares (pretrain, finetune, reward, dpo, kto, grpo, ppo)."""

    # Off by default: the run's events already carry every metric (the studio charts them), so another
    # logger is the user's choice, not a cost every run pays (disk, start-up time, a package that an
    # older engine install may lack); W&B in particular sends the run off the machine.
    report_to: list[Reporter] = Field(
        [], title="Report to", json_schema_extra=ADVANCED,
        description="Also log the training metrics to these trackers: `tensorboard` (event files in the run's "
                    "tensorboard/ folder) and/or `wandb` (Weights & Biases; needs the wandb package and "
                    "`wandb login` or WANDB_API_KEY on the engine's machine). Empty = events only.")

    packing: Literal["auto", "on", "off"] = Field(
        "auto", title="Packing", json_schema_extra=ADVANCED,
        description="Padding-free batches: a batch's records end to end in one row, each attending only to itself "
                    "(its own positions and a block-diagonal mask), so no compute goes to padding. auto: packed where "
                    "the model's architecture keeps packed records exactly apart (checked at the start), batch by "
                    "batch where one row computes less than padded rows, padded otherwise; on: every batch packed, or "
                    "an error saying why not; off: padded. Kinds whose batches have no padding to remove (pretrain: "
                    "full blocks) or whose trainer cannot pack (dpo's orpo and simpo losses) pad or block as before, "
                    "and refuse `on`.")

    @field_validator("report_to")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class StepTraining(TrainingSettings):
    """The `train:` block of the kinds that train in optimizer steps through the shared training core
    (pretrain, finetune, reward, dpo, grpo). A kind changes defaults with `override`."""

    max_steps: int = Field(1000, ge=1, le=10_000_000, title="Steps", description="Optimizer steps to train for.")
    batch_size: int = Field(8, ge=1, le=65536, title="Batch size", description="Examples per step per device.")
    gradient_accumulation: int = Field(1, ge=1, le=4096, title="Gradient accumulation",
                                       description="Micro-batches summed before each optimizer step.")
    learning_rate: float = Field(1e-4, gt=0.0, le=1.0, title="Learning rate", description="Peak learning rate.")
    warmup_steps: int = Field(10, ge=0, title="Warmup steps", description="Steps of linear warmup to the peak.")
    schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", title="Schedule", description="How the learning rate decays after warmup.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, title="Weight decay", json_schema_extra=ADVANCED,
                                description="AdamW decoupled weight decay.")
    max_grad_norm: float = Field(1.0, ge=0.0, title="Gradient clipping", json_schema_extra=ADVANCED,
                                 description="Clip the global gradient norm to this value (0 = off).")
    gradient_checkpointing: bool = Field(False, title="Gradient checkpointing", json_schema_extra=ADVANCED,
                                         description="Recompute activations in the backward pass: less memory, "
                                                     "~30% slower.")
    eval_every: int = Field(100, ge=1, title="Evaluate every", description="Steps between evaluations.")
    checkpoint_every: int = Field(100, ge=1, title="Checkpoint every",
                                  description="Steps between checkpoints (resume loses at most this many).")
    keep_checkpoints: int = Field(2, ge=1, le=1000, title="Checkpoints kept", json_schema_extra=ADVANCED,
                                  description="Older checkpoints are deleted beyond this many.")
    log_every: int = Field(10, ge=1, title="Log every", json_schema_extra=ADVANCED,
                           description="Steps between training metric events.")
    dataloader_workers: int = Field(0, ge=0, le=64, title="Data loader workers", json_schema_extra=ADVANCED,
                                    description="Background processes feeding batches (0 = in the training process).")
    compile: bool = Field(False, title="Compile", json_schema_extra=ADVANCED,
                          description="Compile the model with torch.compile (inductor). Off by default: on a CPU it "
                                      "trained fine-tuning's packed batches, whose length changes every step, at "
                                      "0.33× the speed and took 7× the wall time (bench/RESULTS.md).")
    optimizer: Literal["auto", "adamw", "adamw_fused", "paged_adamw_8bit"] = Field(
        "auto", title="Optimizer", json_schema_extra=ADVANCED,
        description="auto: paged 8-bit AdamW for QLoRA on CUDA, fused AdamW otherwise; adamw: PyTorch's AdamW "
                    "(unfused); paged_adamw_8bit: bitsandbytes' paged 8-bit AdamW.")


class RopeScaling(StrictModel):
    """`model.rope_scaling`: reading past the positions a rotary model was trained on."""

    type: Literal["linear", "dynamic", "yarn"] = Field(
        ..., title="Type",
        description="linear: positions divided by the factor (position interpolation; fine-tune at the new length); "
                    "dynamic: NTK-aware, the rotary base grows only once a sequence passes the trained length; yarn: "
                    "YaRN, interpolating the low frequencies and keeping the high ones, with its attention scaling.")
    factor: float = Field(..., gt=1.0, le=64.0, title="Factor",
                          description="How many times the model's trained positions it should read: "
                                      "data.max_length may go up to positions × factor.")


class Resources(StrictModel):
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", title="Device", description="Where to train. `auto` picks CUDA, then Apple MPS, then the CPU.")
    gpus: int = Field(1, ge=1, le=1024, title="GPUs per node",
                      description="GPUs to use on each host. More than one launches torchrun.")
    nodes: int = Field(1, ge=1, le=1024, title="Nodes", description="Hosts to train on.", json_schema_extra=ADVANCED)
    hostfile: str | None = Field(None, title="Hostfile", json_schema_extra=ADVANCED,
                                 description="DeepSpeed/MPI-style hostfile listing the hosts for multi-node runs.")
    hosts: list[str] = Field(
        [], title="Hosts", json_schema_extra=ADVANCED,
        description="The machines of a multi-node run without a scheduler, one per node: SSH host aliases (from "
                    "~/.ssh/config, or `resources.ssh_config`), or `local` for this machine without SSH. torchrun "
                    "starts on each; the first holds the rendezvous. Every host must see the workspace and the "
                    "engine at the same paths (a shared filesystem). Leave empty for one machine or a hostfile.")
    ssh_config: str | None = Field(None, title="SSH config", json_schema_extra=ADVANCED,
                                   description="The ssh config file that names `resources.hosts` (empty: ~/.ssh/config).")
    strategy: Literal["ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = Field(
        "ddp", title="Distributed strategy", json_schema_extra=ADVANCED,
        description="How several GPUs share the work: data parallel, fully sharded, or DeepSpeed ZeRO.")
    offload: bool = Field(False, title="Offload to CPU", json_schema_extra=ADVANCED,
                          description="Keep optimizer state in CPU memory (FSDP/ZeRO only): slower, fits bigger models.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", title="Precision",
        description="Mixed precision. `auto` uses bf16 where the GPU supports it, else fp16 on CUDA, fp32 on CPU.")

    @model_validator(mode="after")
    def _hosts_are_the_nodes(self):
        if self.hosts and len(self.hosts) != self.nodes:
            raise ValueError(f"resources.hosts lists {len(self.hosts)} machines but resources.nodes is {self.nodes}: "
                             f"set nodes to {len(self.hosts)} (one node per host)")
        if self.hosts and self.hostfile:
            raise ValueError("resources.hosts and resources.hostfile both name the machines: keep one (hosts start "
                             "torchrun over SSH, a hostfile the deepspeed launcher)")
        return self


class InferenceResources(StrictModel):
    """Where a job that only runs models forward (generation, scoring) runs: one process, one device."""

    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", title="Device", description="Where to run. `auto` picks CUDA, then Apple MPS, then the CPU.")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", title="Precision",
        description="The weights' precision. `auto` uses bf16 where the GPU supports it, else fp16 on CUDA, "
                    "fp32 on CPU.")
