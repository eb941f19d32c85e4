"""Train a tokenizer on the `tokenizers` library, and load a saved one.

Four recipes, each the standard pipeline of a well-known model family:
- byte-bpe: GPT-2 / Llama-3 byte-level BPE. Every byte is in the alphabet, so any text encodes
  without an unknown token and decodes back exactly.
- bpe: Llama-2 / SentencePiece style BPE over Metaspace words, with byte fallback: characters
  outside the vocabulary become `<0x00>`…`<0xFF>` byte tokens instead of `<unk>`.
- unigram: SentencePiece unigram over Metaspace words.
- wordpiece: BERT's WordPiece with the BERT normaliser and pre-tokenizer.

Special tokens follow the objective: `<|bos|> <|eos|> <|pad|> <|unk|>` for causal models (a bos
token starts every encoded text), BERT's `[PAD] [UNK] [CLS] [SEP] [MASK]` for masked models
(`[CLS] text [SEP]`). The result is a transformers fast tokenizer that `save_pretrained` writes
and `AutoTokenizer.from_pretrained` reads back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from engine.errors import ModelError, TokenizerError
from engine.models import TOKENIZER_FILES, has_tokenizer
from engine.models import load_tokenizer as load_model_tokenizer
from engine.specs.tokenizer import TokenizerTraining

# The HF attribute (bos_token, ...) of each special token, in vocabulary order (ids 0, 1, ...).
CLM_SPECIALS = {"pad_token": "<|pad|>", "unk_token": "<|unk|>", "bos_token": "<|bos|>", "eos_token": "<|eos|>"}
MLM_SPECIALS = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                "mask_token": "[MASK]"}
BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
_BATCH = 1000  # texts handed to the Rust trainer at a time


@dataclass(frozen=True)
class PipelineOptions:
    """Normalisation and pre-tokenisation choices; the defaults are each recipe's standard pipeline."""

    unicode: str = "none"  # none | nfc | nfkc
    lowercase: bool = False
    split_digits: bool = False
    prefix_space: bool | None = None  # None: the algorithm's usual


def train_tokenizer(
    texts: Iterable[str],
    cfg: TokenizerTraining,
    model_max_length: int,
    objective: str = "clm",
    progress: Callable[[str, int, int | None], None] | None = None,
    *,
    specials: dict[str, str] | None = None,
    extra_specials: list[str] | tuple[str, ...] = (),
    options: PipelineOptions = PipelineOptions(),
) -> PreTrainedTokenizerFast:
    """Train a tokenizer of `cfg.algorithm` on `texts`; `len(result) <= cfg.vocab_size`.

    `objective` ("clm" or "mlm") picks the special tokens and the post-processor.
    `progress(message, done, total)` is called with the number of texts read, if given.
    `specials` (HF attribute -> token, in vocabulary order) replaces the objective's special tokens;
    `extra_specials` are more tokens kept whole (chat markers); `options` changes the pipeline.
    Raises TokenizerError when the vocabulary is too small for the algorithm's fixed tokens.
    """
    if objective not in ("clm", "mlm"):
        raise ValueError(f"objective must be 'clm' or 'mlm', not {objective!r}")
    if specials is None:
        specials = CLM_SPECIALS if objective == "clm" else MLM_SPECIALS
    special_list = list(dict.fromkeys([*specials.values(), *extra_specials]))
    unk = specials.get("unk_token")
    _check_vocab_size(cfg, len(special_list))

    tokenizer, trainer = _recipe(cfg, special_list, unk)
    _apply_options(tokenizer, cfg.algorithm, options)
    tokenizer.train_from_iterator(_batches(texts, progress), trainer=trainer)
    if cfg.algorithm == "bpe":
        tokenizer = _with_byte_tokens(tokenizer, special_list, unk)
    processor = _post_processor(cfg.algorithm, specials, tokenizer)
    if processor is not None:
        tokenizer.post_processor = processor

    extra = [t for t in extra_specials if t not in specials.values()]
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=model_max_length,
        # Cleaning up spaces around punctuation would break the exact decode(encode(s)) == s.
        clean_up_tokenization_spaces=False,
        **({"additional_special_tokens": extra} if extra else {}),
        **specials,
    )


def _apply_options(tok: Tokenizer, algorithm: str, options: PipelineOptions) -> None:
    """Put the normalisation and pre-tokenisation choices into a recipe's pipeline (before training)."""
    if options == PipelineOptions():
        return
    if options.prefix_space is not None and algorithm == "byte-bpe":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=options.prefix_space, use_regex=True)
    elif options.prefix_space is not None and algorithm in ("bpe", "unigram"):
        scheme = "always" if options.prefix_space else "never"
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme)
        if algorithm == "unigram":
            tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme=scheme)
        elif not options.prefix_space:  # nothing was prepended, so nothing is cut when decoding
            tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    if options.split_digits:
        # After the word split, so that Metaspace's ▁ and ByteLevel's Ġ stay on the word they belong to.
        tok.pre_tokenizer = pre_tokenizers.Sequence([tok.pre_tokenizer, pre_tokenizers.Digits(individual_digits=True)])
    steps = []
    if options.unicode != "none":
        steps.append(normalizers.NFC() if options.unicode == "nfc" else normalizers.NFKC())
    if tok.normalizer is not None:  # wordpiece's BERT normaliser
        steps.append(normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=False,
                                                lowercase=options.lowercase))
    elif options.lowercase:
        steps.append(normalizers.Lowercase())
    if steps:
        tok.normalizer = steps[0] if len(steps) == 1 else normalizers.Sequence(steps)


