"""The studio driving the real engine: the Data wizard's dry run shows a planted near duplicate and a
redacted email with their reasons, the cleaning run completes, its report counts what was removed,
a duplicate cluster opens side by side, and the cleaned dataset feeds the tokenizer wizard."""

from __future__ import annotations

import json
import random

import pytest
from PySide6.QtCore import Qt

from engine.specs import parse_spec
from studio.pages.data.clean_steps import CLEANING_STEPS

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread_engines")]

WORDS = ("the of and to in that with have be is for on as by this it from at an are was which not or data model "
         "parser returns value list error file name buffer stream token record index handler queue builder reader "
         "writer cache socket thread window option default result").split()


def prose(rng: random.Random, sentences: int = 8) -> str:
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(9, 14))).capitalize() + "."
                    for _ in range(sentences))


@pytest.fixture
def corpus(tmp_path) -> dict:
    """30 documents of prose, a near duplicate of the 4th (one word changed) and one with an email."""
    rng = random.Random(3)
    docs = [prose(rng) for _ in range(30)]
    words = docs[3].split()
    words[6] = "thread" if words[6] != "thread" else "socket"
    docs.append(" ".join(words))                                                      # line 31
    docs.append(prose(rng) + " Questions go to jane.doe@example.org before the release.")  # line 32
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    return {"path": path, "near": "corpus.jsonl:31", "near_of": "corpus.jsonl:4", "email": "corpus.jsonl:32",
            "changed_words": {docs[3].split()[6].strip("."), words[6].strip(".")}, "first": docs[0]}


def test_dry_run_then_clean_then_report_then_tokenizer(qtbot, tmp_path, corpus):
    from studio.main_window import MainWindow
    from studio.pages.data.page import STEPS

    window = MainWindow(tmp_path / "ws")
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    window.show_page("data")
    page = window.page("data")
    page.set_spec_data({"name": "gui-clean", "input": {"sources": [str(corpus["path"])]}, "workers": 1})

    # The dry run starts by itself on the Steps step and says what each step would do.
    with qtbot.waitSignal(page.dry_run_finished, timeout=120_000) as finished:
        page.go_to_step(STEPS.index("Steps"))
    result = finished.args[0]
    docs = result.by_id()
    near, email = docs[corpus["near"]], docs[corpus["email"]]
    assert (near.fate, near.step, near.duplicate_of) == ("removed", "near_dedup", corpus["near_of"])
    assert near.reason and "Jaccard" in near.reason
    assert email.fate == "modified" and email.changes.get("pii.email") == 1 and "<EMAIL>" in email.final_text
    column = {step: page.step_checklist.topLevelItem(i).text(1) for i, step in enumerate(CLEANING_STEPS)}
    assert column["near_dedup"] == "removes 1" and column["pii"].startswith("modifies 1")

    page.go_to_step(STEPS.index("Dry run"))
    view = page.dry_run
    assert view.select_document(corpus["near"])
    assert f"Duplicate of <b>{corpus['near_of']}</b>" in view.reason_label.text()
    changed = {s.text for s in view.diff.diff.left + view.diff.diff.right if s.kind != "equal"}
    assert changed == corpus["changed_words"]
    assert view.select_document(corpus["email"])
    assert [s.text for s in view.diff.diff.right if s.kind == "insert"] == ["<EMAIL>"]

    # Switching a step off runs the dry run again (debounced, in the background).
    with qtbot.waitSignal(page.dry_run_finished, timeout=120_000) as finished:
        page.set_step_enabled("near_dedup", False)
    assert finished.args[0].by_id()[corpus["near"]].fate == "kept"
    page.set_step_enabled("near_dedup", True)

    # The whole corpus: launch, progress, then the report.
    page.go_to_review()
    assert page.validate() == [], page.problems
    with qtbot.waitSignal(page.launched, timeout=60_000) as launched:
        qtbot.mouseClick(page.launch_button, Qt.MouseButton.LeftButton)
    run_id = launched.args[0]
    run_view = page.run_view
    assert run_view.run_id == run_id and page.stack.currentWidget() is run_view
    qtbot.waitUntil(lambda: run_view.state == "completed", timeout=240_000)

    run_dir = tmp_path / "ws" / "runs" / run_id
    report_view = run_view.report_view
    report = json.loads((run_dir / "output" / "report.json").read_text())
    steps = {report_view.steps_table.item(r, 0).text(): report_view.steps_table.item(r, 1).text()
             for r in range(report_view.steps_table.rowCount())}
    assert steps["Near duplicates"] == "1"
    assert report_view.stats[next(k for k in report_view.stats if k.startswith("documents kept"))].text() == \
        f"{report['output']['documents']} of 32"
    assert report_view.tabs.tabText(3) == "Duplicates (1)"
    report_view.open_cluster(0)
    diff = report_view.cluster_diff
    assert diff.left_title.full_text() == f"Kept: {corpus['near_of']}"
    assert corpus["near"] in diff.right_title.full_text()
    assert {s.text for s in diff.diff.left + diff.diff.right if s.kind != "equal"} == corpus["changed_words"]

    # The cleaned dataset goes to the tokenizer wizard.
    run_view.tokenizer_button.click()
    tokenizer = window.page("tokenizer")
    assert window.current_page_key() == "tokenizer"
    assert parse_spec(tokenizer.build_spec()).data.sources == [str(run_dir / "output" / "dataset")]
    qtbot.waitUntil(lambda: corpus["first"][:60] in tokenizer.preview.toPlainText(), timeout=5_000)  # Parquet, read
    window.close()
