"""The Runs page: filters, empty states, open/compare, and deleting to the trash."""

from __future__ import annotations

import shutil

import pytest
from PySide6.QtCore import Qt

from studio.pages.runs import page as runs_module
from studio.pages.runs.page import EMPTY_TEXT, NO_MATCH_TEXT, RunsPage
from studio.models.store import Store
from tests.studio.tracker_fixtures import FakeTracker


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.db")
    yield s
    s.close()


def add(store, workspace, run_id, kind="pretrain", name=None, state="completed", created=1.0, loss=None):
    folder = workspace / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(f"kind: {kind}\n")
    store.add_run(run_id, kind=kind, name=name or run_id, run_dir=folder, state=state, created=created)
    if loss is not None:
        store.add_events(run_id, [{"v": 1, "seq": 0, "t": 1.0, "type": "metric", "step": 10, "split": "train",
                                   "values": {"loss": loss}}])
    return folder


@pytest.fixture
def page(qtbot, store, workspace):
    add(store, workspace, "llama-a", name="llama-small", state="completed", created=3, loss=2.5)
    add(store, workspace, "lora-b", kind="finetune", name="chat-lora", state="failed", created=2)
    add(store, workspace, "llama-c", name="llama-big", state="running", created=1)
    widget = RunsPage(store)
    qtbot.addWidget(widget)
    widget.resize(900, 500)
    widget.show()
    return widget


def cell(page, row, column):
    return page.proxy.index(row, column).data()


def test_an_empty_store_shows_a_helpful_empty_state(qtbot, store):
    page = RunsPage(store)
    qtbot.addWidget(page)
    assert page.stack.currentWidget() is page.empty and page.empty.text() == EMPTY_TEXT
    assert not page.delete_button.isEnabled() and not page.compare_button.isEnabled()


def test_rows_show_name_id_kind_state_step_duration_and_result_newest_first(page, store):
    from studio.pages.runs.page import DURATION, KIND, NAME, RESULT, RUN_ID, STATE, STEP

    assert page.run_ids() == ["llama-a", "lora-b", "llama-c"]
    assert [cell(page, 0, c) for c in (NAME, RUN_ID, KIND, STATE, STEP, RESULT)] == [
        "llama-small", "llama-a", "Pretrain", "Completed", "10", "loss 2.5000"]
    assert cell(page, 1, RESULT) == "—"
    store.add_events("llama-a", [{"v": 1, "seq": 1, "t": 2.0, "type": "finished", "status": "completed",
                                  "summary": {"duration_s": 754.0}}])
    store.add_run("ft-1", kind="finetune", name="chat-lora", created=4)  # a second run of that name
    store.add_events("ft-1", [{"v": 1, "seq": i, "t": 1.0, "type": "metric", "step": 10 * i, "split": "eval",
                               "values": {"exact_match": share}} for i, share in enumerate((0.1, 0.85))])
    page.refresh()
    assert cell(page, 0, RESULT) == "exact match 85%"  # the kind's headline figure, its latest value
    assert [cell(page, row, RUN_ID) for row in (0, 2)] == ["ft-1", "lora-b"]  # one name, two ids
    assert cell(page, 1, DURATION) == "12m 34s"
    header = page.table.horizontalHeader()
    assert all(header.sectionSize(c) >= 80 for c in range(len(runs_module.COLUMNS)))


def test_tags_and_notes_are_written_in_place_kept_and_searched(qtbot, page, store):
    from studio.pages.runs.page import NOTES, TAGS

    page.select_runs(["lora-b"])
    row = page.run_ids().index("lora-b")
    for column, text in ((TAGS, " baseline,  lr sweep , baseline"), (NOTES, "diverged after warmup ")):
        assert page.proxy.flags(page.proxy.index(row, column)) & Qt.ItemFlag.ItemIsEditable
        assert page.proxy.setData(page.proxy.index(row, column), text)
    record = store.get_run("lora-b")
    assert (record.tags, record.notes) == ("baseline, lr sweep", "diverged after warmup")
    assert cell(page, row, TAGS) == "baseline, lr sweep"
    assert not page.proxy.flags(page.proxy.index(row, 0)) & Qt.ItemFlag.ItemIsEditable
    page.search.setText("sweep")
    assert page.run_ids() == ["lora-b"]


