"""The studio driving the real engine: the Fine-tune wizard previews a tiny base model with the
built-in tasks (format detected, a record rendered with its trained tokens, memory per method),
launches LoRA, follows the run to completion, and offers the merged model as a new base."""

from __future__ import annotations


import pytest
from PySide6.QtCore import Qt

from tests.e2e.conftest import save_tiny_base_model

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread_engines")]

@pytest.fixture
def base_model(tmp_path):
    return save_tiny_base_model(tmp_path / "tiny-base")


def test_wizard_previews_launches_lora_and_offers_the_merged_model(qtbot, tmp_path, base_model):
    from studio.main_window import MainWindow

    window = MainWindow(tmp_path / "ws")
    qtbot.addWidget(window)
    window.show()
    window.show_page("finetune")
    page = window.page("finetune")
    page.set_spec_data({
        "name": "gui-ft", "model": {"path": str(base_model)},
        "data": {"sources": ["builtin:tasks"], "task": "reverse", "task_examples": 80, "chat_template": "model",
                 "max_length": 64, "eval_fraction": 0.1},
        "method": {"name": "lora", "lora": {"rank": 4, "alpha": 8}},
        "train": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-3, "warmup_steps": 1, "eval_every": 2,
                  "checkpoint_every": 2, "log_every": 1},
        "evaluation": {"generate_examples": 4, "max_new_tokens": 6},
        "output": {"merge": True},
        "resources": {"device": "cpu"},
    })
    assert page.validate() == [], page.problems

    # The preview: the real engine reads the model and the data.
    with qtbot.waitSignal(page.preview_finished, timeout=120_000) as finished:
        assert page.run_preview(force=True)
    preview = finished.args[0]
    assert preview.format == "alpaca" and preview.format_detected
    assert preview.train_records + preview.eval_records == 80
    assert preview.model.architecture == "llama" and "q_proj" in preview.model.linear_modules
    assert set(preview.methods) >= {"full", "lora", "qlora", "prefix"}
    assert preview.methods["qlora"].needs_cuda and not page.method_cards.cards["qlora"].warning_label.isHidden()
    view = page.record_view
    assert view.records and any(p.trained for p in view.pieces) and any(p.trained is False for p in view.pieces)
    assert "q_proj" in page.target_modules.boxes and page.target_modules.value() is None
    assert "alpaca" in page.data_summary.text()

    page.go_to_review()
    with qtbot.waitSignal(page.launched, timeout=60_000) as launched:
        qtbot.mouseClick(page.launch_button, Qt.MouseButton.LeftButton)
    run_id = launched.args[0]
    run_view = page.run_view
    assert run_view.run_id == run_id and page.stack.currentWidget() is run_view
    qtbot.waitUntil(lambda: run_view.monitor.state in ("completed", "failed"), timeout=300_000)
    record = window.store.get_run(run_id)
    assert run_view.monitor.state == "completed", record.error

    run_dir = tmp_path / "ws" / "runs" / run_id
    assert (run_dir / "output" / "adapter" / "adapter_config.json").is_file()
    assert (run_dir / "output" / "merged" / "config.json").is_file()
    qtbot.waitUntil(lambda: "adapter" in run_view.outputs and "merged" in run_view.outputs, timeout=10_000)
    assert "exact_match" in run_view.scores.before and "exact_match" in run_view.scores.after
    assert run_view.monitor.charts["loss"].point_count("train") > 0
    assert run_view.monitor.charts["exact_match"].point_count("eval") >= 2

    # The merged model is offered as the base of the next run.
    assert run_view.use_button.isEnabled()
    run_view.use_button.click()
    assert page.stack.currentWidget() is page.wizard
    assert page.spec_data()["model"]["path"] == str(run_dir / "output" / "merged")
    assert str(run_dir / "output" / "merged") in page.model_picker.paths()
    window.close()
