"""The Data page: the clean wizard's forms and step checklist, the dry run through an engine process
(a stand-in answering `preview`), launch, the run's report, and handing the cleaned dataset to the
tokenizer and pretraining wizards."""

from __future__ import annotations

import json

import pytest
import yaml
from PySide6.QtCore import Qt

from engine.specs import load_spec, parse_spec
from engine.specs.clean import CleanSpec
from studio.client.engine import LocalEngine
from studio.pages.data.page import STEPS, DataPage
from studio.pages.data.clean_steps import CLEANING_STEPS
from tests.studio.pages.data.clean_fixtures import KEPT, preview_calls, stand_in_preview_engine, write_clean_run
from tests.studio.tracker_fixtures import FakeTracker


@pytest.fixture
def tracker(store):
    return FakeTracker(store)


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps({"text": KEPT}) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def engine(tmp_path, workspace):
    entry, log = stand_in_preview_engine(tmp_path)
    engine = LocalEngine(workspace=workspace, entry=entry)
    engine.calls_log = log
    return engine


@pytest.fixture
def page(qtbot, store, tracker, workspace, engine, corpus):
    widget = DataPage(store, tracker, workspace, engine=engine)
    qtbot.addWidget(widget)
    widget.set_spec_data({"input": {"sources": [str(corpus)]}})
    return widget


def dry_run(qtbot, page, force=True):
    with qtbot.waitSignal(page.dry_run_finished, timeout=20_000) as finished:
        assert page.run_dry_run(force=force)
    return finished.args[0]


# ---------------------------------------------------------------------------------- the spec
def test_defaults_make_a_valid_clean_spec(qtbot, store, tracker, workspace):
    page = DataPage(store, tracker, workspace)
    qtbot.addWidget(page)
    assert page.validate() == [] and page.launch_button.isEnabled()
    assert parse_spec(page.build_spec()) == CleanSpec()


def test_mapping_fields_keep_their_defaults(page):
    # dict[int, float] fields are edited as text; they must not come back empty (rules switched off).
    repetition = parse_spec(page.build_spec()).quality.repetition
    assert repetition.top_ngram_max_fraction == {2: 0.2, 3: 0.18, 4: 0.16}
    page.forms["step:quality"].editor("quality.repetition.top_ngram_max_fraction").set_value({2: 0.3})
    assert parse_spec(page.build_spec()).quality.repetition.top_ngram_max_fraction == {2: 0.3}


def test_every_spec_field_has_a_place_in_the_wizard(page):
    shown = {path.split(".")[0] for form in page.forms.values() for path in form.fields}
    assert shown | {"kind", "preview"} == set(CleanSpec.model_fields)
    assert "input.sources" in page.forms["Input"].fields
    assert "quality.gopher.min_words" in page.forms["step:quality"].fields


def test_the_checklist_switches_steps_in_the_spec_and_follows_it(page):
    item = page.step_checklist.topLevelItem(CLEANING_STEPS.index("near_dedup"))
    assert item.checkState(0) == Qt.Checked
    item.setCheckState(0, Qt.Unchecked)  # what a click does
    assert parse_spec(page.build_spec()).near_dedup.enabled is False
    assert item.text(1) == "off"
    page.set_spec_data({"language": {"enabled": True, "keep": ["en", "de"]}})
    language = page.step_checklist.topLevelItem(CLEANING_STEPS.index("language"))
    assert language.checkState(0) == Qt.Checked and parse_spec(page.build_spec()).language.keep == ["en", "de"]
    page.set_step_enabled("language", False)
    assert parse_spec(page.build_spec()).language.enabled is False
    assert not page.forms["step:language"].groups["language"].isEnabled()  # its settings greyed out


def test_a_bad_step_setting_is_shown_at_its_field_and_marks_the_steps_step(page):
    page.forms["step:near_dedup"].editor("near_dedup.bands").set_value(8)  # rows left empty
    problems = page.validate()
    assert [p.field for p in problems] == ["near_dedup.bands"]
    assert "go together" in page.forms["step:near_dedup"].fields["near_dedup.bands"].error.text()
    assert "⚠" in page.step_list.item(STEPS.index("Steps")).text()
    assert not page.launch_button.isEnabled()


