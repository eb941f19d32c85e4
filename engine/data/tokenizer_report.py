"""How well a tokenizer compresses a held-out sample, for one tokenizer or several side by side.

Figures per tokenizer: UTF-8 bytes per token and characters per token (higher = fewer tokens for
the same text), tokens per whitespace-separated word (fertility; lower is better), the share of
tokens that are the unknown token, the share of the vocabulary the sample uses, and the longest
vocabulary entries. Special tokens added by the post-processor (bos, cls/sep) are not counted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from transformers import PreTrainedTokenizerBase

_BATCH = 256
FIGURES = ("bytes_per_token", "chars_per_token", "tokens_per_word", "unk_rate", "vocab_used")
HEADERS = {"bytes_per_token": "bytes/token", "chars_per_token": "chars/token", "tokens_per_word": "tokens/word",
           "unk_rate": "unknown", "vocab_used": "vocab used"}


@dataclass
class TokenizerFigures:
    name: str
    vocab_size: int
    tokens: int
    bytes_per_token: float
    chars_per_token: float
    tokens_per_word: float
    unk_rate: float
    vocab_used: float
    longest_tokens: list[str] = field(default_factory=list)


def measure(name: str, tokenizer: PreTrainedTokenizerBase, texts: list[str], longest: int = 10) -> TokenizerFigures:
    """The figures of `tokenizer` on `texts` (a non-empty list of non-empty strings)."""
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_chars = sum(len(t) for t in texts)
    n_words = sum(len(t.split()) for t in texts) or 1
    unk = tokenizer.unk_token_id
    n_tokens = n_unk = 0
    used: set[int] = set()
    for start in range(0, len(texts), _BATCH):
        encoded = tokenizer(texts[start:start + _BATCH], add_special_tokens=False)["input_ids"]
        for ids in encoded:
            n_tokens += len(ids)
            used.update(ids)
            if unk is not None:
                n_unk += ids.count(unk)
    n_tokens = max(n_tokens, 1)
    return TokenizerFigures(
        name=name, vocab_size=len(tokenizer), tokens=n_tokens,
        bytes_per_token=n_bytes / n_tokens, chars_per_token=n_chars / n_tokens,
        tokens_per_word=n_tokens / n_words, unk_rate=n_unk / n_tokens,
        vocab_used=len(used) / max(len(tokenizer), 1),
        longest_tokens=longest_tokens(tokenizer, longest))


def longest_tokens(tokenizer: PreTrainedTokenizerBase, k: int) -> list[str]:
    """The `k` longest ordinary vocabulary entries, as the text they decode to."""
    if k <= 0:
        return []
    special = set(tokenizer.all_special_ids)
    ids = [i for i in tokenizer.get_vocab().values() if i not in special]
    texts = tokenizer.batch_decode([[i] for i in ids], skip_special_tokens=True, clean_up_tokenization_spaces=False)
    # Partial UTF-8 sequences decode to U+FFFD: they are not readable entries.
    texts = [t for t in texts if "\ufffd" not in t]
    return sorted(set(texts), key=lambda t: (-len(t.encode("utf-8")), t))[:k]


def markdown_table(rows: list[TokenizerFigures]) -> str:
    head = "| tokenizer | vocabulary | " + " | ".join(HEADERS[f] for f in FIGURES) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(FIGURES)]
    for row in rows:
        values = [f"{row.bytes_per_token:.3f}", f"{row.chars_per_token:.3f}", f"{row.tokens_per_word:.3f}",
                  f"{row.unk_rate:.2%}", f"{row.vocab_used:.1%}"]
        lines.append(f"| {row.name} | {row.vocab_size:,} | " + " | ".join(values) + " |")
    return "\n".join(lines)


def report(rows: list[TokenizerFigures], texts: list[str]) -> dict:
    """The JSON report: the sample's size, each tokenizer's figures, and the Markdown table."""
    return {
        "sample": {"documents": len(texts), "characters": sum(len(t) for t in texts),
                   "bytes": sum(len(t.encode("utf-8")) for t in texts),
                   "words": sum(len(t.split()) for t in texts)},
        "tokenizers": [asdict(r) for r in rows],
        "table": markdown_table(rows),
    }
