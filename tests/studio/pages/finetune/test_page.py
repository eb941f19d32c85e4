"""The Fine-tune page: the finetune wizard's forms, the base models of earlier runs, the engine
preview (constructed answers and a stand-in engine process), the record view with trained tokens,
the method cards with their memory warnings, launch, and the run's scores and outputs."""

from __future__ import annotations

import pytest
import yaml
from PySide6.QtCore import Qt

from engine.specs import load_spec, parse_spec
from engine.specs.finetune import FinetuneSpec
from studio.client.engine import LocalEngine
from studio.models.finetune_results import FinetunePreview, TaskScores, find_base_models, format_score
from studio.pages.finetune.page import STEPS, FinetunePage
from studio.widgets.launch_plan import launch_plan
from studio.pages.finetune.record_view import record_pieces
from tests.studio.finetune_fixtures import (
    LINEAR,
    finetune_events,
    preview_answer,
    preview_calls,
    stand_in_preview_engine,
    write_model_run,
)
from tests.studio.tracker_fixtures import FakeTracker


@pytest.fixture
def tracker(store):
    return FakeTracker(store)


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "tiny-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}", encoding="utf-8")
    return folder


@pytest.fixture
def page(qtbot, store, tracker, workspace, model_dir):
    widget = FinetunePage(store, tracker, workspace)
    qtbot.addWidget(widget)
    widget.use_model(str(model_dir))
    return widget


def shown(page, data=None):
    """Apply a preview for the page's current settings (as a finished engine preview does)."""
    return page.apply_preview(data or preview_answer(page.spec_data()["model"]["path"]))


# ---------------------------------------------------------------------------------- the spec
def test_without_a_base_model_the_wizard_says_to_pick_one(qtbot, store, tracker, workspace):
    page = FinetunePage(store, tracker, workspace)
    qtbot.addWidget(page)
    problems = page.validate()
    assert [p.field for p in problems] == ["model.path"]
    assert "Pick a base model" in page.forms["Base model"].fields["model.path"].error.text()
    assert "⚠" in page.step_list.item(STEPS.index("Base model")).text()
    assert not page.launch_button.isEnabled()
    assert page.model_summary.text() == "No base model yet"
    assert page.spec_data()["data"]["sources"] == ["builtin:tasks"]  # runs with no data of the user's own


def test_a_base_model_makes_a_valid_finetune_spec(page, model_dir):
    assert page.validate() == [] and page.launch_button.isEnabled()
    spec = parse_spec(page.build_spec())
    assert isinstance(spec, FinetuneSpec)
    assert (spec.model.path, spec.method.name, spec.data.sources) == (str(model_dir), "lora", ["builtin:tasks"])
    assert spec == FinetuneSpec(model={"path": str(model_dir)}, data={"sources": ["builtin:tasks"]})


def test_every_spec_field_has_a_place_in_the_wizard(page):
    fields = {path.split(".")[0] for form in page.forms.values() for path in form.fields}
    assert fields | {"kind"} == set(FinetuneSpec.model_fields)
    assert "method.lora.target_modules" in page.forms["Method"].fields
    assert "resources.strategy" in page.forms["Where to run"].fields


def test_review_shows_the_yaml_and_launch_writes_the_spec(page, tracker):
    page.set_spec_data({"name": "my-ft", "data": {"task": "sort"}, "train": {"max_steps": 50}})
    page.go_to_review()
    assert parse_spec(yaml.safe_load(page.yaml_view.toPlainText())).data.task == "sort"
    assert "studio-engine" in page.command_label.text()
    path = page.launch()
    spec = load_spec(path)
    assert (spec.kind, spec.name, spec.train.max_steps) == ("finetune", "my-ft", 50)
    assert tracker.launched == [path]


# ------------------------------------------------------------------------------ base models
def test_models_of_earlier_runs_are_offered_newest_first_and_the_newest_is_preselected(
        qtbot, store, tracker, workspace):
    import os

    pretrained = write_model_run(workspace, "base-20261101-000000-aaaa", "pretrain", name="base")
    merged = write_model_run(workspace, "ft-20261102-000000-bbbb", "finetune", folder="merged", name="ft")
    os.utime(pretrained / "config.json", (1_000, 1_000))
    write_model_run(workspace, "tok-20261101-000000-cccc", "tokenizer", folder="tokenizer")  # no config.json there
    found = find_base_models(workspace)
    assert [f.path for f in found] == [merged, pretrained]
    assert [f.source for f in found] == ["fine-tuned, merged", "pretrained"]
    page = FinetunePage(store, tracker, workspace)
    qtbot.addWidget(page)
    assert page.spec_data()["model"]["path"] == str(merged)
    assert page.model_picker.paths()[:2] == [str(merged), str(pretrained)]
    page.model_picker.select(str(pretrained))  # what choosing it in the box does
    assert page.spec_data()["model"]["path"] == str(pretrained)
    assert "2 models of earlier runs" in page.model_picker_note.text()


