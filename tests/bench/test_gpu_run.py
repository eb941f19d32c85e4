"""bench/gpu/run.sh, which runs unattended when a GPU is lent, works end to end: on the CPU with its
tiny shape it trains the engine's path and plain Hugging Face, pretrains the GPT-2-shaped model, and
writes results.json and results.md with the ratios against plain HF."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARMS = "lora-plain,lora-packed,pretrain-124m,qlora-packed"
# The suite's own interpreter: run.sh would otherwise take .venv/bin/python, or python3 where a checkout
# (a git worktree) has no .venv, and install the whole engine into that one first.
PYTHON = {"PYTHON": sys.executable}


def test_the_gpu_bench_runs_its_arms_on_a_tiny_shape_and_writes_its_figures(tmp_path):
    env = {**os.environ, **PYTHON, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(ROOT / "bench" / "gpu" / "run.sh"), "--tiny", "--arms", ARMS], env=env,
                          capture_output=True, text=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["failed"] == []
    results = json.loads((tmp_path / "results.json").read_text())
    arms = {a["arm"]: a for a in results["arms"]}
    assert list(arms) == ARMS.split(",")
    assert arms["lora-packed"]["plan"].startswith("Batches: packed, padding-free")
    assert arms["lora-plain"]["plan"].startswith("plain Hugging Face: padded")
    assert all(a["trained_tokens_per_s"] > 0 and a["last_loss"] > 0 for n, a in arms.items() if n != "pretrain-124m")
    assert arms["pretrain-124m"]["tokens_per_s"] > 0 and arms["pretrain-124m"]["mfu"] is None  # no peak on a CPU
    assert set(results["against_plain"]["lora-packed"]) == {"speedup", "memory_ratio"}
    table = (tmp_path / "results.md").read_text()
    assert "| lora-packed | Batches: packed" in table and "Pretraining, " in table
    assert json.loads((tmp_path / "environment.json").read_text())["cuda"] is False


def test_an_unknown_arm_is_named(tmp_path):
    done = subprocess.run([str(ROOT / "bench" / "gpu" / "run.sh"), "--tiny", "--arms", "lora-fast"],
                          env={**os.environ, **PYTHON, "OUT": str(tmp_path)}, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode != 0 and "no arm named lora-fast" in done.stderr
