"""One live metric chart (pyqtgraph): train and eval overlaid, earlier runs dimmed behind.

Incoming points are appended to growable numpy buffers (`append`), and nothing is drawn until the
owner calls `refresh()` from its coalescing timer: a burst of thousands of events costs a few array
writes, and the chart redraws at most ~10 times a second. pyqtgraph's clip-to-view and peak
downsampling keep a million-point series interactive.

This module imports pyqtgraph, which is slow to import: the studio imports it only when the first
run monitor is built, so the main window paints first.
"""

from __future__ import annotations

import html
import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractScrollArea, QApplication, QHBoxLayout, QLabel, QSizePolicy, QToolButton, QVBoxLayout, QWidget,
)

from studio import theme

pg.setConfigOptions(antialias=False, useOpenGL=False, foreground="k", background="w")


class SeriesBuffer:
    """Append-only (step, time, value) columns that grow by doubling; `n` points are valid."""

    def __init__(self, capacity: int = 1024):
        self.steps = np.empty(capacity, dtype=np.float64)
        self.times = np.empty(capacity, dtype=np.float64)
        self.values = np.empty(capacity, dtype=np.float64)
        self.smoothed = np.empty(capacity, dtype=np.float64)
        self.n = 0
        self.n_smoothed = 0  # points whose smoothed value is computed
        self._ema = 0.0
        self._ema_count = 0

    def _reserve(self, extra: int) -> None:
        need = self.n + extra
        if need <= len(self.steps):
            return
        capacity = max(need, 2 * len(self.steps))
        for name in ("steps", "times", "values", "smoothed"):
            old = getattr(self, name)
            new = np.empty(capacity, dtype=np.float64)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def append(self, step: float, t: float, value: float) -> None:
        if self.n and step <= self.steps[self.n - 1]:
            # A resumed run logs steps again from its last checkpoint: the newer values replace them.
            keep = int(np.searchsorted(self.steps[: self.n], step, side="left"))
            self.n = keep
            self.n_smoothed = min(self.n_smoothed, keep)
            self._restart_ema(keep)
        self._reserve(1)
        i = self.n
        self.steps[i], self.times[i], self.values[i] = step, t, value
        self.n = i + 1

    def extend(self, steps: np.ndarray, times: np.ndarray, values: np.ndarray) -> None:
        count = len(steps)
        if count and self.n and steps[0] <= self.steps[self.n - 1]:
            # A resumed run logs steps again: the newer values replace the old tail.
            keep = int(np.searchsorted(self.steps[: self.n], steps[0], side="left"))
            self.n = keep
            self._restart_ema(keep)
        self._reserve(count)
        sl = slice(self.n, self.n + count)
        self.steps[sl], self.times[sl], self.values[sl] = steps, times, values
        self.n += count

    def clear(self) -> None:
        self.n = self.n_smoothed = 0
        self._ema, self._ema_count = 0.0, 0

    def _restart_ema(self, upto: int) -> None:
        self.n_smoothed = 0
        self._ema, self._ema_count = 0.0, 0

    def smooth(self, weight: float) -> np.ndarray:
        """Debiased exponential moving average (as TensorBoard draws it), computed incrementally."""
        values, out = self.values, self.smoothed
        ema, count = self._ema, self._ema_count
        for i in range(self.n_smoothed, self.n):
            v = values[i]
            if v != v:  # NaN: a missing value stays missing and does not poison the average
                out[i] = v
                continue
            ema = ema * weight + (1.0 - weight) * v
            count += 1
            out[i] = ema / (1.0 - weight**count) if weight > 0 else v
        self._ema, self._ema_count, self.n_smoothed = ema, count, self.n
        return out[: self.n]

    def reset_smoothing(self) -> None:
        self._restart_ema(0)

    def x(self, mode: str, t0: float) -> np.ndarray:
        return self.steps[: self.n] if mode == "step" else self.times[: self.n] - t0


