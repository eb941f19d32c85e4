"""Failures end as `finished: failed` events with a hint, never as bare tracebacks.

Each failing run is mostly interpreter and torch start-up: the module's runs are started ahead of
their tests by a RunPool, side by side, and each test checks its own."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.engine.conftest import Engine, RunPool, one_thread, pooled, start_pooled, tiny_spec


def _failure(engine: Engine, result) -> dict:
    assert result.returncode == 1, result.stderr[-2000:]
    events = engine.stdout_events(result.stdout)
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "failed"
    error = events[-1]["error"]
    assert error["message"] and error["hint"]
    assert "Traceback" not in result.stdout
    return error


def _run(make_spec):
    """A RunPool job: write the inputs and the spec that `make_spec(workspace)` gives, then run it."""
    def job(engine: Engine):
        spec = make_spec(engine.workspace)
        return engine, engine.run("run", str(engine.write_spec(spec)), "--json")
    return job


def _empty_corpus(workspace):
    path = workspace / "empty.jsonl"
    path.write_text('{"text": ""}\n{"text": "   "}\n')
    return tiny_spec(str(path))


def _latin1(workspace):
    path = workspace / "latin1.txt"
    path.write_bytes("Caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    return tiny_spec(str(path))


def bad_tokenizer(corpus_file: Path):
    def spec(workspace: Path) -> dict:
        data = tiny_spec(str(corpus_file))
        data["tokenizer"] = {"path": str(workspace / "no-tokenizer-here")}
        return data
    return spec


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, corpus_file) -> RunPool:
    pool = RunPool(tmp_path_factory.mktemp("failing-runs"))
    start_pooled(request, pool, corpus=corpus_file)
    yield pool
    pool.close()


@pytest.mark.slow
@pooled("test_missing_file", lambda f: _run(lambda workspace: tiny_spec(str(workspace / "nope.jsonl"))))
def test_missing_file(runs):
    error = _failure(*runs.result("test_missing_file"))
    assert "nope.jsonl" in error["message"]


@pytest.mark.slow
@pooled("test_empty_corpus", lambda f: _run(_empty_corpus))
def test_empty_corpus(runs):
    error = _failure(*runs.result("test_empty_corpus"))
    assert "empty" in error["message"].lower()


@pytest.mark.slow
@pooled("test_undecodable_bytes", lambda f: _run(_latin1))
def test_undecodable_bytes(runs):
    error = _failure(*runs.result("test_undecodable_bytes"))
    assert "latin1.txt" in error["message"] and "UTF-8" in error["message"] + error["hint"]


@pytest.mark.slow
@pooled("test_bad_tokenizer_path", lambda f: _run(bad_tokenizer(f.corpus)))
def test_bad_tokenizer_path(runs):
    error = _failure(*runs.result("test_bad_tokenizer_path"))
    assert "no-tokenizer-here" in error["message"]


@pytest.mark.slow
@pooled("test_model_too_big_for_memory_fails_before_allocating", lambda f: _run(lambda workspace: tiny_spec(
    str(f.corpus), **{"model.hidden_size": 16384, "model.layers": 200, "model.heads": 128})))
def test_model_too_big_for_memory_fails_before_allocating(runs):
    error = _failure(*runs.result("test_model_too_big_for_memory_fails_before_allocating"))
    assert error["type"] == "resource_error" and "GiB" in error["message"] and "batch_size" in error["hint"]


def test_invalid_spec_exits_2_naming_the_field(engine, corpus_file):
    spec = tiny_spec(str(corpus_file))
    spec["train"]["batch_sise"] = 4
    spec["model"]["layers"] = 0
    path = engine.write_spec(spec)
    for verb in ("validate", "run"):
        result = engine.run(verb, str(path))
        assert result.returncode == 2
        assert "train.batch_sise" in result.stderr and "model.layers" in result.stderr
    assert not (engine.workspace / "runs").exists()  # nothing started


def test_schema_and_validate_need_no_torch(engine, corpus_file):
    result = engine.run("schema", "pretrain")
    assert result.returncode == 0 and json.loads(result.stdout)["title"] == "PretrainSpec"
    code = ("import sys; from engine.cli import main; main(['schema']); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    import subprocess
    import sys
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    assert engine.run("validate", str(engine.write_spec(tiny_spec(str(corpus_file))))).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    """A folder on a tmpfs of its own (root only): mount(size) -> the folder, filled by the test."""
    import shutil
    import subprocess

    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root: the full-disk tests fill a filesystem of their own")
    mounted = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk-{len(mounted)}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}): the full-disk tests need one")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> None:
    """Write into `folder` until its disk has no room left."""
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass


def test_a_full_disk_leaves_no_half_made_run_and_label_commands_say_so(small_disk, corpus_file):
    workspace = small_disk("256k")
    engine = Engine(workspace)
    spec = Path(workspace.parent / "spec.yaml")
    spec.write_text(yaml.safe_dump(tiny_spec(str(corpus_file))))
    prefs = workspace.parent / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"prompt": f"{i} + {i}?", "chosen": str(2 * i), "rejected": str(2 * i + 1)})
                             + "\n" for i in range(2000)))
    assert engine.run("labels", "create", "q").returncode == 0
    fill(workspace)
    for command in (("run", str(spec), "--run-id", "nowhere"), ("run", str(spec), "--detach"),
                    ("labels", "create", "another"), ("labels", "import", str(prefs), "--queue", "q")):
        result = engine.run(*command)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        assert "The disk is full" in result.stderr and "Free some space" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and "disk I/O error\n" not in result.stderr
    assert not (workspace / "runs").exists() or list((workspace / "runs").iterdir()) == []
    assert json.loads(engine.run("list", "--json").stdout) == []


@pytest.mark.slow
def test_a_disk_that_fills_during_a_run_ends_it_failed_with_a_resource_error(small_disk, corpus_file):
    workspace = small_disk("64m")
    engine = one_thread(Engine(workspace))
    spec = tiny_spec(str(corpus_file), **{"train.max_steps": 100000, "train.checkpoint_every": 40,
                                          "train.log_every": 1})
    (workspace.parent / "spec.yaml").write_text(yaml.safe_dump(spec))
    process = engine.popen("run", str(workspace.parent / "spec.yaml"), "--json", "--run-id", "filled")
    run_dir = workspace / "runs" / "filled"
    engine.wait_for(run_dir, lambda e: e["type"] == "metric" and e["step"] >= 3)
    fill(workspace)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, err[-3000:]
    finished = json.loads(out.splitlines()[-1])
    assert finished["type"] == "finished" and finished["status"] == "failed", finished
    error = finished["error"]
    assert error["type"] == "resource_error" and "The disk is full" in error["message"], error
    assert "bug" not in error["hint"]
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"
    shown = json.loads(engine.run("show", "filled", "--json").stdout)
    assert shown["state"] == "failed" and shown["run_id"] == "filled"
