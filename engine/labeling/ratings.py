"""Arena ratings: a labeling queue's verdicts between different models' answers, as Bradley–Terry or
Elo ratings with bootstrap confidence intervals, overall and per annotator, beside the annotators'
agreement (engine/labeling/agreement.py).

A vote is what one label says about two candidates that come from different models
(`Candidate.model`): the better one wins, and a tie or "both bad" is half a win for each (the usual
reading in arena leaderboards). A ranking label gives a vote for every pair of models it orders,
read as preference exports read it (`formats.pair_opinion`). Skips, and pairs of one model's
answers, are no votes.

- Bradley–Terry: P(a beats b) = p_a / (p_a + p_b), fitted by maximum likelihood with Hunter's MM
  algorithm (2004), shown on the Elo scale: 1000 + 400·log10(p), the geometric mean of p at 1.
  One virtual tie between every two models (half a win each way) keeps a model that never lost,
  or never won, at a finite rating; it pulls ratings towards each other only while votes are few.
- Elo: 1000 to start, updated vote by vote in the order they were given, with K = 32. It depends on
  that order; Bradley–Terry does not, and is the default.

Confidence intervals are percentile bootstraps: the votes are drawn with replacement `bootstrap`
times from a generator seeded with `seed` (each Elo resample is also put in a random order), and the
interval holds the middle `confidence` share of the resampled ratings.

Light on purpose (the studio's Arena tab imports it): the standard library and numpy.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

from engine.labeling.agreement import Agreement, agreement_of
from engine.labeling.formats import pair_opinion
from engine.labeling.store import LabelStore, LabelStoreError, Queue

METHODS = ("bt", "elo")
METHOD_NAMES = {"bt": "Bradley–Terry", "elo": "Elo"}
START = 1000.0
SCALE = 400.0
ELO_K = 32.0


@dataclass(frozen=True)
class ArenaVote:
    """One vote: `a` against `b` (model labels), `score` 1 when a won, 0 when b won, 0.5 for a tie."""

    annotator: str
    a: str
    b: str
    score: float
    label_id: int


@dataclass(frozen=True)
class Rating:
    model: str
    rating: float
    low: float  # the confidence interval's ends
    high: float
    wins: int
    losses: int
    ties: int  # ties and "both bad"
    votes: int

    @property
    def win_rate(self) -> float | None:
        """Wins plus half the ties, per vote."""
        return (self.wins + 0.5 * self.ties) / self.votes if self.votes else None

    def to_json(self) -> dict:
        return {"model": self.model, "rating": round(self.rating, 1), "low": round(self.low, 1),
                "high": round(self.high, 1), "wins": self.wins, "losses": self.losses, "ties": self.ties,
                "votes": self.votes, "win_rate": None if self.win_rate is None else round(self.win_rate, 4)}


@dataclass(frozen=True)
class Ratings:
    """Every model's rating from one set of votes, best first."""

    method: str
    ratings: list[Rating]
    votes: int
    bootstrap: int
    confidence: float

    def to_json(self) -> dict:
        return {"method": self.method, "votes": self.votes, "bootstrap": self.bootstrap,
                "confidence": self.confidence, "ratings": [r.to_json() for r in self.ratings]}


@dataclass(frozen=True)
class ArenaReport:
    """A queue's ratings from every vote and from each annotator's, and how far annotators agree."""

    queue: str
    overall: Ratings
    per_annotator: dict[str, Ratings]
    agreement: Agreement
    same_model_pairs: int  # votes left out: both answers from one model
    unattributed_pairs: int  # left out: an answer without a model name (a preference file's, say)
    models: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"queue": self.queue, "models": self.models, "overall": self.overall.to_json(),
                "per_annotator": {name: r.to_json() for name, r in self.per_annotator.items()},
                "agreement": self.agreement.to_json(), "same_model_pairs": self.same_model_pairs,
                "unattributed_pairs": self.unattributed_pairs}


def arena_votes(store: LabelStore, queue: Queue | str, *, kinds: Sequence[str] | None = None
                ) -> tuple[list[ArenaVote], Counter]:
    """The votes of a queue's active labels (of `kinds` only, when given), in the order they were
    given; and how many candidate pairs were left out, by reason."""
    q = store.queue(queue) if not isinstance(queue, Queue) else queue
    items = {item.id: item for item in store.items(q)}
    votes: list[ArenaVote] = []
    left_out: Counter = Counter()
    for label in store.labels(q):
        if label.verdict == "skip" or (kinds is not None and label.kind not in kinds):
            continue
        item = items[label.item_id]
        for i, j in combinations(range(len(item.candidates)), 2):
            opinion = pair_opinion(label, i, j)
            if opinion is None:
                continue
            a, b = item.candidates[i].model, item.candidates[j].model
            if not a or not b:
                left_out["unattributed"] += 1
                continue
            if a == b:
                left_out["same_model"] += 1
                continue
            score = 0.5 if isinstance(opinion, str) else 1.0 if opinion[0] == i else 0.0
            votes.append(ArenaVote(label.annotator, a, b, score, label.id))
    return votes, left_out


