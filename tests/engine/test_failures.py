"""Failures end as `finished: failed` events with a hint, never as bare tracebacks."""

from __future__ import annotations

import json

import pytest

from tests.engine.conftest import tiny_spec


def _failure(engine, spec: dict) -> dict:
    result = engine.run("run", str(engine.write_spec(spec)), "--json")
    assert result.returncode == 1, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "failed"
    error = events[-1]["error"]
    assert error["message"] and error["hint"]
    assert "Traceback" not in result.stdout
    return error


@pytest.mark.slow
def test_missing_file(engine, tmp_path):
    error = _failure(engine, tiny_spec(str(tmp_path / "nope.jsonl")))
    assert "nope.jsonl" in error["message"]


@pytest.mark.slow
def test_empty_corpus(engine, tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text('{"text": ""}\n{"text": "   "}\n')
    error = _failure(engine, tiny_spec(str(path)))
    assert "empty" in error["message"].lower()


@pytest.mark.slow
def test_undecodable_bytes(engine, tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    error = _failure(engine, tiny_spec(str(path)))
    assert "latin1.txt" in error["message"] and "UTF-8" in error["message"] + error["hint"]


@pytest.mark.slow
def test_bad_tokenizer_path(engine, corpus_file, tmp_path):
    spec = tiny_spec(str(corpus_file))
    spec["tokenizer"] = {"path": str(tmp_path / "no-tokenizer-here")}
    error = _failure(engine, spec)
    assert "no-tokenizer-here" in error["message"]


@pytest.mark.slow
def test_model_too_big_for_memory_fails_before_allocating(engine, corpus_file):
    spec = tiny_spec(str(corpus_file), **{"model.hidden_size": 16384, "model.layers": 200, "model.heads": 128})
    error = _failure(engine, spec)
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
