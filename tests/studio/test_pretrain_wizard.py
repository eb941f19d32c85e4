"""The pretraining wizard builds valid specs from its generated forms and launches them."""

from __future__ import annotations

import json

import pytest
import yaml
from PySide6.QtCore import QObject, Signal

from engine.sizing import MODEL_PRESETS
from engine.specs import PretrainSpec, load_spec, parse_spec
from studio.pages.pretrain import STEPS, PretrainPage


class FakeCommand(QObject):
    succeeded = Signal(object)
    failed = Signal(str)


class FakeTracker(QObject):
    run_added = Signal(str)
    run_events = Signal(str, list)
    run_state_changed = Signal(str, str)
    run_error = Signal(str, str)
    launch_failed = Signal(str)

    def __init__(self, store):
        super().__init__()
        self.store = store
        self.launched: list = []
        self.engines_used: list = []
        self.command = FakeCommand()

    def launch(self, spec_path, engine=None):
        self.launched.append(spec_path)
        self.engines_used.append(engine)
        return self.command

    def cancel(self, run_id, force=False):
        pass

    def resume(self, run_id):
        pass


@pytest.fixture
def tracker(store):
    return FakeTracker(store)


@pytest.fixture
def page(qtbot, store, tracker, workspace):
    widget = PretrainPage(store, tracker, workspace)
    qtbot.addWidget(widget)
    return widget


def test_defaults_make_a_valid_spec(page):
    assert page.build_spec() == PretrainSpec()
    assert page.validate() == []
    assert page.launch_button.isEnabled()


def test_a_changed_field_reaches_the_spec(page):
    page.forms["Training"].editor("train.max_steps").set_value(50)
    page.forms["Training"].editor("name").set_value("tiny-test")
    page.forms["Where to run"].editor("resources.device").set_value("cpu")
    spec = page.build_spec()
    assert (spec.train.max_steps, spec.name, spec.resources.device) == (50, "tiny-test", "cpu")


def test_every_step_form_is_generated_from_the_schema(page):
    assert set(page.forms) == set(STEPS) - {"Review"}
    assert "data.sources" in page.forms["Corpus"].fields
    assert "tokenizer.train.vocab_size" in page.forms["Tokenizer"].fields
    assert "model.hidden_size" in page.forms["Model"].fields
    assert "train.learning_rate" in page.forms["Training"].fields
    assert "resources.gpus" in page.forms["Where to run"].fields


def test_presets_set_the_model_and_update_the_estimate(page):
    before = page.estimate_label.text()
    page.apply_preset("base (~50M)")
    spec = page.build_spec()
    for key, value in MODEL_PRESETS["base (~50M)"].items():
        assert getattr(spec.model, key) == value
    assert page.estimate_label.text() != before and "parameters" in page.estimate_label.text()
    page.forms["Model"].editor("model.layers").set_value(3)
    assert page.preset_box.currentText() == "Custom"


def test_problems_are_shown_and_block_launch(page, qtbot):
    page.forms["Model"].editor("model.heads").set_value(3)
    problems = page.validate()
    assert [p.field for p in problems] == ["model"]
    assert not page.launch_button.isEnabled()
    assert "⚠" in page.step_list.item(STEPS.index("Model")).text()
    assert "must divide" in page.forms["Model"].groups["model"].error_label.text()
    page.forms["Model"].editor("model.heads").set_value(8)
    qtbot.waitUntil(lambda: page.launch_button.isEnabled(), timeout=2000)


def test_review_shows_the_yaml_and_the_command(page):
    page.forms["Training"].editor("train.max_steps").set_value(77)
    page.go_to_step(len(STEPS) - 1)
    assert parse_spec(yaml.safe_load(page.yaml_view.toPlainText())).train.max_steps == 77
    assert "studio-engine" in page.command_label.text() and " run " in page.command_label.text()
    assert page.launch_button.isVisible() or not page.isVisible()


