"""Documents by length, before and after cleaning, as grouped bars (pyqtgraph: imported with the
report view, never at start-up)."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from studio import theme
from studio.models.clean_results import median_bin, size_label


class LengthHistogram(QWidget):
    """Documents by length (log-spaced character bins), before and after cleaning, as grouped bars."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        t = theme.current()
        self.plot = pg.PlotWidget(background=t.chart_bg)
        self.plot.setMinimumHeight(220)
        item = self.plot.getPlotItem()
        item.hideButtons()
        item.setMenuEnabled(False)
        item.setMouseEnabled(x=False, y=False)
        item.showGrid(y=True, alpha=0.15)
        for axis in ("left", "bottom"):
            ax = item.getAxis(axis)
            ax.setPen(pg.mkPen(t.border))
            ax.setTextPen(pg.mkPen(t.chart_fg))
        item.getAxis("left").enableAutoSIPrefix(False)
        self.plot.setLabel("bottom", "characters per document")
        self.plot.setLabel("left", "documents")
        self.legend = QLabel("")
        self.legend.setObjectName("help")
        self.bins: list[tuple[str, int, int]] = []  # (label, before, after) of the bins drawn
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.legend)
        layout.addWidget(self.plot, 1)

    def set_histograms(self, histograms: dict) -> None:
        t = theme.current()
        edges = list(histograms.get("edges") or [])
        before = list(histograms.get("before") or [])
        after = list(histograms.get("after") or [])
        n = min(len(edges), len(before), len(after))
        used = [i for i in range(n) if before[i] or after[i]]
        self.plot.clear()
        self.bins = []
        if not used:
            self.legend.setText("No documents.")
            return
        lo, hi = used[0], used[-1]
        xs = list(range(hi - lo + 1))
        self.bins = [(size_label(edges[i]) + ("+" if i == len(edges) - 1 else ""), before[i], after[i])
                     for i in range(lo, hi + 1)]
        colours = (t.series[0], t.series[2])
        for offset, values, colour in ((-0.2, before[lo:hi + 1], colours[0]), (0.2, after[lo:hi + 1], colours[1])):
            bars = pg.BarGraphItem(x=[x + offset for x in xs], height=values, width=0.38,
                                   brush=pg.mkBrush(colour), pen=pg.mkPen(QColor(colour).darker(115)))
            bars.setZValue(10)  # over the grid lines
            self.plot.addItem(bars)
        self.plot.getPlotItem().getAxis("bottom").setTicks([[(x, label) for x, (label, _, _) in zip(xs, self.bins)]])
        self.plot.setXRange(-0.7, len(xs) - 0.3, padding=0)
        self.plot.setYRange(0, max(max(before[lo:hi + 1]), max(after[lo:hi + 1])) * 1.08, padding=0)
        total_before, total_after = sum(before[:n]), sum(after[:n])
        self.legend.setText(
            f"<span style='color:{colours[0]}'>■</span> before: {total_before:,} documents, median "
            f"{median_bin(edges, before[:n])} characters &nbsp;&nbsp; "
            f"<span style='color:{colours[1]}'>■</span> after: "
            f"{total_after:,} documents, median {median_bin(edges, after[:n])} characters")
