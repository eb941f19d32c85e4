"""A studio process that labels by keyboard until it is killed (tests/e2e/test_label_crash.py).

It opens the real main window on a workspace, goes to the Label page and presses verdict keys on a
timer, printing `committed N` (the store's count) after each label it saw saved.
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from studio.main_window import MainWindow  # noqa: E402

KEYS = (Qt.Key_1, Qt.Key_Right, Qt.Key_3, Qt.Key_Left, Qt.Key_4, Qt.Key_2)


def main(workspace: str) -> None:
    app = QApplication(sys.argv)
    window = MainWindow(workspace, reattach=False)
    window.show()
    window.show_page("label")
    page = window.page("label")
    window.activateWindow()
    presses = iter(range(10**9))

    def report(_label) -> None:
        print(f"committed {page.labels.label_count()}", flush=True)

    def press() -> None:
        page.view.setFocus()
        QTest.keyClick(page.view, KEYS[next(presses) % len(KEYS)])

    page.view.labeled.connect(report)
    timer = QTimer()
    timer.timeout.connect(press)
    timer.start(25)
    print("ready", flush=True)
    app.exec()


if __name__ == "__main__":
    main(sys.argv[1])
