"""The studio driving the real engine process: the wizard launches a tiny pretraining run, the
charts receive its points, Stop and Resume work from the monitor, and a studio closed and reopened
during a run re-attaches with a complete metric history."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt

from engine.protocol import read_events
from engine.rundir import RunDirectory
from tests.engine.conftest import tiny_spec

from tests.e2e.conftest import write_corpus

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread_engines")]


@pytest.fixture
def corpus(tmp_path):
    return write_corpus(tmp_path / "corpus.jsonl", 800, 60, seed=1)


def _window(workspace):
    from studio.main_window import MainWindow
    return MainWindow(workspace)


def _fill_wizard(page, spec: dict) -> None:
    for form in page.forms.values():
        form.set_values(spec)
    page.go_to_step(len(page.forms) + 10)  # the last step: Review
    assert page.validate() == [], page.problems


def _run_state(store, run_id):
    record = store.get_run(run_id)
    return record.state if record else None


def _metric_steps_in_file(run_dir) -> list[int]:
    steps = {}
    for event in read_events(run_dir / "events.jsonl"):
        if event["type"] == "metric" and event["split"] == "train":
            steps[event["step"]] = event["values"]["loss"]
    return sorted(steps)


def test_wizard_launches_a_real_run_then_stop_and_resume_from_the_monitor(qtbot, tmp_path, corpus):
    window = _window(tmp_path / "ws")
    qtbot.addWidget(window)
    page = window.page("pretrain")
    spec = tiny_spec(str(corpus), **{"name": "gui-run", "train.max_steps": 600, "train.checkpoint_every": 1000,
                                     "train.eval_every": 1000, "train.sample_every": 1000})
    _fill_wizard(page, spec)
    assert "max_steps: 600" in page.yaml_view.toPlainText()

    with qtbot.waitSignal(page.launched, timeout=60_000) as launched:
        qtbot.mouseClick(page.launch_button, Qt.MouseButton.LeftButton)
    run_id = launched.args[0]
    monitor = page.monitor
    assert monitor is not None and monitor.run_id == run_id
    qtbot.waitUntil(lambda: monitor.charts["loss"].point_count("train") >= 3, timeout=120_000)

    qtbot.waitUntil(monitor.stop_button.isEnabled, timeout=10_000)
    monitor.stop_button.click()
    qtbot.waitUntil(lambda: _run_state(window.store, run_id) == "cancelled", timeout=120_000)
    run_dir = tmp_path / "ws" / "runs" / run_id
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 1 and checkpoints[0] < 600
    points_before = monitor.charts["loss"].point_count("train")

    qtbot.waitUntil(monitor.resume_button.isEnabled, timeout=10_000)
    monitor.resume_button.click()
    qtbot.waitUntil(lambda: _run_state(window.store, run_id) == "completed", timeout=180_000)
    # The chart paints on its own timer: wait for the last step to reach it, not just any new point.
    qtbot.waitUntil(lambda: monitor.charts["loss"].point_count("train") > points_before
                    and monitor.charts["loss"].curve_data("train")[0][-1] == 600, timeout=10_000)

    steps, _, losses = window.store.metric_series(run_id, "train", "loss")
    assert list(steps) == _metric_steps_in_file(run_dir)  # every point, each step once
    assert steps[-1] == 600 and losses[-1] < losses[0]
    x, _ = monitor.charts["loss"].curve_data("train")
    assert x[-1] == 600
    window.close()


def test_closing_and_reopening_the_studio_reattaches_with_complete_metrics(qtbot, tmp_path, corpus):
    workspace = tmp_path / "ws"
    window = _window(workspace)
    spec = tiny_spec(str(corpus), **{"name": "survivor", "train.max_steps": 400, "train.log_every": 2,
                                     "train.checkpoint_every": 1000, "train.eval_every": 1000,
                                     "train.sample_every": 1000})
    spec_path = workspace / "survivor.yaml"
    import yaml
    spec_path.write_text(yaml.safe_dump(spec))
    with qtbot.waitSignal(window.tracker.run_added, timeout=60_000) as added:
        window.tracker.launch(spec_path)
    run_id = added.args[0]
    qtbot.waitUntil(lambda: len(window.store.metric_series(run_id, "train", "loss")[0]) >= 3, timeout=120_000)
    window.close()  # the studio goes away; the detached run goes on
    window.store.close()
    seen_before_close = len(_metric_steps_in_file(workspace / "runs" / run_id))
    deadline = time.time() + 60
    while len(_metric_steps_in_file(workspace / "runs" / run_id)) < seen_before_close + 5 and time.time() < deadline:
        time.sleep(0.2)  # the run writes more while no studio watches

    assert RunDirectory(workspace / "runs" / run_id).effective_status().active  # still training
    reopened = _window(workspace)
    qtbot.addWidget(reopened)
    qtbot.waitUntil(lambda: reopened.tracker.is_attached(run_id)
                    or _run_state(reopened.store, run_id) == "completed", timeout=30_000)
    qtbot.waitUntil(lambda: _run_state(reopened.store, run_id) == "completed", timeout=180_000)
    run_dir = workspace / "runs" / run_id
    steps, _, _ = reopened.store.metric_series(run_id, "train", "loss")
    assert list(steps) == _metric_steps_in_file(run_dir) == list(range(2, 401, 2))
    last_seq = max(e["seq"] for e in read_events(run_dir / "events.jsonl"))
    assert reopened.store.get_run(run_id).last_seq == last_seq
    reopened.open_run(run_id)
    monitor = reopened.monitor_page.monitor
    qtbot.waitUntil(lambda: monitor.charts["loss"].point_count("train") == 200, timeout=10_000)
    reopened.close()
