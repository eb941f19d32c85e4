"""The studio's "Run the demo" with the real engine: `studio-engine demo` with two steps per training
stage and no RLHF (about 15 s on 2 CPU cores); every stage's run appears on the Runs page."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread_engines")]


def test_run_the_demo_from_the_runs_page(qtbot, tmp_path):
    from studio.main_window import MainWindow

    window = MainWindow(tmp_path / "ws", reattach=False)
    qtbot.addWidget(window)
    window.show()
    assert window.engine_check is not None and window.engine_check.ok  # this venv has the engine
    window.show_page("runs")
    runs = window.page("runs")
    runs.demo.demo_args = ("--steps", "2", "--finetune-steps", "2", "--no-rlhf")
    statuses: list[str] = []
    with qtbot.waitSignal(runs.demo.ended, timeout=180_000) as ended:
        runs.demo.button.click()
        runs.demo.process.status.connect(statuses.append)
    exit = ended.args[0]
    assert exit.code == 0, exit.stderr[-3000:]
    stages = [s.split(":")[0] for s in statuses if s.startswith("Atelier demo, stage")]
    assert stages == [f"Atelier demo, stage {i} of 4" for i in (1, 2, 3)], statuses
    assert any(s.startswith("Stage 2 of 4: train") for s in statuses), statuses  # progress events
    assert runs.demo.status.text().startswith("Demo finished") and "Fine-tuned model:" in runs.demo.status.text()

    records = window.store.runs()
    assert sorted(r.kind for r in records) == ["clean", "finetune", "pretrain"]
    qtbot.waitUntil(lambda: all(window.store.get_run(r.run_id).state == "completed" for r in records),
                    timeout=30_000)
    qtbot.waitUntil(lambda: len(runs.run_ids()) == 3, timeout=5000)
    window.close()
