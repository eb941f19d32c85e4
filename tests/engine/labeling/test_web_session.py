"""The web labeling page's sessions (engine/labeling/web_session.py), without a server."""

from __future__ import annotations

import pytest

from engine.labeling.store import LabelStore, LabelStoreError
from engine.labeling.web_session import AnnotatorSessions, parse_ranking


@pytest.fixture
def sessions(tmp_path) -> AnnotatorSessions:
    store = LabelStore(tmp_path / "store.db")
    store.create_queue("prefs", guidelines="Be fair.")
    store.add_items("prefs", [{"prompt": f"p{i}", "candidates": [f"a{i}", f"b{i}"]} for i in range(4)])
    return AnnotatorSessions(store, "prefs")


def test_a_reloaded_tab_keeps_its_item_and_a_closed_one_gives_it_back(sessions):
    store = sessions.store
    first = sessions.start("tab-1", None, "ann")
    reloaded = sessions.start("tab-2", None, "ann")  # the same annotator reloads before tab-1 closes
    assert (reloaded.item_id, reloaded.shown) == (first.item_id, first.shown)
    sessions.close("tab-1")
    other = store.next_task("prefs", "bob")
    assert other.item.id != first.item_id  # still held for the reloaded tab
    store.release(other)
    sessions.close("tab-2")
    assert store.next_task("prefs", "bob").item.id == first.item_id


def test_a_label_goes_to_the_item_the_page_showed_and_records_how(sessions):
    shown = sessions.start("tab", "prefs", "ann")
    assert not sessions.label("tab", "prefs", "ann", "left", item_id=shown.item_id + 1).saved
    view = sessions.label("tab", "prefs", "ann", "left", "  why ", item_id=shown.item_id)
    assert view.saved and view.item_id != shown.item_id and view.counts["mine"] == 1
    [label] = sessions.store.labels("prefs")
    assert (label.verdict, label.shown, label.comment, label.source) == ("left", shown.shown, "why", "web")
    assert label.ranking == (shown.shown[0], shown.shown[1])
    assert not sessions.label("tab", "prefs", "ann", "rank", ranking_text="1 2").saved  # pairs take left/right


def test_a_new_or_renamed_tab_records_nothing_before_it_shows_an_item(sessions):
    assert not sessions.label("tab", "prefs", "ann", "left").saved
    assert not sessions.label("tab", "prefs", "someone else", "left").saved
    assert sessions.store.label_count() == 0
    assert "name" in sessions.label("tab", "prefs", "  ", "left").status


def test_an_item_left_on_screen_past_its_claim_is_not_labeled_if_someone_else_took_it(sessions):
    store = sessions.store
    shown = sessions.start("tab", "prefs", "ann")
    sessions._sessions["tab"].shown_at -= 3600  # an hour at lunch: the claim has lapsed
    store.release(sessions._sessions["tab"].task)
    other = store.next_task("prefs", "bob")
    assert other.item.id == shown.item_id
    store.add_label(other, "right", source="gui")
    view = sessions.label("tab", "prefs", "ann", "left", item_id=shown.item_id)
    assert not view.saved and view.item_id != shown.item_id
    assert [label.annotator for label in store.labels("prefs")] == ["bob"]
    assert sessions.label("tab", "prefs", "ann", "left", item_id=view.item_id).saved  # on time: recorded


def test_ranking_text():
    assert parse_ranking("2 1 3", 3) == [2, 1, 3]
    assert parse_ranking("2>3>1", 3) == [2, 3, 1]
    assert parse_ranking("3,1,2", 3) == [3, 1, 2]
    assert parse_ranking("312", 3) == [3, 1, 2]
    for bad in ("1 2", "1 1 2", "a b c", "", "1 2 4"):
        with pytest.raises(LabelStoreError):
            parse_ranking(bad, 3)


def test_a_single_answer_is_judged_good_or_bad_and_stored_as_the_studio_stores_it(tmp_path):
    store = LabelStore(tmp_path / "store.db")
    store.create_queue("judged", mode="single")
    store.add_items("judged", [{"prompt": f"p{i}", "candidates": [f"a{i}"]} for i in range(3)])
    sessions = AnnotatorSessions(store, "judged")
    shown = sessions.start("tab", None, "ann")
    assert (shown.mode, shown.answers, shown.shown) == ("single", ("a0",), (0,))
    for verdict in ("left", "tie", "both_bad", "rank"):
        refused = sessions.label("tab", None, "ann", verdict, item_id=shown.item_id, ranking_text="1")
        assert not refused.saved and "good, bad, skip" in refused.status
    view = sessions.label("tab", None, "ann", "bad", " wrong sum ", item_id=shown.item_id)
    assert view.saved and view.status.startswith("Saved: bad for item 1")
    assert sessions.label("tab", None, "ann", "good", item_id=view.item_id).saved
    labels = store.labels("judged")
    assert [(l.verdict, l.shown, l.ranking, l.kind, l.source) for l in labels] == [
        ("bad", (0,), None, "human", "web"), ("good", (0,), None, "human", "web")]
    assert labels[0].comment == "wrong sum"
