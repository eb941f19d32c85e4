"""Fixtures that drive the real `studio-engine` process on tiny specs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine.protocol import read_events

ROOT = Path(__file__).resolve().parents[2]


def tiny_spec(corpus: str | list[str], **overrides) -> dict:
    """A pretraining spec small enough to train in seconds on a CPU."""
    spec = {
        "kind": "pretrain",
        "name": "tiny",
        "data": {"sources": [corpus] if isinstance(corpus, str) else corpus, "eval_fraction": 0.1},
        "tokenizer": {"train": {"algorithm": "byte-bpe", "vocab_size": 384}},
        "model": {"architecture": "llama", "hidden_size": 32, "layers": 2, "heads": 2, "context_length": 64},
        "train": {"max_steps": 40, "batch_size": 8, "learning_rate": 3e-3, "warmup_steps": 4,
                  "checkpoint_every": 20, "eval_every": 20, "sample_every": 20, "log_every": 5,
                  "sample_prompts": ["Return the "], "sample_max_new_tokens": 8},
        "seed": 0,
    }
    for dotted, value in overrides.items():
        node = spec
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return spec


class Engine:
    """Runs `python -m engine.cli` against one workspace, as a user (or the studio) would."""

    def __init__(self, workspace: Path):
        self.workspace = workspace
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "engine.cli", "--workspace", str(self.workspace), *args]

    def run(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, env=self.env)

    def popen(self, *args: str, capture: bool = True) -> subprocess.Popen:
        """Start the engine; with capture=False its output is discarded (a pipe nobody reads would
        fill up and block the engine)."""
        out = subprocess.PIPE if capture else subprocess.DEVNULL
        return subprocess.Popen(self.command(*args), stdout=out, stderr=out, text=True, cwd=ROOT, env=self.env)

    def write_spec(self, spec: dict, name: str = "spec.yaml") -> Path:
        path = self.workspace / name
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        return path

    def only_run(self) -> Path:
        runs = list((self.workspace / "runs").iterdir())
        assert len(runs) == 1, runs
        return runs[0]

    def events(self, run_dir: Path) -> list[dict]:
        return list(read_events(run_dir / "events.jsonl"))

    def wait_for(self, run_dir: Path, predicate, timeout: float = 120) -> list[dict]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            events = self.events(run_dir) if (run_dir / "events.jsonl").exists() else []
            if any(predicate(e) for e in events):
                return events
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting in {run_dir}; last events: {events[-3:]}")


@pytest.fixture
def engine(tmp_path) -> Engine:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    return Engine(workspace)


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory) -> Path:
    """A JSONL corpus of varied English-like sentences (a few hundred KB), quick to tokenize."""
    import random
    rng = random.Random(0)
    subjects = ["The function", "This method", "A parser", "The decoder", "Each handler", "The queue"]
    verbs = ["returns", "reads", "writes", "raises", "builds", "checks"]
    objects = ["the next item", "a list of names", "an error when empty", "the encoded bytes",
               "a new dictionary", "the default value"]
    path = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(1500):
            sentences = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}." for _ in range(6)]
            f.write(json.dumps({"text": " ".join(sentences)}) + "\n")
    return path
