"""Fixtures that drive the real `studio-engine` process on tiny specs."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from engine.protocol import read_events
from engine.workspace_paths import resolved_paths

ROOT = Path(__file__).resolve().parents[2]
CRASH_POINTS = ROOT / "tests" / "crash_points"


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

    def run(self, *args: str, timeout: float = 240, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, env=env or self.env)

    def killed_at(self, point: str) -> dict[str, str]:
        """The environment of an engine process that SIGKILLs itself at `point` (the points are listed in
        tests/crash_points/sitecustomize.py)."""
        return dict(self.env, ATELIER_TEST_KILL_AT=point,
                    PYTHONPATH=os.pathsep.join(filter(None, [str(CRASH_POINTS), self.env.get("PYTHONPATH")])))

    def popen(self, *args: str, capture: bool = True) -> subprocess.Popen:
        """Start the engine; with capture=False its output is discarded (a pipe nobody reads would
        fill up and block the engine)."""
        out = subprocess.PIPE if capture else subprocess.DEVNULL
        return subprocess.Popen(self.command(*args), stdout=out, stderr=out, text=True, cwd=ROOT, env=self.env)

    def write_spec(self, spec: dict, name: str = "spec.yaml") -> Path:
        path = self.workspace / name
        path.write_text(yaml.safe_dump(spec), encoding="utf-8")
        return path

    def run_folders(self) -> list[Path]:
        """The workspace's run folders (not the hidden one a run is made whole in before it appears)."""
        runs = self.workspace / "runs"
        return sorted(p for p in runs.iterdir() if not p.name.startswith(".")) if runs.is_dir() else []

    def only_run(self) -> Path:
        runs = self.run_folders()
        assert len(runs) == 1, runs
        return runs[0]

    def first_run(self, timeout: float = 120) -> Path:
        """The run folder of a run just started in the background, once it appears."""
        deadline = time.time() + timeout
        while not self.run_folders():
            assert time.time() < deadline, f"no run appeared in {self.workspace} within {timeout} s"
            time.sleep(0.1)
        return self.only_run()

    def events(self, run_dir: Path) -> list[dict]:
        """The run's stored events, the files they name resolved in this workspace (engine.rundir)."""
        return [resolved_paths(event, self.workspace) for event in read_events(run_dir / "events.jsonl")]

    def stdout_events(self, text: str) -> list[dict]:
        """The events `run --json` printed, the files they name resolved in this workspace: events name
        the files of their workspace relative to it, and the tests run from another folder."""
        return [resolved_paths(json.loads(line), self.workspace) for line in text.splitlines() if line.startswith("{")]

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


HEAVY_LIBRARIES = ("torch", "transformers", "peft", "datasets", "pyarrow")


@pytest.fixture
def heavy_imports() -> Callable[[str], list[str]]:
    """`heavy_imports("engine.models, engine.data.reader")`: the heavy libraries that importing those
    modules loads, in a fresh interpreter (the light modules the GUI imports must load none)."""
    def loaded(modules: str) -> list[str]:
        code = f"import sys, {modules}; print(' '.join(m for m in {HEAVY_LIBRARIES!r} if m in sys.modules))"
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              cwd=ROOT).stdout.split()
    return loaded


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


def pooled(key, job, prepare=None):
    """Mark a test as reading a run that its module's RunPool starts ahead (see `start_pooled`): the
    registration sits on the test that reads the run. `job(f, **params)` returns the RunPool job,
    `prepare(f, **params)` (optional) its preparation; `key` is the run's name, or a function like
    them. `f` holds the fixtures the module's pool fixture passes; `params` are the test's
    parameters. Tests that read one run mark it with the same key (it starts once)."""
    return pytest.mark.pooled(key=key, job=job, prepare=prepare)


def start_pooled(request, pool: RunPool, **fixtures) -> None:
    """Submit the runs marked `pooled` on the requesting module's selected tests, in the order the
    tests run (each test then finds its run finished or under way)."""
    f = SimpleNamespace(**fixtures)
    for item in request.session.items:
        if getattr(item, "module", None) is not request.module:
            continue
        params = item.callspec.params if hasattr(item, "callspec") else {}
        for mark in reversed(list(item.iter_markers("pooled"))):  # top-down, as written
            key = mark.kwargs["key"](f, **params) if callable(mark.kwargs["key"]) else mark.kwargs["key"]
            if key in pool:
                continue
            prepare = mark.kwargs["prepare"]
            pool.submit(key, mark.kwargs["job"](f, **params), prepare(f, **params) if prepare else None)


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

    def __contains__(self, key: str) -> bool:
        return key in self._futures

    def result(self, key: str, timeout: float = 600):
        if key not in self._futures:
            raise KeyError(f"no run {key!r} was started: no selected test of the module is marked pooled({key!r})")
        return self._futures[key].result(timeout=timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def run_in_process(spec_data: dict, workspace: Path) -> SimpleNamespace:
    """Run a job's recipe in this process, as the runner would (without its process plumbing): the
    summary or the user error it ended with, and its events."""
    from engine.errors import UserError
    from engine.kinds import KINDS
    from engine.protocol import EventWriter
    from engine.rundir import RunDirectory, new_run_id
    from engine.runner import JobContext
    from engine.specs import parse_spec

    spec = parse_spec(spec_data)
    run = RunDirectory.create(workspace, new_run_id(spec.name))
    events: list[dict] = []
    ctx = JobContext(spec=spec, run=run, events=EventWriter(run.events_path, [events.append]))
    try:
        summary, error = importlib.import_module(KINDS[spec.kind].job).run(ctx), None
    except UserError as e:
        summary, error = None, e
    finally:
        ctx.events.close()
    return SimpleNamespace(summary=summary, error=error, events=events, run=run)
