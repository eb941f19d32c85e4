"""The spec of `kind: finetune`: adapt a pretrained causal language model to instruction data, with
full fine-tuning or a PEFT method (LoRA, DoRA, rsLoRA, QLoRA, AdaLoRA, prefix, prompt, P-tuning).

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.spec_base import ADVANCED, RUN_NAME_PATTERN, Resources, StrictModel, TrainingSettings

DATA_FORMATS = ("auto", "alpaca", "sharegpt", "messages", "prompt_completion", "text")
METHODS = ("full", "lora", "qlora", "adalora", "prefix", "prompt", "ptuning")


class BaseModel_(StrictModel):
    path: str = Field(
        ..., min_length=1, title="Base model",
        description="A Hugging Face model folder (a pretraining run's `output/model`, a downloaded model), a run id "
                    "of this workspace, or a hub id such as `Qwen/Qwen2.5-0.5B-Instruct` (needs the network).")
    trust_remote_code: bool = Field(False, title="Trust remote code", json_schema_extra=ADVANCED,
                                    description="Run the model repository's own Python code. Only for models you trust.")


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
    task: Literal["addition", "reverse", "sort"] = Field(
        "addition", title="Built-in task", json_schema_extra=ADVANCED,
        description="For `builtin:tasks`: the task generated (multi-digit addition, reversing or sorting words).")
    task_examples: int = Field(4000, ge=10, le=1_000_000, title="Built-in task examples", json_schema_extra=ADVANCED,
                               description="For `builtin:tasks`: how many examples to generate.")
    system_prompt: str | None = Field(None, title="System prompt", json_schema_extra=ADVANCED,
                                      description="Prepended as a system message to every conversation that has none.")
    chat_template: Literal["model", "chatml", "plain"] = Field(
        "model", title="Chat template",
        description="model: the base tokenizer's own template (an error if it has none); chatml or plain: use this "
                    "template instead (its markers are added as special tokens when missing).")
    eval_fraction: float = Field(0.1, ge=0.0, le=0.5, title="Evaluation fraction",
                                 description="Share of records held out for evaluation loss and generation metrics.")
    max_length: int = Field(512, ge=16, le=131072, title="Maximum length",
                            description="Tokens per training record, after the chat template.")
    overflow: Literal["truncate", "drop"] = Field(
        "truncate", title="Too-long records",
        description="Records longer than max_length are cut to it, or dropped; either way they are counted.")
    loss_on: Literal["responses", "all"] = Field(
        "responses", title="Loss on",
        description="responses: learn only the assistant's answers (the prompt tokens are masked); all: every token.")
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


class FinetuneTraining(TrainingSettings):
    max_steps: int = Field(300, ge=1, le=10_000_000, title="Steps", description="Optimizer steps to train for.")
    batch_size: int = Field(8, ge=1, le=65536, title="Batch size", description="Records per step per device.")
    gradient_accumulation: int = Field(1, ge=1, le=4096, title="Gradient accumulation",
                                       description="Micro-batches summed before each optimizer step.")
    learning_rate: float = Field(2e-4, gt=0.0, le=1.0, title="Learning rate",
                                 description="Peak learning rate (2e-4 suits LoRA; full fine-tuning wants ~1e-5).")
    warmup_steps: int = Field(20, ge=0, title="Warmup steps", description="Steps of linear warmup to the peak.")
    schedule: Literal["cosine", "linear", "constant"] = Field("cosine", title="Schedule",
                                                              description="How the learning rate decays after warmup.")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0, title="Weight decay", json_schema_extra=ADVANCED,
                                description="AdamW decoupled weight decay.")
    max_grad_norm: float = Field(1.0, ge=0.0, title="Gradient clipping", json_schema_extra=ADVANCED,
                                 description="Clip the global gradient norm to this value (0 = off).")
    optimizer: Literal["auto", "adamw", "paged_adamw_8bit"] = Field(
        "auto", title="Optimizer", json_schema_extra=ADVANCED,
        description="auto: paged 8-bit AdamW for QLoRA (CUDA), AdamW otherwise.")
    gradient_checkpointing: bool = Field(False, title="Gradient checkpointing", json_schema_extra=ADVANCED,
                                         description="Recompute activations in the backward pass: less memory, slower.")
    eval_every: int = Field(100, ge=1, title="Evaluate every", description="Steps between evaluations.")
    checkpoint_every: int = Field(100, ge=1, title="Checkpoint every", description="Steps between checkpoints.")
    keep_checkpoints: int = Field(2, ge=1, le=1000, title="Checkpoints kept", json_schema_extra=ADVANCED,
                                  description="Older checkpoints are deleted beyond this many.")
    log_every: int = Field(10, ge=1, title="Log every", json_schema_extra=ADVANCED,
                           description="Steps between training metric events.")


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
    name: str = Field("finetune", min_length=1, max_length=64, pattern=RUN_NAME_PATTERN, title="Name",
                      description="Short name for the run (letters, digits, - _ .); the run id starts with it.")
    model: BaseModel_ = Field(..., title="Base model")
    data: FinetuneData = Field(..., title="Data")
    method: MethodSpec = Field(default_factory=MethodSpec, title="Method")
    train: FinetuneTraining = Field(default_factory=FinetuneTraining, title="Training")
    evaluation: FinetuneEvaluation = Field(default_factory=FinetuneEvaluation, title="Evaluation")
    output: FinetuneOutput = Field(default_factory=FinetuneOutput, title="Output")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = Field(0, ge=0, le=2**32 - 1, title="Seed", description="Seed for data order, adapter initialisation and sampling.")

    @model_validator(mode="after")
    def _consistent(self) -> FinetuneSpec:
        if self.output.merge and self.method.name in ("full", "prefix", "prompt", "ptuning"):
            raise ValueError(f"output.merge only applies to LoRA-style adapters (lora, qlora, adalora), "
                             f"not method.name {self.method.name!r}")
        return self
