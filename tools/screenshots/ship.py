"""Screenshots of Export… and Merge… (called by `tools.screenshots.pages.render_all`): the demo run's
Artifacts tab, then each dialog drawn over the main window as it opens.

SCRIPTED: the demo run's model folder on disk is a config.json beside an empty (sparse) weights file
as large as the recorded model's parameters (its `model` artifact says how many) in float32, so the
Files step's size estimate has something to read; the dialogs, their forms and texts are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QPoint
from PySide6.QtGui import QColor, QPainter

def place_demo_model(run_dir: Path, store, run_id: str) -> None:
    artifact = next(e for e in store.events(run_id, ["artifact"]) if e.get("kind") == "model")
    weights = int(artifact["meta"]["parameters"])
    model = run_dir / "output" / "model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text(json.dumps({"model_type": "llama", "dtype": "float32"}), encoding="utf-8")
    with open(model / "model.safetensors", "wb") as f:
        f.truncate(weights * 4)


def _over(window, dialog):
    background = window.grab()
    painter = QPainter(background)
    painter.fillRect(background.rect(), QColor(0, 0, 0, 70))
    front = dialog.grab()
    corner = QPoint(max(0, (background.width() - front.width()) // 2),
                    max(0, (background.height() - front.height()) // 2))
    painter.drawPixmap(corner, front)
    painter.setPen(QColor(128, 128, 128))
    painter.drawRect(corner.x() - 1, corner.y() - 1, front.width() + 1, front.height() + 1)
    painter.end()
    return background


def shoot_ship_dialogs(window, settle, out: Path, theme_name: str, run_id: str) -> list[Path]:
    """The Artifacts tab of `run_id`, the Export dialog on its Files and Verification steps, and the
    Merge dialog. Returns the files written."""
    window.open_run(run_id)
    monitor = window.monitor_page.monitor
    place_demo_model(Path(monitor.run_dir()), window.store, run_id)
    monitor.tabs.setCurrentWidget(monitor.artifacts_view)
    settle()
    written = [out / f"monitor-artifacts-{theme_name}.png"]
    window.grab().save(str(written[-1]))
    shots = (("export", "Files", "export-files"), ("export", "Verification", "export-verify"),
             ("merge", "Merge", "merge"))
    for kind, step, label in shots:
        dialog = monitor.open_ship_dialog(kind)
        dialog.resize(min(980, window.width() - 80), min(680, window.height() - 60))
        wizard = dialog.wizard
        wizard.go_to_step(wizard.STEPS.index(step))
        settle()
        settle()
        written.append(out / f"{label}-{theme_name}.png")
        _over(window, dialog).save(str(written[-1]))
        dialog.reject()
        dialog.deleteLater()
    monitor.tabs.setCurrentIndex(0)
    return written
