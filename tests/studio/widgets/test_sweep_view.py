"""The sweep view in the run monitor: a sweep run's trials as a table and a parallel-coordinates plot, read
from the summary the sweep recipe writes, with the best spec one click away."""

from __future__ import annotations

import math

import pytest
from PySide6.QtGui import QDesktopServices

from engine.jobs.sweep import Trial, write_summary
from engine.rundir import RunDirectory
from engine.specs import parse_spec
from studio.widgets.run_monitor import RunMonitor
from tests.studio.tracker_fixtures import FakeTracker

BASE = {"kind": "pretrain", "name": "tiny", "data": {"sources": ["docs.jsonl"]}}


def sweep_run(workspace, trials: list[Trial]) -> RunDirectory:
    """A sweep run folder whose summary the sweep recipe wrote, and its trials' run folders."""
    spec = parse_spec({"kind": "sweep", "name": "lr", "base": BASE, "method": "bayes", "trials": 4,
                       "parameters": {"train.learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
                                      "train.schedule": {"values": ["cosine", "linear"]}}})
    run = RunDirectory.create(workspace, "lr-1")
    for trial in trials:
        RunDirectory.create(workspace, trial.run_id, f"kind: pretrain\nname: tiny-t{trial.number}\n")
    write_summary(run, spec, trials)
    return run


@pytest.fixture
def monitor(qtbot, store):
    widget = RunMonitor(store, FakeTracker(store))
    qtbot.addWidget(widget)
    return widget


def test_a_sweep_run_shows_its_trials_side_by_side_and_opens_the_best_spec(monitor, store, tmp_path, monkeypatch):
    trials = [Trial(0, "lr-1.t0", {"train.learning_rate": 1e-3, "train.schedule": "cosine"}, "completed", 2.5),
              Trial(1, "lr-1.t1", {"train.learning_rate": 1e-2, "train.schedule": "linear"}, "completed", 1.5),
              Trial(2, "lr-1.t2", {"train.learning_rate": 1e-4, "train.schedule": "cosine"}, "pruned", 5.0),
              Trial(3, "lr-1.t3", {"train.learning_rate": 3e-2, "train.schedule": "linear"}, "running")]
    run = sweep_run(tmp_path, trials)
    store.add_run("lr-1", kind="sweep", name="lr", run_dir=str(run.path), state="running")
    monitor.load("lr-1")
    view = monitor.sweep_view
    assert monitor.tabs.currentWidget() is view and not monitor.tabs.isTabVisible(monitor.tabs.indexOf(monitor.charts_page))

    table = view.table
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers == ["trial", "state", "train.learning_rate", "train.schedule", "loss", "run"]
    rows = [[table.item(r, c).text() for c in range(table.columnCount())] for r in range(table.rowCount())]
    assert rows[1] == ["1", "completed", "0.01", "linear", "1.5", "lr-1.t1"]
    assert table.item(1, 0).font().bold() and not table.item(0, 0).font().bold()  # the best trial
    assert "best: trial 1" in view.note.text()

    # One line per trial across learning rate (log scale), schedule and loss; the running one ends short.
    assert sorted(view.lines) == [0, 1, 2, 3]
    heights = dict((t["number"], h) for t, h in view.sweep.positions())
    assert heights[2][0] == 0 and heights[3][0] == 1  # 1e-4 lowest, 3e-2 highest
    assert math.isclose(heights[0][0], (math.log10(1e-3) + 4) / (math.log10(3e-2) + 4))
    assert [heights[n][1] for n in range(4)] == [0, 1, 0, 1]  # cosine, linear
    assert heights[1][2] == 0 and heights[2][2] == 1 and math.isnan(heights[3][2])
    assert len(view.lines[3].getData()[0]) == 2

    opened = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url.toLocalFile()))
    assert view.best_button.isEnabled()
    view.best_button.click()
    assert opened == [str(run.output_dir / "best_spec.yaml")]
    assert (run.output_dir / "best_spec.yaml").read_text() == "kind: pretrain\nname: tiny-t1\n"


def test_a_sweep_with_no_trial_yet_says_so_and_offers_no_spec(monitor, store, tmp_path):
    run = RunDirectory.create(tmp_path, "lr-2")
    store.add_run("lr-2", kind="sweep", name="lr", run_dir=str(run.path), state="running")
    monitor.load("lr-2")
    assert monitor.sweep_view.table.rowCount() == 0 and "No trials yet" in monitor.sweep_view.note.text()
    assert not monitor.sweep_view.best_button.isEnabled()
