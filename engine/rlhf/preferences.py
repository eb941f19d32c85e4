"""Preference pairs for the reward and DPO jobs: from labeling queues (`queue:NAME`) or preference
files, as conversations, split into train and held-out pairs by prompt.

Light (no torch): the labeling package reads the files and the store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import DataError

QUEUE_PREFIX = "queue:"


@dataclass(frozen=True)
class Pair:
    """One preference: the conversation up to the answer, and the better and worse answers (assistant turns)."""

    prompt: list[dict]
    chosen: list[dict]
    rejected: list[dict]
    where: str  # "queue reverse, item 12" or "prefs.jsonl, line 4"


@dataclass
class LoadedPairs:
    train: list[Pair]
    held_out: list[Pair]
    notes: list[str] = field(default_factory=list)  # what was left out, and why (for the run's log)


def load_pairs(sources: list[str], workspace: Path | None, eval_fraction: float, seed: int) -> LoadedPairs:
    """Every pair of every source; pairs of one prompt stay on one side of the split (no leakage)."""
    pairs: list[Pair] = []
    notes: list[str] = []
    for source in sources:
        found, said = _pairs_of(source, workspace)
        pairs += found
        notes += said
    if not pairs:
        raise DataError(f"No preference pairs in {', '.join(sources)}.",
                        "Label some items of the queue (or check the file's format); ties, both-bad, skips and "
                        "items without a majority give no pair.")
    held_out, train = [], []
    for pair in pairs:
        (held_out if _held_out(pair.prompt, eval_fraction, seed) else train).append(pair)
    if not train:
        raise DataError(f"All {len(pairs)} pairs fell in the held-out split (data.eval_fraction {eval_fraction}).",
                        "Lower data.eval_fraction or add pairs.")
    return LoadedPairs(train=train, held_out=held_out, notes=notes)


def _pairs_of(source: str, workspace: Path | None) -> tuple[list[Pair], list[str]]:
    if source.startswith(QUEUE_PREFIX):
        return _queue_pairs(source[len(QUEUE_PREFIX):], workspace)
    from engine.labeling.records import RecordError, read_records

    path = Path(source).expanduser()
    try:
        read = read_records(path)
    except (OSError, RecordError, ValueError) as e:
        raise DataError(f"Cannot read the preference file {path}: {e}",
                        "Give a TRL, HH-RLHF or LLaMA-Factory preference file, or queue:NAME.") from e
    notes = [f"{p.where}: {p.message}" for p in read.problems]
    return [Pair(r.prompt_messages, r.chosen, r.rejected, r.where) for r in read.records], notes


def _queue_pairs(name: str, workspace: Path | None) -> tuple[list[Pair], list[str]]:
    from engine.labeling.formats import candidate_messages, preference_pairs
    from engine.labeling.store import LabelStore, LabelStoreError

    store_path = (workspace or Path(".")) / "store.db"
    if not store_path.exists():
        raise DataError(f"queue:{name}: there is no label store at {store_path}.",
                        "Label in the studio's Label page (or `studio-engine labels …`) in this workspace first.")
    try:
        result = preference_pairs(LabelStore(store_path), name)
    except LabelStoreError as e:
        raise DataError(f"queue:{name}: {e}", "Use the name of a labeling queue of this workspace.") from e
    left_out = {"ties": result.ties, "both bad": result.both_bad, "without a majority": result.conflicts,
                "unlabeled": result.unlabeled, "skipped": result.skipped}
    notes = [f"queue {name}: {count} item(s) {why} give no pair" for why, count in left_out.items() if count]
    pairs = [Pair(p.prompt_messages, candidate_messages(p.chosen), candidate_messages(p.rejected),
                  f"queue {name}, item {p.item_id}") for p in result.pairs]
    return pairs, notes


def _held_out(prompt: list[dict], fraction: float, seed: int) -> bool:
    if fraction <= 0:
        return False
    text = "\x00".join(f"{m.get('role')}:{m.get('content')}" for m in prompt)
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction
