"""The run monitor loads history from the store, then appends live events on its redraw timer."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QObject, Signal

from studio.screenshot_events import synthetic_demo_events
from studio.widgets.run_monitor import RunMonitor


class FakeTracker(QObject):
    """The RunTracker's signals and actions, recording the calls."""

    run_added = Signal(str)
    run_events = Signal(str, list)
    run_state_changed = Signal(str, str)
    run_error = Signal(str, str)
    launch_failed = Signal(str)

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def cancel(self, run_id, force=False):
        self.calls.append(("cancel", run_id))

    def resume(self, run_id):
        self.calls.append(("resume", run_id))


@pytest.fixture
def tracker():
    return FakeTracker()


@pytest.fixture
def monitor(qtbot, store, tracker):
    widget = RunMonitor(store, tracker)
    qtbot.addWidget(widget)
    return widget


def _metrics(events):
    return [e for e in events if e["type"] == "metric" and e["split"] == "train"]


def test_history_comes_from_the_store(monitor, store):
    events = synthetic_demo_events("hist", steps=400)
    store.add_run("hist", kind="pretrain", name="hist")
    store.add_events("hist", events)
    monitor.load("hist")
    loss = monitor.charts["loss"]
    assert loss.point_count("train") == len(_metrics(events)) == 40
    assert loss.point_count("eval") == 2
    x, y = loss.curve_data("train")
    assert len(x) == 40 and x[-1] == 400
    assert monitor.charts["lr"].point_count("train") == 40
    assert monitor.charts["memory"].point_count("train") == 40
    assert "perplexity" in monitor.charts  # an unknown metric gets its own chart
    assert monitor.samples_view.rows()[0][0] == "400"
    assert monitor.artifacts_view.paths() == ["output/tokenizer", "output/model"]
    assert monitor.state == "completed"
    assert not monitor.stop_button.isEnabled()


def test_live_events_grow_the_chart_after_the_timer(monitor, store, tracker, qtbot):
    events = synthetic_demo_events("live", steps=1000, upto=300)
    store.add_run("live", kind="pretrain", name="live")
    store.add_events("live", events)
    monitor.load("live")
    before = len(monitor.charts["loss"].curve_data("train")[0])
    more = synthetic_demo_events("live", steps=1000, upto=600)[len(events):]
    store.add_events("live", more)
    with qtbot.waitSignal(monitor.redrawn, timeout=2000):
        tracker.run_events.emit("live", more)
        # the slot only buffers: nothing is drawn until the coalescing timer fires
        assert len(monitor.charts["loss"].curve_data("train")[0]) == before
    x, _ = monitor.charts["loss"].curve_data("train")
    assert len(x) == before + 30 and x[-1] == 600
    assert monitor.step == 600
    assert "600" in monitor.progress_label.text()


def test_a_ppo_run_shows_its_iterations_out_of_the_total(monitor, store, tracker):
    started = {"v": 1, "seq": 0, "t": 1.0, "type": "started",
               "spec": {"kind": "ppo", "name": "ppo", "train": {"iterations": 40}}}
    store.add_run("ppo-1", kind="ppo", name="ppo")
    store.add_events("ppo-1", [started])
    monitor.load("ppo-1")
    progress = {"v": 1, "seq": 1, "t": 2.0, "type": "progress", "stage": "train", "done": 12, "total": 40,
                "unit": "iterations", "eta_s": 30.0}
    store.add_events("ppo-1", [progress])
    tracker.run_events.emit("ppo-1", [progress])
    monitor.redraw()
    assert monitor.progress_label.text() == "step 12 / 40" and not monitor.progress.isHidden()


def test_events_already_shown_or_of_other_runs_are_ignored(monitor, store, tracker, qtbot):
    events = synthetic_demo_events("dup", steps=1000, upto=200)
    store.add_run("dup", kind="pretrain")
    store.add_events("dup", events)
    monitor.load("dup")
    tracker.run_events.emit("dup", events[-10:])  # seqs already loaded from the store
    tracker.run_events.emit("other", synthetic_demo_events("other", upto=100))
    monitor.redraw()
    assert monitor.charts["loss"].point_count("train") == 20


def test_stop_and_resume_call_the_tracker(monitor, store, tracker):
    store.add_run("run", kind="pretrain", state="running")
    monitor.load("run")
    assert monitor.stop_button.isEnabled() and not monitor.resume_button.isEnabled()
    monitor.stop_button.click()
    assert tracker.calls == [("cancel", "run")]
    tracker.run_state_changed.emit("run", "cancelled")
    assert monitor.resume_button.isEnabled() and not monitor.stop_button.isEnabled()
    monitor.resume_button.click()
    assert tracker.calls[-1] == ("resume", "run")


def test_log_level_filter(monitor, store, tracker):
    monitor.load("logs")
    monitor.on_events("logs", [
        {"seq": 0, "t": 1.0, "type": "log", "level": "debug", "message": "d"},
        {"seq": 1, "t": 1.0, "type": "log", "level": "info", "message": "i"},
        {"seq": 2, "t": 1.0, "type": "log", "level": "warning", "message": "w"},
        {"seq": 3, "t": 1.0, "type": "log", "level": "error", "message": "e"},
    ])
    assert len(monitor.log_view.visible_lines()) == 3  # info and above by default
    monitor.log_view.set_min_level("warning")
    assert [line[-1] for line in monitor.log_view.visible_lines()] == ["w", "e"]
    monitor.log_view.set_min_level("debug")
    assert len(monitor.log_view.visible_lines()) == 4


