"""The spec of `kind: export`: a model (adapters folded in) written as GGUF files for llama.cpp, LM
Studio and Ollama, at the precisions asked, with its tokenizer and chat template inside, an Ollama
Modelfile beside them, and a verification that the files answer like the model they came from
(docs/export.md).

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from engine.specs.base import ADVANCED, StrictModel, override, run_name
from engine.specs.rlhf import PolicyModel

GGUFType = Literal["f16", "q8_0", "q4_k_m"]
# Bytes per weight of each type, the mixes' averages (q4_k_m: Q4_K with Q6_K for the output and half
# of the attention values and feed-forward outputs): what the studio shows a file will weigh.
BYTES_PER_WEIGHT: dict[str, float] = {"f16": 2.0, "q8_0": 34 / 32, "q4_k_m": 0.61}

DEFAULT_PROMPTS = [
    "The capital of France is",
    "Once upon a time, there was a",
    "def fibonacci(n):",
    "The three primary colours are",
]


# The RL kinds' three fields (one definition of their bounds and titles), described for shipping.
class SourceModel(PolicyModel):
    """The model a job ships or merges: a model, or a model with a PEFT adapter folded into it."""

    path: str = override(
        PolicyModel, "path", ...,
        "A run id of this workspace (its merged model or model; a fine-tuning run's adapter on its base), a run or "
        "run output folder, a Hugging Face model folder, a checkpoint folder (`runs/ID/checkpoints/checkpoint-N`), a "
        "PEFT adapter folder (folded into the base model it names), or a hub id (needs the network once).")
    adapter: str | None = override(
        PolicyModel, "adapter", None,
        "A PEFT adapter folded into the model first: an adapter folder, or a fine-tuning run (id or folder) whose "
        "output has one. Empty = the model as it is.")


class OllamaSettings(StrictModel):
    """The Modelfile written beside the GGUF files: `ollama create NAME -f Modelfile` makes the model."""

    enabled: bool = Field(True, title="Write a Modelfile",
                          description="Write an Ollama Modelfile (template, stop tokens, parameters) beside the files.")
    quantization: GGUFType | None = Field(
        None, title="File it uses",
        description="The GGUF file the Modelfile's FROM names. Empty = the smallest one exported.")
    system: str | None = Field(None, title="System prompt", json_schema_extra=ADVANCED,
                               description="A SYSTEM line: the system message Ollama sends when the user gives none.")
    temperature: float = Field(0.7, ge=0.0, le=10.0, title="Temperature",
                               description="PARAMETER temperature: below 1 sharpens the distribution, 0 is greedy.")
    top_p: float = Field(0.9, gt=0.0, le=1.0, title="Top-p", json_schema_extra=ADVANCED,
                         description="PARAMETER top_p: nucleus sampling; 1 = all tokens.")
    top_k: int = Field(40, ge=0, le=1_000_000, title="Top-k", json_schema_extra=ADVANCED,
                       description="PARAMETER top_k: sample among this many most likely tokens; 0 = no limit.")
    repeat_penalty: float = Field(1.1, ge=0.5, le=5.0, title="Repeat penalty", json_schema_extra=ADVANCED,
                                  description="PARAMETER repeat_penalty: above 1 makes repeated tokens less likely.")
    num_ctx: int | None = Field(None, ge=16, le=1_048_576, title="Context window", json_schema_extra=ADVANCED,
                                description="PARAMETER num_ctx: tokens Ollama keeps in context. Empty = the model's "
                                            "own context length.")


class Verification(StrictModel):
    """Each file loaded back by transformers' GGUF reader (which dequantizes it) and compared with the
    source model on CPU, in float32."""

    enabled: bool = Field(True, title="Verify",
                          description="Load every file back and compare it with the source model. Off = files only "
                                      "(for a model too large to hold twice in memory); the report says so.")
    prompts: list[str] = Field(
        DEFAULT_PROMPTS, min_length=1, title="Prompts",
        description="Prompts answered greedily by the source model and by each file; the f16 file must give the "
                    "same tokens and logits within `logits_tolerance`.")
    max_new_tokens: int = Field(16, ge=1, le=1024, title="Answer length",
                                description="Tokens generated per prompt in the greedy comparison.")
    logits_tolerance: float = Field(
        0.05, gt=0.0, le=10.0, title="Logits tolerance (f16)",
        description="Largest difference allowed between a logit of the source model and the same logit of the f16 "
                    "file, over every position of every prompt.")
    held_out: str | None = Field(
        None, title="Held-out text",
        description="A .txt file of text the model did not train on, for perplexity. Empty = a few paragraphs of "
                    "English prose built into the engine.")
    max_tokens: int = Field(4096, ge=64, le=1_000_000, title="Held-out tokens", json_schema_extra=ADVANCED,
                            description="Tokens of the held-out text the perplexity is measured on (the first ones).")
    q8_0_tolerance: float = Field(0.01, gt=0.0, le=1.0, title="q8_0 perplexity tolerance",
                                  description="Largest relative change of perplexity allowed for the q8_0 file "
                                              "(0.01 = within 1% of the source model's).")
    q4_k_m_tolerance: float = Field(
        0.15, gt=0.0, le=10.0, title="q4_k_m perplexity tolerance", json_schema_extra=ADVANCED,
        description="Largest relative change of perplexity allowed for the q4_k_m file. Four bits cost more than "
                    "eight: 0.15 = within 15%.")


class ExportSpec(StrictModel):
    kind: Literal["export"] = Field(
        "export", title="Kind",
        description="Write a model as GGUF files (llama.cpp, LM Studio, Ollama) with an Ollama Modelfile, and verify "
                    "that the files answer like the model.")
    name: str = run_name("export")
    model: SourceModel = Field(..., title="Model")
    quantizations: list[GGUFType] = Field(
        ["f16", "q8_0", "q4_k_m"], min_length=1, title="Precisions",
        description="One GGUF file per entry: f16 (half precision, as good as the source), q8_0 (8 bits, about half "
                    "of f16's size), q4_k_m (llama.cpp's 4-bit mix, about a third).")
    chat_template: Literal["model", "chatml", "llama3", "plain", "none"] = Field(
        "model", title="Chat template",
        description="The chat template embedded in the files and used by the Modelfile: model = the model's own "
                    "(none when it has none); chatml, llama3 or plain = that preset; none = leave it out (a base "
                    "model that continues text).")
    ollama: OllamaSettings = Field(default_factory=OllamaSettings, title="Ollama")
    verify: Verification = Field(default_factory=Verification, title="Verification")

    @field_validator("quantizations")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _consistent(self) -> ExportSpec:
        chosen = self.ollama.quantization
        if self.ollama.enabled and chosen is not None and chosen not in self.quantizations:
            raise ValueError(f"ollama.quantization is {chosen!r}, which is not among quantizations "
                             f"({', '.join(self.quantizations)}); add it there or leave ollama.quantization empty")
        return self
