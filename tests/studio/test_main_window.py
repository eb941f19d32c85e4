"""The main window: sidebar pages, shortcuts, jobs dock, and no heavy imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtCore import Qt

from studio.main_window import PAGE_KEYS, MainWindow
from tests.studio.tracker_fixtures import FakeTracker
from tools.screenshots.events import synthetic_demo_events

HEAVY = ("torch", "transformers", "datasets", "peft", "trl", "deepspeed", "bitsandbytes", "gradio")


@pytest.fixture
def window(qtbot, workspace, store):
    w = MainWindow(workspace, store=store, tracker=FakeTracker(store))
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    return w


def test_every_sidebar_page_switches(window):
    assert window.sidebar.count() == 8
    for row, key in enumerate(PAGE_KEYS):
        window.sidebar.setCurrentRow(row)
        assert window.current_page_key() == key
        assert window.page(key).isVisible()


def test_ctrl_number_shortcuts_and_quit(window, qtbot):
    for i, key in enumerate(PAGE_KEYS):
        qtbot.keyClick(window, Qt.Key(Qt.Key_1 + i), Qt.ControlModifier)
        assert window.current_page_key() == key
    assert window.quit_action.shortcut().toString() == "Ctrl+Q"
    window.quit_action.trigger()
    assert not window.isVisible()


def test_jobs_dock_follows_the_tracker_and_takes_room_only_while_runs_go_on(window, store):
    dock, tracker = window.jobs_dock, window.tracker
    assert not dock.isVisible() and window.jobs_button.text() == "No job running"
    store.add_run("job-1", kind="pretrain", name="job", state="starting")
    tracker.run_added.emit("job-1")
    assert "job-1" in dock.rows and dock.isVisible() and window.jobs_button.text() == "1 job running"
    dock.close()  # closed by hand: a run going on does not bring it back
    tracker.run_events.emit("job-1", [])
    assert not dock.isVisible()
    window.jobs_button.click()
    assert dock.isVisible()
    events = [{"seq": 3, "type": "progress", "stage": "train", "done": 50, "total": 200, "unit": "step", "eta_s": 90}]
    store.add_events("job-1", events)  # the tracker stores events, then signals them
    tracker.run_events.emit("job-1", events)
    row = dock.rows["job-1"]
    assert (row.bar.value(), row.bar.maximum()) == (50, 200)
    assert "1m 30s" in row.stage_label.text()
    tracker.run_state_changed.emit("job-1", "completed")
    assert "job-1" not in dock.rows and not dock.isVisible()  # folded away with the last run


def test_the_header_the_dock_and_the_checkpoint_agree_on_the_step_through_a_stop(window, store):
    """Progress events come at most once a second, metrics every log_every steps, and Stop saves a
    checkpoint wherever the run is: each of them moves the step, whichever came last."""
    tracker = window.tracker
    store.add_run("stopped", kind="pretrain", name="stopped", state="starting")
    tracker.run_added.emit("stopped")
    window.open_run("stopped")
    monitor, row = window.monitor_page.monitor, window.jobs_dock.rows["stopped"]
    seq = iter(range(1000))

    def send(*events) -> None:
        events = [{"v": 1, "seq": next(seq), "t": 1000.0, **e} for e in events]
        store.add_events("stopped", events)
        tracker.run_events.emit("stopped", events)
        monitor.redraw()

    def header() -> str:
        return monitor.progress_label.text()

    send({"type": "started", "run_id": "stopped", "spec": {"kind": "pretrain", "train": {"max_steps": 100}}},
         {"type": "progress", "stage": "train", "done": 0, "total": 100, "unit": "steps", "eta_s": None})
    assert header() == "step 0 / 100" and row.stage_label.text().startswith("step 0 / 100")
    send(*[{"type": "metric", "step": step, "split": "train", "values": {"loss": 2.0}} for step in (10, 20)])
    assert header() == "step 20 / 100" and row.stage_label.text().startswith("step 20 / 100")
    assert row.bar.value() == 20 and store.get_run("stopped").step == 20
    send({"type": "log", "level": "warning", "message": "Cancel requested: saving a checkpoint, then stopping."},
         {"type": "artifact", "kind": "checkpoint", "path": "runs/stopped/checkpoints/checkpoint-23",
          "meta": {"step": 23}},
         {"type": "finished", "status": "cancelled", "summary": {"step": 23}})
    assert header() == "step 23 / 100" and store.get_run("stopped").step == 23 and monitor.state == "cancelled"
    assert "stopped" not in window.jobs_dock.rows
    window.open_run("stopped")  # opened again later: from the store
    assert window.monitor_page.monitor.progress_label.text() == "step 23 / 100"


def test_opening_a_run_shows_its_monitor(window, store):
    store.add_run("done", kind="pretrain", name="done")
    store.add_events("done", synthetic_demo_events("done", steps=200))
    window.open_run("done")
    assert window.current_page_key() == "monitor"
    assert window.monitor_page.monitor.charts["loss"].point_count("train") == 20
    window.monitor_page.back_button.click()
    assert window.current_page_key() == "runs"


def test_no_heavy_imports_from_the_app_or_the_window(tmp_path):
    script = textwrap.dedent(f"""
        import json, os, sys
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
        heavy = {HEAVY!r}
        import studio.app
        after_import = [m for m in heavy if m in sys.modules]
        from PySide6.QtWidgets import QApplication
        app = QApplication([])
        from studio.main_window import MainWindow
        w = MainWindow({str(tmp_path / "ws")!r}, reattach=False)
        w.show()
        for key in ("pretrain", "runs", "data", "finetune"):
            w.show_page(key)
        app.processEvents()
        charts_at_start = "pyqtgraph" in sys.modules  # loads with the first run monitor, not before
        w.page("pretrain").ensure_monitor()
        app.processEvents()
        print(json.dumps({{"import": after_import, "window": [m for m in heavy if m in sys.modules],
                          "charts_at_start": charts_at_start}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert loaded == {"import": [], "window": [], "charts_at_start": False}


def test_import_of_the_app_is_light(tmp_path):
    script = "import sys, studio.app; print('pyqtgraph' in sys.modules, 'PySide6.QtWidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["False", "False"]


def test_qt_calls_do_not_leak_references_to_none(qtbot):
    """PySide6 6.12.0 dropped a reference to None on every void call, aborting a live GUI on
    Python 3.11 within seconds ("none_dealloc"); pyproject excludes it. This guards the pin."""
    import sys

    from PySide6.QtWidgets import QLabel
    label = QLabel()
    qtbot.addWidget(label)
    before = sys.getrefcount(None)
    for _ in range(2000):
        label.setText("x")
    assert abs(sys.getrefcount(None) - before) < 100


def test_ssh_profiles_become_engines_of_the_tracker_shown_in_the_status_bar_and_edited_in_the_dialog(qtbot, workspace, store):
    from studio.client import LocalEngine
    from studio.client.run_tracker import RunTracker
    from studio.models.engine_profiles import EngineProfile, save_profile

    save_profile(store, EngineProfile("lab", host="gpu-lab", python="~/v/bin/python", workspace="~/ws"))
    tracker = RunTracker(store, LocalEngine(workspace=workspace))
    w = MainWindow(workspace, store=store, tracker=tracker, reattach=False)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    assert getattr(tracker.engines["lab"], "is_remote", False) and tracker.engines["lab"].target.host == "gpu-lab"
    assert "lab (SSH)" in w.engines_button.text()

    assert w.engines_action.shortcut().toString() == "Ctrl+Shift+E" and w.engines_action in w.menuBar().actions()[0].menu().actions()
    w.engines_action.trigger()
    dialog = w.engines_dialog
    assert dialog is not None and dialog.isVisible() and dialog.profile_names() == ["lab"]
    dialog.reject()
    w.engines_button.click()
    assert dialog.isVisible()

    dialog.add_button.click()
    for edit, text in ((dialog.name_edit, "big box"), (dialog.host_edit, "me@10.0.0.5")):
        edit.setText(text)
    dialog.save_button.click()
    assert tracker.engines["big box"].target.host == "me@10.0.0.5"
    assert "big box (SSH)" in w.engines_button.text()
    page = w.page("pretrain")
    page.go_to_step(page.STEPS.index(page.WHERE_STEP))
    assert [page.engine_combo.itemData(i) for i in range(page.engine_combo.count())] == ["local", "lab", "big box"]

    dialog.select("lab")
    dialog.delete_button.click()
    assert "lab" not in tracker.engines and "lab (SSH)" not in w.engines_button.text()
    assert [page.engine_combo.itemData(i) for i in range(page.engine_combo.count())] == ["local", "big box"]
    dialog.reject()
    w.close()


def test_menus_help_and_the_status_line(qtbot, window, workspace):
    go = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Go")
    assert "Reward && PPO" in [a.text() for a in go.actions()]  # shown as "Reward & PPO", no mnemonic
    assert window.windowTitle() == str(workspace)  # Qt adds " — Atelier"
    line = window.status_label.text()
    assert line.startswith(f"Workspace {workspace}")
    window.statusBar().showMessage("Open another workspace folder")  # what a menu's tip does
    window.statusBar().clearMessage()
    assert window.status_label.text() == line and not window.status_label.isHidden()

    dialog = window.show_shortcuts()
    rows = [tuple(dialog.table.item(r, c).text() for c in range(3)) for r in range(dialog.table.rowCount())]
    assert ("Everywhere", "Ctrl+6", "Reward & PPO") in rows and ("Everywhere", "F1", "Keyboard shortcuts") in rows
    assert ("Label", "D", "Highlight the differences between the two answers") in rows
    assert ("Fine-tune", "Ctrl+R", "Preview the model and the data again") in rows
    assert all(what for _, _, what in rows)  # every shortcut says what it does
    dialog.close()


def test_open_workspace_opens_the_other_folder_in_a_new_window(qtbot, window, tmp_path):
    other = tmp_path / "other-workspace"
    new = window.open_workspace(other)
    qtbot.addWidget(new)
    assert new.workspace == other and new.store.path == other / "store.db" and new.isVisible()
    assert not window.isVisible()
    new.close()


def test_file_import_config_opens_the_spec_in_its_wizard(window, tmp_path):
    """File ▸ Import config…: a LLaMA-Factory KTO config becomes the KTO wizard, filled in; an Axolotl
    fine-tuning config the Fine-tune wizard; the dialog lists what carried over and what did not."""
    lf = tmp_path / "kto.yaml"
    lf.write_text("model_name_or_path: org/model\nstage: kto\nfinetuning_type: lora\nlora_rank: 16\npref_beta: 0.2\n"
                  "dataset: kto_en_demo\ntemplate: llama3\nplot_loss: true\n", encoding="utf-8")
    assert window.import_config_action.text() == "&Import config…"
    wizard = window.import_config(lf, ask=False)
    assert window.current_page_key() == "rlhf" and wizard.KIND == "kto"
    data = wizard.spec_data()
    assert data["model"]["path"] == "org/model" and data["beta"] == 0.2 and data["method"]["lora"]["rank"] == 16
    assert data["data"]["sources"] == ["data/dataset_info.json#kto_en_demo"]
    report = window.import_dialog.report.toPlainText()
    assert "pref_beta" in report and "plot_loss" in report and "the studio charts every metric live" in report

    axolotl = tmp_path / "sft.yaml"
    axolotl.write_text("base_model: org/base\nadapter: lora\nlora_r: 8\ndatasets:\n  - path: data/train.jsonl\n"
                       "    type: alpaca\nmicro_batch_size: 4\n", encoding="utf-8")
    wizard = window.import_config(axolotl, ask=False)
    assert window.current_page_key() == "finetune"
    data = wizard.spec_data()
    assert data["model"]["path"] == "org/base" and data["data"]["sources"] == ["data/train.jsonl"]
    assert data["data"]["format"] == "alpaca" and data["train"]["batch_size"] == 4
