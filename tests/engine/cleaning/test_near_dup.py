"""Near-duplicate detection (engine/cleaning/near_dup.py), against brute-force Jaccard on planted duplicates."""

from __future__ import annotations

import multiprocessing
import random
import string
from itertools import combinations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cleaning.dedup_index import MinHashLSHIndex, SimHashIndex, near_duplicates
from engine.cleaning.near_dup import (
    MinHashParams,
    SimHashParams,
    minhash_signatures,
    optimal_bands_rows,
    shingle_hashes,
    simhash_fingerprints,
    words,
)

# ---- a corpus with planted near duplicates, and the exact answer -------------------------------


def vocabulary(rng: random.Random, size: int) -> list[str]:
    found: set[str] = set()
    while len(found) < size:
        found.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))))
    return sorted(found)


def sentence(rng: random.Random, vocab: list[str]) -> str:
    chosen = rng.choices(vocab, k=rng.randint(6, 18))
    return " ".join([chosen[0].capitalize(), *chosen[1:]]) + rng.choice(".!?")


def document(rng: random.Random, vocab: list[str], low: int, high: int) -> list[str]:
    target, sentences = rng.randint(low, high), []
    while sum(len(s.split()) for s in sentences) < target:
        sentences.append(sentence(rng, vocab))
    return sentences


def variant(rng: random.Random, vocab: list[str], sentences: list[str], max_substitutions: int) -> str:
    """A sentence deleted or inserted (half the time), then up to `max_substitutions` words replaced."""
    sentences = list(sentences)
    edit = rng.random()
    if edit < 0.25:
        del sentences[rng.randrange(len(sentences))]
    elif edit < 0.5:
        sentences.insert(rng.randrange(len(sentences) + 1), sentence(rng, vocab))
    tokens = " ".join(sentences).split(" ")
    for _ in range(rng.randint(0, max_substitutions)):
        tokens[rng.randrange(len(tokens))] = rng.choice(vocab)
    return " ".join(tokens)


def planted_corpus(seed: int, originals: int, variants: int, low: int = 100, high: int = 300) -> list[str]:
    rng = random.Random(seed)
    vocab = vocabulary(rng, 3000)
    documents = [document(rng, vocab, low, high) for _ in range(originals)]
    texts = [" ".join(d) for d in documents]
    texts += [variant(rng, vocab, rng.choice(documents), 8) for _ in range(variants)]
    rng.shuffle(texts)
    return texts


def shingle_set(text: str, n: int) -> set[tuple[str, ...]]:
    w = words(text)
    if len(w) < n:
        return {tuple(w)} if w else set()
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def true_jaccard(texts: list[str], n: int) -> tuple[dict[tuple[int, int], float], list[set]]:
    """Exact Jaccard of every pair sharing at least one n-gram (all other pairs have 0)."""
    sets = [shingle_set(t, n) for t in texts]
    postings: dict[tuple[str, ...], list[int]] = {}
    for i, s in enumerate(sets):
        for shingle in s:
            postings.setdefault(shingle, []).append(i)
    pairs = {pair for docs in postings.values() for pair in combinations(docs, 2)}
    return {(i, j): len(sets[i] & sets[j]) / len(sets[i] | sets[j]) for i, j in pairs}, sets


@pytest.fixture(scope="module")
def planted():
    texts = planted_corpus(seed=0, originals=2000, variants=400)
    similarities, _ = true_jaccard(texts, 5)
    return texts, similarities


# ---- MinHash LSH ---------------------------------------------------------------------------------


def test_minhash_lsh_finds_planted_near_duplicates(planted):
    """Recall: of the pairs with true 5-gram Jaccard ≥ 0.9, the share where at most one document
    survives (streaming dedup keeps the first of a cluster, so a pair is also resolved when its
    earlier member was itself removed as a duplicate of a third document). Precision: the share
    of reported (document, earlier document) pairs whose true Jaccard is ≥ threshold − 0.1. The
    0.1 tolerance covers the estimate's noise: with 128 permutations its standard deviation at
    J = 0.8 is sqrt(0.8 × 0.2 / 128) ≈ 0.035, so 0.1 is about three of them.
    """
    texts, similarities = planted
    params = MinHashParams(ngram=5, threshold=0.8)
    removed = near_duplicates(texts, params, workers=2)
    gone = {i for i, _, _ in removed}
    close = [pair for pair, s in similarities.items() if s >= 0.9]
    assert len(close) >= 50  # enough pairs for the rates to mean something
    recall = sum(i in gone or j in gone for i, j in close) / len(close)
    precision = sum(similarities.get(tuple(sorted((i, j))), 0.0) >= params.threshold - 0.1
                    for i, j, _ in removed) / len(removed)
    assert recall >= 0.95
    assert precision >= 0.9


