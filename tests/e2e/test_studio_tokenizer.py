"""The studio driving the real engine: the tokenizer wizard trains a tiny tokenizer, shows its
progress, then previews the new tokenizer and the report's figures."""

from __future__ import annotations

import json

import pytest
from PySide6.QtCore import Qt

from tests.e2e.conftest import write_corpus

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread_engines")]


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.jsonl", 300, 40, seed=2)


def test_wizard_trains_a_tokenizer_and_shows_its_tokens_and_report(qtbot, tmp_path, corpus):
    from studio.main_window import MainWindow

    window = MainWindow(tmp_path / "ws")
    qtbot.addWidget(window)
    window.show_page("tokenizer")
    page = window.page("tokenizer")
    page.set_spec_data({"name": "gui-tok", "data": {"sources": [str(corpus)], "eval_fraction": 0.1},
                        "tokenizer": {"algorithm": "byte-bpe", "vocab_size": 400},
                        "report": {"sample_documents": 20}})
    page.go_to_review()
    assert page.validate() == [], page.problems
    assert "vocab_size: 400" in page.yaml_view.toPlainText()

    with qtbot.waitSignal(page.launched, timeout=60_000) as launched:
        qtbot.mouseClick(page.launch_button, Qt.MouseButton.LeftButton)
    run_id = launched.args[0]
    results = page.results
    assert results.run_id == run_id and page.stack.currentWidget() is results
    qtbot.waitUntil(lambda: results.state == "completed", timeout=180_000)

    run_dir = tmp_path / "ws" / "runs" / run_id
    assert (run_dir / "output" / "tokenizer" / "tokenizer.json").is_file()
    view = results.compare.left
    assert view.tokenizer is not None and view.tokenizer.get_vocab_size() <= 400
    results.compare.set_text("the function returns the default value", immediate=True)
    assert 0 < view.token_count < len("the function returns the default value")
    assert results.report_table.columnCount() >= 1 and results.report_table.item(0, 0).text()
    report = json.loads((run_dir / "output" / "report.json").read_text())
    assert results.report_table.columnCount() == len(report["tokenizers"])  # a tokenizer per column

    # The new tokenizer is offered by the pretraining wizard's tokenizer step.
    pretrain = window.page("pretrain")
    pretrain.go_to_step(1)
    assert str(run_dir / "output" / "tokenizer") in pretrain.tokenizer_picker.paths()
    window.close()
