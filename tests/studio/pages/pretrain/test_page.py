"""The pretraining wizard builds valid specs from its generated forms and launches them."""

from __future__ import annotations

import json

import pytest
import yaml

from engine.sizing import MODEL_PRESETS
from engine.specs import load_spec, parse_spec
from engine.specs.pretrain import PretrainSpec
from studio.pages.pretrain.page import STEPS, PretrainPage
from studio.models.engine_profiles import EngineProfile, get_profile, remote_engine, save_profile
from tests.studio.tracker_fixtures import FakeEngine, FakeTracker


@pytest.fixture
def tracker(store):
    return FakeTracker(store)


@pytest.fixture
def page(qtbot, store, tracker, workspace):
    widget = PretrainPage(store, tracker, workspace)
    qtbot.addWidget(widget)
    return widget


def test_defaults_make_a_valid_spec(page):
    assert parse_spec(page.build_spec()) == PretrainSpec()
    assert page.validate() == []
    assert page.launch_button.isEnabled()


def test_a_changed_field_reaches_the_spec(page):
    page.forms["Training"].editor("train.max_steps").set_value(50)
    page.forms["Training"].editor("name").set_value("tiny-test")
    page.forms["Where to run"].editor("resources.device").set_value("cpu")
    spec = parse_spec(page.build_spec())
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
    spec = parse_spec(page.build_spec())
    for key, value in MODEL_PRESETS["base (~50M)"].items():
        assert getattr(spec.model, key) == value
    assert page.estimate_label.text() != before and "parameters" in page.estimate_label.text()
    page.forms["Model"].editor("model.layers").set_value(3)
    assert page.preset_box.currentText() == "Custom"


def test_the_estimate_counts_the_vocabulary_of_the_chosen_tokenizer(page, tmp_path):
    from engine.sizing import parameter_count
    from tests.studio.tokenizer_fixtures import save_byte_bpe

    def parameters() -> int:
        return parameter_count(parse_spec(page.build_spec()).model, page.vocabulary(page.spec_data()["tokenizer"])[0])

    assert "the 8,192-token vocabulary the new tokenizer is trained to" in page.estimate_detail.text()
    trained = parameters()
    folder = save_byte_bpe(tmp_path / "saved", vocab_size=300)
    page.use_tokenizer(str(folder))  # training is switched off: its vocab_size no longer counts
    assert page.vocabulary(page.spec_data()["tokenizer"])[0] == 300
    assert "the 300-token vocabulary of saved" in page.estimate_detail.text()
    assert parameters() < trained and f"{parameters() / 1e6:.3g}M parameters" in page.estimate_label.text()
    page.use_tokenizer("owner/hub-tokenizer")
    assert "a guess: owner/hub-tokenizer is not a tokenizer on this computer" in page.estimate_detail.text()


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
    # A file of one's own replaces the built-in stand-in; a second one joins it.
    assert parse_spec(page.build_spec()).data.sources == [str(corpus)]
    page.add_source(str(tmp_path))
    assert parse_spec(page.build_spec()).data.sources == [str(corpus), str(tmp_path)]
    assert page.add_file_button.isVisible() == page.add_folder_button.isVisible()
    assert page.forms["Corpus"].editor("data.sources").add_button.text() == "Type…"


def test_tokenizer_folder_replaces_training(page):
    page.forms["Tokenizer"].editor("tokenizer.path").set_value("/models/tok")
    spec = parse_spec(page.build_spec())
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
    assert parse_spec(review) == parse_spec(page.build_spec())
    other = FakeTracker(tracker.store)
    page.set_workspace(tmp_path / "elsewhere", other)
    assert str(tmp_path / "elsewhere") in page.command_label.text()
    page.launch_button.click()
    assert other.launched and other.launched[0].parent == tmp_path / "elsewhere" / "specs"
    assert not tracker.launched
    assert load_spec(other.launched[0]).name == "driven"


def test_where_to_run_lists_the_ssh_engines_and_the_run_goes_to_the_one_chosen(qtbot, page, tracker):
    assert [page.engine_combo.itemData(i) for i in range(page.engine_combo.count())] == ["local"]
    tracker.add_engine(FakeEngine("local"))
    tracker.add_engine(FakeEngine("lab box", host="gpu-lab"))
    page.go_to_step(STEPS.index("Where to run"))
    combo = page.engine_combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["Local engine (this computer)", "lab box  (SSH: gpu-lab)"]
    combo.setCurrentIndex(1)
    page.launch()
    qtbot.waitUntil(lambda: tracker.engines_used == ["lab box"])  # after the engine checked the spec
    assert tracker.engines["lab box"].validated and "lab box" in page.status_label.text()
    tracker.command.failed.emit("no")
    combo.setCurrentIndex(0)
    page.launch()
    qtbot.waitUntil(lambda: tracker.engines_used == ["lab box", None])  # the tracker's default: the local engine


def test_an_engine_with_node_hosts_puts_them_in_the_spec_shown_on_review_and_takes_them_back(page, tracker, store):
    profile = EngineProfile("pair", host="gpu-a", python="python3", workspace="/shared/ws",
                            node_hosts=("gpu-a", "gpu-b"), node_ssh_config="/shared/ssh_config")
    save_profile(store, profile)
    tracker.add_engine(remote_engine(get_profile(store, "pair")))
    page.refresh_engines()
    page.go_to_step(STEPS.index("Where to run"))
    page.engine_combo.setCurrentIndex(page.engine_combo.findData("pair"))
    assert "torchrun" in page.launch_plan_box.text() and "gpu-a" in page.launch_plan_box.text()
    assert "/shared/ws" in page.launch_plan_box.text()  # the engine's workspace, where the command runs
    page.go_to_review()
    review = yaml.safe_load(page.yaml_view.toPlainText())
    assert review["resources"]["hosts"] == ["gpu-a", "gpu-b"] and review["resources"]["nodes"] == 2
    assert review["resources"]["ssh_config"] == "/shared/ssh_config"
    assert parse_spec(page.build_spec()).resources.hosts == ["gpu-a", "gpu-b"]  # what the engine will read
    assert "gpu-b" in page.review_plan_box.text()

    page.engine_combo.setCurrentIndex(page.engine_combo.findData("local"))
    resources = page.spec_data()["resources"]
    assert resources["hosts"] == [] and resources["nodes"] == 1 and not resources.get("ssh_config")
    parse_spec(page.build_spec())
