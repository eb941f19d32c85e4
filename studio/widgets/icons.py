"""Sidebar icons drawn with QPainter in the theme's colours (no image files, crisp in both themes)."""

from __future__ import annotations

import math

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QPainter, QPainterPath, QPen, QPixmap

SIZE = 36  # drawn at 2x the 18 px display size


def _draw(key: str, p: QPainter, colour: QColor) -> None:
    pen = QPen(colour, 2.6, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin)
    p.setPen(pen)
    p.setBrush(Qt.NoBrush)
    s = SIZE
    if key == "data":  # a database cylinder
        p.drawEllipse(QRectF(7, 5, 22, 8))
        p.drawLine(QPointF(7, 9), QPointF(7, 27))
        p.drawLine(QPointF(29, 9), QPointF(29, 27))
        p.drawArc(QRectF(7, 23, 22, 8), 180 * 16, 180 * 16)
        p.drawArc(QRectF(7, 14, 22, 8), 180 * 16, 180 * 16)
    elif key == "tokenizer":  # text split into tokens
        for x, w in ((4, 9), (15, 7), (24, 8)):
            p.drawRoundedRect(QRectF(x, 12, w, 12), 2.5, 2.5)
    elif key == "pretrain":  # a play triangle in a circle
        p.drawEllipse(QRectF(4, 4, s - 8, s - 8))
        path = QPainterPath(QPointF(15, 11))
        path.lineTo(25, 18)
        path.lineTo(15, 25)
        path.closeSubpath()
        p.setBrush(colour)
        p.drawPath(path)
    elif key == "finetune":  # two sliders
        for y, knob in ((12, 12), (24, 23)):
            p.drawLine(QPointF(5, y), QPointF(31, y))
            p.setBrush(colour)
            p.drawEllipse(QPointF(knob, y), 3.5, 3.5)
            p.setBrush(Qt.NoBrush)
    elif key == "label":  # a tag
        path = QPainterPath(QPointF(6, 6))
        path.lineTo(18, 6)
        path.lineTo(31, 19)
        path.lineTo(19, 31)
        path.lineTo(6, 18)
        path.closeSubpath()
        p.drawPath(path)
        p.drawEllipse(QPointF(12, 12), 2, 2)
    elif key == "rlhf":  # a star
        path = QPainterPath()
        for i in range(10):
            r = 14 if i % 2 == 0 else 6
            a = -math.pi / 2 + i * math.pi / 5
            point = QPointF(18 + r * math.cos(a), 19 + r * math.sin(a))
            path.moveTo(point) if i == 0 else path.lineTo(point)
        path.closeSubpath()
        p.drawPath(path)
    elif key == "playground":  # a chat bubble
        path = QPainterPath()
        path.addRoundedRect(QRectF(5, 6, 26, 18), 5, 5)
        p.drawPath(path)
        p.drawLine(QPointF(11, 24), QPointF(9, 31))
        p.drawLine(QPointF(9, 31), QPointF(17, 24))
    elif key == "runs":  # a list
        for y in (10, 18, 26):
            p.drawPoint(QPointF(7, y))
            p.drawLine(QPointF(13, y), QPointF(30, y))
    else:
        p.drawEllipse(QRectF(8, 8, 20, 20))


def _pixmap(key: str, colour: str) -> QPixmap:
    pixmap = QPixmap(SIZE, SIZE)
    pixmap.fill(Qt.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.Antialiasing)
    _draw(key, painter, QColor(colour))
    painter.end()
    pixmap.setDevicePixelRatio(2.0)
    return pixmap


def workflow_icon(key: str, colour: str, selected_colour: str) -> QIcon:
    """The sidebar icon of a workflow, in `colour`, and `selected_colour` on the selected row."""
    icon = QIcon()
    icon.addPixmap(_pixmap(key, colour), QIcon.Normal)
    icon.addPixmap(_pixmap(key, selected_colour), QIcon.Selected)
    return icon
