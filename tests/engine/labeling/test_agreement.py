"""Agreement between annotators (percent and Cohen's kappa, checked against hand-computed values) and conflicts."""

from __future__ import annotations

import pytest

from engine.labeling.agreement import agreement, cohen_kappa, conflicts, position_bias, readable_preference
from engine.labeling.store import LabelStore, Task

X, Y, T = "0>1", "1>0", "tie"


def test_kappa_matches_a_hand_computed_three_category_table():
    a = [X, X, X, X, X, Y, Y, Y, T, T]
    b = [X, X, X, Y, Y, Y, Y, T, T, X]
    # p_o = 6/10; p_e = (5*4 + 3*4 + 2*2) / 100 = 0.36; kappa = 0.24 / 0.64
    assert cohen_kappa(a, b) == pytest.approx(0.375)


def test_kappa_matches_the_textbook_yes_no_example():
    # 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5, kappa = 0.4
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)


def test_kappa_is_minus_one_for_systematic_disagreement_and_undefined_when_chance_explains_all():
    assert cohen_kappa([X, Y], [Y, X]) == pytest.approx(-1.0)
    # Both always gave the same single verdict: p_e = 1, kappa = 0/0.
    assert cohen_kappa([X, X, X], [X, X, X]) is None
    assert cohen_kappa([], []) is None


def _labeled_queue(tmp_path):
    store = LabelStore(tmp_path / "store.db")
    store.create_queue("q", mode="rank", overlap=1.0)  # rank: takes pairs and a 3-way item
    store.add_items("q", [{"prompt": f"p{i}", "candidates": [f"a{i}", f"b{i}"]} for i in range(4)]
                    + [{"prompt": "rank me", "candidates": ["x", "y", "z"]}])
    return store, store.items("q")


def _label(store, item, who, verdict, shown=(0, 1), **kw):
    return store.add_label(Task(item=item, annotator=who, shown=tuple(shown)), verdict, **kw)


def test_agreement_compares_candidates_not_sides_and_leaves_out_skips(tmp_path):
    store, items = _labeled_queue(tmp_path)
    _label(store, items[0], "alice", "left", (0, 1))
    _label(store, items[0], "bob", "right", (1, 0))  # the same answer, shown on the other side
    _label(store, items[1], "alice", "tie")
    _label(store, items[1], "bob", "tie")
    _label(store, items[2], "alice", "left")
    _label(store, items[2], "bob", "right", comment="B is right")
    _label(store, items[3], "alice", "skip")
    _label(store, items[3], "bob", "left")

    table = agreement(store, "q")
    [pair] = table.pairs
    assert (pair.annotator_a, pair.annotator_b, pair.items, pair.agreed) == ("alice", "bob", 3, 2)
    assert pair.percent == pytest.approx(2 / 3)
    # alice [0>1, tie, 0>1], bob [0>1, tie, 1>0]: p_e = (2*1 + 1*1) / 9, kappa = (2/3 - 1/3) / (2/3)
    assert pair.kappa == pytest.approx(0.5)
    assert (table.items, table.comparisons) == (3, 3)


def test_overall_figures_pool_comparisons_and_average_pairwise_kappas(tmp_path):
    store, items = _labeled_queue(tmp_path)
    for who, verdicts in {"alice": ["left", "tie", "left"], "bob": ["left", "tie", "right"]}.items():
        for item, verdict in zip(items, verdicts):
            _label(store, item, who, verdict)
    _label(store, items[0], "carol", "right")
    _label(store, items[1], "carol", "tie")

    table = agreement(store, "q")
    by_pair = {(p.annotator_a, p.annotator_b): p for p in table.pairs}
    # alice/carol and bob/carol: [0>1, tie] vs [1>0, tie]: p_o 1/2, p_e 1/4, kappa 1/3
    for key in (("alice", "carol"), ("bob", "carol")):
        assert by_pair[key].kappa == pytest.approx(1 / 3)
    assert table.comparisons == 3 + 2 + 2
    assert table.percent == pytest.approx(4 / 7)
    assert table.kappa == pytest.approx((0.5 + 1 / 3 + 1 / 3) / 3)  # Light's kappa


def test_ranking_agreement_ignores_display_order(tmp_path):
    store, items = _labeled_queue(tmp_path)
    rank_item = items[4]
    _label(store, rank_item, "alice", "rank", (2, 0, 1), ranking=[1, 2, 0])
    _label(store, rank_item, "bob", "rank", (0, 1, 2), ranking=[1, 2, 0])
    [pair] = agreement(store, "q").pairs
    assert (pair.agreed, pair.kappa) == (1, None)  # one item, one shared verdict: chance explains it all


def test_conflicts_list_each_annotators_verdict_and_comment_in_queue_order(tmp_path):
    store, items = _labeled_queue(tmp_path)
    _label(store, items[2], "alice", "left", (1, 0), comment="A is wordy")
    _label(store, items[2], "bob", "left", (0, 1), comment="B is wrong")
    _label(store, items[0], "alice", "tie")
    _label(store, items[0], "bob", "both_bad")
    _label(store, items[1], "alice", "left")
    _label(store, items[1], "bob", "right", (1, 0))  # agrees with alice

    found = conflicts(store, "q")
    assert [c.item.id for c in found] == [items[0].id, items[2].id]
    votes = found[1].votes
    assert [(v.annotator, v.verdict, v.preference, v.comment) for v in votes] == [
        ("alice", "left", "1>0", "A is wordy"), ("bob", "left", "0>1", "B is wrong")]
    assert readable_preference(votes[0].preference) == "B > A"
    assert readable_preference("both_bad") == "both bad"


def test_retracted_labels_do_not_count(tmp_path):
    store, items = _labeled_queue(tmp_path)
    _label(store, items[0], "alice", "left")
    _label(store, items[0], "bob", "right")
    assert len(conflicts(store, "q")) == 1
    store.undo_last("q", "bob")
    assert conflicts(store, "q") == [] and agreement(store, "q").pairs == []


def test_position_bias_counts_displayed_verdicts_not_imported_ones(tmp_path):
    store, items = _labeled_queue(tmp_path)
    _label(store, items[0], "alice", "left", (1, 0))
    _label(store, items[1], "alice", "right")
    _label(store, items[2], "alice", "left")
    _label(store, items[3], "import:prefs.jsonl", "left", kind="import", source="import")
    bias = position_bias(store.labels("q"))
    assert (bias.left_share, bias.sided) == (pytest.approx(2 / 3), 3)