def test_a_typed_hub_id_is_kept_and_shown_in_the_picker(qtbot, page):
    line = page.forms["Base model"].editor("model.path").line
    line.clear()
    qtbot.keyClicks(line, "Qwen/Qwen2.5-0.5B-Instruct")
    assert page.model_picker.current_path() == "Qwen/Qwen2.5-0.5B-Instruct"
    assert page.model_picker.paths() == ["Qwen/Qwen2.5-0.5B-Instruct"]  # one entry, not one per letter
    assert parse_spec(page.build_spec()).model.path == "Qwen/Qwen2.5-0.5B-Instruct"


# ---------------------------------------------------------------------------------- preview
def test_the_preview_shows_the_model_the_format_and_the_counts(page):
    preview = shown(page)
    assert page.model_summary.text() == "llama  ·  1.33M parameters"
    assert "q_proj" in page.model_detail.text()
    assert "alpaca, detected from the fields instruction, input, output" in page.data_summary.text()
    assert "900 to train on, 100 held out" in page.data_summary.text()
    assert "3 are too long and will be cut" in page.data_summary.text()
    assert "Reading the data as alpaca" in page.forms["Data"].fields["data.format"].help.text()
    assert preview.format_sentence().startswith("alpaca, detected")


def test_an_overridden_format_is_called_chosen():
    data = preview_answer()
    data["format"], data["format_detected"] = "sharegpt", False
    assert FinetunePreview.from_json(data).format_sentence() == "sharegpt (chosen)"


def test_a_record_is_shown_with_its_trained_tokens_and_can_be_browsed(qtbot, page):
    shown(page)
    view = page.record_view
    assert len(view.records) == 2 and view.position_label.text() == "Record 1 of 2"
    trained = [p.text for p in view.pieces if p.trained]
    assert trained == ["42", "<|im_end|>"]
    assert all(p.trained is False for p in view.pieces if p.text == "user")
    assert "16 tokens" in view.stats_label.text() and "2 trained" in view.stats_label.text()
    assert not view.previous_button.isEnabled()
    page.go_to_step(STEPS.index("Data"))
    page.show()
    qtbot.waitExposed(page)
    with qtbot.waitActive(page):
        page.activateWindow()
    view.ids_box.setFocus()
    qtbot.keyClick(view.ids_box, Qt.Key_Right, Qt.AltModifier)
    assert view.index == 1 and view.position_label.text() == "Record 2 of 2"
    assert "cut from 40" in view.stats_label.text()
    assert not view.next_button.isEnabled()
    view.previous_button.click()
    assert view.index == 0


def test_record_pieces_cover_the_rendered_text():
    record = FinetunePreview.from_json(preview_answer()).examples[0]
    pieces = record_pieces(record)
    assert "".join(p.text for p in pieces) == record.text
    assert pieces[1].start == len("<|im_start|>") and pieces[-1].end == len(record.text)


def test_method_cards_show_memory_and_warn_where_a_run_cannot_fit(page):
    cards = page.method_cards
    assert "estimated once" in cards.cards["lora"].memory_label.text()
    shown(page)
    lora, qlora, full = cards.cards["lora"], cards.cards["qlora"], cards.cards["full"]
    assert "MiB" in lora.memory_label.text() and "123K trainable" in lora.memory_label.text()
    assert lora.warning_label.isHidden()
    assert "Needs a CUDA GPU" in qlora.warning_label.text() and not qlora.warning_label.isHidden()
    assert "Will not fit" in full.warning_label.text() and "48.0 GiB" in full.warning_label.text()
    assert "23.1 GiB free" in cards.summary_label.text()
    assert page.method_warning.isHidden()  # LoRA, the chosen one, fits
    page.choose_method("full")
    assert "Will not fit" in page.method_warning.text() and not page.method_warning.isHidden()
    page.choose_method("qlora")
    assert "CUDA GPU (Where to run)" in page.method_warning.text()
    page.go_to_review()
    assert "QLoRA" in page.review_warning.text() and not page.review_warning.isHidden()


