"""The streaming near-duplicate indexes: MinHash LSH (band buckets, candidates verified on the
stored signatures) and SimHash (block permutations, candidates verified by Hamming distance).

They take one signature at a time, in document order, in the main process, and keep the first of
a set of near duplicates; signatures come from engine/cleaning/near_dup.py. The indexes are the
only state of a clean run that grows with the corpus: `memory_bytes()` says by how much.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from functools import partial

import numpy as np

from engine.cleaning.near_dup import (
    U64, MinHashParams, SimHashParams, hash_constants, minhash_signatures, simhash_fingerprints,
)

class _RowStore:
    """Signatures appended one at a time into fixed-size numpy chunks: compact, and never copied to grow."""

    CHUNK = 1024

    def __init__(self, width: int, dtype):
        self._shape = (self.CHUNK, width)
        self._dtype = dtype
        self._chunks: list[np.ndarray] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, row: np.ndarray) -> None:
        if self._count % self.CHUNK == 0:
            self._chunks.append(np.empty(self._shape, dtype=self._dtype))
        self._chunks[-1][self._count % self.CHUNK] = row
        self._count += 1

    def take(self, items: list[int]) -> np.ndarray:
        return np.stack([self._chunks[i // self.CHUNK][i % self.CHUNK] for i in items])

    @property
    def nbytes(self) -> int:
        return sum(chunk.nbytes for chunk in self._chunks)


class _GrowingVector:
    """A 1-D numpy array that doubles when full: 8 bytes a document is cheap to copy, and one array
    lets a lookup gather hundreds of candidates (SimHash on a large index) in one indexing."""

    def __init__(self, dtype):
        self._data = np.empty(1024, dtype=dtype)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, value) -> None:
        if self._count == len(self._data):
            self._data = np.concatenate([self._data, np.empty_like(self._data)])
        self._data[self._count] = value
        self._count += 1

    def take(self, items: list[int]) -> np.ndarray:
        return self._data[items]

    @property
    def nbytes(self) -> int:
        return self._data.nbytes


class _BucketTables:
    """One dict per band (or block): bucket key -> item number, or a list of them once shared."""

    def __init__(self, tables: int):
        self._tables: list[dict[int, int | list[int]]] = [{} for _ in range(tables)]
        self._object_bytes = 0  # keys and lists, which sys.getsizeof(dict) leaves out

    def lookup(self, keys: list[int]) -> tuple[list, list[int]]:
        """Each table's bucket for its key (None where empty), and the items in them, in order."""
        hits = list(map(dict.get, self._tables, keys))
        if hits.count(None) == len(hits):  # the common case: nothing similar seen yet
            return hits, []
        found: set[int] = set()
        for hit in hits:
            if type(hit) is int:
                found.add(hit)
            elif hit is not None:
                found.update(hit)
        return hits, sorted(found)

    def insert(self, keys: list[int], hits: list, item: int) -> None:
        """Add `item` under each key; `hits` is what `lookup(keys)` found, unchanged since."""
        for table, key, hit in zip(self._tables, keys, hits):
            if hit is None:
                table[key] = item
                self._object_bytes += sys.getsizeof(key)
            elif type(hit) is int:
                bucket = table[key] = [hit, item]
                self._object_bytes += sys.getsizeof(bucket)
            else:
                before = sys.getsizeof(hit)
                hit.append(item)
                self._object_bytes += sys.getsizeof(hit) - before

    @property
    def nbytes(self) -> int:
        return sum(sys.getsizeof(table) for table in self._tables) + self._object_bytes


class MinHashLSHIndex:
    """Streaming MinHash LSH: each document is compared with the kept documents it shares a band with."""

    def __init__(self, params: MinHashParams):
        self.params = params
        self.bands, self.rows = params.lsh_shape()
        self._min_agree = math.ceil(params.threshold * params.permutations - 1e-9)
        self._row_weights = hash_constants(f"atelier-band:{params.seed}", self.rows)
        self._buckets = _BucketTables(self.bands)
        # Verification compares the low 16 bits of each value (b-bit minwise hashing): two different
        # minima agree by chance once in 65,536, which moves an estimate by at most 0.00002, and the
        # stored signatures take half the memory.
        self._signatures = _RowStore(params.permutations, np.uint16)
        self._keys = _GrowingVector(np.int64)
        self._item_bytes = 0

    def add(self, key: int, signature: np.ndarray) -> tuple[int, float] | None:
        """If a document added earlier shares a band bucket with this one and their signatures (a row
        of `minhash_signatures`) agree on at least `threshold` of the permutations, return (its key,
        estimated similarity), the most similar (then earliest) of them, without inserting this one;
        else insert this one and return None."""
        signature = np.asarray(signature, dtype=np.uint32)
        if signature.shape != (self.params.permutations,):
            raise ValueError(f"expected a signature of {self.params.permutations} values, got shape {signature.shape}")
        band_keys = self._band_keys(signature)
        hits, candidates = self._buckets.lookup(band_keys)
        if candidates:
            agree = np.count_nonzero(self._signatures.take(candidates) == signature.astype(np.uint16), axis=1)
            best = int(np.argmax(agree))  # the first maximum: the earliest of equally similar documents
            if agree[best] >= self._min_agree:
                return int(self._keys.take([candidates[best]])[0]), float(agree[best]) / self.params.permutations
        item = len(self._signatures)
        self._signatures.append(signature.astype(np.uint16))  # keeps the low 16 bits
        self._keys.append(key)
        self._buckets.insert(band_keys, hits, item)
        self._item_bytes += sys.getsizeof(item)
        return None

    def _band_keys(self, signature: np.ndarray) -> list[int]:
        """A multilinear hash of each band's values: a collision between different bands only adds a
        candidate that verification rejects. The top 60 bits, since Python ints below 2**60 take
        32 bytes rather than 36."""
        bands = signature[:self.bands * self.rows].astype(U64).reshape(self.bands, self.rows)
        return ((bands * self._row_weights).sum(axis=1, dtype=U64) >> U64(4)).tolist()

    def __len__(self) -> int:
        return len(self._signatures)

    def memory_bytes(self) -> int:
        """Approximate size of the index: bucket dicts, their keys and lists, the stored signatures and keys."""
        return self._buckets.nbytes + self._item_bytes + self._signatures.nbytes + self._keys.nbytes


