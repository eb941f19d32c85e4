"""Near-duplicate detection: MinHash LSH over word n-grams, and 64-bit SimHash.

Signatures are a pure function of the texts and the parameters, computed for a batch of texts at
once with numpy, so they run in worker processes; the indexes (engine/cleaning/dedup_index.py)
take one signature at a time, in document order, in the main process, and keep the first of a set
of near duplicates. Only numpy and the standard library are imported: worker processes must start
fast.

Hashes are stable across processes, runs and machines (no Python `hash()`, no numpy RNG): a word
is a 64-bit polynomial hash of its UTF-8 bytes, an n-gram a weighted sum of its word hashes, both
mixed with the MurmurHash3 finaliser; MinHash permutations are multiply-shift hashes whose
constants come from BLAKE2b of the seed.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

U64 = np.uint64
_WORD = re.compile(r"\w+")
_EMPTY_MINHASH = np.uint32(0xFFFFFFFF)  # the signature value of a document without words


@dataclass(frozen=True)
class MinHashParams:
    ngram: int = 5            # word n-gram (shingle) size
    permutations: int = 128
    threshold: float = 0.8    # estimated Jaccard similarity at or above which documents are near duplicates
    bands: int | None = None  # LSH bands and rows per band; both None = `optimal_bands_rows`
    rows: int | None = None
    seed: int = 0

    def __post_init__(self):
        if self.ngram < 1:
            raise ValueError(f"MinHash ngram must be at least 1, got {self.ngram}")
        if self.permutations < 1:
            raise ValueError(f"MinHash permutations must be at least 1, got {self.permutations}")
        if not 0 < self.threshold <= 1:
            raise ValueError(f"MinHash threshold must be in (0, 1], got {self.threshold}")
        if (self.bands is None) != (self.rows is None):
            raise ValueError("MinHash bands and rows go together: set both, or leave both None to have them "
                             "chosen from the threshold")
        if self.bands is not None:
            if self.bands < 1 or self.rows < 1:
                raise ValueError(f"MinHash bands and rows must be at least 1, got bands={self.bands}, rows={self.rows}")
            if self.bands * self.rows > self.permutations:
                raise ValueError(f"MinHash bands × rows ({self.bands} × {self.rows} = {self.bands * self.rows}) "
                                 f"exceeds permutations ({self.permutations}); lower them or raise permutations")

    def lsh_shape(self) -> tuple[int, int]:
        """(bands, rows): the configured ones, or those `optimal_bands_rows` chooses."""
        if self.bands is not None:
            return self.bands, self.rows
        return optimal_bands_rows(self.threshold, self.permutations)


@dataclass(frozen=True)
class SimHashParams:
    ngram: int = 3
    max_hamming: int = 3      # 64-bit fingerprints within this Hamming distance are near duplicates

    def __post_init__(self):
        if self.ngram < 1:
            raise ValueError(f"SimHash ngram must be at least 1, got {self.ngram}")
        if not 0 <= self.max_hamming <= 63:
            raise ValueError(f"SimHash max_hamming must be between 0 and 63, got {self.max_hamming}")


# Candidates are verified against the stored signatures, so an LSH false positive costs one signature
# comparison while a false negative keeps a duplicate: the band layout leans towards recall.
FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT = 0.1, 0.9


@lru_cache(maxsize=64)
def optimal_bands_rows(threshold: float, permutations: int, false_positive_weight: float = FALSE_POSITIVE_WEIGHT,
                       false_negative_weight: float = FALSE_NEGATIVE_WEIGHT) -> tuple[int, int]:
    """The (bands, rows) minimising the weighted false-positive plus false-negative probability mass.

    Two documents of Jaccard similarity s share a band bucket with probability 1 - (1 - s^r)^b.
    The false-positive mass is that probability integrated over s in [0, threshold], the
    false-negative mass its complement integrated over [threshold, 1]: datasketch's
    `_optimal_param`, here with the trapezoid rule on a fine grid. At threshold 0.8 and 128
    permutations the default weights give 14 × 9, which misses 13% of pairs at s = 0.8, 2.5% at
    0.85 and 0.1% at 0.9 (datasketch's default equal weights give 9 × 13: 60%, 31%, 7%).
    """
    s = np.linspace(0.0, 1.0, 2001)
    below, above = s <= threshold, s >= threshold
    best, least = (1, 1), math.inf
    for bands in range(1, permutations + 1):  # vectorised over rows: a (rows, grid) array at a time
        rows = np.arange(1, permutations // bands + 1)[:, None]
        collide = 1.0 - (1.0 - s ** rows) ** bands
        error = (false_positive_weight * np.trapezoid(collide[:, below], s[below], axis=1)
                 + false_negative_weight * np.trapezoid(1.0 - collide[:, above], s[above], axis=1))
        i = int(np.argmin(error))
        if error[i] < least:
            best, least = (bands, i + 1), float(error[i])
    return best


def words(text: str) -> list[str]:
    """The words shingles are made of: the text lowercased (`str.lower`) and split into runs of
    Unicode word characters (regex `\\w+`: letters, digits and underscore, in any script).

    Punctuation, symbols and whitespace only separate words, so "Hello, world!" and "hello world"
    have the same words, and "don't" is two. Scripts written without spaces (Chinese, Japanese,
    Thai) come out as one word per unbroken run, which makes their near-duplicate detection coarse.
    """
    return _WORD.findall(text.lower())


def _fmix64(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finaliser, in place: every input bit flips each output bit half the time."""
    x ^= x >> U64(33)
    x *= U64(0xFF51AFD7ED558CCD)
    x ^= x >> U64(33)
    x *= U64(0xC4CEB9FE1A85EC53)
    x ^= x >> U64(33)
    return x


def hash_constants(label: str, count: int) -> np.ndarray:
    """`count` stable odd 64-bit constants derived from `label`."""
    values = [int.from_bytes(hashlib.blake2b(f"{label}:{i}".encode(), digest_size=8).digest(), "little") | 1
              for i in range(count)]
    return np.array(values, dtype=U64)


_POLY_BASE = 0x100000001B3  # odd, hence invertible modulo 2**64
_POLY_INVERSE = pow(_POLY_BASE, -1, 1 << 64)
# base**i for any i is (base**BLOCK)**(i // BLOCK) × base**(i % BLOCK): two small tables instead of
# one as long as the text, so no process keeps a table the size of the largest batch it has seen
_POWER_BLOCK = 1 << 16


def _geometric(ratio: int, count: int) -> np.ndarray:
    """ratio**i modulo 2**64 for i < count."""
    out = np.full(count, ratio, dtype=U64)
    out[0] = 1
    return np.cumprod(out, out=out)


_POWERS_LOW = _geometric(_POLY_BASE, _POWER_BLOCK)
_INVERSE_POWERS_LOW = _geometric(_POLY_INVERSE, _POWER_BLOCK)


def _powers(count: int) -> np.ndarray:
    """base**i modulo 2**64 for i < count."""
    high = _geometric(pow(_POLY_BASE, _POWER_BLOCK, 1 << 64), -(-count // _POWER_BLOCK))
    return (high[:, None] * _POWERS_LOW[None, :]).reshape(-1)[:count]


def _inverse_powers(exponents: np.ndarray) -> np.ndarray:
    """base**-e modulo 2**64 for each e in `exponents`."""
    high = _geometric(pow(_POLY_INVERSE, _POWER_BLOCK, 1 << 64), int(exponents.max()) // _POWER_BLOCK + 1)
    return high[exponents // _POWER_BLOCK] * _INVERSE_POWERS_LOW[exponents % _POWER_BLOCK]


_NON_ASCII_NON_WORD = re.compile(r"[^\w\x00-\x7f]+")
_ASCII_NON_WORD_TO_SPACE = bytes(c if chr(c).isalnum() or c == ord("_") or c >= 0x80 else 0x20 for c in range(256))


def _word_bytes(text: str) -> bytes:
    """The lowercased text in UTF-8 with every non-word character (see `words`) turned into a space."""
    text = text.lower()
    if not text.isascii():  # a flag lookup in CPython
        text = _NON_ASCII_NON_WORD.sub(" ", text)
    return text.encode("utf-8", "surrogatepass").translate(_ASCII_NON_WORD_TO_SPACE)


def _word_hashes(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of the words (as `words` splits them) of every text, flattened, and the number
    of words per text.

    No Python object per word: each text is lowercased and every non-word character replaced by a
    space — ASCII ones with `bytes.translate`, the rare others with a regex, both in C — the texts
    are joined with NUL (a non-word character, so only ever the separator) and numpy finds the
    words' byte ranges (UTF-8 never hides a space or a NUL inside a multi-byte character). From
    prefix sums of byte × base**position, each word's polynomial hash is the difference of two
    prefix sums brought back to position 0.
    """
    buffer = np.frombuffer(b"\0".join([_word_bytes(text) for text in texts]), dtype=np.uint8)
    in_word = np.zeros(len(buffer) + 2, dtype=np.int8)
    in_word[1:-1] = buffer > 0x20
    edges = np.diff(in_word)
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    counts = np.bincount(np.searchsorted(np.flatnonzero(buffer == 0), starts), minlength=len(texts))
    if not len(starts):
        return np.empty(0, dtype=U64), counts.astype(np.int64)
    prefix = np.zeros(len(buffer) + 1, dtype=U64)
    np.cumsum(buffer * _powers(len(buffer)), out=prefix[1:])  # uint64 arithmetic wraps: modulo 2**64
    return _fmix64((prefix[ends] - prefix[starts]) * _inverse_powers(starts)), counts.astype(np.int64)


_NGRAM_WEIGHTS = hash_constants("atelier-ngram", 64)


def _shingles(word_hashes: np.ndarray, counts: np.ndarray, ngram: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of every document's word n-grams, flattened, and the number of n-grams per document.

    An n-gram's hash is sum(word_hash[k] × weight[k]) mixed, so word order matters. A document with
    fewer words than `ngram` gives one shingle of all its words; one without words gives none.
    """
    total = len(word_hashes)
    weights = _NGRAM_WEIGHTS if ngram <= len(_NGRAM_WEIGHTS) else hash_constants("atelier-ngram", ngram)
    first_word = np.cumsum(counts) - counts
    # words from each position to the end of its document, this one included
    remaining = np.repeat(counts + first_word, counts) - np.arange(total)
    padded = np.concatenate([word_hashes, np.zeros(ngram - 1, dtype=U64)])
    acc = word_hashes * weights[0]
    for k in range(1, ngram):
        term = padded[k:k + total] * weights[k]
        term[remaining <= k] = 0  # past the end of the document (only matters for short documents)
        acc += term
    in_doc = np.repeat(counts, counts)
    keep = (remaining >= ngram) | ((remaining == in_doc) & (in_doc < ngram))
    per_doc = np.where(counts >= ngram, counts - ngram + 1, np.minimum(counts, 1))
    return _fmix64(acc[keep]), per_doc


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
    """uint64 hashes of the word n-grams of `text` (see `words`), in order, repeats included.

    A text of fewer than `ngram` words gives one shingle of all its words; a text without words
    gives an empty array.
    """
    hashes, counts = _word_hashes([text])
    return _shingles(hashes, counts, ngram)[0]


@lru_cache(maxsize=16)
def _permutations(seed: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Multiply-shift hash constants (a odd, b): permutation j maps x to ((a_j·x + b_j) mod 2**64) >> 32."""
    digests = [hashlib.blake2b(f"minhash:{seed}:{j}".encode(), digest_size=16).digest() for j in range(count)]
    a = np.array([int.from_bytes(d[:8], "little") | 1 for d in digests], dtype=U64)
    b = np.array([int.from_bytes(d[8:], "little") for d in digests], dtype=U64)
    return a, b


def minhash_signatures(texts: list[str], params: MinHashParams) -> np.ndarray:
    """(len(texts), permutations) uint32 MinHash signatures of the texts' word n-gram sets.

    The share of equal positions in two signatures estimates the Jaccard similarity of the two
    n-gram sets. A text without words has every value 0xFFFFFFFF (so two such texts agree fully).
    """
    out = np.full((len(texts), params.permutations), _EMPTY_MINHASH, dtype=np.uint32)
    shingles, per_doc = _shingles(*_word_hashes(texts), params.ngram)
    if not shingles.size:
        return out
    has_words = per_doc > 0
    offsets = (np.cumsum(per_doc) - per_doc)[has_words]
    a, b = _permutations(params.seed, params.permutations)
    values = np.empty_like(shingles)
    mins = np.empty((len(offsets), params.permutations), dtype=np.uint32)
    # One permutation at a time over the whole batch: contiguous 1-D passes are ~10x faster than a
    # (shingles × permutations) block reduced along its first axis.
    for j in range(params.permutations):
        np.multiply(shingles, a[j], out=values)
        values += b[j]
        # the minimum of the top 32 bits is the top 32 bits of the minimum: shift after reducing
        mins[:, j] = np.minimum.reduceat(values, offsets) >> U64(32)
    out[has_words] = mins
    return out


def simhash_fingerprints(texts: list[str], params: SimHashParams) -> np.ndarray:
    """(len(texts),) uint64 SimHash fingerprints over word n-grams, each occurrence weighing 1.

    Bit i is set when more than half the n-grams' hashes have bit i set. A text without words gets 0.
    """
    out = np.zeros(len(texts), dtype=U64)
    shingles, per_doc = _shingles(*_word_hashes(texts), params.ngram)
    if not shingles.size:
        return out
    has_words = per_doc > 0
    offsets = (np.cumsum(per_doc) - per_doc)[has_words]
    ones = np.empty((len(offsets), 64), dtype=np.int64)
    bit = np.empty_like(shingles)
    for i in range(64):  # one bit at a time over the whole batch: contiguous 1-D passes are the fastest
        np.right_shift(shingles, U64(i), out=bit)
        bit &= U64(1)
        ones[:, i] = np.add.reduceat(bit, offsets)
    majority = ones * 2 > per_doc[has_words, None]
    out[has_words] = np.packbits(majority, axis=1, bitorder="little").view("<u8")[:, 0]
    return out
