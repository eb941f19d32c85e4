"""tools/screenshots: every page of the studio rendered offscreen, from recorded real runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.labeling.store import LabelStore
from studio.main_window import PAGE_KEYS
from studio.models.rlhf_pipeline import build_pipeline
from studio.models.store import Store
from tools.screenshots.rlhf import build_demo_rlhf_chain


@pytest.mark.long
def test_every_page_is_written_as_a_png_in_both_themes(tmp_path):
    from PySide6.QtGui import QImage

    out_dir = tmp_path / "shots"
    user_workspace = tmp_path / "ws"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "ATELIER_WORKSPACE": str(user_workspace)}
    # One size here (its layout checked page by page); `make screenshots` renders and checks 1920×1080 too.
    run = subprocess.run([sys.executable, "-m", "tools.screenshots", str(out_dir), "--sizes", "1280x800"],
                         capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr
    shots = sorted(out_dir.glob("*.png"))
    names = {p.name for p in shots}
    assert {"pretrain-light.png", "monitor-dark.png", "runs-light.png", "runs-dark.png", "monitor-ppo-light.png",
            "monitor-reward-dark.png"} <= names
    for key in PAGE_KEYS:
        assert f"{key}-light.png" in names and f"{key}-dark.png" in names
    for path in shots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = QImage(str(path))
        assert not image.isNull() and (image.width(), image.height()) == (1280, 800), path.name
    assert not user_workspace.exists()  # everything goes into a temporary workspace


def test_the_recorded_demo_chain_links_as_real_runs_do(tmp_path):
    """The screenshots show a real demo's stage 4 (resources/demo/rlhf): its specs, moved into a
    new workspace, must still link reward, PPO and GRPO to the fine-tuning run."""
    workspace = tmp_path / "workspace"
    (workspace / "runs").mkdir(parents=True)
    store = Store(workspace / "store.db")
    runs = build_demo_rlhf_chain(workspace, store)
    assert set(runs) == {"finetune", "reward", "ppo", "grpo"}
    pipeline = build_pipeline(workspace, store, LabelStore(workspace / "store.db"), runs["finetune"])
    assert [q.name for q in pipeline.queues] == [pipeline.reward_runs[0].spec["data"]["sources"][0][len("queue:"):]]
    assert pipeline.labels > 200 and pipeline.next_step() == "done"
    assert [r.run_id for r in pipeline.reward_runs] == [runs["reward"]]
    assert {r.run_id for r in pipeline.policy_runs} == {runs["ppo"], runs["grpo"]}
    assert all(r.state == "completed" for r in [pipeline.sft, *pipeline.reward_runs, *pipeline.policy_runs])
    assert pipeline.reward_runs[0].headline.startswith("pairwise accuracy")
    assert next(r for r in pipeline.policy_runs if r.kind == "ppo").headline.startswith("task accuracy")
    spec = (workspace / "runs" / runs["ppo"] / "spec.yaml").read_text()
    # Written as the engine writes a run's spec: the workspace's files relative to it.
    assert "$WORKSPACE" not in spec and str(workspace) not in spec and f"path: runs/{runs['finetune']}/" in spec
    store.close()
