"""The run monitor loads history from the store, then appends live events on its redraw timer."""

from __future__ import annotations

import numpy as np
import pytest

from tools.screenshots.events import synthetic_demo_events
from studio.widgets.run_monitor import RunMonitor
from tests.studio.evaluation_fixtures import EVENTS
from tests.studio.tracker_fixtures import FakeTracker


@pytest.fixture
def tracker(store):
    return FakeTracker(store)


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
    monitor.samples_view.add_events([{"step": 410, "prompt": "Reverse the words.\n\ncat sun", "text": "sun cat"}])
    assert monitor.samples_view.rows()[0][1] == "Reverse the words.\n\ncat sun"  # real lines, no literal \n
    assert monitor.artifacts_view.paths() == ["runs/hist/output/tokenizer", "runs/hist/output/model"]
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
    tracker.run_events.emit("live", more)
    # the slot only buffers: nothing is drawn until the coalescing timer fires (a redraw that load()
    # scheduled may come first, so wait for the drawing of these events, not for any redraw)
    assert len(monitor.charts["loss"].curve_data("train")[0]) == before
    qtbot.waitUntil(lambda: monitor.charts["loss"].curve_data("train")[0][-1] == 600, timeout=3000)
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


def test_stop_force_stop_and_resume_call_the_tracker_and_the_log_says_each_turn(monitor, store, tracker):
    store.add_run("run", kind="pretrain", state="running")
    monitor.load("run")
    assert monitor.stop_button.isEnabled() and not monitor.resume_button.isEnabled()
    assert monitor.force_stop_button.isHidden()
    monitor.stop_button.click()
    assert tracker.calls == [("cancel", "run")]
    # The engine saves a checkpoint first; a run that takes too long to can be stopped at once.
    assert monitor.stop_button.isHidden() and not monitor.force_stop_button.isHidden()
    monitor.force_stop_button.click()
    assert tracker.calls[-1] == ("force cancel", "run")
    events = [{"seq": 0, "t": 1.0, "type": "artifact", "kind": "checkpoint", "path": "runs/run/checkpoints/checkpoint-73",
               "meta": {"step": 73}},
              {"seq": 1, "t": 2.0, "type": "finished", "status": "cancelled", "summary": {"step": 73}}]
    store.add_events("run", events)
    tracker.run_events.emit("run", events)
    tracker.run_state_changed.emit("run", "cancelled")
    assert monitor.resume_button.isEnabled() and not monitor.stop_button.isEnabled()
    assert monitor.force_stop_button.isHidden()
    lines = [line.split("  ", 2)[-1].strip() for line in monitor.log_view.visible_lines()]
    assert lines[0].startswith("Stop asked") and lines[1].startswith("Force stop asked")
    assert lines[2:] == ["Checkpoint saved at step 73 (checkpoint-73).",
                         "Stopped at step 73, after saving a checkpoint: Resume goes on from it."]
    monitor.resume_button.click()
    assert tracker.calls[-1] == ("resume", "run")
    resumed = {"seq": 2, "t": 3.0, "type": "started", "spec": {"kind": "pretrain"}, "resumed_from_step": 73}
    store.add_events("run", [resumed])
    monitor.load("run")  # the log as read back from the store
    lines = [line.split("  ", 2)[-1].strip() for line in monitor.log_view.visible_lines()]
    assert lines[-1] == "Resumed at step 73, from its checkpoint." and monitor.state == "running"


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
    assert "┅ old" in monitor.charts["loss"].title_label.text()  # the legend names the compared run
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
    from studio.widgets.monitor_panels import panels_for
    from tests.studio.finetune_fixtures import finetune_events

    store.add_run("ft", kind="finetune", name="ft")
    store.add_events("ft", finetune_events("ft"))
    store.add_run("pre", kind="pretrain", name="pre")
    store.add_events("pre", synthetic_demo_events("pre", steps=200))
    assert monitor.panels == panels_for("pretrain")
    monitor.load("ft")
    assert monitor.panels == panels_for("finetune") and list(monitor.charts)[:4] == ["loss", "exact_match", "bleu", "rouge_l"]
    assert monitor.charts["exact_match"].point_count("eval") == 3 and "train_records" not in monitor.charts
    tracker.run_events.emit("ft", [{"seq": 999, "t": 1.0, "type": "metric", "step": 0, "split": "data",
                                    "values": {"dropped": 1}}])
    assert "dropped" not in monitor.charts
    monitor.load("pre")
    assert monitor.panels == panels_for("pretrain") and "exact_match" not in monitor.charts
    assert monitor.charts["loss"].point_count("train") == 20


