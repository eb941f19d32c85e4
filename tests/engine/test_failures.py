"""Failures end as `finished: failed` events with a hint, never as bare tracebacks.

Each failing run is mostly interpreter and torch start-up: the module's runs are started ahead of
their tests by a RunPool, side by side, and each test checks its own."""

from __future__ import annotations

import json

import pytest

from tests.engine.conftest import Engine, RunPool, selected_tests, tiny_spec


def _failure(engine: Engine, result) -> dict:
    assert result.returncode == 1, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
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


def _planned(corpus_file) -> dict:
    """test -> job, in the order of the tests below."""
    def bad_tokenizer(workspace):
        spec = tiny_spec(str(corpus_file))
        spec["tokenizer"] = {"path": str(workspace / "no-tokenizer-here")}
        return spec

    return {
        "test_missing_file": _run(lambda workspace: tiny_spec(str(workspace / "nope.jsonl"))),
        "test_empty_corpus": _run(_empty_corpus),
        "test_undecodable_bytes": _run(_latin1),
        "test_bad_tokenizer_path": _run(bad_tokenizer),
        "test_model_too_big_for_memory_fails_before_allocating": _run(lambda workspace: tiny_spec(
            str(corpus_file), **{"model.hidden_size": 16384, "model.layers": 200, "model.heads": 128})),
    }


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, corpus_file) -> RunPool:
    pool = RunPool(tmp_path_factory.mktemp("failing-runs"))
    wanted = selected_tests(request)
    for test, job in _planned(corpus_file).items():
        if test in wanted:
            pool.submit(test, job)
    yield pool
    pool.close()


@pytest.mark.slow
def test_missing_file(runs):
    error = _failure(*runs.result("test_missing_file"))
    assert "nope.jsonl" in error["message"]


@pytest.mark.slow
def test_empty_corpus(runs):
    error = _failure(*runs.result("test_empty_corpus"))
    assert "empty" in error["message"].lower()


@pytest.mark.slow
def test_undecodable_bytes(runs):
    error = _failure(*runs.result("test_undecodable_bytes"))
    assert "latin1.txt" in error["message"] and "UTF-8" in error["message"] + error["hint"]


@pytest.mark.slow
def test_bad_tokenizer_path(runs):
    error = _failure(*runs.result("test_bad_tokenizer_path"))
    assert "no-tokenizer-here" in error["message"]


@pytest.mark.slow
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
    import subprocess, sys
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    assert engine.run("validate", str(engine.write_spec(tiny_spec(str(corpus_file))))).returncode == 0
