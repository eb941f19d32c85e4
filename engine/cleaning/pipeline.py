"""The cleaning pipeline: per-document steps in worker processes, deduplication here, in input order.

Per-document work (repair, normalise, filter, redact, and the hashing that deduplication needs)
is independent from one document to the next, so batches of documents go to a process pool, one
process per core. Deduplication is a judgement against everything seen before, so it runs in this
process, in reading order: the first of a set of duplicates is kept, whichever worker was faster.
At most `2 × workers` batches are in flight, so memory stays bounded however large the corpus; the
duplicate indexes are the only state that grows (see docs/cleaning.md for their size per document).
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from engine.cleaning.dedup_index import MinHashLSHIndex, SimHashIndex
from engine.cleaning.near_dup import MinHashParams, SimHashParams, minhash_signatures, simhash_fingerprints
from engine.cleaning.reader import Document
from engine.cleaning.language import Language
from engine.cleaning.normalize import Normalize
from engine.cleaning.pii import Pii
from engine.cleaning.quality import Quality
from engine.cleaning.repair import Repair
from engine.cleaning.steps import StepResult
from engine.specs.clean import CleanSpec


STEP_CLASSES = {"repair": Repair, "normalize": Normalize, "quality": Quality, "language": Language, "pii": Pii}


def build_steps(spec: CleanSpec) -> list[tuple[str, Callable[[str], StepResult]]]:
    """The enabled per-document steps in spec.order, each a picklable callable (text -> StepResult)."""
    return [(name, STEP_CLASSES[name](getattr(spec, name))) for name in spec.document_steps()]


@dataclass
class Outcome:
    """What happened to one document."""
    seq: int                            # reading order, 0-based
    text: str | None                    # the text written, None when removed
    step: str | None = None             # the step that removed it
    rule: str | None = None
    reason: str | None = None
    modified: list[str] = field(default_factory=list)  # steps that changed the text
    changes: dict[str, int] = field(default_factory=dict)
    duplicate_of: int | None = None     # seq of the kept document it duplicates
    similarity: float | None = None

    @property
    def fate(self) -> str:
        return "removed" if self.text is None else ("modified" if self.modified else "kept")


def dedup_steps(spec: CleanSpec) -> list[str]:
    return [name for name in ("exact_dedup", "near_dedup") if getattr(spec, name).enabled]


def near_params(spec: CleanSpec) -> MinHashParams | SimHashParams:
    near = spec.near_dedup
    if near.method == "simhash":
        return SimHashParams(ngram=near.ngram, max_hamming=near.max_hamming)
    return MinHashParams(ngram=near.ngram, permutations=near.permutations, threshold=near.threshold,
                         bands=near.bands, rows=near.rows, seed=spec.seed)


class DocumentWorker:
    """Runs the per-document steps on a batch of texts and hashes what survives for deduplication."""

    def __init__(self, spec: CleanSpec):
        self.steps = build_steps(spec)
        self.exact = spec.exact_dedup if spec.exact_dedup.enabled else None
        self.near = near_params(spec) if spec.near_dedup.enabled else None

    def __call__(self, texts: list[str]) -> tuple[list[Outcome], np.ndarray | None]:
        """Outcomes (seq unset), plus near-dup signatures of the surviving texts in order."""
        outcomes = [self._one(text) for text in texts]
        survivors = [o.text for o in outcomes if o.text is not None]
        signatures = None
        if self.near is not None and survivors:
            signatures = (simhash_fingerprints(survivors, self.near) if isinstance(self.near, SimHashParams)
                          else minhash_signatures(survivors, self.near))
        return outcomes, signatures

    def _one(self, text: str) -> Outcome:
        outcome = Outcome(seq=-1, text=text)
        for name, step in self.steps:
            result = step(outcome.text)
            for key, n in result.changes.items():
                outcome.changes[key] = outcome.changes.get(key, 0) + n
            if result.text is None:
                outcome.text, outcome.step, outcome.rule, outcome.reason = None, name, result.rule, result.reason
                return outcome
            if result.text != outcome.text:
                outcome.modified.append(name)
                outcome.text = result.text
        if self.exact is not None:
            outcome.changes["_exact_key"] = exact_key(outcome.text, self.exact.ignore_case_and_spacing)
        return outcome


def exact_key(text: str, ignore_case_and_spacing: bool) -> int:
    if ignore_case_and_spacing:
        text = " ".join(text.lower().split())
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


class Deduplicator:
    """Exact then near deduplication, in reading order."""

    def __init__(self, spec: CleanSpec):
        self.spec = spec
        self.exact: dict[int, int] | None = {} if spec.exact_dedup.enabled else None  # key -> seq kept
        self.near = None
        if spec.near_dedup.enabled:
            params = near_params(spec)
            self.near = SimHashIndex(params) if isinstance(params, SimHashParams) else MinHashLSHIndex(params)

    def judge(self, outcome: Outcome, signature: np.ndarray | None) -> None:
        key = outcome.changes.pop("_exact_key", None)
        if outcome.text is None:
            return
        if self.exact is not None and key is not None:
            first = self.exact.setdefault(key, outcome.seq)
            if first != outcome.seq:
                self._remove(outcome, "exact_dedup", "exact_dedup", first, 1.0,
                             "same text as an earlier document" + (
                                 " (ignoring case and spacing)" if self.spec.exact_dedup.ignore_case_and_spacing else ""))
                return
        if self.near is not None and signature is not None:
            match = self.near.add(outcome.seq, signature)
            if match is not None:
                first, similarity = match
                near = self.spec.near_dedup
                measure = (f"estimated Jaccard similarity {similarity:.2f} ≥ {near.threshold} over word {near.ngram}-grams"
                           if near.method == "minhash" else
                           f"SimHash fingerprints {round((1 - similarity) * 64)} bits apart (≤ {near.max_hamming})")
                self._remove(outcome, "near_dedup", f"near_dedup.{near.method}", first, similarity,
                             f"near duplicate of an earlier document: {measure}")

    def index_bytes(self) -> int:
        exact = 0
        if self.exact is not None:  # the dict's table, plus a 64-bit key int (36 B) and a position int (28 B) per entry
            exact = sys.getsizeof(self.exact) + len(self.exact) * 64
        return exact + (self.near.memory_bytes() if self.near is not None else 0)

    @staticmethod
    def _remove(outcome: Outcome, step: str, rule: str, first: int, similarity: float, reason: str) -> None:
        outcome.text, outcome.step, outcome.rule, outcome.reason = None, step, rule, reason
        outcome.duplicate_of, outcome.similarity = first, float(similarity)


def resolve_workers(requested: int) -> int:
    """`requested`, or 0 = one per CPU core this process may use."""
    if requested:
        return requested
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class Pipeline:
    """Feed Documents, get (Document, Outcome) pairs back in reading order."""

    def __init__(self, spec: CleanSpec, workers: int | None = None):
        self.spec = spec
        self.workers = resolve_workers(spec.workers) if workers is None else workers
        self.dedup = Deduplicator(spec)

    def run(self, documents: Iterable[Document]) -> Iterator[tuple[Document, Outcome]]:
        batches = _batches(documents, self.spec.batch_documents)
        seq = 0
        if self.workers <= 1:
            worker = DocumentWorker(self.spec)
            for batch in batches:
                yield from self._judge(batch, *worker([d.text for d in batch]), seq)
                seq += len(batch)
            return
        context = multiprocessing.get_context("spawn")  # fork is unsafe in a process with threads
        with context.Pool(self.workers, initializer=_init_worker,
                          initargs=(self.spec.model_dump(mode="json"),)) as pool:
            pending: deque = deque()
            for batch in batches:
                pending.append((batch, pool.apply_async(_work, ([d.text for d in batch],))))
                if len(pending) >= 2 * self.workers:
                    done, result = pending.popleft()
                    yield from self._judge(done, *result.get(), seq)
                    seq += len(done)
            while pending:
                done, result = pending.popleft()
                yield from self._judge(done, *result.get(), seq)
                seq += len(done)

    def _judge(self, batch: list[Document], outcomes: list[Outcome], signatures: np.ndarray | None,
               first_seq: int) -> Iterator[tuple[Document, Outcome]]:
        row = 0
        for i, (document, outcome) in enumerate(zip(batch, outcomes)):
            outcome.seq = first_seq + i
            for key, n in document.repairs.items():
                outcome.changes[key] = outcome.changes.get(key, 0) + n
            signature = None
            if outcome.text is not None and signatures is not None:
                signature = signatures[row]
                row += 1
            self.dedup.judge(outcome, signature)
            yield document, outcome


def _batches(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    batch: list[Document] = []
    for document in documents:
        batch.append(document)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


_worker: DocumentWorker | None = None


def _init_worker(spec_data: dict) -> None:
    global _worker
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C and cancel are the parent's to handle
    _worker = DocumentWorker(CleanSpec.model_validate(spec_data))


def _work(texts: list[str]) -> tuple[list[Outcome], np.ndarray | None]:
    return _worker(texts)
