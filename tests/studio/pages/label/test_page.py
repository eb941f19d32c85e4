"""The Label page with the real engine's `labels` command: import, label by keyboard, two annotators,
agreement and conflicts, export."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from engine.labeling.store import Task
from studio.client.engine import LocalEngine
from studio.pages.label.page import LabelPage

pytestmark = pytest.mark.slow  # each import/export starts the engine's CLI (about a second)


def write_trl(path, count: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(count):
            f.write(json.dumps({"prompt": f"What is {i} + {i}?", "chosen": str(2 * i), "rejected": str(2 * i + 1)}) + "\n")


@pytest.fixture
def page(qtbot, workspace, store):
    engine = LocalEngine(workspace=workspace)
    page = LabelPage(store, None, workspace, engine=engine)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    page.show()
    qtbot.waitExposed(page)
    with qtbot.waitActive(page):
        page.activateWindow()
    return page


def wait_message(qtbot, page, words: str) -> None:
    try:
        qtbot.waitUntil(lambda: words in page.message.text(), timeout=30_000)
    except Exception:
        raise AssertionError(page.message.text())


def test_empty_workspace_says_what_to_do(page):
    assert "No labeling queue yet" in page.message.text()
    assert not page.export_button.isEnabled()


def test_import_label_by_keyboard_and_export(qtbot, page, tmp_path):
    source = tmp_path / "prefs.jsonl"
    write_trl(source, 6)
    page.create_queue(name="sums", mode="pair", guidelines="", overlap=0.0, overlap_annotators=2)
    page.import_file(str(source), fmt="auto", unlabeled=True)
    wait_message(qtbot, page, "Imported")
    assert page.labels.progress("sums").items == 6
    assert page.queue_box.currentText().startswith("sums")

    page.view.setFocus()
    chosen = []
    for _ in range(6):
        left, right = page.view.shown_texts()
        # always prefer the even (correct) sum, whichever side it is on
        key = Qt.Key_1 if int(left) % 2 == 0 else Qt.Key_2
        chosen.append(left if key == Qt.Key_1 else right)
        qtbot.keyClick(page.view, key)
    assert "Nothing left for you" in page.view.empty.text()

    out = tmp_path / "out.jsonl"
    page.export_file(str(out), "trl")
    wait_message(qtbot, page, "Wrote 6 pairs")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["chosen"] for r in rows) == sorted(chosen)
    assert all(int(r["chosen"]) % 2 == 0 and int(r["rejected"]) % 2 == 1 for r in rows)


def test_two_annotators_agreement_and_conflicts(qtbot, page):
    page.create_queue(name="both", mode="pair", guidelines="Pick the **even** sum.", overlap=1.0,
                      overlap_annotators=2)
    page.labels.add_items("both", [{"prompt": f"{i}+{i}", "candidates": [str(2 * i), str(2 * i + 1)]}
                                   for i in range(4)])
    page.refresh_queues(select="both")
    assert page.queue_box.currentText() == "both  (0/4 done, 0 labels)"
    for name, agree in (("ann", True), ("bob", False)):
        page.annotator.setText(name)
        page.annotator.editingFinished.emit()
        page.view.setFocus()
        for n in range(4):
            left, _ = page.view.shown_texts()
            even_left = int(left) % 2 == 0
            # bob agrees with ann on the first two items only
            good = agree or n < 2
            qtbot.keyClick(page.view, Qt.Key_1 if even_left == good else Qt.Key_2)
            if name == "ann" and n == 0:  # an overlap item waits for its second label: the labels count moves
                assert page.queue_box.currentText() == "both  (0/4 done, 1 label)"
    # The task's checker labels every item too (the demo's stand-in for a person): shown apart.
    for item in page.labels.items("both"):
        task = Task(item=item, annotator="checker:sum", shown=(0, 1))
        page.labels.add_label(task, "left" if int(item.candidates[0].text) % 2 == 0 else "right", kind="checker")
    page.tabs.setCurrentWidget(page.overview)
    assert page.overview.stats["done"].text() == "4 / 4"
    assert page.overview.stats["agreement"].text() == "50%"  # ann and bob: people only
    pairs = [[page.overview.pairs.item(r, c).text() for c in (0, 3)] for r in range(page.overview.pairs.rowCount())]
    assert pairs == [["ann · bob", "50%"], ["ann · checker:sum  (with the checker)", "100%"],
                     ["bob · checker:sum  (with the checker)", "50%"]]
    assert "counts people only" in page.overview.note.text()
    kinds = {page.overview.annotators.item(r, 0).text(): page.overview.annotators.item(r, 3).text()
             for r in range(page.overview.annotators.rowCount())}
    assert kinds == {"ann": "person", "bob": "person", "checker:sum": "task checker (not a person)"}
    page.tabs.setCurrentWidget(page.conflicts)
    assert page.conflicts.table.rowCount() == 2
    assert "ann:" in page.conflicts.table.item(0, 2).text() and "bob:" in page.conflicts.table.item(0, 2).text()
    assert "Verdicts" in page.conflicts.detail.toPlainText()


def test_share_starts_the_web_page_and_stops_it(qtbot, page):
    import urllib.request

    from studio.pages.label.share import ShareDialog

    page.create_queue(name="shared", mode="pair", guidelines="", overlap=0.0, overlap_annotators=2)
    page.labels.add_items("shared", [{"prompt": "p", "candidates": ["a", "b"]}])
    dialog = ShareDialog(page.engine, page.labels.path, "shared", parent=page)
    qtbot.addWidget(dialog)
    dialog.host.setCurrentIndex(1)  # the network: a token is required and shown
    dialog.port.setValue(0)
    dialog.start()
    qtbot.waitUntil(lambda: dialog.server is not None and dialog.server.url is not None, timeout=60_000)
    assert dialog.token.text()  # generated by the engine and shown
    assert "access requires the token" in dialog.status.text()
    try:
        urllib.request.urlopen(dialog.server.url + "gradio_api/info", timeout=10)
        raise AssertionError("the page answered without the token")
    except urllib.error.HTTPError as e:
        assert e.code == 401
    with qtbot.waitSignal(dialog.server.ended, timeout=15_000):
        dialog.stop()
    assert dialog.start_button.isEnabled()


def test_candidates_of_a_builtin_task_are_labeled_by_the_checker(qtbot, page, tmp_path):
    """Generate-run candidates carry the checker's verdicts; "Label by checker…" turns them into
    labels of kind "checker" through the engine's `labels auto-label`."""
    candidates = tmp_path / "candidates.jsonl"
    verdicts = [(True, False, False), (False, False, True), (True, True, False)]
    with open(candidates, "w", encoding="utf-8") as f:
        for i, prompt_verdicts in enumerate(verdicts):
            f.write(json.dumps({"id": f"reverse-{i}", "prompt": f"Reverse the order of the words.\n\ncat sun {i}",
                                "candidates": [{"text": f"answer {i}.{j}", "model": "sft", "meta": {"correct": ok}}
                                               for j, ok in enumerate(prompt_verdicts)],
                                "meta": {"task": "reverse", "input": f"cat sun {i}"}}) + "\n")
    page.create_queue(name="checked", mode="pair", guidelines="", overlap=0.0, overlap_annotators=2)
    page.import_batch(str(candidates))
    wait_message(qtbot, page, "3 prompts")
    assert page.labels.progress("checked").items == 9  # C(3, 2) pairs per prompt
    assert page.checker_button.isEnabled()

    page.label_by_checker(confirm=False)
    wait_message(qtbot, page, "labeled 9 items")
    # right over wrong: 2 + 2 + 2 pairs; one tie (prompt 2); both wrong: one pair each in prompts 0 and 1
    assert "6 correct-over-wrong, 1 both correct (tie), 2 both wrong" in page.message.text()
    labels = page.labels.labels(page.labels.queue("checked"))
    assert len(labels) == 9 and {label.kind for label in labels} == {"checker"}
    assert page.labels.progress("checked").done == 9
