"""The main window: sidebar pages, shortcuts, jobs dock, and no heavy imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from PySide6.QtCore import QObject, Qt, Signal

from studio.main_window import PAGE_KEYS, MainWindow
from studio.screenshot_events import synthetic_demo_events

HEAVY = ("torch", "transformers", "datasets", "peft", "trl", "deepspeed", "bitsandbytes", "gradio")


class FakeTracker(QObject):
    run_added = Signal(str)
    run_events = Signal(str, list)
    run_state_changed = Signal(str, str)
    run_error = Signal(str, str)
    launch_failed = Signal(str)

    def reattach_active(self):
        return []

    def shutdown(self):
        pass


@pytest.fixture
def window(qtbot, workspace, store):
    w = MainWindow(workspace, store=store, tracker=FakeTracker())
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


def test_every_workflow_has_its_page(window):
    from studio.pages.upcoming import UpcomingPage, WORKFLOWS

    assert WORKFLOWS == {} and not any(isinstance(window.page(key), UpcomingPage) for key in PAGE_KEYS)


def test_jobs_dock_follows_the_tracker(window, store):
    dock, tracker = window.jobs_dock, window.tracker
    store.add_run("job-1", kind="pretrain", name="job", state="starting")
    tracker.run_added.emit("job-1")
    assert "job-1" in dock.rows
    tracker.run_events.emit("job-1", [{"seq": 3, "type": "progress", "stage": "train", "done": 50, "total": 200,
                                       "unit": "step", "eta_s": 90}])
    row = dock.rows["job-1"]
    assert (row.bar.value(), row.bar.maximum()) == (50, 200)
    assert "1m 30s" in row.stage_label.text()
    tracker.run_state_changed.emit("job-1", "completed")
    assert "job-1" not in dock.rows and not dock.empty_label.isHidden()


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


def test_screenshot_mode_writes_every_page_as_a_png(tmp_path):
    from PySide6.QtGui import QImage

    out_dir = tmp_path / "shots"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run([sys.executable, "-m", "studio.app", "--workspace", str(tmp_path / "ws"),
                          "--screenshot", str(out_dir)], capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr
    shots = sorted(out_dir.glob("*.png"))
    names = {p.name for p in shots}
    assert {"pretrain-light.png", "monitor-dark.png", "runs-light.png", "runs-dark.png", "monitor-ppo-light.png",
            "monitor-reward-dark.png"} <= names
    for key in PAGE_KEYS:
        if key != "monitor":
            assert f"{key}-light.png" in names and f"{key}-dark.png" in names
    for path in shots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = QImage(str(path))
        assert not image.isNull() and (image.width(), image.height()) == (1280, 800), path.name
    assert not (tmp_path / "ws").exists() or not any((tmp_path / "ws").iterdir())  # the user's workspace is untouched


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
    from studio.engine_profiles import EngineProfile, save_profile
    from studio.run_tracker import RunTracker

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