def test_overlay_of_an_earlier_run(monitor, store):
    for run_id in ("new", "old"):
        store.add_run(run_id, kind="pretrain", name=run_id)
        store.add_events(run_id, synthetic_demo_events(run_id, steps=200))
    monitor.load("new")
    assert monitor.overlay_box.findData("old") >= 0
    monitor.add_overlay("old")
    overlays = monitor.charts["loss"]._overlays["old"]
    assert {buf.n for _, buf, _ in overlays} == {20, 1}
    assert "other" in monitor.charts["loss"].title_label.text()
    assert "old" in monitor.charts["loss"].title_label.toolTip()
    assert monitor.overlay_box.currentData() == "old"  # the box says what is drawn
    monitor.clear_overlays()
    assert not monitor.charts["loss"]._overlays
    assert monitor.overlay_box.currentData() is None


def test_memory_is_charted_in_mb_whatever_unit_the_run_logs(monitor, store):
    store.add_run("mb", kind="pretrain")
    store.add_events("mb", [{"seq": 0, "t": 1.0, "type": "metric", "step": 10, "split": "train",
                             "values": {"memory_mb": 773.3}}])
    store.add_run("gib", kind="pretrain")
    store.add_events("gib", [{"seq": 0, "t": 1.0, "type": "metric", "step": 10, "split": "train",
                              "values": {"memory_gib": 0.75}}])
    monitor.load("mb")
    chart = monitor.charts["memory"]
    assert "MB" in chart.title and chart.point_count("train") == 1
    assert chart.buffers["train"].values[0] == pytest.approx(773.3)
    monitor.add_overlay("gib")
    (_, buf, _), = chart._overlays["gib"]
    assert buf.values[0] == pytest.approx(768.0)


def test_a_long_run_name_is_elided_with_the_whole_name_as_tooltip(monitor, store):
    name = "a-very-long-run-name-that-does-not-fit-" * 3
    store.add_run("long", kind="pretrain", name=name)
    monitor.resize(700, 500)
    monitor.show()
    monitor.load("long")
    assert monitor.title.full_text() == name and monitor.title.toolTip() == name
    assert "…" in monitor.title.text() and len(monitor.title.text()) < len(name)


def test_chart_settings(monitor, store):
    store.add_run("s", kind="pretrain")
    store.add_events("s", synthetic_demo_events("s", steps=300))
    monitor.load("s")
    chart = monitor.charts["loss"]
    monitor.smoothing_slider.setValue(0)
    _, raw = chart.curve_data("train")
    assert np.allclose(raw, chart.buffers["train"].values[: chart.buffers["train"].n])
    monitor.smoothing_slider.setValue(90)
    _, smooth = chart.curve_data("train")
    assert np.std(np.diff(smooth)) < np.std(np.diff(raw))
    monitor.x_axis_box.setCurrentIndex(1)  # time
    x, _ = chart.curve_data("train")
    assert x[0] >= 0 and x[-1] > 100  # seconds since the start, not steps
    monitor.log_check.setChecked(True)
    assert chart.plot.getPlotItem().ctrl.logYCheck.isChecked()


def test_resumed_steps_replace_the_tail(qtbot):
    from studio.widgets.metric_chart import SeriesBuffer

    buf = SeriesBuffer(4)
    for step in range(1, 11):
        buf.append(step, step, float(step))
    buf.append(8, 20.0, 80.0)  # a resume from step 7 logs step 8 again
    assert list(buf.steps[: buf.n]) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert buf.values[buf.n - 1] == 80.0


def test_a_run_of_another_kind_gets_its_panels_and_one_off_counts_are_not_charted(monitor, store, tracker):
    from studio.widgets.monitor_panels import FINETUNE_PANELS, PANELS
    from tests.studio.finetune_fixtures import finetune_events

    store.add_run("ft", kind="finetune", name="ft")
    store.add_events("ft", finetune_events("ft"))
    store.add_run("pre", kind="pretrain", name="pre")
    store.add_events("pre", synthetic_demo_events("pre", steps=200))
    assert monitor.panels == PANELS
    monitor.load("ft")
    assert monitor.panels == FINETUNE_PANELS and list(monitor.charts)[:4] == ["loss", "exact_match", "bleu", "rouge_l"]
    assert monitor.charts["exact_match"].point_count("eval") == 3 and "train_records" not in monitor.charts
    tracker.run_events.emit("ft", [{"seq": 999, "t": 1.0, "type": "metric", "step": 0, "split": "data",
                                    "values": {"dropped": 1}}])
    assert "dropped" not in monitor.charts
    monitor.load("pre")
    assert monitor.panels == PANELS and "exact_match" not in monitor.charts
    assert monitor.charts["loss"].point_count("train") == 20
