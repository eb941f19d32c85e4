"""The first-run experience: finding the engine's Python, the install screen, and "Run the demo"."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

import pytest
import yaml
from PySide6.QtCore import Qt

from engine.protocol import PROTOCOL_VERSION, EventWriter
from engine.rundir import RunDirectory, RunStatus
from studio.models import engine_setup
from studio.client import LocalEngine
from studio.main_window import MainWindow
from studio.pages.first_run.page import DemoPanel, EngineProbe
from studio.client.run_tracker import RunTracker


def script(path, body: str):
    """An executable shell script standing in for a Python interpreter."""
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


DOCTOR = {"engine_version": "0.1.0", "protocol_version": PROTOCOL_VERSION, "python": "3.12.0",
          "cuda": {"available": False, "version": None, "devices": 0}, "devices": [],
          "packages": {"torch": "2.5.0", "transformers": "4.50.0", "datasets": "3.0.0"}}


@pytest.fixture
def engine_python(tmp_path):
    """A stand-in interpreter whose `-m engine.cli doctor --json` answers like a working engine."""
    return script(tmp_path / "engine-python", f"echo 'some library prints this first'\necho '{json.dumps(DOCTOR)}'\n")


@pytest.fixture
def plain_python(tmp_path):
    """A stand-in interpreter without Atelier, answering as `python3 -m engine.cli` does."""
    return script(tmp_path / "plain-python", 'echo "$0: No module named engine" >&2\nexit 1\n')


@pytest.fixture
def make_window(qtbot, workspace, store, monkeypatch):
    def make(candidates):
        monkeypatch.setattr(engine_setup, "candidates", lambda saved=None: list(candidates))
        tracker = RunTracker(store, LocalEngine(workspace=workspace))
        window = MainWindow(workspace, store=store, tracker=tracker, reattach=False,
                            engine_probe=EngineProbe(workspace, timeout_s=20))
        qtbot.addWidget(window)
        window.show()
        return window
    return make


# ------------------------------------------------------------------------- engine_setup (Qt-free)
def test_candidates_come_in_order_without_duplicates(tmp_path):
    home = tmp_path / "home"
    (home / "atelier-venv" / "bin").mkdir(parents=True)
    (home / "atelier-venv" / "bin" / "python").write_text("")
    found = engine_setup.candidates("/opt/py/bin/python", {engine_setup.ENV_VAR: sys.executable}, home=home,
                                    repo_root=tmp_path / "not-a-clone")
    assert found == [("/opt/py/bin/python", "setting"), (sys.executable, "environment"),
                     (str(home / "atelier-venv" / "bin" / "python"), "home venv")]


def test_the_studio_python_without_the_engine_packages_says_which_are_missing(monkeypatch):
    monkeypatch.setattr(engine_setup, "ENGINE_PACKAGES", ("json", "no_such_package_for_atelier"))
    check = engine_setup.check_in_process(sys.executable, "studio")
    assert not check.ok
    assert check.reason == "has the studio but not the engine: no_such_package_for_atelier is not installed"


def test_doctor_answers_are_read_into_sentences():
    ok = engine_setup.read_doctor_answer("py", "chosen", 0, "noise\n" + json.dumps(DOCTOR), "")
    assert ok.ok and "torch 2.5.0" in ok.summary and "CPU only" in ok.summary
    light = engine_setup.read_doctor_answer("py", "chosen", 0, json.dumps(dict(DOCTOR, packages={"torch": None})), "")
    assert not light.ok and "torch, transformers, datasets not installed" in light.reason
    old = engine_setup.read_doctor_answer("py", "chosen", 0, json.dumps(dict(DOCTOR, protocol_version=0)), "")
    assert not old.ok and "older than this studio" in old.reason
    refused = engine_setup.read_doctor_answer(
        "py", "chosen", 1, "", "studio-engine: this Python (/x) has the studio but not the engine: torch, datasets "
                               "are not installed. Install the engine with …")
    assert refused.reason == "has the studio but not the engine: torch, datasets not installed"


# --------------------------------------------------------------------------------- the window
def test_no_engine_shows_the_install_screen_with_the_command(qtbot, make_window, plain_python, tmp_path):
    window = make_window([(plain_python, "studio"), (str(tmp_path / "missing" / "python"), "setting")])
    qtbot.waitUntil(lambda: window.first_run_page is not None, timeout=20_000)
    page = window.first_run_page
    assert window.current_page_key() == "first-run" and page.isVisible()
    assert page.command_field.text() == engine_setup.install_command()
    assert '".[engine]"' in page.command_field.text()
    checked = page.checks_label.text()
    assert f"✗ {plain_python}" in checked and "no module named engine" in checked
    assert "there is no file at this path" in checked
    assert not page.ready.isVisible()  # no demo without an engine
    assert "engine: none found" in window.status_label.text()
    window.show_page("runs")  # the rest of the studio stays reachable
    assert window.current_page_key() == "runs"


def test_pointing_at_a_bad_python_says_why(qtbot, make_window, plain_python, tmp_path, store):
    window = make_window([(plain_python, "studio")])
    qtbot.waitUntil(lambda: window.first_run_page is not None, timeout=20_000)
    page = window.first_run_page
    for python, why in ((str(tmp_path / "nope" / "python"), "there is no file at this path"),
                        (str(tmp_path), "this is a folder"),
                        (plain_python, "no module named engine")):
        page.python_field.setText(python)
        with qtbot.waitSignal(page.probe.finished, timeout=20_000):
            qtbot.mouseClick(page.check_button, Qt.MouseButton.LeftButton)
        assert page.status.text().startswith(f"✗ {python} cannot run the engine:") and why in page.status.text()
        assert page.check_button.isEnabled()
    assert store.get_setting(engine_setup.SETTING_KEY) is None


def test_choosing_a_working_python_saves_it_and_offers_the_demo(qtbot, make_window, plain_python, engine_python,
                                                                 store, workspace):
    window = make_window([(plain_python, "studio")])
    qtbot.waitUntil(lambda: window.first_run_page is not None, timeout=20_000)
    page = window.first_run_page
    page.python_field.setFocus()
    qtbot.keyClicks(page.python_field, engine_python)
    with qtbot.waitSignal(page.engine_ready, timeout=20_000):
        qtbot.keyClick(page.python_field, Qt.Key.Key_Return)
    assert page.title.text() == "The engine is ready" and page.ready.isVisible()
    assert store.get_setting(engine_setup.SETTING_KEY) == engine_python
    assert window.tracker.engines["local"].entry == [engine_python, "-m", "engine.cli"]
    assert page.demo.command_line() == [engine_python, "-m", "engine.cli", "--workspace", str(workspace), "demo"]
    qtbot.mouseClick(page.continue_button, Qt.MouseButton.LeftButton)
    assert window.current_page_key() == "pretrain"


def test_a_found_engine_gives_the_normal_window(qtbot, make_window, plain_python, engine_python):
    window = make_window([(plain_python, "studio"), (engine_python, "environment")])
    qtbot.waitUntil(lambda: window.engine_check is not None, timeout=20_000)
    assert window.first_run_page is None and window.current_page_key() == "pretrain"
    assert window.engine_check.python == engine_python and window.engine_check.source == "environment"
    assert window.tracker.engines["local"].entry[0] == engine_python
    assert f"engine: local ({engine_python})" in window.status_label.text()


def test_the_studio_python_with_the_engine_answers_without_a_process(qtbot, make_window):
    window = make_window([(sys.executable, "studio")])
    assert window.engine_check is not None and window.engine_check.ok  # at once: no QProcess
    assert window.first_run_page is None


def test_a_probe_that_does_not_answer_times_out(qtbot, tmp_path, workspace):
    sleeper = script(tmp_path / "slow-python", "sleep 30\n")
    probe = EngineProbe(workspace, timeout_s=0.5)
    with qtbot.waitSignal(probe.finished, timeout=10_000) as finished:
        probe.start([(sleeper, "chosen")])
    assert finished.args == [None]
    assert "did not answer within" in probe.checks[0].reason


# ------------------------------------------------------------------------------------ the demo
STUB_DEMO = '''
import json, os, sys
from engine.protocol import EventWriter
from engine.rundir import RunDirectory, RunStatus
workspace = sys.argv[sys.argv.index("--workspace") + 1]
assert sys.argv[-1] == "demo", sys.argv
print("Atelier demo, stage 1 of 4: cleaning the docstrings.", flush=True)
run = RunDirectory.create(workspace, "demo-stub-clean")
run.spec_path.write_text("kind: clean\\nname: demo clean\\n")
writer = EventWriter(run.events_path)
writer.started("demo-stub-clean", {"kind": "clean"}, "host", os.getpid(), "0.1.0", [])
writer.progress("read", 5, 10, "documents", None)
writer.finished("completed", {"documents_out": 9})
writer.close()
run.write_status(RunStatus(state="completed", pid=os.getpid(), kind="clean", name="demo clean", last_seq=2))
for line in open(run.events_path):
    print(line.strip(), flush=True)
print("Demo finished.\\nFine-tuned model: /somewhere/model", flush=True)
'''


def test_the_demo_button_runs_the_demo_and_its_runs_appear(qtbot, store, workspace, tmp_path):
    stub = tmp_path / "stub_demo.py"
    stub.write_text(STUB_DEMO)
    tracker = RunTracker(store, LocalEngine(workspace=workspace, entry=[sys.executable, str(stub)]))
    window = MainWindow(workspace, store=store, tracker=tracker, reattach=False)
    qtbot.addWidget(window)
    window.show()
    window.show_page("runs")
    runs = window.page("runs")
    assert "Run the demo" in runs.empty.text() and runs.demo.button.isVisible()
    assert runs.demo.command_line() == [sys.executable, str(stub), "--workspace", str(workspace), "demo"]
    statuses = []
    with qtbot.waitSignal(runs.demo.ended, timeout=30_000) as ended:
        runs.demo.button.click()
        assert not runs.demo.button.isEnabled() and runs.demo.stop_button.isVisible()
        runs.demo.process.status.connect(statuses.append)
    assert ended.args[0].code == 0, ended.args[0].stderr
    assert statuses[0].startswith("Atelier demo, stage 1 of 4")
    assert any(s == "Stage 1 of 4: read 5 / 10 documents" for s in statuses), statuses
    assert runs.demo.status.text().startswith("Demo finished") and "/somewhere/model" in runs.demo.status.text()
    assert runs.demo.button.isEnabled()
    record = store.get_run("demo-stub-clean")
    assert record is not None and record.state == "completed"
    qtbot.waitUntil(lambda: runs.run_ids() == ["demo-stub-clean"], timeout=5000)


def test_a_failing_demo_says_why(qtbot, store, workspace, tmp_path):
    stub = tmp_path / "fail.py"
    stub.write_text("import sys\nprint('studio-engine: this Python has the studio but not the engine', file=sys.stderr)\n"
                    "sys.exit(1)\n")
    tracker = RunTracker(store, LocalEngine(workspace=workspace, entry=[sys.executable, str(stub)]))
    panel = DemoPanel(tracker)
    qtbot.addWidget(panel)
    with qtbot.waitSignal(panel.ended, timeout=30_000):
        panel.start()
    assert panel.status.text().startswith("The demo stopped with exit code 1: studio-engine: this Python has")


def test_runs_started_outside_the_studio_are_followed_as_they_appear(qtbot, store, workspace):
    """`follow_new_runs`: a run folder that appears while the studio runs is recorded and attached."""
    tracker = RunTracker(store, LocalEngine(workspace=workspace))
    added = []
    tracker.run_added.connect(added.append)
    assert tracker.follow_new_runs() == []
    run = RunDirectory.create(workspace, "outside-1")
    run.spec_path.write_text(yaml.safe_dump({"kind": "pretrain", "name": "outside", "train": {"max_steps": 5}}))
    run.write_status(RunStatus(state="running", pid=os.getpid(), kind="pretrain", name="outside"))
    writer = EventWriter(run.events_path)
    writer.started("outside-1", {}, "host", os.getpid(), "0.1.0", [])
    writer.metric(1, "train", {"loss": 3.0})

    assert tracker.follow_new_runs() == ["outside-1"] and added == ["outside-1"]
    assert tracker.is_attached("outside-1")
    assert store.last_metric("outside-1", "train", "loss") == 3.0
    writer.metric(2, "train", {"loss": 2.0})
    writer.finished("completed", {"final_loss": 2.0})
    writer.close()
    run.write_status(RunStatus(state="completed", pid=os.getpid(), kind="pretrain", name="outside", last_seq=3))
    qtbot.waitUntil(lambda: store.get_run("outside-1").state == "completed", timeout=20_000)
    assert store.last_metric("outside-1", "train", "loss") == 2.0
    assert tracker.follow_new_runs() == []  # a second look adds nothing
    tracker.shutdown()


def test_closing_the_window_stops_a_running_demo(qtbot, store, workspace, tmp_path):
    stub = tmp_path / "slow_demo.py"
    stub.write_text("import time\nprint('Atelier demo, stage 1 of 4: waiting.', flush=True)\ntime.sleep(60)\n")
    tracker = RunTracker(store, LocalEngine(workspace=workspace, entry=[sys.executable, str(stub)]))
    window = MainWindow(workspace, store=store, tracker=tracker, reattach=False)
    qtbot.addWidget(window)
    window.show()
    window.show_page("runs")
    demo = window.page("runs").demo
    handle = demo.start()
    qtbot.waitSignal(handle.status, timeout=20_000).wait()
    process = handle.process
    window.close()
    assert process.state() == process.ProcessState.NotRunning
