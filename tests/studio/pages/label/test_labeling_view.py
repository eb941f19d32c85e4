"""The labeling view, driven by the keyboard only: verdicts, undo, skip, comments, ranking."""

from __future__ import annotations

import random

import pytest
from PySide6.QtCore import Qt

from engine.labeling.store import LabelStore
from studio.widgets.text_diff import highlight_colours
from studio.pages.label.labeling_view import LabelingView


def pair_items(count: int) -> list[dict]:
    return [{"prompt": f"**Prompt {i}**: say something", "candidates": [f"first answer {i}", f"second answer {i}"]}
            for i in range(count)]


@pytest.fixture
def label_store(workspace) -> LabelStore:
    store = LabelStore(workspace / "store.db", rng=random.Random(3))
    store.create_queue("chat", guidelines="Prefer the **shorter** answer.")
    store.add_items("chat", pair_items(24))
    return store


def open_view(qtbot, store: LabelStore, queue: str) -> LabelingView:
    view = LabelingView()
    qtbot.addWidget(view)
    view.resize(1100, 700)
    view.show()
    qtbot.waitExposed(view)
    with qtbot.waitActive(view):  # its shortcuts answer in the active window
        view.activateWindow()
    view.open_queue(store, queue, "ann")
    return view


@pytest.fixture
def view(qtbot, label_store) -> LabelingView:
    return open_view(qtbot, label_store, "chat")


KEYS = [Qt.Key_1, Qt.Key_2, Qt.Key_Left, Qt.Key_Right, Qt.Key_3, Qt.Key_4, Qt.Key_S]
VERDICT_OF_KEY = {Qt.Key_1: "left", Qt.Key_2: "right", Qt.Key_Left: "left", Qt.Key_Right: "right",
                  Qt.Key_3: "tie", Qt.Key_4: "both_bad", Qt.Key_S: "skip"}


def test_twenty_items_by_keyboard_then_two_undos(qtbot, view, label_store):
    expected = []  # (item id, verdict, text shown on the left)
    for n in range(20):
        key = KEYS[n % len(KEYS)]
        left_text = view.shown_texts()[0]
        expected.append((view.task.item.id, VERDICT_OF_KEY[key], left_text))
        qtbot.keyClick(view, key)
    labels = label_store.labels("chat")
    assert [(label.item_id, label.verdict) for label in labels] == [(e[0], e[1]) for e in expected]
    for label, (_, verdict, left_text) in zip(labels, expected):
        item = label_store.item(label.item_id)
        if verdict in ("left", "right"):
            chosen = item.candidates[label.ranking[0]].text
            # the preferred answer is the one that was on the pressed side, whichever candidate it was
            assert (chosen == left_text) == (verdict == "left")
    assert {label.swapped for label in labels} == {True, False}

    qtbot.keyClick(view, Qt.Key_Z, Qt.ControlModifier)
    qtbot.keyClick(view, Qt.Key_Z, Qt.ControlModifier)
    assert view.task.item.id == expected[18][0]  # the undone item is back on screen
    assert label_store.label_count("chat") == 18
    retracted = [label for label in label_store.labels("chat", include_retracted=True) if label.retracted]
    assert sorted(label.item_id for label in retracted) == sorted(e[0] for e in expected[18:])

    qtbot.keyClick(view, Qt.Key_2)
    assert label_store.label_count("chat") == 19
    assert view.progress_bar.value() == 17  # 19 labels minus 2 skips
    assert "ann: 17 labeled" in view.progress_text.text()


def test_a_comment_goes_with_the_next_verdict_and_typing_it_labels_nothing(qtbot, view, label_store):
    qtbot.keyClick(view, Qt.Key_C)
    assert view.comment.hasFocus()
    qtbot.keyClicks(view.comment, "both 1 2 fine")
    assert label_store.label_count("chat") == 0  # digits typed into the comment are text, not verdicts
    qtbot.keyClick(view.comment, Qt.Key_Return)
    assert view.hasFocus()
    qtbot.keyClick(view, Qt.Key_1)
    assert label_store.labels("chat")[0].comment == "both 1 2 fine"
    assert view.comment.text() == ""