def test_a_document_is_reported_only_as_a_duplicate_of_an_earlier_kept_one(planted):
    texts, _ = planted
    removed = near_duplicates(texts, MinHashParams(), workers=1)
    gone = {i for i, _, _ in removed}
    assert removed
    for i, first, similarity in removed:
        assert first < i and first not in gone
        assert 0.8 <= similarity <= 1.0


def test_a_pool_of_workers_finds_what_one_process_finds(planted):
    texts, _ = planted
    sample = texts[:800]
    for params in (MinHashParams(), SimHashParams(max_hamming=6)):
        assert near_duplicates(sample, params, workers=1) == near_duplicates(sample, params, workers=2)


@pytest.mark.parametrize("params", [MinHashParams(), SimHashParams()], ids=["minhash", "simhash"])
def test_add_returns_the_earlier_key_and_does_not_insert(params):
    index = MinHashLSHIndex(params) if isinstance(params, MinHashParams) else SimHashIndex(params)
    compute = minhash_signatures if isinstance(params, MinHashParams) else simhash_fingerprints
    base = " ".join(f"word{i}" for i in range(400))
    texts = [base, "something else entirely, with its own words " * 20, base.upper() + "!", base]
    signatures = compute(texts, params)
    assert index.add(10, signatures[0]) is None
    assert index.add(11, signatures[1]) is None
    assert index.add(12, signatures[2]) == (10, 1.0)  # case and punctuation do not count
    assert index.add(13, signatures[3]) == (10, 1.0)
    assert len(index) == 2
    assert index.memory_bytes() > 0


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_identical_texts_always_match(text):
    for params, index_type, compute in ((MinHashParams(), MinHashLSHIndex, minhash_signatures),
                                        (SimHashParams(), SimHashIndex, simhash_fingerprints)):
        index = index_type(params)
        first, second = compute([text, text], params)
        assert index.add(0, first) is None
        assert index.add(1, second) == (0, 1.0)


def test_short_and_empty_documents():
    params = MinHashParams(ngram=5)
    texts = ["", "hello world", "Hello,   WORLD!", "hello there", "?!", "one two three four five six"]
    signatures = minhash_signatures(texts, params)
    index = MinHashLSHIndex(params)
    results = [index.add(i, s) for i, s in enumerate(signatures)]
    assert results[1] is None
    assert results[2] == (1, 1.0)    # fewer words than ngram: one shingle of all the words
    assert results[3] is None
    assert results[4] == (0, 1.0)    # no words at all: the same (empty) shingle set as ""
    assert results[5] is None
    assert near_duplicates(texts, SimHashParams(), workers=1)[0] == (2, 1, 1.0)
    assert near_duplicates([], params) == []


def test_signature_shape_is_checked():
    index = MinHashLSHIndex(MinHashParams(permutations=64))
    with pytest.raises(ValueError, match="64 values"):
        index.add(0, np.zeros(128, dtype=np.uint32))


# ---- SimHash --------------------------------------------------------------------------------------


def test_simhash_finds_near_exact_copies_of_long_documents():
    """One substituted word in 1,000–1,500 words moves a 64-bit SimHash by 0–3 bits most of the time
    (more now and then: a bit whose n-gram vote was close flips); unrelated documents are ~32 apart."""
    rng = random.Random(1)
    vocab = vocabulary(rng, 3000)
    originals = [" ".join(document(rng, vocab, 1000, 1500)) for _ in range(150)]

    def edited(text: str, substitutions: int) -> str:
        tokens = text.split(" ")
        for _ in range(substitutions):
            tokens[rng.randrange(len(tokens))] = rng.choice(vocab)
        return " ".join(tokens)

    for max_hamming, substitutions, expected in ((3, 1, 0.85), (6, 3, 0.95)):
        copies = [edited(text, substitutions) for text in originals]
        removed = near_duplicates(originals + copies, SimHashParams(ngram=3, max_hamming=max_hamming), workers=1)
        pairs = {(i, first) for i, first, _ in removed}
        assert all(i >= len(originals) for i, _ in pairs), "an original was taken for a copy of another"
        found = sum((len(originals) + k, k) in pairs for k in range(len(originals)))
        assert found / len(originals) >= expected, (max_hamming, substitutions, found)