def compact_number(value: float, digits: int = 3) -> str:
    """A tick label that fits a narrow axis: 0.0005 -> 5e-4, 36000 -> 36k, 2.5 -> 2.5; `digits`
    significant digits at most."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.{digits}g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.{digits}g}k"
    if magnitude < 1e-2:
        mantissa, exponent = f"{value:.{max(digits - 1, 0)}e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"
    return f"{value:.{digits + 1}g}"


def compact_labels(values) -> list[str]:
    """Tick labels for `values`, as short as they can be while no two ticks read the same (ticks
    0.00030 and 0.000305 would both read 3e-4 at three digits)."""
    values = list(values)
    for digits in range(3, 10):
        labels = [compact_number(v, digits) for v in values]
        if len(set(labels)) == len(set(values)):
            return labels
    return labels


class CompactAxis(pg.AxisItem):
    """A value axis whose labels stay short (a learning rate of 3e-4 would not fit as 0.0003)."""

    def tickStrings(self, values, scale, spacing):  # noqa: N802 - pyqtgraph's name
        if self.logMode:
            return super().tickStrings(values, scale, spacing)
        return compact_labels(v * scale for v in values)


class ScrollingPlot(pg.PlotWidget):
    """A plot that leaves the mouse wheel to the page it is on (a grid of charts scrolls), and zooms
    with Ctrl+wheel."""

    def wheelEvent(self, event):  # noqa: N802 - Qt's name
        if event.modifiers() & Qt.ControlModifier:
            super().wheelEvent(event)
            return
        area = self.parentWidget()
        while area is not None and not isinstance(area, QAbstractScrollArea):
            area = area.parentWidget()
        if area is None:
            event.ignore()
            return
        # Handed on, not ignored: Qt propagates only the wheel events that come from the device.
        QApplication.sendEvent(area.verticalScrollBar(), event)


def _dim(colour: str, alpha: int) -> QColor:
    c = QColor(colour)
    c.setAlpha(alpha)
    return c


class MetricChart(QWidget):
    """A chart of one metric name: a curve per split, plus dimmed overlays of other runs.

    The wheel scrolls the page; Ctrl+wheel zooms and a drag pans, after which `reset_button` brings
    the whole curve back. A `schedule` (learning rate, epoch) is drawn as it is, never smoothed.

    Public for tests and benchmarks: `buffers` (split -> SeriesBuffer), `curve_data(split)`
    (what is drawn now), `plot` (the pyqtgraph PlotWidget), `reset_button`, `note` (a warning
    about what the compared series are), `view_state()` / `restore_view(state)`.
    """

    hovered = Signal(str)

    def __init__(self, name: str, title: str | None = None, parent: QWidget | None = None, schedule: bool = False):
        super().__init__(parent)
        self.name = name
        self.title = title or name
        self.schedule = schedule
        self.buffers: dict[str, SeriesBuffer] = {}
        self.t0: float | None = None
        self.smoothing = 0.0 if schedule else 0.6
        self.x_mode = "step"
        self.log_y = False
        self._dirty: set[str] = set()
        self._raw: dict[str, pg.PlotDataItem] = {}
        self._smooth: dict[str, pg.PlotDataItem] = {}
        self._overlays: dict[str, list[tuple[pg.PlotDataItem, SeriesBuffer, float]]] = {}
        self._overlay_labels: dict[str, str] = {}
        self._colours: dict[str, str] = {}

        t = theme.current()
        self.title_label = QLabel(f"<b>{self.title}</b>")
        self.title_label.setWordWrap(True)  # the legend names compared runs: long names take a second line
        self.title_label.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.readout = QLabel("")
        self.readout.setObjectName("help")
        self.readout.setAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.reset_button = QToolButton()
        self.reset_button.setText("Reset view")
        self.reset_button.setToolTip("Show the whole curve again (Ctrl+wheel zooms, a drag pans).")
        self.reset_button.setAutoRaise(True)
        self.reset_button.clicked.connect(self.reset_view)
        self.reset_button.hide()
        self.note = QLabel("")
        self.note.setObjectName("fieldError")
        self.note.setWordWrap(True)
        self.note.hide()
        self.plot = ScrollingPlot(background=t.chart_bg, axisItems={"left": CompactAxis("left")})
        self.plot.setMinimumHeight(150)
        self.plot.setMinimumWidth(180)
        item = self.plot.getPlotItem()
        item.showGrid(x=True, y=True, alpha=0.15)
        item.setClipToView(True)
        item.setDownsampling(auto=True, mode="peak")
        item.hideButtons()
        item.setMenuEnabled(False)
        for axis in ("left", "bottom"):
            ax = item.getAxis(axis)
            ax.setPen(pg.mkPen(t.border))
            ax.setTextPen(pg.mkPen(t.chart_fg))
            # Major ticks only: the grid follows the ticks, and minor grid lines halve the frame
            # rate of a large chart under software rendering (bench/monitor_load.py).
            ax.setStyle(maxTickLevel=0)
        item.getAxis("left").setWidth(48)
        item.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setLabel("bottom", "step")
        self.crosshair = pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen(t.muted, style=Qt.DashLine))
        self.crosshair.hide()
        self.plot.addItem(self.crosshair, ignoreBounds=True)
        self.plot.scene().sigMouseMoved.connect(self._on_mouse_moved)

        item.getViewBox().sigRangeChangedManually.connect(lambda *_: self.reset_button.show())

        head = QHBoxLayout()
        head.setContentsMargins(4, 0, 4, 0)
        head.addWidget(self.title_label, 1)
        head.addWidget(self.readout)
        head.addWidget(self.reset_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addLayout(head)
        layout.addWidget(self.note)
        layout.addWidget(self.plot, 1)

    # ------------------------------------------------------------------------------ data in
    def _buffer(self, split: str) -> SeriesBuffer:
        buf = self.buffers.get(split)
        if buf is None:
            buf = self.buffers[split] = SeriesBuffer()
            self._make_curves(split)
        return buf

    def append(self, split: str, step: float, t: float, value: float | None) -> None:
        if self.t0 is None or t < self.t0:
            self.t0 = t
        self._buffer(split).append(step, t, math.nan if value is None else value)
        self._dirty.add(split)

    def extend(self, split: str, steps, times, values) -> None:
        """Append many points at once (the fast path for a batch of events)."""
        steps = np.asarray(steps, dtype=np.float64)
        if not len(steps):
            return
        times = np.asarray(times, dtype=np.float64)
        first = float(times.min())
        if self.t0 is None or first < self.t0:
            self.t0 = first
        self._buffer(split).extend(steps, times, np.asarray(values, dtype=np.float64))
        self._dirty.add(split)

    @property
    def dirty(self) -> bool:
        return bool(self._dirty)

    def set_series(self, split: str, steps: np.ndarray, times: np.ndarray, values: np.ndarray) -> None:
        buf = self._buffer(split)
        buf.clear()
        buf.extend(np.asarray(steps, dtype=np.float64), np.asarray(times, dtype=np.float64),
                   np.asarray(values, dtype=np.float64))
        if len(times):
            first = float(np.nanmin(times)) if np.isfinite(times).any() else 0.0
            self.t0 = first if self.t0 is None else min(self.t0, first)
        self._dirty.add(split)

    def clear(self) -> None:
        for split in list(self.buffers):
            self.buffers[split].clear()
        self.t0 = None
        self._dirty.update(self.buffers)
        for run_id in list(self._overlays):
            self.remove_overlay(run_id)

    def add_overlay(self, run_id: str, label: str, series: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Draw another run's series (split -> steps, times, values) dimmed behind this run's."""
        self.remove_overlay(run_id)
        t = theme.current()
        colour = t.series[(2 + len(self._overlays)) % len(t.series)]
        items = []
        for split, (steps, times, values) in series.items():
            if not len(steps):
                continue
            buf = SeriesBuffer(max(len(steps), 1))
            buf.extend(np.asarray(steps, float), np.asarray(times, float), np.asarray(values, float))
            t0 = float(np.nanmin(buf.times[: buf.n])) if buf.n else 0.0
            pen = pg.mkPen(_dim(colour, 110), width=1.5, style=Qt.DashLine if split == "eval" else Qt.SolidLine)
            curve = pg.PlotDataItem(name=f"{label} ({split})", pen=pen, connect="finite")
            curve.setZValue(-10)
            self.plot.addItem(curve)
            items.append((curve, buf, t0))
        self._overlays[run_id] = items
        self._overlay_labels[run_id] = label
        self._redraw_overlays()
        self._update_legend()

    def remove_overlay(self, run_id: str) -> None:
        for curve, _, _ in self._overlays.pop(run_id, []):
            self.plot.removeItem(curve)
        self._overlay_labels.pop(run_id, None)
        self._update_legend()

    # ------------------------------------------------------------------------------ the view
    def reset_view(self) -> None:
        """Back to the whole curve, following new points again."""
        self.plot.getPlotItem().enableAutoRange()
        self.reset_button.hide()

    def view_state(self) -> tuple | None:
        """The range the user zoomed or panned to (None: the whole curve, following new points)."""
        if self.reset_button.isHidden():
            return None
        return tuple(map(tuple, self.plot.getPlotItem().getViewBox().viewRange()))

    def restore_view(self, state: tuple | None) -> None:
        if state is None:
            self.reset_view()
            return
        (x0, x1), (y0, y1) = state
        self.plot.getPlotItem().getViewBox().setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        self.reset_button.show()

    def set_note(self, text: str) -> None:
        """A warning over the plot (what the compared series are); "" hides it."""
        self.note.setText(f"⚠ {text}" if text else "")
        self.note.setVisible(bool(text))

    # ---------------------------------------------------------------------------- settings
    def set_smoothing(self, weight: float) -> None:
        if self.schedule:
            return  # a schedule is what the run set: an average of it would show a value it never had
        weight = min(max(float(weight), 0.0), 0.999)
        if weight == self.smoothing:
            return
        self.smoothing = weight
        for split, buf in self.buffers.items():
            buf.reset_smoothing()
            self._dirty.add(split)
        self.refresh()

    def set_x_mode(self, mode: str) -> None:
        if mode not in ("step", "time"):
            raise ValueError(f"x mode is 'step' or 'time', not {mode!r}")
        self.x_mode = mode
        self.plot.setLabel("bottom", "step" if mode == "step" else "elapsed (s)")
        self._dirty.update(self.buffers)
        self.refresh()
        self._redraw_overlays()
        self.plot.getPlotItem().enableAutoRange()

    def set_log_y(self, log_y: bool) -> None:
        self.log_y = bool(log_y)
        self.plot.getPlotItem().setLogMode(False, self.log_y)

    # ------------------------------------------------------------------------------ drawing
    def _make_curves(self, split: str) -> None:
        t = theme.current()
        colour = t.series[0] if split == "train" else t.series[1] if split == "eval" else t.series[
            (len(self._raw) + 2) % len(t.series)]
        self._colours[split] = colour
        raw = pg.PlotDataItem(name=split, pen=pg.mkPen(_dim(colour, 70), width=1), connect="finite")
        smooth = pg.PlotDataItem(name=f"{split} (smoothed)", pen=pg.mkPen(colour, width=2), connect="finite")
        self.plot.addItem(raw)
        self.plot.addItem(smooth)
        self._raw[split], self._smooth[split] = raw, smooth

    def refresh(self) -> bool:
        """Redraw the series that changed since the last call; True when something was drawn."""
        if not self._dirty:
            return False
        t0 = self.t0 or 0.0
        for split in self._dirty:
            buf = self.buffers[split]
            x = buf.x(self.x_mode, t0)
            y = buf.values[: buf.n]
            raw, smooth = self._raw[split], self._smooth[split]
            sparse = buf.n < 300  # eval points are few: show them as dots
            symbol = "o" if sparse and split != "train" else None
            if self.smoothing > 0 and buf.n > 1 and not (sparse and split != "train"):
                raw.setData(x, y)
                raw.show()
                smooth.setData(x, buf.smooth(self.smoothing))
                smooth.setSymbol(None)
            else:
                raw.hide()
                smooth.setData(x, y)
                smooth.setSymbol(symbol)
                if symbol:
                    smooth.setSymbolSize(6)
                    smooth.setSymbolBrush(smooth.opts["pen"].color())
                    smooth.setSymbolPen(None)
        self._update_legend()
        self._dirty.clear()
        return True

    def _update_legend(self) -> None:
        """The title doubles as the legend: each split's name in its curve colour."""
        keys = [f"<span style='color:{self._colours[s]}'>━ {s}</span>" for s in self.buffers if self.buffers[s].n]
        overlaid = [(run_id, self._overlay_labels.get(run_id, run_id)) for run_id, items in self._overlays.items()
                     if items]
        for run_id, label in overlaid:
            colour = self._overlays[run_id][0][0].opts["pen"].color().name()
            keys.append(f"<span style='color:{colour}'>┅ {html.escape(label)}</span>")
        self.title_label.setToolTip("Compared with: " + ", ".join(f"{label} ({run_id})" for run_id, label in overlaid)
                                    if overlaid else "")
        text = f"<b>{self.title}</b>&nbsp;&nbsp;&nbsp;" + "&nbsp;&nbsp;".join(keys)
        if text != self.title_label.text():
            self.title_label.setText(text)

    def _redraw_overlays(self) -> None:
        for items in self._overlays.values():
            for curve, buf, t0 in items:
                curve.setData(buf.x(self.x_mode, t0), buf.values[: buf.n])

    def curve_data(self, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) arrays currently drawn for `split` (the smoothed line when smoothing is on)."""
        curve = self._smooth.get(split)
        if curve is None or curve.xData is None:
            return np.empty(0), np.empty(0)
        return curve.xData, curve.yData

    def point_count(self, split: str = "train") -> int:
        buf = self.buffers.get(split)
        return 0 if buf is None else buf.n

    # ------------------------------------------------------------------------------- hover
    def _on_mouse_moved(self, pos) -> None:
        item = self.plot.getPlotItem()
        if not item.sceneBoundingRect().contains(pos):
            self.crosshair.hide()
            self.readout.setText("")
            return
        x = item.vb.mapSceneToView(pos).x()
        self.crosshair.setPos(x)
        self.crosshair.show()
        parts = []
        t0 = self.t0 or 0.0
        for split, buf in self.buffers.items():
            if not buf.n:
                continue
            xs = buf.x(self.x_mode, t0)
            i = int(np.clip(np.searchsorted(xs, x), 0, buf.n - 1))
            if i > 0 and abs(xs[i - 1] - x) < abs(xs[i] - x):
                i -= 1
            parts.append(f"{split} {buf.values[i]:.4g}")
            where = f"step {int(buf.steps[i])}" if self.x_mode == "step" else f"{xs[i]:.0f} s"
        if parts:
            text = f"{where}: " + "  ·  ".join(parts)
            self.readout.setText(text)
            self.hovered.emit(text)
