"""Agreement between annotators of a labeling queue, and the items they disagree on.

Labels are compared by `Label.preference` (the verdict in candidate terms), so two annotators who
saw the same pair in opposite display orders and picked the same answer agree. Skips are not
verdicts and are left out; ties and "both bad" are verdicts like any other.

Light on purpose (the studio imports it): the standard library only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

from engine.labeling.store import Item, Label, LabelStore, Queue


@dataclass(frozen=True)
class PairAgreement:
    """How often two annotators gave the same verdict on the items both of them labeled."""

    annotator_a: str
    annotator_b: str
    items: int  # labeled by both (skips excluded)
    agreed: int
    percent: float | None  # share of agreeing items, 0..1; None without shared items
    kappa: float | None  # Cohen's kappa; None without shared items or when chance agreement is 1

    def to_json(self) -> dict:
        return {"annotator_a": self.annotator_a, "annotator_b": self.annotator_b, "items": self.items,
                "agreed": self.agreed, "percent": self.percent, "kappa": self.kappa}


@dataclass(frozen=True)
class Agreement:
    """A queue's agreement table: every pair of annotators with shared items, and overall figures."""

    pairs: list[PairAgreement]
    items: int  # items with verdicts from at least two annotators
    comparisons: int  # annotator pairs compared over all those items
    percent: float | None  # pooled over every comparison
    kappa: float | None  # Light's kappa: the mean of the pairwise kappas that are defined

    def to_json(self) -> dict:
        return {"items": self.items, "comparisons": self.comparisons, "percent": self.percent,
                "kappa": self.kappa, "pairs": [p.to_json() for p in self.pairs]}


@dataclass(frozen=True)
class Vote:
    """One annotator's verdict on a conflicting item."""

    annotator: str
    verdict: str  # as given, in display terms (left/right/rank/tie/both_bad)
    preference: str  # in candidate terms ("0>1", "tie", …): what is compared
    comment: str
    kind: str
    label_id: int

    def to_json(self) -> dict:
        return {"annotator": self.annotator, "verdict": self.verdict, "preference": self.preference,
                "readable": readable_preference(self.preference), "comment": self.comment, "kind": self.kind,
                "label_id": self.label_id}


@dataclass(frozen=True)
class Conflict:
    """An item whose annotators do not all give the same verdict."""

    item: Item
    votes: list[Vote] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"item_id": self.item.id, "position": self.item.position, "prompt": self.item.prompt,
                "candidates": [c.to_json() for c in self.item.candidates],
                "votes": [v.to_json() for v in self.votes]}


@dataclass(frozen=True)
class PositionBias:
    """How often the answer shown on the left won a left/right verdict (0.5: no bias)."""

    left_share: float | None  # None before any left/right verdict
    sided: int  # left/right verdicts counted

    def to_json(self) -> dict:
        return {"left_share": self.left_share, "sided_verdicts": self.sided}


def position_bias(labels: Iterable[Label]) -> PositionBias:
    """The left share of people's (and checkers') left/right verdicts.

    Imported labels are left out: they say "left" for a file's chosen answer, which was never
    shown on a side.
    """
    sides = [l.verdict for l in labels if l.verdict in ("left", "right") and l.kind != "import" and l.retracted is None]
    return PositionBias(left_share=sides.count("left") / len(sides) if sides else None, sided=len(sides))


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's kappa of two annotators' verdicts on the same items (a[i] and b[i] judge item i).

    kappa = (p_o - p_e) / (1 - p_e), with p_o the observed agreement and p_e the agreement expected
    by chance from each annotator's own share of every verdict. None when there are no items, or
    when p_e is 1 (both gave one and the same verdict throughout: chance explains everything and
    the ratio is 0/0).
    """
    # Written here rather than taken from scikit-learn: it is one formula, and scikit-learn
    # (with scipy) is far too heavy for the GUI, which imports this module.
    if len(a) != len(b):
        raise ValueError(f"both annotators must judge the same items; got {len(a)} and {len(b)} verdicts")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    count_a, count_b = Counter(a), Counter(b)
    expected = sum(count_a[k] * count_b[k] for k in count_a) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def readable_preference(preference: str) -> str:
    """'1>0' as 'B > A' (candidates lettered in stored order); tie and both_bad as words."""
    if ">" in preference:
        return " > ".join(_letter(int(i)) for i in preference.split(">"))
    return {"tie": "tie", "both_bad": "both bad", "skip": "skip"}.get(preference, preference)


def verdicts_by_item(labels: Iterable[Label]) -> dict[int, dict[str, Label]]:
    """Active non-skip labels grouped by item, then by annotator (one active label each)."""
    grouped: dict[int, dict[str, Label]] = defaultdict(dict)
    for label in labels:
        if label.retracted is None and label.verdict != "skip":
            grouped[label.item_id][label.annotator] = label
    return grouped


def agreement(store: LabelStore, queue: Queue | str, *, kinds: Sequence[str] | None = None) -> Agreement:
    """Percent agreement and Cohen's kappa for every pair of annotators of `queue`, and overall.

    `kinds` keeps only labels of those kinds (human, checker, import); all kinds by default.
    """
    labels = [l for l in store.labels(queue) if kinds is None or l.kind in kinds]
    return agreement_of(labels)


def agreement_of(labels: Iterable[Label]) -> Agreement:
    """The agreement table of a set of labels (see `agreement`)."""
    by_item = verdicts_by_item(labels)
    shared: dict[tuple[str, str], tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    items = 0
    for votes in by_item.values():
        if len(votes) < 2:
            continue
        items += 1
        for x, y in combinations(sorted(votes), 2):
            left, right = shared[(x, y)]
            left.append(votes[x].preference)
            right.append(votes[y].preference)
    pairs = []
    for (x, y), (a, b) in sorted(shared.items()):
        agreed = sum(p == q for p, q in zip(a, b))
        pairs.append(PairAgreement(annotator_a=x, annotator_b=y, items=len(a), agreed=agreed,
                                   percent=agreed / len(a), kappa=cohen_kappa(a, b)))
    comparisons = sum(p.items for p in pairs)
    kappas = [p.kappa for p in pairs if p.kappa is not None]
    return Agreement(pairs=pairs, items=items, comparisons=comparisons,
                     percent=sum(p.agreed for p in pairs) / comparisons if comparisons else None,
                     kappa=sum(kappas) / len(kappas) if kappas else None)


def conflicts(store: LabelStore, queue: Queue | str, *, kinds: Sequence[str] | None = None) -> list[Conflict]:
    """Items (in queue order) whose annotators gave different verdicts, with each verdict and comment."""
    labels = [l for l in store.labels(queue) if kinds is None or l.kind in kinds]
    by_item = verdicts_by_item(labels)
    disputed = {item_id: votes for item_id, votes in by_item.items()
                if len({label.preference for label in votes.values()}) > 1}
    found = [Conflict(item=store.item(item_id), votes=[
        Vote(annotator=l.annotator, verdict=l.verdict, preference=l.preference, comment=l.comment, kind=l.kind,
             label_id=l.id) for l in sorted(votes.values(), key=lambda l: (l.created, l.id))])
        for item_id, votes in disputed.items()]
    return sorted(found, key=lambda c: c.item.position)


def _letter(index: int) -> str:
    return chr(ord("A") + index) if index < 26 else f"#{index + 1}"
