"""Throughput of the clean job's near-duplicate detection against a straightforward datasketch loop.

A generated corpus (random sentences over a 5,000-word vocabulary, 100–300 words per document)
with planted near duplicates (a sentence deleted or inserted, up to 8 words replaced) is
deduplicated by:

- ours: `engine.cleaning.near_dup.near_duplicates` (MinHash signatures in a process pool, one
  worker per core, the LSH index built in order in this process), and the same in one process;
- datasketch: for each document, `MinHash.update_batch` over its word 5-gram shingles, then
  `MinHashLSH.query`, and `insert` when nothing is found, at the same threshold and permutations:
  with datasketch's default band layout (equal false-positive/negative weights), and with ours
  (weights 0.1/0.9, which our index can afford because it verifies its candidates).

Both use `near_dup.words` to split words, so they hash the same shingle sets. Recall and precision
are measured against exact 5-gram Jaccard (brute force over the pairs sharing at least one
5-gram), as in tests/engine/cleaning/test_near_dup.py: recall = share of pairs with Jaccard ≥ 0.9 of which
at most one document survives; precision = share of reported (document, earlier document) pairs
with Jaccard ≥ threshold − 0.1 (datasketch does not verify its candidates, so it is credited with
the best of them). Rounds are interleaved and medians reported; prints one JSON line. Target: ours
≥ 2× datasketch's MB/s at equal or better recall. Also: bytes per document of the streaming
indexes (memory_bytes(), and the tracemalloc growth while building them).

    .venv/bin/python bench/clean_throughput.py [--documents 12000] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import string
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.cleaning.dedup_index import MinHashLSHIndex, SimHashIndex, near_duplicates  # noqa: E402
from engine.cleaning.near_dup import (  # noqa: E402
    FALSE_NEGATIVE_WEIGHT, FALSE_POSITIVE_WEIGHT, MinHashParams, SimHashParams, minhash_signatures,
    simhash_fingerprints, words,
)

NGRAM, THRESHOLD, PERMUTATIONS = 5, 0.8, 128
OUR_WEIGHTS = (FALSE_POSITIVE_WEIGHT, FALSE_NEGATIVE_WEIGHT)


# ---- corpus ----------------------------------------------------------------------------------------

def planted_corpus(originals: int, variants: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    vocab = sorted({"".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(5200)})[:5000]

    def sentence() -> str:
        chosen = rng.choices(vocab, k=rng.randint(6, 18))
        return " ".join([chosen[0].capitalize(), *chosen[1:]]) + rng.choice(".!?")

    def document() -> list[str]:
        target, sentences = rng.randint(100, 300), []
        while sum(len(s.split()) for s in sentences) < target:
            sentences.append(sentence())
        return sentences

    def variant(sentences: list[str]) -> str:
        sentences = list(sentences)
        edit = rng.random()
        if edit < 0.25:
            del sentences[rng.randrange(len(sentences))]
        elif edit < 0.5:
            sentences.insert(rng.randrange(len(sentences) + 1), sentence())
        tokens = " ".join(sentences).split(" ")
        for _ in range(rng.randint(0, 8)):
            tokens[rng.randrange(len(tokens))] = rng.choice(vocab)
        return " ".join(tokens)

    documents = [document() for _ in range(originals)]
    texts = [" ".join(d) for d in documents] + [variant(rng.choice(documents)) for _ in range(variants)]
    rng.shuffle(texts)
    return texts


def true_jaccard(texts: list[str], n: int) -> dict[tuple[int, int], float]:
    """Exact n-gram Jaccard of every pair of documents sharing an n-gram (the others have 0).

    An n-gram is coded exactly as an integer in base (distinct words + 1), so the sets are numpy
    arrays; a pair's intersection is the number of codes the two documents share.
    """
    ids: dict[str, int] = {}
    doc_words = [[ids.setdefault(w, len(ids) + 1) for w in words(t)] for t in texts]
    base = len(ids) + 1
    if base ** n >= 2 ** 63:
        raise ValueError(f"{len(ids)} distinct words are too many to code {n}-grams exactly in 64 bits")
    sets = []
    for w in doc_words:
        w = np.array(w + [0] * max(0, n - len(w)) if w else [], dtype=np.int64)
        windows = max(len(w) - n + 1, 0)
        codes = sum(w[k:k + windows] * base ** (n - 1 - k) for k in range(n)) if windows else np.empty(0, np.int64)
        sets.append(np.unique(codes))
    codes = np.concatenate(sets)
    owners = np.repeat(np.arange(len(texts)), [len(s) for s in sets])
    order = np.argsort(codes, kind="stable")
    codes, owners = codes[order], owners[order]
    shared = np.flatnonzero(codes[1:] == codes[:-1])  # positions whose code repeats the previous one
    group_starts = np.unique(np.searchsorted(codes, codes[shared]))
    intersections: Counter[tuple[int, int]] = Counter()
    for start in group_starts.tolist():
        end = np.searchsorted(codes, codes[start], side="right")
        members = owners[start:end].tolist()
        intersections.update((a, b) for i, a in enumerate(members) for b in members[i + 1:])
    return {(a, b): shared_count / (len(sets[a]) + len(sets[b]) - shared_count)
            for (a, b), shared_count in intersections.items()}


def quality(removed: list[tuple[int, int, float]], similarities: dict[tuple[int, int], float],
            threshold: float) -> tuple[float, float]:
    gone = {i for i, _, _ in removed}
    close = [pair for pair, s in similarities.items() if s >= 0.9]
    recall = sum(i in gone or j in gone for i, j in close) / len(close)
    correct = sum(similarities.get((min(i, j), max(i, j)), 0.0) >= threshold - 0.1 for i, j, _ in removed)
    return recall, correct / max(len(removed), 1)


# ---- the two near-dedup implementations ----------------------------------------------------------

def datasketch_near_duplicates(texts: list[str], weights: tuple[float, float] = (0.5, 0.5)
                               ) -> list[tuple[int, list[int]]]:
    """The loop a careful person writes with datasketch: (document, its candidates) for each removed."""
    from datasketch import MinHash, MinHashLSH
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=PERMUTATIONS, weights=weights)
    removed = []
    for key, text in enumerate(texts):
        w = words(text)
        shingles = [" ".join(w[i:i + NGRAM]) for i in range(max(len(w) - NGRAM + 1, 1))] if w else []
        m = MinHash(num_perm=PERMUTATIONS)
        m.update_batch([s.encode() for s in shingles])
        found = lsh.query(m)
        if found:
            removed.append((key, found))
        else:
            lsh.insert(key, m)
    return removed


def credited(removed: list[tuple[int, list[int]]], similarities: dict[tuple[int, int], float]
             ) -> list[tuple[int, int, float]]:
    """datasketch returns candidates unverified: credit each removal with its best candidate."""
    def best(key: int, found: list[int]) -> int:
        return max(found, key=lambda c: similarities.get((min(c, key), max(c, key)), 0.0))
    return [(key, best(key, found), 0.0) for key, found in removed]


def timed(function, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def index_bytes_per_document(texts: list[str]) -> dict:
    """memory_bytes() of each streaming index over the whole corpus, against tracemalloc's count of
    what building it allocated (signatures precomputed, so only the index is traced)."""
    out = {}
    for name, params, index_type, compute in (
            ("minhash", MinHashParams(ngram=NGRAM, threshold=THRESHOLD, permutations=PERMUTATIONS),
             MinHashLSHIndex, minhash_signatures),
            ("simhash", SimHashParams(), SimHashIndex, simhash_fingerprints)):
        signatures = compute(texts, params)
        tracemalloc.start()
        index = index_type(params)
        for key, signature in enumerate(signatures):
            index.add(key, signature)
        traced = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out[f"{name}_index_documents"] = len(index)
        out[f"{name}_index_bytes_per_doc"] = round(index.memory_bytes() / len(index))
        out[f"{name}_index_traced_bytes_per_doc"] = round(traced / len(index))
    return out


def near_dedup_figures(texts: list[str], rounds: int) -> dict:
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    started = time.perf_counter()
    similarities = true_jaccard(texts, NGRAM)
    reference_s = time.perf_counter() - started
    params = MinHashParams(ngram=NGRAM, threshold=THRESHOLD, permutations=PERMUTATIONS)
    seconds: dict[str, list[float]] = {"ours": [], "ours_1_worker": [], "ours_simhash": [], "datasketch": [],
                                       "datasketch_our_bands": []}
    for _ in range(rounds):
        t, ours = timed(near_duplicates, texts, params, 0)
        seconds["ours"].append(t)
        seconds["ours_1_worker"].append(timed(near_duplicates, texts, params, 1)[0])
        seconds["ours_simhash"].append(timed(near_duplicates, texts, SimHashParams(), 0)[0])
        t, theirs = timed(datasketch_near_duplicates, texts)
        seconds["datasketch"].append(t)
        t, theirs_our_bands = timed(datasketch_near_duplicates, texts, OUR_WEIGHTS)
        seconds["datasketch_our_bands"].append(t)
    theirs, theirs_our_bands = credited(theirs, similarities), credited(theirs_our_bands, similarities)
    ours_recall, ours_precision = quality(ours, similarities, THRESHOLD)
    their_recall, their_precision = quality(theirs, similarities, THRESHOLD)
    our_bands_recall, our_bands_precision = quality(theirs_our_bands, similarities, THRESHOLD)
    mb_per_s = {name: megabytes / statistics.median(runs) for name, runs in seconds.items()}
    bands, rows = params.lsh_shape()
    return {
        "documents": len(texts), "megabytes": round(megabytes, 2), "cores": len(os.sched_getaffinity(0)),
        "ngram": NGRAM, "threshold": THRESHOLD, "permutations": PERMUTATIONS, "bands": bands, "rows": rows,
        "rounds": rounds, "pairs_jaccard_ge_0.9": sum(s >= 0.9 for s in similarities.values()),
        "reference_s": round(reference_s, 2),
        **{f"{name}_mb_per_s": round(value, 2) for name, value in mb_per_s.items()},
        **{f"{name}_runs_s": [round(t, 2) for t in runs] for name, runs in seconds.items()},
        "speedup": round(mb_per_s["ours"] / mb_per_s["datasketch"], 2),
        "speedup_1_worker": round(mb_per_s["ours_1_worker"] / mb_per_s["datasketch"], 2),
        "ours_removed": len(ours), "datasketch_removed": len(theirs),
        "ours_recall": round(ours_recall, 4), "ours_precision": round(ours_precision, 4),
        "datasketch_recall": round(their_recall, 4), "datasketch_precision": round(their_precision, 4),
        "datasketch_our_bands_removed": len(theirs_our_bands),
        "datasketch_our_bands_recall": round(our_bands_recall, 4),
        "datasketch_our_bands_precision": round(our_bands_precision, 4),
        **index_bytes_per_document(texts),
        "target_speedup": 2.0,
    }


# ---- the whole pipeline ---------------------------------------------------------------------------

def english_corpus(path: Path, documents: int, seed: int) -> float:
    """JSONL of documents made of sentences drawn from the standard library's docstrings (English
    prose that passes the quality rules, unlike random words), with one planted near duplicate in
    twenty. Returns its size in MB."""
    from engine.data.builtin import python_docs_documents

    pool = [s.strip() + "." for d in python_docs_documents() for s in d["text"].replace("\n", " ").split(". ")
            if len(s.split()) >= 6]
    rng = random.Random(seed)
    written = []
    with path.open("w", encoding="utf-8") as f:
        for i in range(documents):
            if written and rng.random() < 0.05:
                words = rng.choice(written).split()
                words[rng.randrange(len(words))] = rng.choice(pool).split()[0]
                text = " ".join(words)
            else:
                text = " ".join(rng.choices(pool, k=rng.randint(8, 30)))
                if len(written) < 2000:
                    written.append(text)
            f.write(json.dumps({"text": text}) + "\n")
    return path.stat().st_size / 1e6


def run_clean_job(workspace: Path, corpus: Path, dedup: bool) -> dict:
    """Run the real engine on `corpus`; MB/s from its report, and the peak memory of the engine and
    its workers, sampled every 50 ms."""
    import subprocess

    import psutil
    import yaml

    spec = {"kind": "clean", "name": "bench", "input": {"sources": [str(corpus)]},
            "exact_dedup": {"enabled": dedup}, "near_dedup": {"enabled": dedup}}
    spec_path = workspace / f"clean-{corpus.stem}-{dedup}.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    before = set((workspace / "runs").glob("*")) if (workspace / "runs").exists() else set()
    process = psutil.Popen([sys.executable, "-m", "engine.cli", "--workspace", str(workspace), "run", str(spec_path),
                            "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=dict(os.environ, HF_HUB_OFFLINE="1"))
    peak = 0
    while process.poll() is None:
        try:
            tree = [process, *process.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.05)
    assert process.returncode == 0, f"the clean run failed ({process.returncode})"
    run_dir = next(iter(set((workspace / "runs").glob("*")) - before))
    report = json.loads((run_dir / "output" / "report.json").read_text())
    return {"mb_per_s": report["mb_per_s"], "seconds": report["seconds"], "peak_rss_mb": round(peak / 2**20, 1),
            "documents": report["input"]["documents"], "kept": report["output"]["documents"],
            "index_bytes_per_document": report["near_dedup"]["bytes_per_document"] if dedup else 0}


def pipeline_figures(small_documents: int) -> dict:
    """The whole clean job (default steps) on an English corpus and on one four times larger: the
    throughput, and whether memory stays flat (no dedup) or grows only by the dedup indexes."""
    import tempfile

    figures: dict = {}
    with tempfile.TemporaryDirectory(prefix="clean-bench-") as tmp:
        workspace = Path(tmp)
        for label, documents in (("1x", small_documents), ("4x", 4 * small_documents)):
            corpus = workspace / f"corpus-{label}.jsonl"
            figures[f"pipeline_{label}_megabytes"] = round(english_corpus(corpus, documents, seed=len(label) + documents), 1)
            for dedup in (False, True):
                result = run_clean_job(workspace, corpus, dedup)
                name = f"pipeline_{label}_{'dedup' if dedup else 'no_dedup'}"
                figures.update({f"{name}_{key}": value for key, value in result.items()})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=12_000,
                        help="original documents; 20%% more are planted variants")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 documents, one round")
    parser.add_argument("--pipeline-documents", type=int, default=8_000,
                        help="documents of the whole-pipeline corpus (the large one has four times as many)")
    args = parser.parse_args()
    documents, rounds = (2_000, 1) if args.quick else (args.documents, args.rounds)
    texts = planted_corpus(documents, documents // 5)
    figures = {"bench": "clean_throughput"}
    figures.update(near_dedup_figures(texts, rounds))
    figures.update(pipeline_figures(1_000 if args.quick else args.pipeline_documents))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
