"""Screenshot of the Engines dialog (called by `tools.screenshots.pages.render_all`).

SCRIPTED: the SSH profile and what its Test connection found (two H100s, CUDA 12.4, the versions,
the free disk) are made up, so the picture does not depend on a remote machine; the dialog, its
texts and its layout are the real ones. The dialog is drawn over the main window, as it opens.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QPoint, QTimer, Signal
from PySide6.QtGui import QColor, QPainter

from engine import __version__
from engine.protocol import PROTOCOL_VERSION
from studio.models.engine_profiles import EngineProfile, delete_profile, save_profile

PROFILE = EngineProfile("gpu lab", host="gpu-lab", python="~/atelier/.venv/bin/python", workspace="~/atelier-workspace")
REPORT = {"engine_version": __version__, "protocol_version": PROTOCOL_VERSION, "python": "3.11.9", "host": "gpu-lab",
          "cuda": {"available": True, "version": "12.4", "devices": 2},
          "devices": [{"type": "cuda", "index": i, "name": "NVIDIA H100 80GB HBM3", "memory_gib": 79.6} for i in (0, 1)]
          + [{"type": "cpu", "name": "x86_64", "cores": 64}],
          "packages": {"torch": "2.5.1", "transformers": "4.57.1", "peft": "0.17.1", "trl": "0.24.0"},
          "workspace": "/home/you/atelier-workspace", "disk_free_gib": 812.5}


class _ScriptedTest(QObject):
    finished = Signal(object)

    def __init__(self, profile: EngineProfile, parent: QObject | None = None):
        super().__init__(parent)
        from studio.client.remote_engine import ConnectionResult

        result = ConnectionResult(True, f"Connected to gpu-lab: engine {__version__}, Python 3.11.9, "
                                        "workspace /home/you/atelier-workspace.", REPORT)
        QTimer.singleShot(0, self, lambda: self.finished.emit(result))


def shoot_engines(window, settle, out: Path, theme_name: str) -> Path:
    """Open the dialog on a scripted profile, test it, and save the window with the dialog over it."""
    store = window.store
    save_profile(store, PROFILE)
    window.load_engine_profiles()
    dialog = window.show_engines()
    dialog.connection_test = _ScriptedTest
    dialog.select(PROFILE.name)
    dialog.test_connection()
    settle()
    settle()
    background = window.grab()
    painter = QPainter(background)
    painter.fillRect(background.rect(), QColor(0, 0, 0, 70))
    front = dialog.grab()
    corner = QPoint((background.width() - front.width()) // 2, (background.height() - front.height()) // 2)
    painter.drawPixmap(corner, front)
    painter.setPen(QColor(128, 128, 128))
    painter.drawRect(corner.x() - 1, corner.y() - 1, front.width() + 1, front.height() + 1)
    painter.end()
    path = out / f"engines-{theme_name}.png"
    background.save(str(path))
    dialog.reject()
    delete_profile(store, PROFILE.name)
    window.load_engine_profiles()  # the later shots show the window as it was
    return path