def ratings(votes: Sequence[ArenaVote], *, method: str = "bt", bootstrap: int = 1000, confidence: float = 0.95,
            seed: int = 0, models: Iterable[str] | None = None) -> Ratings:
    """The rating of every model that has votes (and of `models`, which lists them in a fixed order)."""
    if method not in METHODS:
        raise LabelStoreError(f"Rating method must be one of {', '.join(METHODS)}; got {method!r}.")
    if bootstrap < 0:
        raise LabelStoreError(f"Bootstrap resamples must be 0 or more; got {bootstrap}.")
    if not 0 < confidence < 1:
        raise LabelStoreError(f"Confidence is a share between 0 and 1 (0.95 for 95%); got {confidence}.")
    names = list(dict.fromkeys([*(models or []), *(n for v in votes for n in (v.a, v.b))]))
    if not votes or len(names) < 2:
        return Ratings(METHOD_NAMES[method], [], len(votes), bootstrap, confidence)
    index = {name: i for i, name in enumerate(names)}
    a = np.array([index[v.a] for v in votes])
    b = np.array([index[v.b] for v in votes])
    score = np.array([v.score for v in votes])
    fit = _bradley_terry if method == "bt" else _elo
    point = fit(a[None, :], b[None, :], score[None, :], len(names))[0]
    low, high = point.copy(), point.copy()
    if bootstrap:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, len(votes), size=(bootstrap, len(votes)))
        resampled = fit(a[draws], b[draws], score[draws], len(names))
        tail = (1 - confidence) / 2 * 100
        low, high = np.percentile(resampled, [tail, 100 - tail], axis=0)
    tally = {name: Counter() for name in names}
    for v in votes:
        outcome = "tie" if v.score == 0.5 else "a" if v.score == 1.0 else "b"
        tally[v.a]["wins" if outcome == "a" else "losses" if outcome == "b" else "ties"] += 1
        tally[v.b]["wins" if outcome == "b" else "losses" if outcome == "a" else "ties"] += 1
    found = [Rating(name, float(point[i]), float(low[i]), float(high[i]), tally[name]["wins"],
                    tally[name]["losses"], tally[name]["ties"], sum(tally[name].values()))
             for name, i in index.items()]
    return Ratings(METHOD_NAMES[method], sorted(found, key=lambda r: -r.rating), len(votes), bootstrap, confidence)


def arena(store: LabelStore, queue: Queue | str, *, method: str = "bt", bootstrap: int = 1000,
          confidence: float = 0.95, seed: int = 0, kinds: Sequence[str] | None = None) -> ArenaReport:
    """A queue's ratings overall and per annotator (each from their own votes), and agreement."""
    q = store.queue(queue) if not isinstance(queue, Queue) else queue
    votes, left_out = arena_votes(store, q, kinds=kinds)
    models = sorted({name for v in votes for name in (v.a, v.b)})
    settings = {"method": method, "bootstrap": bootstrap, "confidence": confidence, "seed": seed}
    per_annotator = {name: ratings([v for v in votes if v.annotator == name], models=models, **settings)
                     for name in sorted({v.annotator for v in votes})}
    labels = [label for label in store.labels(q) if kinds is None or label.kind in kinds]
    return ArenaReport(q.name, ratings(votes, models=models, **settings), per_annotator, agreement_of(labels),
                       left_out["same_model"], left_out["unattributed"], models)


def _bradley_terry(a: np.ndarray, b: np.ndarray, score: np.ndarray, models: int) -> np.ndarray:
    """Ratings (Elo scale) of each of R vote sets: a, b, score are (R, votes) arrays."""
    runs = a.shape[0]
    cells = models * models
    offset = np.arange(runs)[:, None] * cells
    # wins[r, i, j]: what i took from its votes against j, ties counted half
    wins = (np.bincount((offset + a * models + b).ravel(), weights=score.ravel(), minlength=runs * cells)
            + np.bincount((offset + b * models + a).ravel(), weights=(1 - score).ravel(), minlength=runs * cells)
            ).reshape(runs, models, models)
    wins += 0.5 * (1 - np.eye(models))  # the virtual tie between every two models
    games = wins + wins.transpose(0, 2, 1)
    total = wins.sum(axis=2)
    strength = np.ones((runs, models))
    for _ in range(10_000):
        denominator = (games / (strength[:, :, None] + strength[:, None, :])).sum(axis=2)
        updated = total / denominator
        updated /= np.exp(np.log(updated).mean(axis=1, keepdims=True))
        converged = np.abs(updated - strength).max() < 1e-10
        strength = updated
        if converged:
            break
    return START + SCALE * np.log10(strength)


def _elo(a: np.ndarray, b: np.ndarray, score: np.ndarray, models: int) -> np.ndarray:
    """Online Elo of each of R vote sequences (one row each; resamples come in a random order)."""
    runs, count = a.shape
    rating = np.full((runs, models), START)
    rows = np.arange(runs)
    for k in range(count):
        ra, rb = rating[rows, a[:, k]], rating[rows, b[:, k]]
        change = ELO_K * (score[:, k] - 1 / (1 + 10 ** ((rb - ra) / SCALE)))
        rating[rows, a[:, k]] += change
        rating[rows, b[:, k]] -= change
    return rating
