"""Arena ratings from a queue's votes: Bradley–Terry and Elo against values worked out by hand, a
simulated arena whose true strengths the intervals must cover, and votes read from the real store
(pairs, rankings, ties, skips, one model's own pairs, several annotators)."""

from __future__ import annotations

import math
import random

import pytest

from engine.labeling.ratings import ArenaVote, arena, arena_votes, ratings
from engine.labeling.store import LabelStore, LabelStoreError, Task


def votes_of(*outcomes: tuple[str, str, float], annotator: str = "ann") -> list[ArenaVote]:
    return [ArenaVote(annotator, a, b, score, i) for i, (a, b, score) in enumerate(outcomes)]


def test_bradley_terry_of_two_models_is_the_odds_of_their_wins_with_one_virtual_tie():
    found = ratings(votes_of(("a", "b", 1.0), ("a", "b", 1.0), ("b", "a", 0.0), ("a", "b", 0.0)), bootstrap=0)
    # a took 3 wins + half the virtual tie, b 1 + a half: p_a / p_b = 3.5 / 1.5, centred on 1000
    gap = 400 * math.log10(3.5 / 1.5)
    best, other = found.ratings
    assert (best.model, other.model) == ("a", "b") and found.method == "Bradley–Terry"
    assert best.rating == pytest.approx(1000 + gap / 2) and other.rating == pytest.approx(1000 - gap / 2)
    assert (best.wins, best.losses, best.ties, best.votes, best.win_rate) == (3, 1, 0, 4, 0.75)
    assert best.low == best.rating == best.high  # no resamples, no interval


def test_elo_moves_16_points_on_a_first_win_and_ties_count_half():
    found = ratings(votes_of(("a", "b", 1.0)), method="elo", bootstrap=0)
    assert [(r.model, r.rating) for r in found.ratings] == [("a", 1016.0), ("b", 984.0)]
    tied = ratings(votes_of(("a", "b", 1.0), ("b", "a", 0.5)), method="elo", bootstrap=0)
    expected_b = 1 / (1 + 10 ** ((1016 - 984) / 400))  # b's expected score against a after the first vote
    assert tied.ratings[1].rating == pytest.approx(984 + 32 * (0.5 - expected_b))
    assert tied.ratings[0].ties == 1 and tied.ratings[0].win_rate == 0.75


def test_a_simulated_arena_is_ranked_right_and_its_intervals_cover_the_true_gaps():
    truth = {"strong": 1200.0, "middle": 1000.0, "weak": 850.0}
    rng = random.Random(4)
    votes = []
    for i in range(900):
        a, b = rng.sample(sorted(truth), 2)
        p = 1 / (1 + 10 ** ((truth[b] - truth[a]) / 400))
        votes.append(ArenaVote("ann", a, b, 1.0 if rng.random() < p else 0.0, i))
    found = ratings(votes, bootstrap=500, seed=1)
    assert [r.model for r in found.ratings] == ["strong", "middle", "weak"]
    by = {r.model: r for r in found.ratings}
    for model, rating in by.items():
        assert rating.low < rating.rating < rating.high and rating.high - rating.low < 120
    mean_truth = sum(truth.values()) / 3  # the ratings are centred on 1000, the truth on its own mean
    for model in truth:
        assert by[model].low - 25 < truth[model] - mean_truth + 1000 < by[model].high + 25
    assert ratings(votes, bootstrap=500, seed=1) == found  # seeded: the same intervals again
    elo = ratings(votes, method="elo", bootstrap=200)
    assert [r.model for r in elo.ratings][0] == "strong"


def test_bad_settings_are_refused_and_no_votes_give_no_ratings():
    with pytest.raises(LabelStoreError, match="method must be one of bt, elo"):
        ratings([], method="glicko")
    with pytest.raises(LabelStoreError, match="between 0 and 1"):
        ratings(votes_of(("a", "b", 1.0)), confidence=95)
    assert ratings([]).ratings == []


