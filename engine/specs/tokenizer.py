"""The spec of `kind: tokenizer` (train a tokenizer and report how well it compresses), and the
tokenizer-training settings the pretrain spec shares.

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.specs.base import ADVANCED, StrictModel, run_name, seed_field
from engine.specs.chat import CHAT_PRESETS
from engine.specs.corpus import DataSpec


class TokenizerTraining(StrictModel):
    algorithm: Literal["byte-bpe", "bpe", "unigram", "wordpiece"] = Field(
        "byte-bpe", title="Algorithm",
        description="byte-bpe: GPT-2/Llama-3 style byte-level BPE (never an unknown token); bpe: BPE with byte "
                    "fallback (Llama-2 style); unigram: SentencePiece unigram; wordpiece: BERT style.")
    vocab_size: int = Field(8192, ge=256, le=262144, title="Vocabulary size",
                            description="Number of tokens, special tokens included.")
    min_frequency: int = Field(2, ge=1, le=1000, title="Minimum frequency", json_schema_extra=ADVANCED,
                               description="A merge or piece must occur this often to enter the vocabulary.")


# Tokens each algorithm needs beyond the special tokens: byte-bpe's 256-byte alphabet, bpe's byte tokens.
ALPHABET_TOKENS = {"byte-bpe": 256, "bpe": 256, "unigram": 0, "wordpiece": 0}


class SpecialTokens(StrictModel):
    bos: str | None = Field(None, title="Beginning of sequence",
                            description="Starts every encoded text. Not set: `<|bos|>` (`[CLS]` for wordpiece). "
                                        "For no such token, set it to `\"\"` in the spec's YAML.")
    eos: str | None = Field(None, title="End of sequence",
                            description="Ends a document or a turn. Not set: `<|eos|>` (`[SEP]` for wordpiece). "
                                        "For no such token, set it to `\"\"` in the spec's YAML.")
    pad: str | None = Field(None, title="Padding", description="Fills batches. Not set: `<|pad|>` (`[PAD]` for wordpiece).")
    unk: str | None = Field(None, title="Unknown",
                            description="Stands for text the vocabulary cannot spell (never used by byte-bpe). "
                                        "Not set: `<|unk|>` (`[UNK]` for wordpiece).")
    mask: str | None = Field(None, title="Mask", json_schema_extra=ADVANCED,
                             description="For masked-LM training. Not set: `[MASK]` for wordpiece, none otherwise.")
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


class TokenizerJobSpec(StrictModel):
    kind: Literal["tokenizer"] = Field("tokenizer", title="Kind",
                                       description="Train a tokenizer on a corpus and report how well it compresses.")
    name: str = run_name("tokenizer")
    data: DataSpec = Field(default_factory=DataSpec, title="Data")
    tokenizer: TokenizerTraining = Field(default_factory=TokenizerTraining, title="Tokenizer")
    special_tokens: SpecialTokens = Field(default_factory=SpecialTokens, title="Special tokens")
    normalization: Normalization = Field(default_factory=Normalization, title="Normalisation")
    pre_tokenization: PreTokenization = Field(default_factory=PreTokenization, title="Pre-tokenisation")
    chat: ChatTemplate = Field(default_factory=ChatTemplate, title="Chat template")
    report: TokenizerReportSpec = Field(default_factory=TokenizerReportSpec, title="Report")
    model_max_length: int = Field(2048, ge=16, le=1_048_576, title="Maximum length", json_schema_extra=ADVANCED,
                                  description="The longest input the tokenizer declares (model_max_length).")
    seed: int = seed_field("Seed for the document order and held-out sample.")

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
