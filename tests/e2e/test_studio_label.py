"""The studio driving the real engine for preference labeling: the Generate tab samples candidates
from a tiny model, the finished run's candidates land in the queue, they are labeled by keyboard,
and the queue is exported as TRL conversational preferences."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from tests.e2e.conftest import save_tiny_base_model

pytestmark = pytest.mark.slow


def test_generate_import_label_and_export(qtbot, tmp_path):
    from studio.main_window import MainWindow

    base = save_tiny_base_model(tmp_path / "tiny-base")
    window = MainWindow(tmp_path / "ws")
    qtbot.addWidget(window)
    window.resize(1300, 850)
    window.show()
    window.show_page("label")
    page = window.page("label")
    page.create_queue(name="reverse", mode="pair", guidelines="", overlap=0.0, overlap_annotators=2)

    page.tabs.setCurrentWidget(page.generate)
    wizard = page.generate
    wizard.add_model(str(base), label="tiny")
    wizard.set_spec_data({"name": "gen-gui", "candidates_per_model": 2,
                          "prompts": {"sources": ["builtin:tasks"], "task": "reverse", "task_examples": 3},
                          "sampling": {"max_new_tokens": 6, "temperature": 1.5, "top_k": 0}})
    assert wizard.validate() == []
    wizard.go_to_review()
    assert "kind: generate" in wizard.yaml_view.toPlainText()
    with qtbot.waitSignal(wizard.launched, timeout=30_000):
        wizard.launch_button.click()
    # The run completes, then its candidates are imported into the queue by the engine's labels command.
    qtbot.waitUntil(lambda: page.message.text().startswith("Added"), timeout=120_000)
    assert page.view.task is not None  # the queue shows its first new item
    assert wizard.run_view.state_label.text() == "completed"
    items = page.labels.items("reverse")
    assert all(c.model == "tiny" and isinstance(c.seed, int) for item in items for c in item.candidates)
    assert all("Reverse the order" in item.prompt for item in items)

    page.tabs.setCurrentWidget(page.view)
    with qtbot.waitActive(window):
        window.activateWindow()
    page.view.setFocus()
    for _ in items:
        qtbot.keyClick(page.view, Qt.Key_1)
    assert page.labels.label_count("reverse") == len(items)

    out = tmp_path / "prefs.jsonl"
    page.export_file(str(out), "trl-chat")
    qtbot.waitUntil(lambda: "Wrote" in page.message.text(), timeout=30_000)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(items)
    assert rows[0]["prompt"][-1]["role"] == "user" and rows[0]["chosen"][0]["role"] == "assistant"
