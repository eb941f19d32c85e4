"""The Label page's Arena tab: ratings of the models a queue's votes compare, everyone's or one
annotator's, Bradley–Terry or Elo; and "New arena…" setting up the Generate tab."""

from __future__ import annotations

import pytest

from engine.labeling.ratings import arena
from engine.labeling.store import Task
from studio.pages.label.page import LabelPage


@pytest.fixture
def page(qtbot, workspace, store):
    page = LabelPage(store, None, workspace, engine=None)
    qtbot.addWidget(page)
    return page


def test_the_arena_tab_rates_the_models_of_the_queue_from_its_votes(page):
    labels = page.labels
    labels.create_queue("duel", overlap=1.0)
    labels.add_items("duel", [{"prompt": f"q{i}", "candidates": [{"text": f"a{i}", "model": "alpha"},
                                                                 {"text": f"b{i}", "model": "beta"}]}
                              for i in range(4)])
    for item in labels.items("duel"):
        labels.add_label(Task(item, "ann", (0, 1)), "left")  # alpha, shown left
        labels.add_label(Task(item, "bob", (1, 0)), "left" if item.position else "right")  # beta but once
    page.refresh_queues(select="duel")
    page.tabs.setCurrentWidget(page.arena)
    view = page.arena
    table = view.table
    expected = arena(labels, "duel").overall.ratings
    assert [table.item(r, 1).text() for r in range(table.rowCount())] == ["alpha", "beta"]
    assert table.item(0, 2).text() == f"{expected[0].rating:.0f}"
    assert table.item(0, 3).text() == f"{expected[0].low:.0f} – {expected[0].high:.0f}"
    assert [table.item(0, c).text() for c in (4, 5, 6, 7, 8)] == ["5", "3", "0", "62%", "8"]
    assert "Bradley–Terry ratings from 8 votes" in view.note.text() and "queue:duel" in view.note.text()
    assert "agree on 25% of 4 items" in view.note.text()

    view.who.setCurrentIndex(view.who.findData("ann"))
    assert [table.item(0, c).text() for c in (1, 4, 5)] == ["alpha", "4", "0"]
    view.method.setCurrentIndex(view.method.findData("elo"))
    assert view.report.overall.method == "Elo" and view.who.currentData() == "ann"


def test_new_arena_sets_the_generate_tab_up_for_one_answer_per_model(page):
    page.labels.create_queue("old")
    page.refresh_queues(select="old")
    page.arena.new_arena_button.click()
    assert page.tabs.currentWidget() is page.generate
    assert page.generate.spec_values()["candidates_per_model"] == 1 and page.queue is None
    assert "two or more models" in page.message.text()
