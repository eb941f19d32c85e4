"""The tokenizer wizard builds valid `tokenizer` specs, launches them, and shows the results."""

from __future__ import annotations

import json

import pytest
import yaml

from engine.specs import load_spec, parse_spec
from studio.pages.tokenizer.page import STEPS, TokenizerPage
from tests.studio.tracker_fixtures import FakeTracker
from tests.studio.tokenizer_fixtures import save_byte_bpe, save_wordpiece


@pytest.fixture
def tracker(store):
    return FakeTracker(store)


@pytest.fixture
def page(qtbot, store, tracker, workspace):
    widget = TokenizerPage(store, tracker, workspace)
    qtbot.addWidget(widget)
    return widget


def test_defaults_make_a_valid_spec_from_schema_forms(page):
    assert page.validate() == [] and page.launch_button.isEnabled()
    assert parse_spec(page.build_spec()).kind == "tokenizer"
    assert "data.sources" in page.forms["Corpus"].fields
    tokenizer_fields = page.forms["Tokenizer"].fields
    for path in ("tokenizer.algorithm", "tokenizer.vocab_size", "special_tokens.bos", "chat.template"):
        assert path in tokenizer_fields
    assert "report.compare_with" in page.forms["Report"].fields


def test_chosen_values_reach_the_spec(page):
    page.set_spec_data({"name": "wp", "tokenizer": {"algorithm": "wordpiece", "vocab_size": 1000},
                        "chat": {"template": "llama3"}})
    spec = parse_spec(page.build_spec())
    assert (spec.name, spec.tokenizer.algorithm, spec.tokenizer.vocab_size, spec.chat.template) == \
        ("wp", "wordpiece", 1000, "llama3")


def test_a_bad_field_shows_its_error_at_the_field(page):
    page.forms["Corpus"].editor("name").set_value("bad name/")
    problems = page.validate()
    assert [p.field for p in problems] == ["name"]
    assert page.forms["Corpus"].fields["name"].error.isVisibleTo(page.forms["Corpus"])
    assert "⚠" in page.step_list.item(STEPS.index("Corpus")).text()
    assert not page.launch_button.isEnabled()


def test_review_shows_the_yaml_and_the_command(page):
    page.set_spec_data({"tokenizer": {"vocab_size": 4096}})
    page.go_to_review()
    assert parse_spec(yaml.safe_load(page.yaml_view.toPlainText())).tokenizer.vocab_size == 4096
    assert "studio-engine" in page.command_label.text() and " run " in page.command_label.text()


def test_picked_tokenizers_join_compare_with(page, workspace):
    folder = save_byte_bpe(workspace / "runs" / "tok-old" / "output" / "tokenizer")
    page.go_to_step(STEPS.index("Report"))
    assert str(folder) in page.compare_picker.paths()
    page.add_comparison(str(folder))
    page.add_comparison(str(folder))
    assert parse_spec(page.build_spec()).report.compare_with == [str(folder)]


def test_launch_then_progress_then_results(page, tracker, store, workspace, qtbot):
    other = save_wordpiece(workspace / "saved" / "wp")
    page.set_spec_data({"name": "tiny", "report": {"compare_with": [str(other)]}})
    path = page.launch()
    assert path is not None and load_spec(path).name == "tiny" and tracker.launched == [path]
    run_dir = workspace / "runs" / "tiny-1"
    run_dir.mkdir(parents=True)
    (run_dir / "spec.yaml").write_text(path.read_text())
    store.add_run("tiny-1", kind="tokenizer", name="tiny", run_dir=str(run_dir), state="starting")
    with qtbot.waitSignal(page.launched, timeout=2000):
        tracker.command.succeeded.emit({"run_id": "tiny-1", "run_dir": str(run_dir)})
    results = page.results
    assert page.stack.currentWidget() is results and results.run_id == "tiny-1"
    tracker.run_events.emit("tiny-1", [{"seq": 1, "type": "progress", "stage": "tokenizer", "done": 30,
                                        "total": 60, "unit": "documents"},
                                       {"seq": 2, "type": "log", "level": "info", "message": "Training bpe"}])
    assert results.progress.value() == 500 and results.status_label.text() == "Training bpe"
    assert not results.results.isVisibleTo(results)

    save_byte_bpe(run_dir / "output" / "tokenizer")
    figures = {"vocab_size": 300, "tokens": 120, "bytes_per_token": 3.2, "chars_per_token": 3.1,
               "tokens_per_word": 1.4, "unk_rate": 0.0, "vocab_used": 0.5, "longest_tokens": ["quick", "brown"]}
    (run_dir / "output" / "report.json").write_text(json.dumps({
        "sample": {"documents": 5, "characters": 400},
        "tokenizers": [{"name": "tiny", **figures}, {"name": "wp", **figures, "unk_rate": 0.02}]}))
    tracker.run_state_changed.emit("tiny-1", "completed")
    assert results.results.isVisibleTo(results)
    assert results.compare.left.tokenizer is not None and results.compare.left.token_count > 0
    assert results.compare.right.tokenizer_path == other  # the tokenizer it was compared with
    table = results.report_table  # a tokenizer per column, a figure per row
    assert table.columnCount() == 2 and table.horizontalHeaderItem(0).text() == "tiny"
    assert table.verticalHeaderItem(5).text() == "Unknown" and table.item(5, 1).text() == "2.00%"
    assert "quick" in table.item(len(figures) - 1, 0).text()
    results.new_button.click()
    assert page.stack.currentWidget() is page.wizard


def test_pretraining_tokenizer_step_offers_and_previews_earlier_tokenizers(qtbot, store, tracker, workspace):
    from studio.pages.pretrain.page import PretrainPage
    from studio.pages.pretrain.page import STEPS as PRETRAIN_STEPS

    trained = save_byte_bpe(workspace / "runs" / "tok-1" / "output" / "tokenizer")
    from_pretraining = save_wordpiece(workspace / "runs" / "pre-1" / "tokenizer")
    pretrain = PretrainPage(store, tracker, workspace)
    qtbot.addWidget(pretrain)
    pretrain.go_to_step(PRETRAIN_STEPS.index("Tokenizer"))
    assert {str(trained), str(from_pretraining)} <= set(pretrain.tokenizer_picker.paths())
    assert pretrain.token_view.tokenizer is None  # training a new one: nothing to preview yet

    pretrain.tokenizer_picker.select(str(trained))  # as picking it in the combo box does
    spec = parse_spec(pretrain.build_spec())
    assert spec.tokenizer.path == str(trained) and spec.tokenizer.train is None
    assert pretrain.token_view.tokenizer is not None and pretrain.token_view.token_count > 0

    pretrain.use_tokenizer(None)
    spec = parse_spec(pretrain.build_spec())
    assert spec.tokenizer.path is None and spec.tokenizer.train is not None
    assert pretrain.token_view.tokenizer is None
