"""Fixtures that drive the real `studio-engine` process on tiny specs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
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
    return with_overrides(spec, overrides)


def with_overrides(spec: dict, overrides: dict) -> dict:
    """`spec` with each dotted key of `overrides` ("train.max_steps") set, parents made as needed."""
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


# --- helpers for modules that run many engine processes ----------------------------------------

ONE_THREAD = {"OMP_NUM_THREADS": "1"}
"""Environment for engine processes of tiny models that share a small machine with each other (or with
the studio, or other work): one torch thread each. torch's default pool (a thread per core, spinning
at barriers) collapses when the cores are busy elsewhere: on a loaded 2-core machine, 100 steps of
tiny_spec's llama took 50-75 s with it and 3 s with one thread. What the engine does does not depend
on it, only how fast."""


def one_thread(engine: Engine) -> Engine:
    """`engine`, its processes running torch with one thread (see ONE_THREAD)."""
    engine.env.update(ONE_THREAD)
    return engine


def selected_tests(request) -> set[str]:
    """The names (`test_x`, `test_x[param]`) of the tests of the requesting module this session runs:
    a module's RunPool starts only the runs of its selected tests."""
    return {item.name for item in request.session.items if getattr(item, "module", None) is request.module}


class RunPool:
    """Engine commands started ahead of the tests that read them, a few at a time (each in its own
    workspace), so that a module's many short runs, each mostly interpreter and torch start-up, overlap.

    `submit(key, job)` queues `job(engine)`; `result(key)` waits for what it returned (or raises what
    it raised) in the test that reads it. Submit in the order the tests read, so that each test finds
    its run finished or under way. A job runs in a worker thread: it should write its inputs and run
    the engine, nothing more; `prepare(engine)`, when given, runs first in the caller's thread (for
    work that imports libraries in this process). Every engine gets ONE_THREAD: the runs share the
    cores."""

    def __init__(self, root: Path, workers: int | None = None):
        self.root = root
        self.workers = workers or max(2, min(4, (os.cpu_count() or 2) // 2))
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="engine-run")
        self._futures: dict[str, Future] = {}

    def engine(self, key: str) -> Engine:
        workspace = self.root / re.sub(r"[^A-Za-z0-9_.-]+", "-", key)
        workspace.mkdir(parents=True)
        return one_thread(Engine(workspace))

    def submit(self, key: str, job: Callable[[Engine], object],
               prepare: Callable[[Engine], None] | None = None) -> None:
        assert key not in self._futures, key
        engine = self.engine(key)
        if prepare is not None:
            prepare(engine)
        self._futures[key] = self._executor.submit(job, engine)

    def result(self, key: str, timeout: float = 600):
        if key not in self._futures:
            raise KeyError(f"no run {key!r} was started: the module's plan names no selected test for it")
        return self._futures[key].result(timeout=timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
