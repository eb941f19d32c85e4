"""The tokenizer of a model folder as GGUF metadata, read by the `gguf` package's vocabulary classes:
BpeVocab (byte-level BPE, llama.cpp's "gpt2" tokenizer), LlamaHfVocab (BPE with byte fallback in a
tokenizer.json, its "llama" tokenizer) or SentencePieceVocab (a tokenizer.model), and SpecialVocab
(merges, special token ids, whether bos/eos are added, the chat template).

Two things those classes leave to convert_hf_to_gguf.py, done here: special tokens that are also in
the BPE vocabulary are marked CONTROL (BpeVocab marks them NORMAL, and a reader would then cut
`<|im_start|>` into pieces), and the pre-tokenizer is named. llama.cpp's script names it by a hash
of how a test text tokenizes, which no tokenizer trained here matches; we name it by the split
pattern in tokenizer.json, from the patterns transformers' GGUF reader knows, "gpt-2" for plain
byte-level splitting.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import gguf

from engine.errors import ModelError


@dataclass
class Vocabulary:
    model: str  # tokenizer.ggml.model: "gpt2" or "llama"
    pre: str | None
    tokens: list[bytes]
    scores: list[float] | None
    types: list[int]
    special: gguf.SpecialVocab

    @property
    def chat_template(self) -> str | None:
        template = self.special.chat_template
        return template if isinstance(template, str) or template is None else next(
            (t["template"] for t in template if t.get("name") == "default"), None)

    def add_to(self, writer: gguf.GGUFWriter) -> None:
        writer.add_tokenizer_model(self.model)
        if self.pre:
            writer.add_tokenizer_pre(self.pre)
        writer.add_token_list(self.tokens)
        if self.scores is not None:
            writer.add_token_scores(self.scores)
        writer.add_token_types(self.types)
        self.special.add_to_gguf(writer, quiet=True)


def _split_pattern(node: dict | None) -> str | None:
    """The regex of the first Split step of a tokenizer.json pre-tokenizer."""
    if not node:
        return None
    if node.get("type") == "Sequence":
        return next((p for p in map(_split_pattern, node.get("pretokenizers", [])) if p), None)
    if node.get("type") == "Split":
        return (node.get("pattern") or {}).get("Regex")
    return None


def _pre_tokenizer(tokenizer_json: dict) -> str:
    from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_PRE_TOKENIZER_SPLITS

    pattern = _split_pattern(tokenizer_json.get("pre_tokenizer"))
    if pattern is None:
        return "gpt-2"
    return next((name for name, split in GGUF_PRE_TOKENIZER_SPLITS.items() if split == pattern), "default")


def _bpe(folder: Path) -> tuple[str, str | None, list[bytes], list[float] | None, list[int]]:
    vocab = gguf.BpeVocab(folder)  # FileNotFoundError when the tokenizer is not byte-level BPE
    tokens, scores, types = zip(*vocab.all_tokens())
    tokenizer_json = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    types = list(types)
    for added in tokenizer_json.get("added_tokens") or []:
        if added["id"] < len(types):
            types[added["id"]] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    return "gpt2", _pre_tokenizer(tokenizer_json), list(tokens), None, types


def _sentencepiece(folder: Path, kind: type) -> tuple[str, str | None, list[bytes], list[float] | None, list[int]]:
    vocab = kind(folder)
    tokens, scores, types = zip(*vocab.all_tokens())
    return "llama", "default", list(tokens), list(scores), list(types)


def read_vocabulary(folder: Path, rows: int, chat_template: str | None, keep_own_template: bool) -> Vocabulary:
    """The tokenizer in `folder` for a model with `rows` embedding rows (the token list is padded to
    that many with unused tokens); the chat template is the tokenizer's own when `keep_own_template`,
    else `chat_template` (None: no template)."""
    readers = [lambda: _bpe(folder), lambda: _sentencepiece(folder, gguf.LlamaHfVocab),
               lambda: _sentencepiece(folder, gguf.SentencePieceVocab)]
    for reader in readers:
        try:
            model, pre, tokens, scores, types = reader()
            break
        except (FileNotFoundError, TypeError, KeyError):
            continue
    else:
        raise ModelError(f"The tokenizer in {folder} is neither byte-level BPE, BPE with byte fallback nor "
                         f"SentencePiece, the kinds GGUF export writes.",
                         "Export a model whose tokenizer.json uses a BPE model (as GPT-2, Llama and Qwen do), or "
                         "that ships a tokenizer.model.")
    if len(tokens) > rows:
        raise ModelError(f"The tokenizer in {folder} has {len(tokens):,} tokens but the model only {rows:,} embedding "
                         f"rows.", "Export the tokenizer the model was trained with (a fine-tuning run that added "
                                   "tokens saved its own beside the adapter).")
    for i in range(len(tokens), rows):  # as convert_hf_to_gguf.py pads a vocabulary smaller than the embeddings
        tokens.append(f"[PAD{i}]".encode())
        types.append(gguf.TokenType.UNUSED)
        if scores is not None:
            scores.append(-1000.0)
    special = gguf.SpecialVocab(folder, load_merges=model == "gpt2", n_vocab=rows)
    if not keep_own_template:
        special.chat_template = chat_template
    return Vocabulary(model, pre, tokens, scores, types, special)