@pytest.fixture
def arena_queue(tmp_path):
    """A pair queue of two models' answers (and one item of a model against itself), a ranking queue
    of three models' answers."""
    store = LabelStore(tmp_path / "store.db")
    store.create_queue("arena", overlap=1.0)
    store.add_items("arena", [{"prompt": f"q{i}", "candidates": [{"text": f"A{i}", "model": "alpha"},
                                                                  {"text": f"B{i}", "model": "beta"}]}
                              for i in range(3)]
                    + [{"prompt": "q3", "candidates": [{"text": "A3", "model": "alpha"},
                                                       {"text": "A3'", "model": "alpha"}]}])
    store.create_queue("ranked", mode="rank")
    store.add_items("ranked", [{"prompt": "r", "candidates": [{"text": "x", "model": "alpha"},
                                                              {"text": "y", "model": "beta"},
                                                              {"text": "z", "model": "gamma"}]}])
    return store


def test_votes_are_read_in_candidate_terms_whatever_side_the_answers_were_shown_on(arena_queue):
    store = arena_queue
    items = store.items("arena")
    # ann: alpha (shown right) better on q0, beta (shown left) on q1, tie on q2, alpha vs alpha on q3
    store.add_label(Task(items[0], "ann", (1, 0)), "right")
    store.add_label(Task(items[1], "ann", (1, 0)), "left")
    store.add_label(Task(items[2], "ann", (0, 1)), "tie")
    store.add_label(Task(items[3], "ann", (0, 1)), "left")
    # bob agrees on q0, disagrees on q1 (picks alpha), skips q2
    store.add_label(Task(items[0], "bob", (0, 1)), "left")
    store.add_label(Task(items[1], "bob", (0, 1)), "left")
    store.add_label(Task(items[2], "bob", (0, 1)), "skip")

    votes, left_out = arena_votes(store, "arena")
    assert [(v.annotator, v.a, v.b, v.score) for v in votes] == [
        ("ann", "alpha", "beta", 1.0), ("ann", "alpha", "beta", 0.0), ("ann", "alpha", "beta", 0.5),
        ("bob", "alpha", "beta", 1.0), ("bob", "alpha", "beta", 1.0)]
    assert left_out["same_model"] == 1

    report = arena(store, "arena", bootstrap=0)
    assert report.models == ["alpha", "beta"] and report.same_model_pairs == 1
    alpha, beta = report.overall.ratings
    assert (alpha.model, alpha.wins, alpha.losses, alpha.ties) == ("alpha", 3, 1, 1)
    assert alpha.rating == pytest.approx(1000 + 200 * math.log10((3.5 + 0.5) / (1.5 + 0.5)))
    assert set(report.per_annotator) == {"ann", "bob"}
    assert report.per_annotator["bob"].votes == 2 and report.per_annotator["bob"].ratings[0].model == "alpha"
    # ann alone: alpha 1 win, beta 1 win, a tie: level
    assert report.per_annotator["ann"].ratings[0].rating == pytest.approx(1000)
    assert report.agreement.items == 2 and report.agreement.pairs[0].agreed == 1  # q0 agreed, q1 not
    assert report.to_json()["overall"]["ratings"][0]["model"] == "alpha"


def test_a_ranking_gives_a_vote_for_every_pair_of_models_it_orders(arena_queue):
    store = arena_queue
    [item] = store.items("ranked")
    store.add_label(Task(item, "ann", (2, 0, 1)), "rank", ranking=[2, 0, 1])  # gamma > alpha > beta
    votes, _ = arena_votes(store, "ranked")
    assert sorted((v.a, v.b, v.score) for v in votes) == [("alpha", "beta", 1.0), ("alpha", "gamma", 0.0),
                                                         ("beta", "gamma", 0.0)]
    assert [r.model for r in arena(store, "ranked", bootstrap=0).overall.ratings] == ["gamma", "alpha", "beta"]


def test_arena_votes_are_preference_pairs_for_the_reward_and_dpo_kinds(arena_queue, tmp_path):
    from engine.rlhf.preferences import load_pairs

    store = arena_queue
    items = store.items("arena")
    store.add_label(Task(items[0], "ann", (1, 0)), "right")
    store.add_label(Task(items[1], "ann", (0, 1)), "right")
    loaded = load_pairs(["queue:arena"], tmp_path, eval_fraction=0.0, seed=0)
    assert [(p.prompt[-1]["content"], p.chosen[0]["content"], p.rejected[0]["content"]) for p in loaded.train] == [
        ("q0", "A0", "B0"), ("q1", "B1", "A1")]
