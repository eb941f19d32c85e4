"""The spec of `kind: finetune`: adapt a pretrained causal language model to instruction data, with
full fine-tuning or a PEFT method (LoRA, DoRA, rsLoRA, QLoRA, AdaLoRA, prefix, prompt, P-tuning).

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.specs.base import (ADVANCED, Resources, RopeScaling, StepTraining, StrictModel, TxtDocuments, override,
                               run_name, seed_field, txt_documents_field)
from engine.specs.chat import PRESET_NAMES, ChatTemplateChoice

DATA_FORMATS = ("auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text")
METHODS = ("full", "lora", "qlora", "adalora", "prefix", "prompt", "ptuning")


class BaseModel_(StrictModel):
    path: str = Field(
        ..., min_length=1, title="Base model",
        description="A Hugging Face model folder (a pretraining run's `output/model`, a downloaded model), a run id "
                    "of this workspace, or a hub id such as `Qwen/Qwen2.5-0.5B-Instruct` (needs the network).")
    trust_remote_code: bool = Field(False, title="Trust remote code", json_schema_extra=ADVANCED,
                                    description="Run the model repository's own Python code. Only for models you trust.")
    rope_scaling: RopeScaling | None = Field(
        None, title="RoPE scaling", json_schema_extra=ADVANCED,
        description="Stretch a rotary model's positions to train on records longer than it was trained for "
                    "(data.max_length up to its positions × factor); empty = the model's own positions. Saved in "
                    "the fine-tuned model's config.json.")


class FinetuneData(StrictModel):
    sources: list[str] = Field(..., min_length=1, title="Sources",
                               description="Instruction data: .jsonl .json .csv .parquet files, folders, globs, "
                                           "saved datasets, hub ids, or `builtin:tasks` (generated tasks with "
                                           "checkable answers).")
    format: Literal["auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text"] = Field(
        "auto", title="Format",
        description="auto detects from the fields: alpaca (instruction/input/output), sharegpt (conversations of "
                    "from/value), messages (role/content), prompt_completion (prompt/completion), text (plain text: "
                    "continued pretraining).")
    txt_documents: TxtDocuments = txt_documents_field()
    task: Literal["addition", "reverse", "sort", "tools"] = Field(
        "addition", title="Built-in task", json_schema_extra=ADVANCED,
        description="For `builtin:tasks`: the task generated (multi-digit addition, reversing or sorting words, or "
                    "tools: calling the right tool with the right arguments).")
    task_examples: int = Field(4000, ge=10, le=1_000_000, title="Built-in task examples", json_schema_extra=ADVANCED,
                               description="For `builtin:tasks`: how many examples to generate.")
    system_prompt: str | None = Field(None, title="System prompt", json_schema_extra=ADVANCED,
                                      description="Prepended as a system message to every conversation that has none.")
    chat_template: ChatTemplateChoice = Field(
        "auto", title="Chat template",
        description="auto: the base tokenizer's own template when it has one, else chatml (a base model, such as "
                    "one Pretrain made, learns that layout); model: its own template (an error if it has none); "
                    + PRESET_NAMES + ": use this preset instead (its markers are added as special tokens when "
                    "missing).")
    eval_fraction: float = Field(0.1, ge=0.0, le=0.5, title="Evaluation fraction",
                                 description="Share of records held out for evaluation loss and generation metrics.")
    max_length: int = Field(512, ge=16, le=131072, title="Maximum length",
                            description="Tokens per training record, after the chat template.")
    overflow: Literal["truncate", "drop"] = Field(
        "truncate", title="Too-long records",
        description="Records longer than max_length are cut to it, or dropped; either way they are counted.")
    loss_on: Literal["responses", "all"] = Field(
        "responses", title="Loss on",
        description="responses: learn only the assistant's answers and tool calls (the prompt, tool definitions and "
                    "tool results are masked); all: every token (but what turns and mask_system leave out).")
    turns: Literal["all", "last"] = Field(
        "all", title="Answers trained",
        description="all: every assistant turn of a conversation is learned; last: only the last one (the earlier "
                    "ones are context, as LLaMA-Factory's mask_history). A turn with `train: false` (or `weight: "
                    "0`) is never learned.")
    mask_system: bool = Field(
        False, title="Mask the system prompt", json_schema_extra=ADVANCED,
        description="With loss_on: all, leave the leading system turn (and the tool definitions the chat template "
                    "writes with it) out of the loss. With loss_on: responses it is always left out.")
    max_records: int | None = Field(None, ge=1, title="Maximum records", json_schema_extra=ADVANCED,
                                    description="Use at most this many records (after shuffling); empty = all.")


class LoraSettings(StrictModel):
    rank: int = Field(16, ge=1, le=1024, title="Rank", description="Size of the low-rank update: more capacity, more memory.")
    alpha: float = Field(32, gt=0, title="Alpha", description="Scale of the update (alpha / rank, or alpha / √rank with rsLoRA).")
    dropout: float = Field(0.05, ge=0.0, le=0.9, title="Dropout", json_schema_extra=ADVANCED,
                           description="Dropout on the adapter's input.")
    target_modules: list[str] | None = Field(
        None, title="Target modules",
        description="Linear layers that get adapters, e.g. q_proj, v_proj. Empty = every attention and MLP projection "
                    "of the architecture (detected from the model).")
    use_dora: bool = Field(False, title="DoRA", json_schema_extra=ADVANCED,
                           description="Weight-decomposed LoRA: learns magnitude and direction apart; slower, often better.")
    use_rslora: bool = Field(False, title="rsLoRA", json_schema_extra=ADVANCED,
                             description="Rank-stabilised scaling (alpha / √rank): lets high ranks learn.")


class Quantization(StrictModel):
    bits: Literal[4, 8] = Field(4, title="Bits", description="4-bit (QLoRA) or 8-bit base weights.")
    quant_type: Literal["nf4", "fp4"] = Field("nf4", title="4-bit type", json_schema_extra=ADVANCED,
                                              description="NF4 (normal float, the QLoRA paper's) or FP4.")
    double_quant: bool = Field(True, title="Double quantisation", json_schema_extra=ADVANCED,
                               description="Quantise the quantisation constants too (~0.4 bit per weight saved).")
    compute_dtype: Literal["bf16", "fp16", "fp32"] = Field("bf16", title="Compute type", json_schema_extra=ADVANCED,
                                                           description="Precision the 4-bit weights are computed in.")


class AdaLoraSettings(StrictModel):
    initial_rank: int = Field(12, ge=1, le=1024, title="Initial rank", description="Rank every layer starts with.")
    target_rank: int = Field(8, ge=1, le=1024, title="Target rank", description="Average rank AdaLoRA prunes down to.")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, title="Warm-up fraction", json_schema_extra=ADVANCED,
                                   description="Share of steps before pruning starts.")
    final_fraction: float = Field(0.2, ge=0, lt=1, title="Final fraction", json_schema_extra=ADVANCED,
                                  description="Share of steps at the end with the final ranks fixed.")


class PromptLearning(StrictModel):
    virtual_tokens: int = Field(20, ge=1, le=1024, title="Virtual tokens",
                                description="Learned vectors prepended to every input (prefix: to every layer).")
    init_text: str | None = Field(None, title="Initial text", json_schema_extra=ADVANCED,
                                  description="Prompt tuning: start the virtual tokens from this text's embeddings.")
    encoder_hidden_size: int = Field(128, ge=8, le=16384, title="Encoder size", json_schema_extra=ADVANCED,
                                     description="P-tuning: hidden size of the prompt encoder (an MLP).")


class MethodSpec(StrictModel):
    name: Literal["full", "lora", "qlora", "adalora", "prefix", "prompt", "ptuning"] = Field(
        "lora", title="Method",
        description="full: every weight (most memory); lora: low-rank adapters; qlora: LoRA on a 4-bit base (least "
                    "memory, needs CUDA); adalora: LoRA that moves rank where it helps; prefix, prompt, ptuning: "
                    "learned virtual tokens only (tiny adapters).")
    lora: LoraSettings = Field(default_factory=LoraSettings, title="LoRA")
    quantization: Quantization = Field(default_factory=Quantization, title="Quantisation (QLoRA)")
    adalora: AdaLoraSettings = Field(default_factory=AdaLoraSettings, title="AdaLoRA", json_schema_extra=ADVANCED)
    prompt_learning: PromptLearning = Field(default_factory=PromptLearning, title="Prefix / prompt / P-tuning")

    @model_validator(mode="after")
    def _ranks(self) -> MethodSpec:
        if self.name == "adalora" and self.adalora.target_rank > self.adalora.initial_rank:
            raise ValueError(f"method.adalora.target_rank ({self.adalora.target_rank}) is above initial_rank "
                             f"({self.adalora.initial_rank}); AdaLoRA only prunes ranks")
        return self


class FinetuneTraining(StepTraining):
    max_steps: int = override(StepTraining, "max_steps", 300)
    batch_size: int = override(StepTraining, "batch_size", 8, "Records per step per device.")
    learning_rate: float = override(StepTraining, "learning_rate", 2e-4,
                                    "Peak learning rate (2e-4 suits LoRA; full fine-tuning wants ~1e-5).")
    warmup_steps: int = override(StepTraining, "warmup_steps", 20)


class FinetuneEvaluation(StrictModel):
    generate_examples: int = Field(100, ge=0, le=100_000, title="Generation examples",
                                   description="Held-out records answered by the model at each evaluation, scored against "
                                               "their reference answers (exact match, BLEU, ROUGE-L); 0 = loss only.")
    max_new_tokens: int = Field(32, ge=1, le=4096, title="Answer length", json_schema_extra=ADVANCED,
                                description="Tokens generated per answer (greedy).")
    before_training: bool = Field(True, title="Measure before training",
                                  description="Score the base model first, so the report shows the gain.")


class FinetuneOutput(StrictModel):
    merge: bool = Field(False, title="Merge the adapter",
                        description="Also write the base model with the adapter folded in (loads with AutoModelForCausalLM).")


class FinetuneSpec(StrictModel):
    kind: Literal["finetune"] = Field("finetune", title="Kind",
                                      description="Fine-tune a pretrained causal language model on instruction data.")
    name: str = run_name("finetune")
    model: BaseModel_ = Field(..., title="Base model")
    data: FinetuneData = Field(..., title="Data")
    method: MethodSpec = Field(default_factory=MethodSpec, title="Method")
    train: FinetuneTraining = Field(default_factory=FinetuneTraining, title="Training")
    evaluation: FinetuneEvaluation = Field(default_factory=FinetuneEvaluation, title="Evaluation")
    output: FinetuneOutput = Field(default_factory=FinetuneOutput, title="Output")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = seed_field("Seed for data order, adapter initialisation and sampling.")

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneSpec:
        if self.output.merge and self.method.name in ("full", "prefix", "prompt", "ptuning"):
            raise ValueError(f"output.merge only applies to LoRA-style adapters (lora, qlora, adalora), "
                             f"not method.name {self.method.name!r}")
        if self.train.packing == "on" and self.method.name in ("prefix", "prompt", "ptuning"):
            raise ValueError(f"train.packing: on cannot apply to method.name {self.method.name!r}: its virtual tokens "
                             f"start each row, so only the first record of a packed row would see them; set "
                             f"train.packing to auto or off")
        return self