def test_guidelines_and_differences_on_demand(qtbot, view):
    assert not view.guidelines.isVisible()
    qtbot.keyClick(view, Qt.Key_G)
    assert view.guidelines.isVisible()
    assert "shorter" in view.guidelines.toPlainText()
    qtbot.keyClick(view, Qt.Key_D)
    assert "background-color" in view.cards[0].body.toHtml()  # "first" vs "second" highlighted
    # One colour on both sides, said in a legend: a highlight must not suggest which answer is right.
    shade = highlight_colours(neutral=True)["insert"]
    assert all(f"background-color:{shade}" in card.body.toHtml().replace(" ", "") for card in view.cards[:2])
    assert view.diff_legend.isVisible() and "says nothing about which is better" in view.diff_legend.text()
    qtbot.keyClick(view, Qt.Key_D)
    assert not view.diff_legend.isVisible()


def test_the_end_of_the_queue_says_so(qtbot, workspace):
    store = LabelStore(workspace / "store.db")
    store.create_queue("tiny")
    store.add_items("tiny", pair_items(2))
    view = open_view(qtbot, store, "tiny")
    with qtbot.waitSignal(view.exhausted):
        qtbot.keyClick(view, Qt.Key_1)
        qtbot.keyClick(view, Qt.Key_2)
    assert "Nothing left for you" in view.empty.text()
    assert "2 of 2 items" in view.empty.text()


def test_ranking_three_answers_with_digits_and_backspace(qtbot, workspace):
    store = LabelStore(workspace / "store.db", rng=random.Random(1))
    store.create_queue("ranked", mode="rank")
    store.add_items("ranked", [{"prompt": "p", "candidates": ["alpha", "beta", "gamma"]}])
    view = open_view(qtbot, store, "ranked")
    shown = view.shown_texts()
    qtbot.keyClick(view, Qt.Key_3)
    assert view.cards[2].badge.text() == "#1"
    qtbot.keyClick(view, Qt.Key_Backspace)
    assert not view.cards[2].badge.isVisibleTo(view)
    qtbot.keyClick(view, Qt.Key_2)
    qtbot.keyClick(view, Qt.Key_3)  # the last answer follows by itself
    label = store.labels("ranked")[0]
    item = store.item(label.item_id)
    assert [item.candidates[i].text for i in label.ranking] == [shown[1], shown[2], shown[0]]


def test_tab_in_the_queue_guidelines_moves_on_instead_of_typing_a_tab(qtbot):
    from studio.pages.label.page import QueueDialog

    dialog = QueueDialog()
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    dialog.guidelines.setFocus()
    qtbot.keyClicks(dialog.guidelines, "Prefer the shorter answer.")
    qtbot.keyClick(dialog.guidelines, Qt.Key_Tab)
    assert dialog.guidelines.toPlainText() == "Prefer the shorter answer." and not dialog.guidelines.hasFocus()


def test_single_answers_are_judged_good_or_bad_by_keyboard(qtbot, label_store):
    """A single-answer queue (KTO labels): 1 or Y good, 2 or N bad, S skip; the pair keys do nothing
    there, and only the good / bad buttons show."""
    label_store.create_queue("judge", mode="single")
    label_store.add_items("judge", [{"prompt": f"Question {i}", "candidates": [f"answer {i}"]} for i in range(6)])
    view = open_view(qtbot, label_store, "judge")
    assert view.single_row.isVisibleTo(view) and not view.pair_row.isVisibleTo(view)
    assert view.cards[0].title.text().startswith("<b>Answer")
    for key in (Qt.Key_Left, Qt.Key_3, Qt.Key_4, Qt.Key_T):
        qtbot.keyClick(view, key)
    assert label_store.label_count("judge") == 0
    for key in (Qt.Key_1, Qt.Key_Y, Qt.Key_2, Qt.Key_N, Qt.Key_S):
        qtbot.keyClick(view, key)
    assert [label.verdict for label in label_store.labels("judge")] == ["good", "good", "bad", "bad", "skip"]

    from engine.labeling.formats import judged_answers

    judged = judged_answers(label_store, "judge")
    assert [a.good for a in judged.answers] == [True, True, False, False] and judged.skipped == 1
    assert judged.unlabeled == 1