class SimHashIndex:
    """Streaming SimHash index: the 64 bits are split into max_hamming + 1 blocks, and two fingerprints
    within max_hamming bits of each other agree exactly on at least one block (pigeonhole), so each
    block is a bucket key, and candidates sharing a block are verified by Hamming distance.

    Small blocks make large buckets: at max_hamming = 3 the 4 blocks have 16 bits and a lookup meets
    about 4/65,536 of the index; at 15 the 16 blocks have 4 bits and a lookup meets about two thirds
    of it, which makes deduplication quadratic.
    """

    def __init__(self, params: SimHashParams):
        self.params = params
        blocks = params.max_hamming + 1
        edges = [64 * i // blocks for i in range(blocks + 1)]
        self._blocks = [(lo, (1 << (hi - lo)) - 1) for lo, hi in zip(edges, edges[1:])]
        self._buckets = _BucketTables(blocks)
        self._fingerprints = _GrowingVector(U64)
        self._keys = _GrowingVector(np.int64)
        self._item_bytes = 0

    def add(self, key: int, fingerprint: int | np.integer) -> tuple[int, float] | None:
        """If a document added earlier has a fingerprint within max_hamming bits of this one, return
        (its key, 1 - distance / 64), the closest (then earliest) of them, without inserting this
        one; else insert this one and return None."""
        fingerprint = int(fingerprint)
        block_keys = [(fingerprint >> lo) & mask for lo, mask in self._blocks]
        hits, candidates = self._buckets.lookup(block_keys)
        if candidates:
            distances = _popcount(self._fingerprints.take(candidates) ^ U64(fingerprint))
            best = int(np.argmin(distances))
            if distances[best] <= self.params.max_hamming:
                return int(self._keys.take([candidates[best]])[0]), 1.0 - int(distances[best]) / 64
        item = len(self._fingerprints)
        self._fingerprints.append(fingerprint)
        self._keys.append(key)
        self._buckets.insert(block_keys, hits, item)
        self._item_bytes += sys.getsizeof(item)
        return None

    def __len__(self) -> int:
        return len(self._fingerprints)

    def memory_bytes(self) -> int:
        """Approximate size of the index: bucket dicts, their keys and lists, the stored fingerprints and keys."""
        return self._buckets.nbytes + self._item_bytes + self._fingerprints.nbytes + self._keys.nbytes


_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(values: np.ndarray) -> np.ndarray:
    return _BYTE_POPCOUNT[values.astype("<u8").view(np.uint8)].reshape(-1, 8).sum(axis=1)


def _available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def near_duplicates(texts: list[str], params: MinHashParams | SimHashParams,
                    workers: int = 0) -> list[tuple[int, int, float]]:
    """(index, index of the earlier document it duplicates, similarity) for every document removed.

    Signatures are computed in chunks in a pool of `workers` processes (0 = one per available core;
    1 = in this process), and the index is built here, in document order.
    """
    compute = partial(simhash_fingerprints if isinstance(params, SimHashParams) else minhash_signatures,
                      params=params)
    index = SimHashIndex(params) if isinstance(params, SimHashParams) else MinHashLSHIndex(params)
    workers = workers or _available_cores()
    size = max(1, min(1000, -(-len(texts) // (4 * workers))))  # at least 4 chunks per worker, to share the work
    chunks = (texts[i:i + size] for i in range(0, len(texts), size))
    removed: list[tuple[int, int, float]] = []

    def judge(batches) -> None:
        position = 0
        for batch in batches:
            for signature in batch:
                match = index.add(position, signature)
                if match is not None:
                    removed.append((position, *match))
                position += 1

    if workers == 1:
        judge(map(compute, chunks))
    else:
        with multiprocessing.get_context().Pool(workers) as pool:
            judge(pool.imap(compute, chunks))
    return removed
