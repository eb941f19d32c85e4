"""What the label store holds, as plain records: queues, items and their candidate answers, tasks
handed to annotators, labels, and the verdict vocabulary (engine/labeling/store.py keeps them in
SQLite). Imported by the GUI: the standard library only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PAIR_VERDICTS = ("left", "right", "tie", "both_bad", "skip")
RANK_VERDICTS = ("rank", "tie", "both_bad", "skip")
# A single-answer item is judged on its own, good or bad: the unpaired labels KTO trains on.
SINGLE_VERDICTS = ("good", "bad", "skip")
MODES = ("pair", "rank", "single")
# Who gave a label. `checker` labels come from a task's answer checker standing in for a person
# (the demo's RLHF stage); `import` labels came from a preference file.
LABEL_KINDS = ("human", "checker", "import")
CLAIM_SECONDS = 600.0


def verdicts_for(candidates: int) -> tuple[str, ...]:
    """The verdicts an item with this many candidate answers takes."""
    return {1: SINGLE_VERDICTS, 2: PAIR_VERDICTS}.get(candidates, RANK_VERDICTS)


class LabelStoreError(ValueError):
    """A request the store cannot honour, said as a sentence for the user."""


@dataclass(frozen=True)
class Candidate:
    """One answer to an item's prompt, and where it came from (model, seed, …)."""

    text: str
    model: str = ""
    seed: int | None = None
    meta: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        data: dict[str, Any] = {"text": self.text, "model": self.model}
        if self.seed is not None:
            data["seed"] = self.seed
        if self.meta:
            data["meta"] = self.meta
        return data

    @classmethod
    def from_json(cls, data: dict | str) -> Candidate:
        if isinstance(data, str):
            return cls(text=data)
        return cls(text=str(data["text"]), model=str(data.get("model") or ""), seed=data.get("seed"),
                   meta=dict(data.get("meta") or {}))


@dataclass(frozen=True)
class Queue:
    id: int
    name: str
    mode: str
    guidelines: str
    overlap: float
    overlap_annotators: int
    source: str | None
    created: float


@dataclass(frozen=True)
class Item:
    id: int
    queue_id: int
    position: int
    prompt: str
    candidates: tuple[Candidate, ...]
    meta: dict
    required: int


@dataclass(frozen=True)
class Task:
    """An item handed to one annotator, with the order its candidates are shown in (left first)."""

    item: Item
    annotator: str
    shown: tuple[int, ...]

    @property
    def swapped(self) -> bool:
        return list(self.shown) != sorted(self.shown)

    def shown_candidates(self) -> list[Candidate]:
        return [self.item.candidates[i] for i in self.shown]


@dataclass(frozen=True)
class Label:
    id: int
    queue_id: int
    item_id: int
    annotator: str
    kind: str
    verdict: str
    shown: tuple[int, ...]
    swapped: bool
    ranking: tuple[int, ...] | None
    comment: str
    seconds: float | None
    source: str
    created: float
    retracted: float | None

    @property
    def preference(self) -> str:
        """The verdict in candidate terms, comparable across annotators whatever the display order."""
        if self.ranking:
            return ">".join(str(i) for i in self.ranking)
        return self.verdict


@dataclass(frozen=True)
class AddResult:
    added: int
    duplicates: list[int]  # indices (in the given order) of items already in the queue


@dataclass(frozen=True)
class Progress:
    items: int
    done: int  # items with as many labels as they require
    labels: int  # active labels, skips included
    skipped: int
    per_annotator: dict[str, int]
    left_share: float | None  # share of `left` among left/right verdicts: position bias at a glance


def item_key(prompt: str, candidates: Sequence[Candidate]) -> str:
    """Identity of an item in a queue: the prompt and the set of candidate texts (order ignored)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(prompt.encode())
    for text in sorted(c.text for c in candidates):
        digest.update(b"\x00")
        digest.update(text.encode())
    return digest.hexdigest()


def is_overlap(position: int, overlap: float) -> bool:
    """Whether the item at `position` is one of the `overlap` share labeled by several annotators.

    A low-discrepancy sequence spreads overlap items evenly through the queue, so the first hundred
    items already hold their share of them.
    """
    if overlap <= 0:
        return False
    if overlap >= 1:
        return True
    golden = 0.6180339887498949
    return (position * golden) % 1.0 < overlap


def ranking_for(verdict: str, shown: Sequence[int], ranking: Sequence[int] | None) -> list[int] | None:
    """The candidate ranking (best first) a verdict implies, or None for tie/both bad/skip."""
    if verdict == "left":
        return [shown[0], shown[1]]
    if verdict == "right":
        return [shown[1], shown[0]]
    if verdict == "rank":
        if not ranking or sorted(ranking) != sorted(shown):
            raise LabelStoreError(f"A ranking must order every candidate once; got {list(ranking or [])} for {list(shown)}.")
        return list(ranking)
    return None
