"""What does not fit on a page as it is shown: the layout check the screenshots run at every shot.

For every widget on screen it finds text cut short (a label, a button, a list item, a table header
or cell narrower than its text; a wrapped label shorter than its lines), widgets clipped (squeezed
below their minimum, or reaching past their parent), content a scroll area cuts off sideways, and
horizontal scroll bars a page did not ask for. A widget asks for sideways scrolling with the
property `scrollsSideways` (a log without wrapping, a wide table), and a table whose cells may be
cut (what they hold shown whole elsewhere on the page) with `elidesCells`. A cell, like an
`ElidedLabel`, may be cut when its tooltip holds its whole text.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton, QAbstractScrollArea, QCheckBox, QComboBox, QHeaderView, QLabel, QListView,
    QScrollArea, QSizePolicy, QTableView, QTreeView, QWidget,
)

from studio.widgets.elided_label import ElidedLabel

SLACK = 2  # pixels of rounding a layout may leave


def layout_problems(window: QWidget) -> list[str]:
    """A sentence for everything on `window` that does not fit, as it is shown now."""
    problems: list[str] = []
    hint = window.minimumSizeHint()
    if hint.width() > window.width() + SLACK or hint.height() > window.height() + SLACK:
        problems.append(f"the window needs at least {hint.width()}×{hint.height()} and is "
                        f"{window.width()}×{window.height()}, for {_largest(window)}")
    for widget in window.findChildren(QWidget):
        if _crushed(widget, window):
            problems.append(f"{_where(widget)}: squeezed to nothing ({widget.width()}×{widget.height()})")
            continue
        if not _shown(widget, window):
            continue
        problem = _problem(widget)
        if problem:
            problems.append(f"{_where(widget)}: {problem}")
    return problems


def _largest(window: QWidget) -> str:
    """The chain of widgets, from the window down, that asks for the most room."""
    chain, node = [], window
    for _ in range(12):
        children = [c for c in node.findChildren(QWidget, options=Qt.FindDirectChildrenOnly) if not c.isWindow()]
        if not children:
            break
        node = max(children, key=lambda c: (c.minimumSizeHint().height(), c.minimumSizeHint().width()))
        hint = node.minimumSizeHint()
        chain.append(f"{type(node).__name__}{'(' + node.objectName() + ')' if node.objectName() else ''} "
                     f"{hint.width()}×{hint.height()}")
    return " > ".join(chain[:5])


def _crushed(widget: QWidget, window: QWidget) -> bool:
    """Shown, with something to show, but given no room by the layout it is in."""
    parent = widget.parentWidget()
    if not widget.isVisible() or widget.window() is not window or parent is None or not _shown(parent, window):
        return False
    scroller = parent.parentWidget()
    if isinstance(scroller, QAbstractScrollArea) and parent is scroller.viewport():
        return False
    hint = widget.minimumSizeHint()
    return (widget.height() == 0 and hint.height() > 0) or (widget.width() == 0 and hint.width() > 0)


def _shown(widget: QWidget, window: QWidget) -> bool:
    return widget.isVisible() and widget.window() is window and not widget.visibleRegion().isEmpty() \
        and widget.width() > 0 and widget.height() > 0


def _where(widget: QWidget) -> str:
    """The widget by its class, its name or text, and the named widgets it sits in."""
    parts = []
    node = widget
    while node is not None and len(parts) < 4:
        name = node.objectName()
        label = name or (node.text()[:40] if isinstance(node, (QLabel, QAbstractButton)) and node.text() else "")
        parts.append(f"{type(node).__name__}" + (f"({label})" if label else ""))
        node = node.parentWidget()
    return " in ".join(parts)


def _problem(widget: QWidget) -> str | None:
    for check in (_cut_text, _squeezed, _past_parent, _sideways):
        found = check(widget)
        if found:
            return found
    return None


def _cut_text(widget: QWidget) -> str | None:
    if isinstance(widget, ElidedLabel):
        return None
    if isinstance(widget, QLabel) and widget.text() and widget.pixmap().isNull():
        if widget.wordWrap():
            needed = widget.heightForWidth(widget.contentsRect().width())
            if needed > widget.contentsRect().height() + SLACK:
                return f"a wrapped label needs {needed} px of height and has {widget.contentsRect().height()}"
        elif widget.sizeHint().width() > widget.width() + SLACK:
            return f"the label needs {widget.sizeHint().width()} px and has {widget.width()}"
    if isinstance(widget, QAbstractButton) and widget.text():
        needed = widget.sizeHint().width() if isinstance(widget, QCheckBox) else \
            widget.fontMetrics().horizontalAdvance(widget.text().replace("&&", "&")) + 8
        if needed > widget.width() + SLACK:
            return f"the button's text needs {needed} px and it has {widget.width()}"
    if isinstance(widget, QComboBox) and widget.currentText() and not widget.isEditable():
        needed = widget.fontMetrics().horizontalAdvance(widget.currentText()) + 28
        if needed > widget.width() + SLACK and widget.toolTip() != widget.currentText():
            return f"the choice shown needs {needed} px and the box has {widget.width()}"
    if isinstance(widget, QListView) and not widget.wordWrap() and widget.model() is not None:
        return _cut_rows(widget)
    if isinstance(widget, (QTableView, QTreeView)) and widget.model() is not None:
        return _cut_table(widget)
    return None


def _cut_rows(view: QListView) -> str | None:
    if view.horizontalScrollBar().isVisible():
        return None
    width = view.viewport().width()
    model = view.model()
    for row in range(model.rowCount()):
        index = model.index(row, 0)
        rect = view.visualRect(index)
        if rect.isNull() or not rect.intersects(view.viewport().rect()):
            continue
        text = str(index.data() or "")
        needed = view.sizeHintForIndex(index).width()  # what the item's delegate draws: text, icon, margins
        if needed > width + SLACK and text not in str(index.data(Qt.ToolTipRole) or ""):
            return f"the row “{text[:40]}” needs {needed} px and the list has {width}"
    return None


def _cut_table(view: QTableView | QTreeView) -> str | None:
    header = view.horizontalHeader() if isinstance(view, QTableView) else view.header()
    model = view.model()
    for column in range(model.columnCount()):
        if header.isSectionHidden(column) or not _column_shown(view, column):
            continue
        text = str(model.headerData(column, Qt.Horizontal) or "")
        needed = header.sectionSizeHint(column)  # what the title and the sort mark take
        if text and needed > header.sectionSize(column) + SLACK:
            return f"the column “{text}” needs {needed} px for its title and has {header.sectionSize(column)}"
    if view.property("elidesCells") or view.textElideMode() == Qt.ElideNone:
        return None
    for row in range(model.rowCount()):
        for column in range(model.columnCount()):
            index = model.index(row, column)
            rect = view.visualRect(index)
            if rect.isNull() or not rect.intersects(view.viewport().rect()):
                continue
            text = str(index.data() or "")
            if view.wordWrap() and " " in text:
                continue  # wrapped onto more lines; row heights show it whole
            needed = view.sizeHintForIndex(index).width()  # what the cell's delegate draws
            if needed > rect.width() + SLACK and text not in str(index.data(Qt.ToolTipRole) or ""):
                return f"the cell “{text[:40]}” needs {needed} px and has {rect.width()}"
    return None


def _column_shown(view: QTableView | QTreeView, column: int) -> bool:
    header = view.horizontalHeader() if isinstance(view, QTableView) else view.header()
    x = header.sectionViewportPosition(column)
    return x >= 0 and x < view.viewport().width()


def _squeezed(widget: QWidget) -> str | None:
    policy = widget.sizePolicy()
    if isinstance(widget, (QHeaderView, ElidedLabel)) or policy.horizontalPolicy() == QSizePolicy.Ignored:
        return None
    if isinstance(widget, QLabel) and widget.wordWrap():
        return None  # wraps instead; `_cut_text` checks its height
    minimum = widget.minimumSizeHint()
    if minimum.isValid() and minimum.width() > widget.width() + SLACK and widget.minimumWidth() == 0:
        return f"squeezed to {widget.width()} px below its {minimum.width()} px minimum"
    return None


def _past_parent(widget: QWidget) -> str | None:
    parent = widget.parentWidget()
    if parent is None or widget.isWindow():
        return None
    scroller = parent.parentWidget()
    if isinstance(scroller, QAbstractScrollArea) and parent is scroller.viewport():
        return None  # a scroll area's content is larger than its window by design
    box, room = widget.geometry(), parent.rect()
    past = {"left": room.left() - box.left(), "up": room.top() - box.top(),
            "right": box.right() - room.right(), "down": box.bottom() - room.bottom()}
    cut = {side: n for side, n in past.items() if n > SLACK}
    if cut and room.intersects(box):
        return "reaches past its parent (" + ", ".join(f"{n} px {side}" for side, n in cut.items()) + "): clipped"
    return None


def _sideways(widget: QWidget) -> str | None:
    if not isinstance(widget, QAbstractScrollArea):
        return None
    if widget.property("scrollsSideways"):
        return None
    if widget.horizontalScrollBar().isVisible():
        return "scrolls sideways, and the page did not ask for it"
    if isinstance(widget, QScrollArea) and widget.widget() is not None and widget.widgetResizable():
        inner = widget.widget().minimumSizeHint().width()
        if inner > widget.viewport().width() + SLACK:
            return f"its content needs {inner} px and it shows {widget.viewport().width()}: the rest is cut off"
    return None