def _evaluate_run(store, run_id: str, name: str, acc: float) -> None:
    store.add_run(run_id, kind="evaluate", name=name)
    cells = [dict(e, values={k: (acc if (k, e["model"]) == ("acc", "tuned") else v) for k, v in e["values"].items()})
             for e in EVENTS
             if e.get("model")]
    store.add_events(run_id, [{"v": 1, "seq": 0, "t": 1.0, "type": "started", "spec": {"kind": "evaluate"}},
                              *({**e, "v": 1, "seq": i + 1, "t": 2.0} for i, e in enumerate(cells))])


def test_an_evaluate_run_shows_its_scores_not_charts_and_compares_with_another(monitor, store, tracker):
    _evaluate_run(store, "eval-a", "bench-a", 0.6)
    _evaluate_run(store, "eval-b", "bench-b", 0.4)
    monitor.load("eval-a")
    tabs = monitor.tabs
    assert tabs.isTabVisible(tabs.indexOf(monitor.scores_view)) and tabs.currentWidget() is monitor.scores_view
    assert not tabs.isTabVisible(tabs.indexOf(monitor.charts_page)) and monitor.charts == {}
    table = monitor.scores_view.table
    assert [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())] == [
        "Task / variant", "Metric", "base", "tuned"]
    assert (table.item(0, 0).text(), table.item(0, 1).text(), table.item(0, 3).text()) == ("arc_easy", "acc",
                                                                                           "0.600 ± 0.078")
    assert table.item(0, 3).font().bold() and not table.item(0, 2).font().bold()
    assert table.item(3, 0).text() == "plain (variant)"

    # a cell arriving live (a third model) gets its column
    tracker.run_events.emit("eval-a", [{"v": 1, "seq": 50, "t": 3.0, "type": "metric", "step": 0, "split": "eval",
                                        "task": "arc_easy", "model": "third", "values": {"acc": 0.9},
                                        "stderr": {"acc": 0.05}}])
    assert table.horizontalHeaderItem(4).text() == "third" and table.item(0, 4).text() == "0.900 ± 0.050"
    assert monitor.charts == {}

    monitor.add_overlay("eval-b")  # the Runs page's Compare
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert headers[2:] == ["base\nbench-a", "tuned\nbench-a", "third\nbench-a", "base\nbench-b", "tuned\nbench-b"]
    assert table.item(0, 6).text() == "0.400 ± 0.078"
    monitor.clear_overlays()
    assert table.columnCount() == 5
    store.add_events("eval-b", [{"v": 1, "seq": 90, "t": 4.0, "type": "started",
                                 "spec": {"kind": "evaluate", "name": "bench-a"}}])  # the same name, run again
    monitor.add_overlay("eval-b")
    assert [table.horizontalHeaderItem(c).text() for c in (2, 5)] == ["base\neval-a", "base\neval-b"]

    store.add_run("pre", kind="pretrain", name="pre")
    monitor.load("pre")
    assert not tabs.isTabVisible(tabs.indexOf(monitor.scores_view)) and tabs.currentWidget() is monitor.charts_page


