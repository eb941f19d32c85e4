"""The spec of `kind: pretrain`: a corpus, a tokenizer (trained or given), a model shape, training.

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.specs.base import ADVANCED, Resources, RopeScaling, StepTraining, StrictModel, override, run_name, seed_field
from engine.specs.corpus import DataSpec
from engine.specs.tokenizer import TokenizerTraining


class TokenizerSpec(StrictModel):
    train: TokenizerTraining | None = Field(
        None, title="Train a tokenizer", description="Train a new tokenizer on the training documents.")
    path: str | None = Field(None, title="Tokenizer folder",
                             description="A saved Hugging Face tokenizer folder (or hub id) to use instead of training one.")

    @model_validator(mode="after")
    def _one_source(self) -> TokenizerSpec:
        if self.train is None and self.path is None:
            self.train = TokenizerTraining()
        elif self.train is not None and self.path is not None:
            raise ValueError("give either `train` or `path`, not both")
        return self


class ModelSpec(StrictModel):
    architecture: Literal["llama", "gpt2", "bert"] = Field(
        "llama", title="Architecture",
        description="llama: RoPE, RMSNorm, SwiGLU (causal); gpt2: learned positions, GELU (causal); "
                    "bert: encoder for masked-LM pretraining.")
    objective: Literal["clm", "mlm"] | None = Field(
        None, title="Objective",
        description="clm: predict the next token; mlm: predict masked tokens (BERT). Empty = clm, or mlm for bert.")
    hidden_size: int = Field(256, ge=16, le=16384, title="Hidden size", description="Width of the model.")
    layers: int = Field(4, ge=1, le=256, title="Layers", description="Number of transformer blocks.")
    heads: int = Field(4, ge=1, le=256, title="Attention heads", description="Must divide the hidden size.")
    kv_heads: int | None = Field(None, ge=1, le=256, title="Key/value heads", json_schema_extra=ADVANCED,
                                 description="Grouped-query attention (llama only); empty = same as heads.")
    intermediate_size: int | None = Field(None, ge=16, le=65536, title="MLP size", json_schema_extra=ADVANCED,
                                          description="Width of the feed-forward layer; empty = the architecture's usual ratio.")
    context_length: int = Field(256, ge=16, le=131072, title="Context length",
                                description="Tokens per training sequence; documents are packed to this length.")
    dropout: float = Field(0.0, ge=0.0, le=0.9, title="Dropout", json_schema_extra=ADVANCED,
                           description="Dropout probability (0 is usual for pretraining).")
    tie_embeddings: bool = Field(True, title="Tie embeddings", json_schema_extra=ADVANCED,
                                 description="Share the input embedding and output projection weights.")
    rope_scaling: RopeScaling | None = Field(
        None, title="RoPE scaling", json_schema_extra=ADVANCED,
        description="llama only: the model's rotary positions scaled so that it reads context_length × factor "
                    "tokens (its config.json says so); empty = context_length.")
    mlm_probability: float = Field(0.15, gt=0.0, lt=1.0, title="Mask probability", json_schema_extra=ADVANCED,
                                   description="Share of tokens masked for the mlm objective.")

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.hidden_size % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide hidden_size ({self.hidden_size})")
        if self.kv_heads is not None and self.heads % self.kv_heads:
            raise ValueError(f"kv_heads ({self.kv_heads}) must divide heads ({self.heads})")
        if self.objective == "mlm" and self.architecture != "bert":
            raise ValueError("objective mlm needs architecture: bert")
        if self.rope_scaling is not None and self.architecture != "llama":
            raise ValueError(f"rope_scaling applies to rotary position embeddings (architecture: llama); "
                             f"{self.architecture} learns one embedding per position: remove rope_scaling or raise "
                             f"context_length")
        if self.objective == "clm" and self.architecture == "bert":
            raise ValueError("architecture bert trains with objective mlm")
        return self

    @property
    def resolved_objective(self) -> str:
        return self.objective or ("mlm" if self.architecture == "bert" else "clm")


class PretrainTraining(StepTraining):
    batch_size: int = override(StepTraining, "batch_size", 16, "Sequences per step per device.")
    learning_rate: float = override(StepTraining, "learning_rate", 3e-4)
    warmup_steps: int = override(StepTraining, "warmup_steps", 100)
    weight_decay: float = override(StepTraining, "weight_decay", 0.1)
    checkpoint_every: int = override(StepTraining, "checkpoint_every", 200)
    keep_checkpoints: int = override(StepTraining, "keep_checkpoints", 3)
    eval_every: int = override(StepTraining, "eval_every", 200)
    eval_batches: int = Field(20, ge=1, title="Evaluation batches", json_schema_extra=ADVANCED,
                              description="At most this many batches of the held-out split per evaluation.")
    sample_every: int = Field(200, ge=1, title="Sample every", description="Steps between generated samples.")
    sample_prompts: list[str] = Field(["The "], title="Sample prompts",
                                      description="Prompts continued by the model at each sample step (causal models).")
    sample_max_new_tokens: int = Field(40, ge=1, le=4096, title="Sample length", json_schema_extra=ADVANCED,
                                       description="New tokens generated per sample.")


class PretrainSpec(StrictModel):
    kind: Literal["pretrain"] = Field("pretrain", title="Kind", description="Pretrain a language model from scratch.")
    name: str = run_name("pretrain")
    data: DataSpec = Field(default_factory=DataSpec, title="Data")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec, title="Tokenizer")
    model: ModelSpec = Field(default_factory=ModelSpec, title="Model")
    train: PretrainTraining = Field(default_factory=PretrainTraining, title="Training")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = seed_field("Seed for data order, initialisation and sampling.")