def test_launch_writes_the_spec_and_shows_the_monitor(page, tracker, store, workspace, qtbot):
    page.forms["Training"].editor("train.max_steps").set_value(20)
    path = page.launch()
    assert path is not None and path.parent == workspace / "specs"
    assert load_spec(path).train.max_steps == 20
    assert tracker.launched == [path]
    assert not page.launch_button.isEnabled()  # until the engine answers
    store.add_run("pretrain-1", kind="pretrain", name="pretrain", state="starting")
    with qtbot.waitSignal(page.launched, timeout=2000) as launched:
        tracker.command.succeeded.emit({"run_id": "pretrain-1", "run_dir": str(workspace / "runs" / "x")})
    assert launched.args == ["pretrain-1"]
    assert page.monitor is not None and page.monitor.run_id == "pretrain-1"
    assert page.stack.currentWidget() is not page.wizard


def test_launch_failure_is_shown_on_review(page, tracker):
    page.launch()
    tracker.launch_failed.emit("spec.yaml: 1 problem:\n  - train.max_steps: too big")
    assert "too big" in page.problems_label.text()
    assert page.steps.currentIndex() == len(STEPS) - 1


def test_corpus_preview_reads_local_files_and_the_builtin(page, tmp_path):
    assert "textwrap" in page.preview.toPlainText()
    corpus = tmp_path / "notes.jsonl"
    corpus.write_text("\n".join(json.dumps({"text": f"note number {i}"}) for i in range(20)), encoding="utf-8")
    page.add_source(str(corpus))
    page.update_preview()
    text = page.preview.toPlainText()
    assert "note number 0" in text and "note number 3" in text
    assert page.build_spec().data.sources == ["builtin:python-docs", str(corpus)]


def test_tokenizer_folder_replaces_training(page):
    page.forms["Tokenizer"].editor("tokenizer.path").set_value("/models/tok")
    spec = page.build_spec()
    assert spec.tokenizer.path == "/models/tok" and spec.tokenizer.train is None


def test_a_bad_value_is_shown_at_its_own_field(page, qtbot):
    page.forms["Training"].editor("name").set_value("has spaces/slash")
    problems = page.validate()
    assert [p.field for p in problems] == ["name"]
    row = page.forms["Training"].fields["name"]
    assert row.error.isVisibleTo(page.forms["Training"]) and "pattern" in row.error.text()
    assert "⚠" in page.step_list.item(STEPS.index("Training")).text()
    assert "⚠" not in page.step_list.item(STEPS.index("Model")).text()
    assert not page.launch_button.isEnabled()


def test_a_test_can_drive_the_wizard_with_a_spec_dict(page, tracker, tmp_path):
    page.set_spec_data({"name": "driven", "train": {"max_steps": 12}, "resources": {"device": "cpu"}})
    data = page.spec_data()
    assert data["name"] == "driven" and data["train"]["max_steps"] == 12
    assert data["model"] == PretrainSpec().model_dump(mode="json")["model"]  # untouched keys keep their values
    page.go_to_review()
    review = yaml.safe_load(page.yaml_view.toPlainText())
    assert review["train"]["max_steps"] == 12 and review["resources"]["device"] == "cpu"
    assert parse_spec(review) == page.build_spec()
    other = FakeTracker(tracker.store)
    page.set_workspace(tmp_path / "elsewhere", other)
    assert str(tmp_path / "elsewhere") in page.command_label.text()
    page.launch_button.click()
    assert other.launched and other.launched[0].parent == tmp_path / "elsewhere" / "specs"
    assert not tracker.launched
    assert load_spec(other.launched[0]).name == "driven"


def test_where_to_run_lists_the_ssh_engines_and_the_run_goes_to_the_one_chosen(page, tracker):
    from types import SimpleNamespace

    assert [page.engine_combo.itemData(i) for i in range(page.engine_combo.count())] == ["local"]
    tracker.default_engine = "local"
    tracker.engines = {"local": SimpleNamespace(is_remote=False),
                       "lab box": SimpleNamespace(is_remote=True, target=SimpleNamespace(host="gpu-lab"))}
    page.go_to_step(STEPS.index("Where to run"))
    combo = page.engine_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["Local engine (this computer)", "lab box  (SSH: gpu-lab)"]
    combo.setCurrentIndex(1)
    page.launch()
    assert tracker.engines_used == ["lab box"] and "lab box" in page.status_label.text()
    tracker.command.failed.emit("no")
    combo.setCurrentIndex(0)
    page.launch()
    assert tracker.engines_used == ["lab box", None]  # the tracker's default: the local engine