def test_the_sample_size_reaches_the_spec(page):
    page.dry_run.sample_spin.setValue(250)
    assert parse_spec(page.build_spec()).preview.sample_documents == 250
    page.set_spec_data({"preview": {"sample_documents": 40}})
    assert page.dry_run.sample_spin.value() == 40


def test_review_shows_the_yaml_and_launch_writes_the_spec(page, tracker):
    page.set_spec_data({"name": "my-clean", "output": {"format": "jsonl"}, "pii": {"enabled": False}})
    page.go_to_review()
    assert parse_spec(yaml.safe_load(page.yaml_view.toPlainText())).output.format == "jsonl"
    path = page.launch()
    spec = load_spec(path)
    assert (spec.kind, spec.name, spec.pii.enabled) == ("clean", "my-clean", False)
    assert tracker.launched == [path]


# ---------------------------------------------------------------------------------- dry run
def test_the_dry_run_shows_what_each_step_would_do_and_why(qtbot, page, engine):
    result = dry_run(qtbot, page)
    args = preview_calls(engine.calls_log)[-1]
    assert args[-5:-1] == ["preview", args[-4], "--json", "--sample"] and args[-1] == "1000"
    assert result.counts() == {"removed": 2, "modified": 1, "kept": 2}
    column = {step: page.step_checklist.topLevelItem(i).text(1) for i, step in enumerate(CLEANING_STEPS)}
    assert column["quality"] == "removes 1" and column["pii"] == "modifies 1" and column["language"] == "off"
    assert "gopher.min_words 1" in page.step_checklist.topLevelItem(CLEANING_STEPS.index("quality")).text(2)
    view = page.dry_run
    assert view.steps_table.item(0, 0).text() == "Quality" and view.steps_table.item(0, 1).text() == "1"
    assert "1 broken record" in view.problems_label.text()
    # By default the list holds what would change, with the reason.
    assert [d.id for d in view.model.rows] == ["a.jsonl:2", "a.jsonl:3", "a.jsonl:4"]
    assert view.model.rows[0].why() == "4 words, fewer than 50 (quality.gopher.min_words)"


def test_selecting_documents_shows_reasons_and_differences(qtbot, page):
    dry_run(qtbot, page)
    view = page.dry_run
    assert view.select_document("a.jsonl:3")  # modified: before and after
    assert [s.text for s in view.diff.diff.left if s.kind == "delete"] == ["jane.doe@example.org"]
    assert [s.text for s in view.diff.diff.right if s.kind == "insert"] == ["<EMAIL>"]
    assert view.select_document("a.jsonl:4")  # a near duplicate beside the document it duplicates
    assert "Duplicate of <b>a.jsonl:1</b>, similarity 0.86" in view.reason_label.text()
    assert view.diff.left_view.toPlainText() == KEPT and view.diff.left_title.full_text() == "Kept: a.jsonl:1"
    assert view.select_document("a.jsonl:2")  # removed by a rule: its text and reason
    assert view.diff.diff is None and "quality.gopher.min_words" in view.reason_label.text()


def test_filters_by_fate_step_and_rule_with_a_plain_empty_state(qtbot, page):
    dry_run(qtbot, page)
    view = page.dry_run
    view.filter_step("near_dedup")
    assert [d.id for d in view.model.rows] == ["a.jsonl:4"] and view.content.currentIndex() == 1
    view.set_filters("all", None, "pii.email")
    assert [d.id for d in view.model.rows] == ["a.jsonl:3"]
    view.filter_step("exact_dedup")
    assert view.model.rowCount() == 0
    assert view.empty_label.text() == "No exact duplicates found in the sample of 5 documents."
    view.set_filters("all")
    view.search_edit.setText("buffers")
    view.apply_filters()
    assert [d.id for d in view.model.rows] == ["a.jsonl:5"]


