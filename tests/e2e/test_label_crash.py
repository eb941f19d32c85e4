"""Killing the studio in the middle of a labeling session loses no committed label."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from engine.labeling.store import LabelStore

ROOT = Path(__file__).resolve().parents[2]


def test_kill_the_gui_mid_session_and_count_the_labels(tmp_path):
    workspace = tmp_path / "workspace"
    store = LabelStore(workspace / "store.db")
    store.create_queue("crash")
    store.add_items("crash", [{"prompt": f"Prompt {i}", "candidates": [f"left {i}", f"right {i}"]}
                              for i in range(500)])
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONUNBUFFERED="1")
    gui = subprocess.Popen([sys.executable, str(ROOT / "tests/e2e/label_gui_driver.py"), str(workspace)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env,
                           start_new_session=True)
    last = 0
    try:
        for line in gui.stdout:
            if line.startswith("committed "):
                last = int(line.split()[1])
                if last >= 25:
                    break
        os.killpg(gui.pid, signal.SIGKILL)  # no chance to clean up: as if the power went
    finally:
        if gui.poll() is None:
            os.killpg(gui.pid, signal.SIGKILL)
        gui.wait(timeout=30)
    assert last >= 25, "the studio never labeled"

    reopened = LabelStore(workspace / "store.db")
    count = reopened.label_count("crash")
    # Every label the GUI saw committed is there; at most the one being committed as it died is extra.
    assert last <= count <= last + 1
    labels = reopened.labels("crash")
    assert len({label.item_id for label in labels}) == count
    assert all(label.source == "gui" and label.verdict in ("left", "right", "tie", "both_bad") for label in labels)
    with sqlite3.connect(workspace / "store.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The studio opened again carries on where it stopped.
    task = reopened.next_task("crash", labels[0].annotator)
    assert task is not None and task.item.id not in {label.item_id for label in labels}