def test_choosing_a_card_sets_the_method_and_shows_its_settings(page):
    form = page.forms["Method"]
    assert page.method_cards.selected == "lora"
    page.set_spec_data({"output": {"merge": True}})
    page.method_cards.cards["prefix"].activated.emit("prefix")  # what a click does
    assert parse_spec(page.build_spec()).method.name == "prefix"
    assert not form.groups["method.prompt_learning"].isHidden()
    assert form.groups["method.lora"].isHidden()
    assert form.groups["output"].isHidden() and parse_spec(page.build_spec()).output.merge is False
    page.choose_method("qlora")
    assert not form.groups["method.lora"].isHidden() and not form.groups["method.quantization"].isHidden()
    page.choose_method("full")
    assert form.groups["method"].isHidden()


def test_the_learning_rate_follows_the_method_and_the_model_size_until_it_is_set(page):
    def rate() -> float:
        return parse_spec(page.build_spec()).train.learning_rate

    assert page.spec_data()["data"]["chat_template"] == "auto"  # a base model without a template fine-tunes too
    assert rate() == 2e-4  # LoRA on a model of unknown size: the spec's default
    page.choose_method("full")
    assert rate() == 2e-5 and "Learning rate set to 2e-05" in page.method_note.text()
    shown(page)  # a 1.3M-parameter model, like the demo's: full fine-tuning wants a far higher rate
    assert rate() == 3e-3 and "1.33M parameters" in page.method_note.text()
    assert "“Learning rate” on the Training step" in page.method_note.text()
    page.go_to_review()
    assert page.review_expectation.text().startswith("Learning rate 0.003: the usual start for full fine-tuning")
    assert "Expect the training loss to fall" in page.review_expectation.text()
    page.choose_method("lora")
    assert rate() == 1e-3
    page.go_to_review()
    assert "adapters have little to work with" in page.review_expectation.text()

    page.forms["Training"].editor("train.learning_rate").set_value(5e-4)  # the user's own
    page.choose_method("full")
    assert rate() == 5e-4
    page.go_to_review()
    assert page.review_expectation.text().startswith("Learning rate 0.0005: your own; 0.003 is the usual start")
    page.reset()
    assert page.spec_data()["train"]["learning_rate"] == 2e-4 and page.spec_data()["method"]["name"] == "lora"


def test_the_review_shows_the_training_path_the_preview_chose(page):
    page.go_to_review()
    assert page.review_path.text().startswith("Training path: chosen when the run starts")
    shown(page)
    assert page.review_path.text() == ("Training path: packed, padding-free; logits at trained positions only; "
                                       "not compiled.")
    padded = preview_answer(page.spec_data()["model"]["path"])
    padded["training"] = {"packed": False, "loss": "trained positions", "compiled": False,
                          "text": "padded; logits at trained positions only; not compiled",
                          "why_padded": "the opt architecture does not keep packed records apart."}
    shown(page, padded)
    assert page.review_path.text() == ("Training path: padded; logits at trained positions only; not compiled. "
                                       "Not packed: the opt architecture does not keep packed records apart.")


def test_arrow_keys_move_between_method_cards(qtbot, page):
    page.show()
    qtbot.waitExposed(page)
    with qtbot.waitActive(page):
        page.activateWindow()
    card = page.method_cards.cards["lora"]
    card.setFocus()
    qtbot.keyClick(card, Qt.Key_Down)
    assert page.method_cards.selected == "adalora" and parse_spec(page.build_spec()).method.name == "adalora"
    qtbot.keyClick(page.method_cards.cards["adalora"], Qt.Key_Left)
    assert parse_spec(page.build_spec()).method.name == "qlora"


def test_target_modules_are_a_checklist_of_the_models_linear_layers(page):
    targets = page.target_modules
    assert not targets.boxes and "once it is previewed" in targets.note.text()
    shown(page)
    assert list(targets.boxes) == LINEAR and all(b.isChecked() for b in targets.boxes.values())
    assert parse_spec(page.build_spec()).method.lora.target_modules is None  # the default: every projection
    targets.boxes["gate_proj"].click()
    targets.boxes["up_proj"].click()
    assert parse_spec(page.build_spec()).method.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"]
    page.set_spec_data({"method": {"lora": {"target_modules": ["q_proj", "v_proj"]}}})
    assert [n for n, b in targets.boxes.items() if b.isChecked()] == ["q_proj", "v_proj"]
    for name in ("q_proj", "v_proj"):
        targets.boxes[name].click()  # the last one stays: adapters need a layer
    assert parse_spec(page.build_spec()).method.lora.target_modules == ["v_proj"]


def test_builtin_tasks_show_their_task_settings(page):
    page.set_spec_data({"data": {"sources": ["/data/alpaca.jsonl"]}})
    page.use_builtin_tasks()
    assert parse_spec(page.build_spec()).data.sources == ["builtin:tasks"]
    assert all(section.expanded for section in page.forms["Data"].advanced_sections())
    assert not page.forms["Data"].advanced_sections()[0].body.isHidden()