# ---- determinism and robustness on arbitrary text -------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.text(), st.integers(1, 6))
def test_shingles_follow_the_words(text, ngram):
    hashes = shingle_hashes(text, ngram)
    n_words = len(words(text))
    assert hashes.dtype == np.uint64
    assert len(hashes) == (n_words - ngram + 1 if n_words >= ngram else min(n_words, 1))
    assert np.array_equal(hashes, shingle_hashes(text, ngram))
    # only the words count: case, punctuation and spacing do not
    assert np.array_equal(hashes, shingle_hashes(" ".join(words(text)), ngram))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=6))
def test_a_signature_does_not_depend_on_the_rest_of_the_batch(texts):
    minhash, simhash = MinHashParams(ngram=2, permutations=32), SimHashParams(ngram=2)
    together_m, together_s = minhash_signatures(texts, minhash), simhash_fingerprints(texts, simhash)
    assert together_m.shape == (len(texts), 32) and together_m.dtype == np.uint32
    assert together_s.shape == (len(texts),) and together_s.dtype == np.uint64
    for i, text in enumerate(texts):
        assert np.array_equal(minhash_signatures([text], minhash)[0], together_m[i])
        assert simhash_fingerprints([text], simhash)[0] == together_s[i]


def _signatures_in_child(texts: list[str]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    return (minhash_signatures(texts, MinHashParams(ngram=3, permutations=64, seed=7)),
            simhash_fingerprints(texts, SimHashParams(ngram=3)),
            [shingle_hashes(t, 3) for t in texts])


@pytest.fixture(scope="module")
def spawned_worker():
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        yield pool


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.text(), min_size=1, max_size=5))
def test_signatures_are_the_same_in_a_spawned_process(spawned_worker, texts):
    """A fresh interpreter has another str hash seed; nothing here may depend on it."""
    theirs = spawned_worker.apply(_signatures_in_child, (texts,))
    ours = _signatures_in_child(texts)
    assert np.array_equal(theirs[0], ours[0])
    assert np.array_equal(theirs[1], ours[1])
    assert all(np.array_equal(a, b) for a, b in zip(theirs[2], ours[2]))


# ---- parameters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, message", [
    ({"bands": 8}, "go together"),
    ({"rows": 8}, "go together"),
    ({"bands": 20, "rows": 8}, r"20 × 8 = 160\) exceeds permutations \(128\)"),
    ({"bands": 0, "rows": 8}, "at least 1"),
    ({"threshold": 0.0}, "threshold"),
    ({"permutations": 0}, "permutations"),
    ({"ngram": 0}, "ngram"),
])
def test_invalid_minhash_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MinHashParams(**kwargs)


def test_invalid_simhash_parameters_are_refused():
    with pytest.raises(ValueError, match="max_hamming"):
        SimHashParams(max_hamming=64)
    with pytest.raises(ValueError, match="ngram"):
        SimHashParams(ngram=0)


def test_explicit_bands_and_rows_are_used():
    params = MinHashParams(bands=16, rows=8)
    assert params.lsh_shape() == (16, 8)
    assert MinHashLSHIndex(params).bands == 16


@pytest.mark.parametrize("threshold, permutations", [(0.5, 64), (0.7, 128), (0.8, 128), (0.9, 256)])
def test_chosen_bands_and_rows_match_datasketch_at_the_same_weights(threshold, permutations):
    datasketch_lsh = pytest.importorskip("datasketch.lsh")
    for weights in ((0.1, 0.9), (0.5, 0.5)):
        assert optimal_bands_rows(threshold, permutations, *weights) == datasketch_lsh._optimal_param(
            threshold, permutations, *weights)
    assert MinHashParams(threshold=threshold, permutations=permutations).lsh_shape() == optimal_bands_rows(
        threshold, permutations, 0.1, 0.9)  # verified candidates: the layout leans towards recall