def load_tokenizer(path: str) -> PreTrainedTokenizerFast:
    """Load a saved tokenizer folder (or a hub id, when online), making sure it has a pad token.

    Raises TokenizerError with a hint when the folder is missing or holds no tokenizer.
    """
    local = Path(path).expanduser()
    looks_local = local.exists() or path.startswith((".", "/", "~")) or "\\" in path or path.count("/") > 1
    if looks_local and not local.is_dir():
        raise TokenizerError(f"The tokenizer folder {path} does not exist.",
                             "Check the path, or train a tokenizer instead (tokenizer.train).")
    if looks_local and not has_tokenizer(local):
        raise TokenizerError(
            f"The folder {path} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)}).",
            "Point tokenizer.path at a folder written by save_pretrained, e.g. a previous run's out/tokenizer.")
    where = "the folder" if looks_local else "the hub id"
    try:
        tokenizer = load_model_tokenizer(str(local) if looks_local else path, None, label=f"{where} {path}")
    except ModelError as e:
        raise TokenizerError(e.message, e.hint) from None
    if not isinstance(tokenizer, PreTrainedTokenizerFast):
        raise TokenizerError(f"The tokenizer in {path} has no fast (tokenizers) version.",
                             "Save it with a tokenizer.json, or train a tokenizer instead.")
    if tokenizer.pad_token is None:  # the loader gives it the eos token as pad when it has one
        raise TokenizerError(f"The tokenizer in {path} has neither a pad token nor an eos token.",
                             "Add a pad token to its tokenizer_config.json, or train a tokenizer instead.")
    return tokenizer


def _check_vocab_size(cfg: TokenizerTraining, n_specials: int) -> None:
    fixed = {"byte-bpe": 256, "bpe": 256}.get(cfg.algorithm, 0)  # the byte alphabet or byte tokens
    needed = fixed + n_specials + 1
    if cfg.vocab_size < needed:
        raise TokenizerError(
            f"A {cfg.algorithm} tokenizer needs a vocab_size of at least {needed} "
            f"({fixed} byte tokens and {n_specials} special tokens plus one); got {cfg.vocab_size}.",
            f"Raise tokenizer.train.vocab_size to {needed} or more (a few thousand is usual).")


def _recipe(cfg: TokenizerTraining, specials: list[str], unk: str) -> tuple[Tokenizer, trainers.Trainer]:
    common = dict(vocab_size=cfg.vocab_size, special_tokens=specials, show_progress=False)
    if cfg.algorithm == "byte-bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        tok.decoder = decoders.ByteLevel()
        return tok, trainers.BpeTrainer(min_frequency=cfg.min_frequency,
                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **common)
    if cfg.algorithm == "bpe":
        tok = Tokenizer(models.BPE(unk_token=unk, byte_fallback=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        # Llama-2's decoder: bytes are fused back into characters before the leading space is cut.
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                         decoders.Strip(" ", 1, 0)])
        # The byte tokens are added after training, so the learned part gets what is left; rare
        # characters are left to byte fallback, as SentencePiece's character_coverage does.
        budget = cfg.vocab_size - len(BYTE_TOKENS)
        common["vocab_size"] = budget
        return tok, trainers.BpeTrainer(min_frequency=cfg.min_frequency,
                                        limit_alphabet=max(1, min(1000, budget // 2)), **common)
    if cfg.algorithm == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
        # Pruning the seed vocabulary by half per round instead of a quarter: about twice as fast,
        # with the same pieces for common words.
        return tok, trainers.UnigramTrainer(unk_token=unk, shrinking_factor=0.5, **common)
    if cfg.algorithm == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=unk))
        tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                    strip_accents=False, lowercase=False)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece(prefix="##")
        return tok, trainers.WordPieceTrainer(min_frequency=cfg.min_frequency, continuing_subword_prefix="##",
                                              **common)
    raise ValueError(f"unknown tokenizer algorithm {cfg.algorithm!r}")


def _with_byte_tokens(trained: Tokenizer, specials: list[str], unk: str) -> Tokenizer:
    """Rebuild a trained BPE with `<0x00>`…`<0xFF>` right after the special tokens (Llama-2 layout).

    The trainer cannot reserve ordinary (non-special) vocabulary entries, and byte tokens must be
    ordinary ones: decoding with skip_special_tokens must keep them.
    """
    state = json.loads(trained.to_str())
    learned = sorted(state["model"]["vocab"].items(), key=lambda item: item[1])
    vocab: dict[str, int] = {}
    for token in [*specials, *BYTE_TOKENS, *(t for t, _ in learned)]:
        vocab.setdefault(token, len(vocab))
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["model"]["merges"]]
    rebuilt = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=unk, byte_fallback=True, fuse_unk=True))
    rebuilt.pre_tokenizer = trained.pre_tokenizer
    rebuilt.decoder = trained.decoder
    rebuilt.add_special_tokens(specials)
    return rebuilt


def _post_processor(algorithm: str, specials: dict[str, str], tok: Tokenizer) -> processors.PostProcessor | None:
    template = None
    if "cls_token" in specials and "sep_token" in specials:
        cls, sep = specials["cls_token"], specials["sep_token"]
        template = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
            special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    elif "bos_token" in specials:
        bos = specials["bos_token"]
        template = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, tok.token_to_id(bos))])
    if algorithm == "byte-bpe":
        # Keep byte-level offsets right (trim_offsets=False: offsets cover the spaces too).
        byte_level = processors.ByteLevel(trim_offsets=False)
        return processors.Sequence([byte_level, template]) if template else byte_level
    return template


def _batches(texts: Iterable[str], progress: Callable[[str, int, int | None], None] | None) -> Iterator[list[str]]:
    iterator = iter(texts)
    done = 0
    while batch := list(islice(iterator, _BATCH)):
        done += len(batch)
        if progress:
            progress("training tokenizer", done, None)
        yield batch