def test_changing_a_setting_on_the_steps_step_reruns_the_dry_run_once(qtbot, page, engine):
    page.show()
    qtbot.waitExposed(page)
    with qtbot.waitSignal(page.dry_run_finished, timeout=20_000):
        page.go_to_step(STEPS.index("Steps"))  # entering the step runs it
    before = len(preview_calls(engine.calls_log))
    page.set_step_enabled("pii", False)
    page.forms["step:quality"].editor("quality.gopher.min_words").set_value(20)
    assert page.step_checklist.topLevelItem(CLEANING_STEPS.index("quality")).text(1) == "…"
    with qtbot.waitSignal(page.dry_run_finished, timeout=20_000):
        pass
    calls = preview_calls(engine.calls_log)
    assert len(calls) == before + 1  # debounced: two changes, one dry run
    spec = yaml.safe_load(open(calls[-1][calls[-1].index("preview") + 1]))
    assert spec["pii"]["enabled"] is False and spec["quality"]["gopher"]["min_words"] == 20
    assert page.step_checklist.topLevelItem(CLEANING_STEPS.index("pii")).text(1) == "off"
    # Settings that cannot change the dry run (the run's name) do not run it again.
    page.forms["Output"].editor("name").set_value("renamed")
    qtbot.wait(900)
    assert len(preview_calls(engine.calls_log)) == before + 1 and not page.dry_run_running


def test_ctrl_r_runs_the_dry_run_again(qtbot, page, engine):
    page.show()
    qtbot.waitExposed(page)
    page.go_to_step(STEPS.index("Dry run"))
    with qtbot.waitSignal(page.dry_run_finished, timeout=20_000):
        pass
    count = len(preview_calls(engine.calls_log))
    with qtbot.waitSignal(page.dry_run_finished, timeout=20_000):
        qtbot.keyClick(page.dry_run.documents_view, Qt.Key_R, Qt.ControlModifier)
    assert len(preview_calls(engine.calls_log)) == count + 1


def test_a_failing_dry_run_says_why_clears_the_last_results_and_blocks_launch(qtbot, page, corpus, tmp_path):
    dry_run(qtbot, page)  # a good corpus first: its results are on screen
    assert page.dry_run.result is not None and page.launch_button.isEnabled()
    page.set_spec_data({"input": {"sources": [str(tmp_path / "nowhere.jsonl")]}})
    with qtbot.waitSignal(page.dry_run_failed, timeout=20_000) as failed:
        page.run_dry_run(force=True)
    assert "nowhere.jsonl" in failed.args[0] and "does not exist" in failed.args[0]
    assert "The dry run failed" in page.dry_run.status_label.text()
    assert "studio-engine:" not in page.dry_run.status_label.text()
    # Nothing of the earlier corpus stays under the error, and these settings cannot be launched.
    assert page.dry_run.result is None and page.dry_result is None
    assert page.dry_run.body.currentWidget() is page.dry_run.empty_state
    assert not page.launch_button.isEnabled() and "could not preview these settings" in page.status_label.text()
    page.set_spec_data({"input": {"sources": [str(corpus)]}})  # other settings: Launch is theirs to decide
    assert page.launch_button.isEnabled()


def test_an_invalid_spec_waits_instead_of_running(page, engine):
    page.forms["Input"].editor("input.sources").set_value([])
    assert page.run_dry_run(force=True) is False
    assert "settings are valid" in page.dry_run.status_label.text()
    assert preview_calls(engine.calls_log) == []


def test_random_sample_on_the_input_step_comes_from_the_dry_run(qtbot, page):
    assert page.first_button.isChecked()
    qtbot.waitUntil(lambda: KEPT in page.preview.toPlainText())  # the first documents, read here
    with qtbot.waitSignal(page.dry_run_finished, timeout=20_000):
        page.sample_button.click()
    assert page.sample_button.isChecked()
    assert "drawn at random" in page.sample_note.text() and "■ a.jsonl:" in page.preview.toPlainText()


# ------------------------------------------------------------------------------- the run view
def test_a_running_clean_run_shows_progress_and_an_eta(qtbot, page, store, workspace):
    store.add_run("cl-1", kind="clean", name="cl", run_dir=str(workspace / "runs" / "cl-1"), state="running")
    page.show_run("cl-1")
    view = page.run_view
    assert page.stack.currentWidget() is view and view.body.currentWidget() is view.running_panel
    events = [{"type": "progress", "stage": "clean", "done": 1.0, "total": 4.0, "unit": "MB", "eta_s": None,
               "t": 100.0},
              {"type": "progress", "stage": "clean", "done": 2.0, "total": 4.0, "unit": "MB", "eta_s": None,
               "t": 110.0}]
    page.tracker.run_events.emit("cl-1", events)
    assert view.progress.value() == 500
    assert view.progress_label.text() == "2.0 of 4.0 MB  ·  ETA 20s"  # estimated: the engine sent none
    page.tracker.run_events.emit("cl-1", [{"type": "progress", "done": 3.0, "total": 4.0, "unit": "MB",
                                           "eta_s": 7.0, "t": 115.0}])
    assert view.progress_label.text().endswith("ETA 7s")