def test_filters_by_kind_state_and_name(qtbot, page):
    assert [page.kind_filter.itemText(i) for i in range(page.kind_filter.count())] == \
        ["All kinds", "Fine-tune", "Pretrain"]
    page.kind_filter.setCurrentIndex(page.kind_filter.findData("pretrain"))
    assert page.run_ids() == ["llama-a", "llama-c"]
    page.state_filter.setCurrentIndex(page.state_filter.findData("active"))
    assert page.run_ids() == ["llama-c"]
    page.state_filter.setCurrentIndex(0)
    qtbot.keyClicks(page.search, "SMALL")
    assert page.run_ids() == ["llama-a"]
    page.search.setText("nothing like this")
    assert page.stack.currentWidget() is page.empty and page.empty.text() == NO_MATCH_TEXT
    page.search.clear()
    page.kind_filter.setCurrentIndex(0)
    assert len(page.run_ids()) == 3


def test_enter_opens_and_two_selected_runs_can_be_compared(qtbot, page):
    page.select_runs(["lora-b"])
    page.table.setFocus()
    with qtbot.waitSignal(page.open_run) as opened:
        qtbot.keyClick(page.table, Qt.Key.Key_Return)
    assert opened.args == ["lora-b"]
    page.select_runs(["llama-a", "llama-c"])
    assert page.compare_button.isEnabled() and not page.open_button.isEnabled()
    with qtbot.waitSignal(page.compare_runs) as compared:
        page.compare_button.click()
    assert compared.args == [["llama-a", "llama-c"]]


def test_delete_key_moves_the_folder_to_the_trash_after_confirmation(qtbot, page, store, workspace, tmp_path,
                                                                    monkeypatch):
    trash = tmp_path / "trash"
    trash.mkdir()
    monkeypatch.setattr(runs_module, "move_to_trash", lambda path: bool(shutil.move(str(path), trash)))
    questions = []
    monkeypatch.setattr(page, "confirm", lambda title, text, destructive=False: questions.append(text) or True)
    page.select_runs(["lora-b"])
    with qtbot.waitSignal(page.runs_deleted) as deleted:
        qtbot.keyClick(page.table, Qt.Key.Key_Delete)
    assert deleted.args == [["lora-b"]]
    assert "chat-lora" in questions[0] and "trash" in questions[0]
    assert not (workspace / "runs" / "lora-b").exists() and (trash / "lora-b").is_dir()
    assert store.get_run("lora-b") is None and page.run_ids() == ["llama-a", "llama-c"]


def test_without_a_trash_it_asks_again_before_deleting_for_good(qtbot, page, store, workspace, monkeypatch):
    monkeypatch.setattr(runs_module, "move_to_trash", lambda path: False)
    answers = iter([True, False])  # yes, delete; no, not for good
    monkeypatch.setattr(page, "confirm", lambda title, text, destructive=False: next(answers))
    assert page.delete_runs(["llama-a"]) == []
    assert (workspace / "runs" / "llama-a").is_dir() and store.get_run("llama-a") is not None

    answers = iter([True, True])
    monkeypatch.setattr(page, "confirm", lambda title, text, destructive=False: next(answers))
    assert page.delete_runs(["llama-a"]) == ["llama-a"]
    assert not (workspace / "runs" / "llama-a").exists() and store.get_run("llama-a") is None


def test_a_running_run_is_not_deleted(qtbot, page, store, workspace, monkeypatch):
    told = []
    monkeypatch.setattr(page, "inform", lambda title, text: told.append(text))
    monkeypatch.setattr(page, "confirm", lambda *a, **k: pytest.fail("must not ask"))
    assert page.delete_runs(["llama-c"]) == []
    assert "Stop llama-big" in told[0]
    assert (workspace / "runs" / "llama-c").is_dir()


def test_the_page_follows_the_tracker(qtbot, store, workspace):
    tracker = FakeTracker(store)
    page = RunsPage(store, tracker)
    qtbot.addWidget(page)
    add(store, workspace, "new-run", state="running")
    tracker.run_added.emit("new-run")
    qtbot.waitUntil(lambda: page.run_ids() == ["new-run"], timeout=5_000)


def test_the_page_renders(qtbot, page, tmp_path):
    image = page.grab()
    assert not image.isNull() and image.width() >= 900
    image.save(str(tmp_path / "runs_page.png"))
