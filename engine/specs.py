"""Job specs: the one source of truth for every parameter.

A spec is a YAML file whose `kind:` selects the job. The GUI builds its forms from the JSON schema
of these models (titles, descriptions, defaults, bounds; fields marked `advanced` go into the
Advanced section), the CLI validates with them, and the docs print their schema.

Imported by the GUI: pydantic and PyYAML only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, model_validator

from engine.clean_specs import CleanSpec
from engine.evaluate_specs import EvaluateSpec
from engine.finetune_specs import FinetuneSpec
from engine.generate_specs import GenerateSpec
from engine.ppo_specs import PPOSpec
from engine.preference_specs import DPOSpec, GRPOSpec
from engine.reward_specs import RewardSpec
from engine.spec_base import ADVANCED, Resources, StrictModel, TrainingSettings

_LEADING_FIELD = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+)\b")


class DataSpec(StrictModel):
    sources: list[str] = Field(
        ["builtin:python-docs"], min_length=1, title="Sources",
        description="Where the text comes from: `builtin:python-docs` (docstrings of this Python's standard "
                    "library), files, globs or folders of .txt .jsonl .json .csv .parquet, a dataset saved with "
                    "`save_to_disk`, or a Hugging Face hub dataset id (`hub:owner/name` or `owner/name`).")
    text_field: str = Field("text", min_length=1, title="Text field",
                            description="Column or JSON key holding the text (ignored for .txt files).")
    eval_fraction: float = Field(0.05, ge=0.0, le=0.5, title="Evaluation fraction",
                                 description="Share of documents held out to measure eval loss and perplexity.")
    max_documents: int | None = Field(None, ge=1, title="Maximum documents", json_schema_extra=ADVANCED,
                                      description="Use at most this many documents (after shuffling); empty = all.")


class TokenizerTraining(StrictModel):
    algorithm: Literal["byte-bpe", "bpe", "unigram", "wordpiece"] = Field(
        "byte-bpe", title="Algorithm",
        description="byte-bpe: GPT-2/Llama-3 style byte-level BPE (never an unknown token); bpe: BPE with byte "
                    "fallback (Llama-2 style); unigram: SentencePiece unigram; wordpiece: BERT style.")
    vocab_size: int = Field(8192, ge=256, le=262144, title="Vocabulary size",
                            description="Number of tokens, special tokens included.")
    min_frequency: int = Field(2, ge=1, le=1000, title="Minimum frequency", json_schema_extra=ADVANCED,
                               description="A merge or piece must occur this often to enter the vocabulary.")


# Chat-template presets: (Jinja template, special tokens it needs in the vocabulary).
CHAT_PRESETS: dict[str, tuple[str, list[str]]] = {
    "chatml": (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
        "'<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        ["<|im_start|>", "<|im_end|>"]),
    "llama3": (
        "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
        "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
        ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
    "plain": (
        "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
        "{% else %}{{ message['role'] | capitalize + ': ' + message['content'] + '\\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
        []),
}
# Tokens each algorithm needs beyond the special tokens: byte-bpe's 256-byte alphabet, bpe's byte tokens.
ALPHABET_TOKENS = {"byte-bpe": 256, "bpe": 256, "unigram": 0, "wordpiece": 0}


class SpecialTokens(StrictModel):
    bos: str | None = Field(None, title="Beginning of sequence",
                            description="Starts every encoded text. Empty = `<|bos|>` (`[CLS]` for wordpiece); "
                                        "an empty string means no such token.")
    eos: str | None = Field(None, title="End of sequence",
                            description="Ends a document or a turn. Empty = `<|eos|>` (`[SEP]` for wordpiece); "
                                        "an empty string means no such token.")
    pad: str | None = Field(None, title="Padding", description="Fills batches. Empty = `<|pad|>` (`[PAD]` for wordpiece).")
    unk: str | None = Field(None, title="Unknown",
                            description="Stands for text the vocabulary cannot spell (never used by byte-bpe). "
                                        "Empty = `<|unk|>` (`[UNK]` for wordpiece).")
    mask: str | None = Field(None, title="Mask", json_schema_extra=ADVANCED,
                             description="For masked-LM training. Empty = `[MASK]` for wordpiece, none otherwise.")
    extra: list[str] = Field([], title="Extra special tokens", json_schema_extra=ADVANCED,
                             description="More special tokens kept whole (tool calls, separators, …).")

    def resolved(self, algorithm: str) -> dict[str, str]:
        """HF attribute (pad_token, …) -> token, in vocabulary order, for `algorithm`."""
        bert = algorithm == "wordpiece"
        defaults = {"pad": "[PAD]" if bert else "<|pad|>", "unk": "[UNK]" if bert else "<|unk|>",
                    "bos": "[CLS]" if bert else "<|bos|>", "eos": "[SEP]" if bert else "<|eos|>",
                    "mask": "[MASK]" if bert else ""}
        result = {}
        for name in ("pad", "unk", "bos", "eos", "mask"):
            value = getattr(self, name)
            token = defaults[name] if value is None else value
            if token:
                result[f"{name}_token"] = token
        if bert:  # BERT's post-processor and the masked-LM collator look for cls/sep
            if "bos_token" in result:
                result["cls_token"] = result["bos_token"]
            if "eos_token" in result:
                result["sep_token"] = result["eos_token"]
        return result


class Normalization(StrictModel):
    unicode: Literal["none", "nfc", "nfkc"] = Field(
        "none", title="Unicode normalisation",
        description="none keeps the text exactly (byte-level tokenizers then round-trip any text); NFC merges "
                    "composed characters; NFKC also folds compatibility forms (ﬁ → fi, full-width → ASCII).")
    lowercase: bool = Field(False, title="Lowercase", description="Lowercase all text before tokenizing (uncased models).")


class PreTokenization(StrictModel):
    split_digits: bool = Field(False, title="Split digits",
                               description="Every digit is its own token (Llama style): better arithmetic, more tokens.")
    prefix_space: bool | None = Field(
        None, title="Prefix space", json_schema_extra=ADVANCED,
        description="Add a space before the text so its first word tokenizes like the others. Empty = the "
                    "algorithm's usual: no for byte-bpe (GPT-2/Llama-3), yes for bpe and unigram "
                    "(SentencePiece's ▁); wordpiece splits on whitespace and ignores it.")


class ChatTemplate(StrictModel):
    template: Literal["chatml", "llama3", "plain", "none", "custom"] = Field(
        "chatml", title="Chat template",
        description="How `apply_chat_template` lays out a conversation: chatml (`<|im_start|>role …<|im_end|>`), "
                    "llama3 (`<|start_header_id|>role<|end_header_id|> … <|eot_id|>`), plain (`User: …`), none, "
                    "or custom (the Jinja in custom_template). The preset's marker tokens become special tokens.")
    custom_template: str | None = Field(
        None, title="Custom Jinja template",
        description="A Hugging Face chat template (Jinja over `messages`, `add_generation_prompt`, bos_token, "
                    "eos_token); used when template is custom.")
    role_tokens: list[str] = Field([], title="Chat role tokens", json_schema_extra=ADVANCED,
                                   description="More special tokens for a custom template's roles and markers.")

    @model_validator(mode="after")
    def _custom_has_text(self) -> ChatTemplate:
        if self.template == "custom" and not (self.custom_template or "").strip():
            raise ValueError("chat.custom_template is empty: write a Jinja chat template, or pick a preset "
                             "(chatml, llama3, plain, none) in chat.template")
        if self.template != "custom" and self.custom_template is not None:
            raise ValueError(f"chat.custom_template is only used with chat.template: custom (it is "
                             f"{self.template!r}); set template: custom or remove custom_template")
        return self

    @property
    def jinja(self) -> str | None:
        if self.template == "custom":
            return self.custom_template
        return CHAT_PRESETS[self.template][0] if self.template in CHAT_PRESETS else None

    @property
    def special_tokens(self) -> list[str]:
        preset = CHAT_PRESETS.get(self.template, ("", []))[1]
        return list(dict.fromkeys([*preset, *self.role_tokens]))


class TokenizerReportSpec(StrictModel):
    sample_documents: int = Field(500, ge=1, le=1_000_000, title="Report sample",
                                  description="Held-out documents (from data.eval_fraction) the report measures on, at most.")
    compare_with: list[str] = Field(
        [], title="Compare with",
        description="Saved tokenizer folders or hub ids measured on the same sample, side by side in the report.")
    longest_tokens: int = Field(10, ge=0, le=1000, title="Longest tokens listed", json_schema_extra=ADVANCED,
                                description="How many of the longest vocabulary entries the report lists.")


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
        if self.objective == "clm" and self.architecture == "bert":
            raise ValueError("architecture bert trains with objective mlm")
        return self

    @property
    def resolved_objective(self) -> str:
        return self.objective or ("mlm" if self.architecture == "bert" else "clm")


class PretrainTraining(TrainingSettings):
    max_steps: int = Field(1000, ge=1, le=10_000_000, title="Steps", description="Optimizer steps to train for.")
    batch_size: int = Field(16, ge=1, le=65536, title="Batch size", description="Sequences per step per device.")
    gradient_accumulation: int = Field(1, ge=1, le=4096, title="Gradient accumulation",
                                       description="Micro-batches summed before each optimizer step.")
    learning_rate: float = Field(3e-4, gt=0.0, le=1.0, title="Learning rate", description="Peak learning rate.")
    warmup_steps: int = Field(100, ge=0, title="Warmup steps", description="Steps of linear warmup to the peak.")
    schedule: Literal["cosine", "linear", "constant"] = Field(
        "cosine", title="Schedule", description="How the learning rate decays after warmup.")
    weight_decay: float = Field(0.1, ge=0.0, le=1.0, title="Weight decay", json_schema_extra=ADVANCED,
                                description="AdamW decoupled weight decay.")
    max_grad_norm: float = Field(1.0, ge=0.0, title="Gradient clipping", json_schema_extra=ADVANCED,
                                 description="Clip the global gradient norm to this value (0 = off).")
    gradient_checkpointing: bool = Field(False, title="Gradient checkpointing", json_schema_extra=ADVANCED,
                                         description="Recompute activations in the backward pass: less memory, ~30% slower.")
    checkpoint_every: int = Field(200, ge=1, title="Checkpoint every",
                                  description="Steps between checkpoints (resume loses at most this many).")
    keep_checkpoints: int = Field(3, ge=1, le=1000, title="Checkpoints kept", json_schema_extra=ADVANCED,
                                  description="Older checkpoints are deleted beyond this many.")
    eval_every: int = Field(200, ge=1, title="Evaluate every", description="Steps between evaluations.")
    eval_batches: int = Field(20, ge=1, title="Evaluation batches", json_schema_extra=ADVANCED,
                              description="At most this many batches of the held-out split per evaluation.")
    log_every: int = Field(10, ge=1, title="Log every", json_schema_extra=ADVANCED,
                           description="Steps between training metric events.")
    sample_every: int = Field(200, ge=1, title="Sample every", description="Steps between generated samples.")
    sample_prompts: list[str] = Field(["The "], title="Sample prompts",
                                      description="Prompts continued by the model at each sample step (causal models).")
    sample_max_new_tokens: int = Field(40, ge=1, le=4096, title="Sample length", json_schema_extra=ADVANCED,
                                       description="New tokens generated per sample.")
    dataloader_workers: int = Field(0, ge=0, le=64, title="Data loader workers", json_schema_extra=ADVANCED,
                                    description="Background processes feeding batches (0 = in the training process).")


class PretrainSpec(StrictModel):
    kind: Literal["pretrain"] = Field("pretrain", title="Kind", description="Pretrain a language model from scratch.")
    name: str = Field("pretrain", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", title="Name",
                      description="Short name for the run (letters, digits, - _ .); the run id starts with it.")
    data: DataSpec = Field(default_factory=DataSpec, title="Data")
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec, title="Tokenizer")
    model: ModelSpec = Field(default_factory=ModelSpec, title="Model")
    train: PretrainTraining = Field(default_factory=PretrainTraining, title="Training")
    resources: Resources = Field(default_factory=Resources, title="Resources")
    seed: int = Field(0, ge=0, le=2**32 - 1, title="Seed", description="Seed for data order, initialisation and sampling.")


class TokenizerJobSpec(StrictModel):
    kind: Literal["tokenizer"] = Field("tokenizer", title="Kind",
                                       description="Train a tokenizer on a corpus and report how well it compresses.")
    name: str = Field("tokenizer", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", title="Name",
                      description="Short name for the run (letters, digits, - _ .); the run id starts with it.")
    data: DataSpec = Field(default_factory=DataSpec, title="Data")
    tokenizer: TokenizerTraining = Field(default_factory=TokenizerTraining, title="Tokenizer")
    special_tokens: SpecialTokens = Field(default_factory=SpecialTokens, title="Special tokens")
    normalization: Normalization = Field(default_factory=Normalization, title="Normalisation")
    pre_tokenization: PreTokenization = Field(default_factory=PreTokenization, title="Pre-tokenisation")
    chat: ChatTemplate = Field(default_factory=ChatTemplate, title="Chat template")
    report: TokenizerReportSpec = Field(default_factory=TokenizerReportSpec, title="Report")
    model_max_length: int = Field(2048, ge=16, le=1_048_576, title="Maximum length", json_schema_extra=ADVANCED,
                                  description="The longest input the tokenizer declares (model_max_length).")
    seed: int = Field(0, ge=0, le=2**32 - 1, title="Seed", description="Seed for the document order and held-out sample.")

    @model_validator(mode="after")
    def _consistent(self) -> TokenizerJobSpec:
        algorithm = self.tokenizer.algorithm
        specials = self.special_tokens.resolved(algorithm)
        if algorithm != "byte-bpe" and "unk_token" not in specials:
            raise ValueError(f"special_tokens.unk cannot be empty for {algorithm}: it needs an unknown token")
        every = [*specials.values(), *self.special_tokens.extra, *self.chat.special_tokens]
        n_special = len(dict.fromkeys(every))
        needed = ALPHABET_TOKENS[algorithm] + n_special + 1
        if self.tokenizer.vocab_size < needed:
            alphabet = f"{ALPHABET_TOKENS[algorithm]} byte tokens, " if ALPHABET_TOKENS[algorithm] else ""
            raise ValueError(
                f"tokenizer.vocab_size ({self.tokenizer.vocab_size}) is too small for a {algorithm} tokenizer: "
                f"it needs at least {needed} ({alphabet}{n_special} special tokens, plus one); "
                f"raise tokenizer.vocab_size (a few thousand is usual)")
        return self


# Each kind joins this union as its issue lands.
JobSpec = Annotated[Union[CleanSpec, TokenizerJobSpec, PretrainSpec, FinetuneSpec, GenerateSpec, RewardSpec,
                          DPOSpec, GRPOSpec, PPOSpec, EvaluateSpec],
                    Field(discriminator="kind")]
SPEC_MODELS: dict[str, type[StrictModel]] = {"clean": CleanSpec, "tokenizer": TokenizerJobSpec,
                                             "pretrain": PretrainSpec, "finetune": FinetuneSpec,
                                             "generate": GenerateSpec, "reward": RewardSpec, "dpo": DPOSpec,
                                             "grpo": GRPOSpec, "ppo": PPOSpec, "evaluate": EvaluateSpec}
AnySpec = Union[CleanSpec, PretrainSpec, TokenizerJobSpec, FinetuneSpec, GenerateSpec, RewardSpec, DPOSpec, GRPOSpec,
                PPOSpec, EvaluateSpec]
_adapter = TypeAdapter(JobSpec)


@dataclass
class SpecProblem:
    field: str  # dotted path, e.g. "train.batch_size"
    message: str
    line: int | None = None  # 1-based line in the YAML file, when known

    def __str__(self) -> str:
        where = f"line {self.line}, " if self.line else ""
        return f"{where}{self.field or '(top level)'}: {self.message}"


class SpecError(Exception):
    """Every problem of a spec at once, each with its field path (and YAML line when known)."""

    def __init__(self, source: str, problems: list[SpecProblem]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


def _yaml_lines(text: str) -> dict[tuple, int]:
    """Map each key path in a YAML document to the 1-based line where its key (or item) sits."""
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                sub = path + (key.value,)
                lines[sub] = key.start_mark.line + 1
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines
    if root is not None:
        walk(root, ())
    return lines


def _problems(error: ValidationError, lines: dict[tuple, int]) -> list[SpecProblem]:
    problems = []
    for err in error.errors():
        # Drop the union tag from the location: ("pretrain", "train", "lr") -> ("train", "lr").
        loc = tuple(err["loc"])
        if loc and loc[0] in SPEC_MODELS:
            loc = loc[1:]
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; `studio-engine schema` lists the fields)"
        elif err["type"] == "union_tag_invalid":
            loc = ("kind",)
            message = f"unknown kind; use one of: {', '.join(SPEC_MODELS)}"
        elif err["type"] == "union_tag_not_found":
            loc = ("kind",)
            message = f"missing; use one of: {', '.join(SPEC_MODELS)}"
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
            # A cross-field check names the field it blames first ("tokenizer.vocab_size (300) is …"):
            # report it at that field, so the GUI marks the right input.
            named = _LEADING_FIELD.match(message)
            if named and named.group(1).startswith(".".join(str(p) for p in loc)):
                loc = tuple(named.group(1).split("."))
        line = None
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        problems.append(SpecProblem(".".join(str(p) for p in loc), message, line))
    return problems


def parse_spec(data: Any, source: str = "spec", text: str | None = None) -> AnySpec:
    """Validate a spec given as plain data; raise SpecError listing every problem."""
    if not isinstance(data, dict):
        raise SpecError(source, [SpecProblem("", "a spec is a mapping with a `kind:` key")])
    try:
        return _adapter.validate_python(data)
    except ValidationError as e:
        raise SpecError(source, _problems(e, _yaml_lines(text) if text else {})) from None


def load_spec(path: Path | str) -> AnySpec:
    """Read and validate a YAML spec file (safe_load); raise SpecError or FileNotFoundError."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise SpecError(str(path), [SpecProblem("", f"not valid YAML: {getattr(e, 'problem', e)}", line)]) from None
    return parse_spec(data, str(path), text)


def spec_to_yaml(spec: BaseModel) -> str:
    return yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def json_schema(kind: str | None = None) -> dict:
    """The JSON schema of one kind, or of the whole union when kind is None."""
    if kind is None:
        return _adapter.json_schema()
    if kind not in SPEC_MODELS:
        raise KeyError(f"unknown kind '{kind}'; known kinds: {', '.join(SPEC_MODELS)}")
    return SPEC_MODELS[kind].model_json_schema()


def json_schema_text(kind: str | None = None) -> str:
    return json.dumps(json_schema(kind), indent=2)