def test_a_finished_run_shows_its_report_and_hands_the_dataset_on(qtbot, page, store, workspace):
    run_dir = workspace / "runs" / "cl-2"
    write_clean_run(run_dir)
    store.add_run("cl-2", kind="clean", name="cl", run_dir=str(run_dir), state="completed")
    page.show_run("cl-2")
    view = page.run_view
    assert view.body.currentWidget() is view.report_view and not view.dataset_row.isHidden()
    assert view.report_view.steps_table.rowCount() == 3
    assert view.dataset_path() == run_dir / "output" / "dataset"
    with qtbot.waitSignal(page.use_dataset_in) as used:
        view.pretrain_button.click()
    assert used.args == ["pretrain", str(run_dir / "output" / "dataset")]
    view.new_button.click()
    assert page.stack.currentWidget() is page.wizard


# ------------------------------------------------------------------------- cleaned datasets
def test_cleaned_datasets_are_offered_as_a_corpus(qtbot, store, tracker, workspace):
    from studio.pages.tokenizer.page import TokenizerPage
    from studio.widgets.dataset_picker import find_datasets

    run_dir = workspace / "runs" / "docs-clean-20261123-1"
    write_clean_run(run_dir)
    found = find_datasets(workspace)
    assert [(f.run_id, f.documents, f.format) for f in found] == [("docs-clean-20261123-1", 36, "jsonl")]
    page = TokenizerPage(store, tracker, workspace)
    qtbot.addWidget(page)
    page.go_to_step(0)
    assert page.dataset_picker.paths() == [str(run_dir / "output" / "dataset")]
    page.forms["Corpus"].editor("data.text_field").set_value("body")
    page.dataset_picker.choose(run_dir / "output" / "dataset")
    data = parse_spec(page.build_spec()).data
    assert data.sources == [str(run_dir / "output" / "dataset")] and data.text_field == "text"
    assert KEPT in page.preview.toPlainText()


def test_with_no_cleaned_dataset_the_picker_says_where_to_make_one(qtbot, store, tracker, workspace):
    from studio.pages.pretrain.page import PretrainPage

    page = PretrainPage(store, tracker, workspace)
    qtbot.addWidget(page)
    assert not page.dataset_picker.combo.isEnabled()
    assert "Data page" in page.dataset_picker.combo.currentText()


def test_a_parquet_dataset_is_previewed(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from studio.widgets.corpus_preview import source_preview

    folder = tmp_path / "dataset"
    folder.mkdir()
    pq.write_table(pa.table({"text": ["first document", "second"], "id": ["a", "b"]}), folder / "data-00000.parquet")
    preview = source_preview(str(folder), "text", limit=5)
    assert [d.text for d in preview.documents] == ["first document", "second"]
    assert source_preview(str(folder), "body").note.endswith("no `body` column (columns: text, id)")


# ------------------------------------------------------------------------------ main window
def test_the_window_shows_the_data_page_and_routes_clean_runs_and_datasets(qtbot, workspace, store):
    from studio.main_window import MainWindow

    window = MainWindow(workspace, store=store, tracker=FakeTracker(store), reattach=False)
    qtbot.addWidget(window)
    window.show_page("data")
    assert isinstance(window.page("data"), DataPage)
    run_dir = workspace / "runs" / "cl-3"
    write_clean_run(run_dir)
    store.add_run("cl-3", kind="clean", name="cl", run_dir=str(run_dir), state="completed")
    window.show_page("runs")
    window.open_run("cl-3")  # from the Runs page or the jobs dock: the report, not the charts
    assert window.current_page_key() == "data" and window.page("data").run_view.run_id == "cl-3"
    window.page("data").run_view.tokenizer_button.click()
    assert window.current_page_key() == "tokenizer"
    assert parse_spec(window.page("tokenizer").build_spec()).data.sources == [str(run_dir / "output" / "dataset")]