def test_the_launch_plan_names_the_launcher_for_several_gpus(page, workspace):
    sentence, command = launch_plan({"gpus": 1}, workspace)
    assert "One process" in sentence and command is None
    sentence, command = launch_plan({"gpus": 4, "strategy": "deepspeed-zero3", "offload": True}, workspace)
    assert "4 processes" in sentence and "ZeRO-3" in sentence and "offloaded" in sentence
    assert "--nproc_per_node=4" in command and command.startswith("python -m torch.distributed.run")
    sentence, command = launch_plan({"gpus": 2, "nodes": 2}, workspace)
    assert "hostfile" in sentence and command is None
    page.set_spec_data({"resources": {"gpus": 2, "strategy": "fsdp"}})
    page.go_to_review()
    text = page.review_plan_box.text()
    assert "FSDP" in text and "nproc_per_node=2" in text and "FSDP" in page.launch_plan_box.text()
    assert "reshard_after_forward" in text  # the settings the engine gives the trainer
    page.set_spec_data({"resources": {"strategy": "deepspeed-zero2", "offload": True}})
    assert "zero_optimization" in page.review_plan_box.text() and "offload_optimizer" in page.review_plan_box.text()
    page.set_spec_data({"resources": {"gpus": 1}})
    assert "zero_optimization" not in page.review_plan_box.text()


# ------------------------------------------------------------------ preview through a process
@pytest.fixture
def engine_page(qtbot, store, tracker, workspace, tmp_path, model_dir):
    entry, log = stand_in_preview_engine(tmp_path)
    engine = LocalEngine(workspace=workspace, entry=entry)
    widget = FinetunePage(store, tracker, workspace, engine=engine)
    qtbot.addWidget(widget)
    widget.use_model(str(model_dir))
    widget.calls_log = log
    return widget


def test_the_preview_runs_in_the_background_and_is_not_repeated(qtbot, engine_page, model_dir):
    page = engine_page
    with qtbot.waitSignal(page.preview_finished, timeout=20_000) as finished:
        assert page.run_preview()
        assert page.preview_running and "Previewing" in page.data_summary.text()
    assert finished.args[0].model.path == str(model_dir)
    assert page.record_view.records and not page.preview_running
    assert not page.run_preview()  # the same settings: nothing to do
    calls = preview_calls(page.calls_log)
    assert len(calls) == 1 and calls[0][calls[0].index("preview") + 1].endswith(".yaml") and "--json" in calls[0]
    page.forms["Training"].editor("train.max_steps").set_value(999)  # not something the preview shows
    assert not page.run_preview()
    page.forms["Training"].editor("train.batch_size").set_value(2)  # memory depends on it
    with qtbot.waitSignal(page.preview_finished, timeout=20_000):
        assert page.run_preview()


def test_a_failed_preview_is_said_where_the_preview_would_be(qtbot, engine_page, tmp_path):
    page = engine_page
    page.use_model(str(tmp_path / "nowhere"))
    with qtbot.waitSignal(page.preview_failed, timeout=20_000) as failed:
        assert page.run_preview(force=True)
    assert "does not exist" in failed.args[0]
    assert "(“Base model” on the Base model step)" in failed.args[0]  # the control, not the spec's model.path
    assert "does not exist" in page.data_summary.text() and page.data_summary.objectName() == "fieldError"
    assert page.model_summary.text() == "The model could not be read"
    assert not page.record_view.records and "does not exist" in page.record_view.chips.placeholder
    assert "estimated once" in page.method_cards.cards["lora"].memory_label.text()
    assert not page.launch_button.isEnabled()  # these settings failed: not launched as they are


def test_the_preview_waits_for_a_base_model(qtbot, store, tracker, workspace, tmp_path):
    entry, log = stand_in_preview_engine(tmp_path)
    page = FinetunePage(store, tracker, workspace, engine=LocalEngine(workspace=workspace, entry=entry))
    qtbot.addWidget(page)
    assert not page.run_preview(force=True)
    assert "Pick a base model first" in page.data_summary.text()
    assert preview_calls(log) == []