def wheel(widget, modifiers=None, delta: int = -120) -> None:
    """A mouse-wheel notch over the middle of `widget` (delta < 0: towards the user)."""
    from PySide6.QtCore import QPoint, QPointF, Qt
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    middle = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(middle, QPointF(widget.mapToGlobal(middle.toPoint())), QPoint(0, 0), QPoint(0, delta),
                        Qt.NoButton, modifiers or Qt.NoModifier, Qt.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_charts_and_ctrl_wheel_zooms_one_with_a_reset(qtbot, monitor, store):
    from PySide6.QtCore import Qt

    store.add_run("w", kind="pretrain", name="w")
    store.add_events("w", synthetic_demo_events("w", steps=400))
    monitor.resize(900, 520)
    monitor.show()
    qtbot.waitExposed(monitor)
    monitor.load("w")
    chart, bar = monitor.charts["loss"], monitor.charts_scroll.verticalScrollBar()
    assert bar.maximum() > 0 and bar.value() == 0
    before = chart.plot.getPlotItem().getViewBox().viewRange()
    wheel(chart.plot.viewport())
    assert bar.value() > 0  # the page scrolled
    assert chart.plot.getPlotItem().getViewBox().viewRange() == before and chart.reset_button.isHidden()
    wheel(chart.plot.viewport(), Qt.ControlModifier, delta=120)
    assert chart.plot.getPlotItem().getViewBox().viewRange() != before and not chart.reset_button.isHidden()
    chart.reset_button.click()
    assert chart.reset_button.isHidden() and chart.view_state() is None


def test_each_run_keeps_its_own_scroll_and_zoom(qtbot, monitor, store):
    for run_id in ("a", "b"):
        store.add_run(run_id, kind="pretrain", name=run_id)
        store.add_events(run_id, synthetic_demo_events(run_id, steps=400))
    monitor.resize(900, 520)
    monitor.show()
    qtbot.waitExposed(monitor)
    monitor.load("a")
    bar = monitor.charts_scroll.verticalScrollBar()
    bar.setValue(bar.maximum())
    monitor.charts["lr"].restore_view(((10, 100), (0, 1e-4)))
    monitor.load("b")  # another run opens at the top, every curve whole
    assert bar.value() == 0 and all(chart.view_state() is None for chart in monitor.charts.values())
    monitor.load("a")
    assert bar.value() == bar.maximum() > 0
    (x0, x1), _ = monitor.charts["lr"].view_state()
    assert (x0, x1) == pytest.approx((10, 100))


def test_schedules_are_drawn_as_the_run_set_them_and_titles_come_from_the_one_table(monitor, store):
    from studio.widgets.monitor_panels import metric_title

    store.add_run("sched", kind="pretrain")
    store.add_events("sched", synthetic_demo_events("sched", steps=300))
    monitor.load("sched")
    monitor.smoothing_slider.setValue(90)
    lr = monitor.charts["lr"]
    _, drawn = lr.curve_data("train")
    assert np.allclose(drawn, lr.buffers["train"].values[: lr.buffers["train"].n])  # not smoothed
    assert monitor.charts["loss"].smoothing == 0.9
    # A policy metric on a chart of a kind that does not list it is titled from the table, not its name.
    monitor.on_events("sched", [{"seq": 10_000, "t": 1.0, "type": "metric", "step": 301, "split": "train",
                                 "values": {"approx_kl": 0.01, "kl_coef": 0.1, "tflops": 2.0}}])
    assert [monitor.charts[k].title for k in ("approx_kl", "kl_coef", "tflops")] == [
        "Approx. KL", "KL coefficient", "Compute (TFLOP/s)"]
    assert metric_title("memory_mb") == "Memory (MB)" and monitor.charts["kl_coef"].schedule


def test_compared_rewards_of_a_reward_model_and_a_checker_are_said_apart(monitor, store):
    def run(run_id: str, kind: str, spec: dict) -> None:
        store.add_run(run_id, kind=kind, name=run_id)
        store.add_events(run_id, [
            {"v": 1, "seq": 0, "t": 1.0, "type": "started", "spec": {"kind": kind, "name": run_id, **spec}},
            *[{"v": 1, "seq": i, "t": 1.0 + i, "type": "metric", "step": i, "split": "train",
               "values": {"reward_mean" if kind == "ppo" else "reward": 0.1 * i, "loss": 1.0}} for i in (1, 2)]])

    run("ppo-1", "ppo", {"reward_model": "rm-1"})
    run("grpo-1", "grpo", {"reward": {"source": "checker"}})
    run("ppo-2", "ppo", {"reward_model": "rm-1"})
    monitor.load("ppo-1")
    monitor.add_overlay("ppo-2")
    assert monitor.charts["reward_mean"].note.isHidden()  # the same reward model: one meaning
    monitor.clear_overlays()
    monitor.add_overlay("grpo-1")  # another kind: compared from the Runs page
    note = monitor.charts["reward_mean"].note
    assert not note.isHidden() and "ppo-1: reward model rm-1" in note.text()
    assert "grpo-1: the task's checker" in note.text()
    assert "PPO loss" in monitor.charts["loss"].note.text() and "GRPO policy loss" in monitor.charts["loss"].note.text()
    assert monitor.overlay_box.currentData() == "grpo-1"  # listed, though of another kind


def test_tick_labels_never_repeat():
    from studio.widgets.metric_chart import compact_labels

    assert compact_labels([3e-4, 3.05e-4, 3.1e-4]) == ["3e-4", "3.05e-4", "3.1e-4"]
    assert compact_labels([36_000, 36_010]) == ["36k", "36.01k"]
    assert compact_labels([0.5, 1.0, 1.5]) == ["0.5", "1", "1.5"]
