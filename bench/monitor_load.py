"""Run-monitor load benchmark: live event rate, event-loop stalls, and a million-point chart.

    QT_QPA_PLATFORM=offscreen python bench/monitor_load.py [--seconds 5] [--rate 5000]

1. Replays a metric event stream (the recorded resources/demo/events.jsonl when present, else the
   synthetic demo stream) into a RunMonitor at `--rate` metric events per second, in the batches a
   tracker delivers, for `--seconds`; a 5 ms QTimer measures how late the event loop runs it (the
   worst stall; target < 100 ms). Done twice: the monitor alone, then with the store ingesting
   each batch first on the same thread, as the run tracker does. Checks that every point arrived.
2. Loads a 1,000,000-point series into one chart and pans/zooms it with setXRange, timing each
   frame (range change + synchronous repaint; target < 50 ms).

Prints ONE JSON line of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from PySide6.QtCore import QElapsedTimer, QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from studio import theme  # noqa: E402
from studio.app import skip_pandas  # noqa: E402
from tools.screenshots.events import demo_events  # noqa: E402

PROBE_MS = 5
FEED_MS = 10


def metric_template() -> tuple[list[dict], bool]:
    events, recorded = demo_events()
    metrics = [e for e in events if e.get("type") == "metric" and e.get("split", "train") == "train"]
    return metrics, recorded


def make_stream(count: int, template: list[dict], t0: float) -> list[dict]:
    """`count` train metric events with steps 1..count, values cycled from `template`."""
    stream = []
    for i in range(count):
        values = template[i % len(template)]["values"]
        stream.append({"v": 1, "seq": i, "t": t0 + i * 0.001, "type": "metric", "step": i + 1, "split": "train",
                       "values": values})
    return stream


def replay(app: QApplication, monitor, store, run_id: str, stream: list[dict], rate: float,
           ingest: bool) -> dict:
    lateness: list[float] = []
    probe_clock = QElapsedTimer()
    probe = QTimer()
    probe.setInterval(PROBE_MS)

    stamps: list[float] = []

    def on_probe() -> None:
        lateness.append(max(probe_clock.restart() - PROBE_MS, 0))
        stamps.append(clock.elapsed() / 1000)

    probe.timeout.connect(on_probe)
    sent = 0
    clock = QElapsedTimer()
    feeder = QTimer()
    feeder.setInterval(FEED_MS)
    loop = QEventLoop()
    batch_ms: list[float] = []
    send_s = [0.0]

    def feed() -> None:
        nonlocal sent
        due = min(int(clock.elapsed() / 1000 * rate), len(stream))
        if due > sent:
            batch = stream[sent:due]
            start = time.perf_counter()
            if ingest:
                store.add_events(run_id, batch)
            monitor.on_events(run_id, batch)
            batch_ms.append((time.perf_counter() - start) * 1000)
            sent = due
        if sent >= len(stream):
            feeder.stop()
            send_s[0] = clock.elapsed() / 1000
            drain_clock.start()
            drainer.start()

    # Once everything is sent, wait until the redraw timer has drawn the last points into every
    # chart (it paints a few charts per tick, round robin), up to 5 s; the wait is reported.
    drain_clock = QElapsedTimer()
    drainer = QTimer()
    drainer.setInterval(20)

    def drain() -> None:
        # Charts scrolled out of view stay dirty by design until shown: only on-screen ones count.
        pending = [c for c in monitor.charts.values() if c.dirty and not c.visibleRegion().isEmpty()]
        if not pending or drain_clock.elapsed() > 5000:
            drainer.stop()
            loop.quit()

    drainer.timeout.connect(drain)

    feeder.timeout.connect(feed)
    redraws = [0]
    monitor.redrawn.connect(lambda: redraws.__setitem__(0, redraws[0] + 1))
    clock.start()
    probe_clock.start()
    probe.start()
    feeder.start()
    loop.exec()
    probe.stop()
    drain_ms = drain_clock.elapsed()
    chart = monitor.charts["loss"]
    drawn = len(chart.curve_data("train")[0])
    return {
        "events": len(stream),
        "seconds": round(send_s[0], 2),
        "achieved_rate": round(len(stream) / send_s[0]),
        "worst_stall_ms": round(max(lateness), 1),
        # After the first second: the first events of a run with metrics beyond the monitor's
        # fixed panels build a panel each, a one-off cost that the steady stream does not pay again.
        "worst_stall_after_1s_ms": round(max(l for l, at in zip(lateness, stamps) if at > 1.0), 1),
        "p99_stall_ms": round(float(np.percentile(lateness, 99)), 1),
        "worst_batch_ms": round(max(batch_ms), 1),
        "redraws": redraws[0],
        "last_points_drawn_after_ms": drain_ms,
        "points_drawn": drawn,
        "all_points_arrived": drawn == len(stream) == chart.point_count("train"),
    }


def pan_zoom(app: QApplication, points: int, frames: int) -> dict:
    from studio.widgets.metric_chart import MetricChart

    chart = MetricChart("loss", "Loss (1M points)")
    chart.resize(1000, 600)
    chart.show()
    steps = np.arange(1, points + 1, dtype=np.float64)
    rng = np.random.default_rng(0)
    values = 2 + 8 * np.exp(-steps / (points / 8)) + rng.normal(0, 0.05, points)
    start = time.perf_counter()
    chart.set_series("train", steps, steps * 0.3, values)
    chart.refresh()
    chart.plot.repaint()
    load_ms = (time.perf_counter() - start) * 1000
    app.processEvents()
    plot = chart.plot
    times = []
    for i in range(frames):
        # Alternate zooming in (to 0.5% of the data) and panning across, then full views.
        phase = i % 40
        if phase < 30:
            width = points * (0.005 if i % 2 else 0.05)
            left = (points - width) * (phase / 30)
            x_range = (left, left + width)
        else:
            x_range = (0, points * (0.25 + 0.075 * (phase - 30)))
        t = time.perf_counter()
        plot.setXRange(*x_range, padding=0)
        plot.repaint()  # one synchronous paint per frame (checked: no second paint follows)
        app.processEvents()
        times.append((time.perf_counter() - t) * 1000)
    chart.close()
    return {
        "points": points,
        "frames": frames,
        "load_and_first_frame_ms": round(load_ms, 1),
        "frame_ms_median": round(statistics.median(times), 1),
        "frame_ms_p95": round(float(np.percentile(times, 95)), 1),
        "frame_ms_max": round(max(times), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    skip_pandas()
    app = QApplication.instance() or QApplication([])
    theme.apply(app, "light")
    from studio.models.store import Store
    from studio.widgets.run_monitor import RunMonitor

    template, recorded = metric_template()
    count = int(args.seconds * args.rate)
    figures: dict = {"bench": "monitor_load", "source": "recorded" if recorded else "synthetic",
                     "rate_target": args.rate, "stall_target_ms": 100, "frame_target_ms": 50}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "store.db")
        for phase, ingest in (("monitor_only", False), ("with_store_ingest", True)):
            run_id = f"bench-{phase}"
            store.add_run(run_id, kind="pretrain", name=run_id, state="running")
            monitor = RunMonitor(store)
            monitor.resize(1280, 800)
            monitor.show()
            monitor.load(run_id)
            app.processEvents()
            figures[phase] = replay(app, monitor, store, run_id, make_stream(count, template, time.time()),
                                    args.rate, ingest)
            monitor.close()
        store.close()
    figures["pan_zoom"] = pan_zoom(app, args.points, args.frames)
    figures["ok"] = bool(
        figures["monitor_only"]["all_points_arrived"] and figures["with_store_ingest"]["all_points_arrived"]
        and figures["monitor_only"]["worst_stall_ms"] < 100 and figures["with_store_ingest"]["worst_stall_ms"] < 100
        and figures["pan_zoom"]["frame_ms_p95"] < 50)
    print(json.dumps(figures), flush=True)
    # Skip interpreter teardown: destroying pyqtgraph items after the QApplication is gone can
    # abort the process, and the figures are already out.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