# ---------------------------------------------------------------------------------- the run
def test_the_run_view_shows_scores_before_and_after_and_the_outputs(qtbot, page, store, workspace):
    run_id = "ft-20261123-120000-abcd"
    run_dir = workspace / "runs" / run_id
    store.add_run(run_id, kind="finetune", name="ft", run_dir=str(run_dir))
    store.add_events(run_id, finetune_events(run_id))
    page.show_run(run_id)
    view = page.run_view
    assert page.stack.currentWidget() is view
    assert view.scores.before["exact_match"] == 0.1 and view.scores.after["exact_match"] == 0.8
    text = view.score_labels["exact_match"].text()
    assert "10.0%" in text and "80.0%" in text
    assert "2.5" in view.score_labels["bleu"].text() and "40.0" in view.score_labels["bleu"].text()
    assert "900 records trained on" in view.data_label.text() and "3 truncated" in view.data_label.text()
    assert view.outputs == {"adapter": f"runs/{run_id}/output/adapter", "merged": f"runs/{run_id}/output/merged"}
    assert str(run_dir / "output" / "adapter") in view.outputs_label.text()
    charts = view.monitor.charts
    assert list(charts)[:4] == ["loss", "exact_match", "bleu", "rouge_l"]
    assert charts["exact_match"].point_count("eval") == 3 and charts["loss"].point_count("train") == 4
    assert "train_records" not in charts  # one-off counts are figures, not curves
    with qtbot.waitSignal(view.use_model) as used:
        view.use_button.click()
    assert used.args[0] == str(run_dir / "output" / "merged")
    assert page.stack.currentWidget() is page.wizard and page.spec_data()["model"]["path"] == used.args[0]


def test_the_run_view_follows_live_events(page, store, tracker):
    run_id = "ft-live"
    events = finetune_events(run_id)
    store.add_run(run_id, kind="finetune", name="ft")
    store.add_events(run_id, events[:4])  # started, progress, data counts, the score before training
    page.show_run(run_id)
    view = page.run_view
    assert view.scores.before == {"exact_match": 0.1, "bleu": 2.5, "rouge_l": 0.2} and not view.scores.after
    assert "…" in view.score_labels["exact_match"].text() and not view.use_button.isEnabled()
    store.add_events(run_id, events[4:])
    tracker.run_events.emit(run_id, events[4:])
    assert view.scores.after["exact_match"] == 0.8 and view.use_button.isEnabled()


def test_task_scores_prefer_the_summary_and_format_as_shares():
    scores = TaskScores()
    scores.add_eval(0, {"exact_match": 0.0, "loss": 3.0})
    scores.add_eval(20, {"exact_match": 0.5, "loss": 2.0})
    scores.add_summary({"exact_match_after": 0.75, "eval_loss": 1.5})
    assert scores.before == {"exact_match": 0.0} and scores.after == {"exact_match": 0.75}
    assert scores.eval_loss == (3.0, 1.5) and scores.eval_loss_caption() == "Eval loss"  # from before training
    assert format_score("exact_match", 0.75) == "75.0%" and format_score("bleu", 40.0) == "40.0"
    assert format_score("rouge_l", None) == "—"


def test_an_eval_loss_first_measured_during_training_is_not_called_before():
    scores = TaskScores()
    for step, loss in ((400, 0.037), (200, 0.302)):  # a resumed run's history can come in any order
        scores.add_eval(step, {"loss": loss})
    assert scores.eval_loss == (0.302, 0.037)
    assert scores.eval_loss_caption() == "Eval loss (first eval at step 200)"


def test_a_finetune_run_opens_and_compares_on_the_finetune_page(qtbot, workspace, store):
    from studio.main_window import MainWindow

    window = MainWindow(workspace, store=store, tracker=FakeTracker(store))
    qtbot.addWidget(window)
    store.add_run("ft-x", kind="finetune", name="ft")
    store.add_events("ft-x", finetune_events("ft-x"))
    window.open_run("ft-x")
    assert window.current_page_key() == "finetune"
    assert window.page("finetune").run_view.run_id == "ft-x"
    store.add_run("ft-y", kind="finetune", name="other")
    store.add_events("ft-y", finetune_events("ft-y"))
    window.compare_runs(["ft-y", "ft-x"])  # the Runs page's Compare
    monitor = window.page("finetune").run_view.monitor
    assert monitor.run_id == "ft-y" and monitor.overlay_box.currentData() == "ft-x"


def test_added_data_replaces_the_built_in_tasks(page, tmp_path):
    data = tmp_path / "chat.jsonl"
    data.write_text('{"instruction": "Say hi.", "output": "Hi."}\n', encoding="utf-8")
    assert page.spec_data()["data"]["sources"] == ["builtin:tasks"]
    page.add_source(str(data))
    assert page.spec_data()["data"]["sources"] == [str(data)]
    page.use_builtin_tasks()
    assert page.spec_data()["data"]["sources"] == ["builtin:tasks"]
