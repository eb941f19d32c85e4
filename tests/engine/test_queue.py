"""The engine's job queue through the CLI (`studio-engine queue …`) and its real dispatcher process: an
engine without GPUs has one slot, so queued runs run one after the other, in the queue's order."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.engine.conftest import Engine, one_thread, tiny_spec


@pytest.fixture
def engine(engine: Engine, corpus_file) -> Engine:
    engine = one_thread(engine)
    engine.env.pop("ATELIER_QUEUE_SLOTS", None)
    engine.env["CUDA_VISIBLE_DEVICES"] = ""  # no GPUs, whatever the machine has: one slot
    engine.env["ATELIER_QUEUE_POLL_S"] = "0.2"
    spec = tiny_spec(str(corpus_file), **{"train.max_steps": 20, "train.checkpoint_every": 20, "train.eval_every": 20,
                                          "train.sample_every": 1000, "tokenizer.train.vocab_size": 300,
                                          "data.max_documents": 300})
    engine.write_spec(spec)
    return engine


def queue(engine: Engine, *args: str) -> str:
    result = engine.run("queue", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def listing(engine: Engine) -> dict:
    return json.loads(queue(engine, "list", "--json"))


def wait_until(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def state(engine: Engine, run_id: str) -> str:
    return json.loads(engine.run("show", run_id, "--json").stdout)["state"]


def test_queued_runs_start_in_order_one_at_a_time_and_survive_a_killed_dispatcher(engine: Engine):
    spec = str(engine.workspace / "spec.yaml")
    queue(engine, "pause")
    for run_id in ("a", "b", "c"):
        added = json.loads(queue(engine, "add", spec, "--run-id", run_id))
        assert added["gpus"] == 1 and state(engine, run_id) == "queued"
    assert "moved" not in queue(engine, "move", "c", "--to", "1")
    assert "left the queue" in queue(engine, "cancel", "b")
    shown = listing(engine)
    assert shown["paused"] and shown["slots"] == 1 and shown["dispatcher"] is None  # paused: nothing to dispatch
    assert [(r["run_id"], r["position"], r["state"]) for r in shown["runs"]] == [("c", 1, "waiting"), ("a", 2, "waiting")]
    assert state(engine, "b") == "cancelled"

    queue(engine, "resume")
    wait_until(lambda: state(engine, "c") in ("starting", "running"), what="c to start")
    shown = listing(engine)
    assert [(r["run_id"], r["state"]) for r in shown["runs"]] == [("c", "running"), ("a", "waiting")]
    os.kill(shown["dispatcher"], signal.SIGKILL)  # the run it started goes on without it
    wait_until(lambda: state(engine, "c") == "completed", what="c to complete")
    assert state(engine, "a") == "queued"  # nobody starts it...

    listing(engine)  # ...until a queue command starts a dispatcher, which reads the state again
    wait_until(lambda: state(engine, "a") != "queued", what="a restarted dispatcher to start a")
    wait_until(lambda: state(engine, "a") == "completed", what="a to complete")

    c_events, a_events = (engine.events(engine.workspace / "runs" / r) for r in ("c", "a"))
    assert a_events[0]["type"] == "started" and a_events[0]["t"] >= c_events[-1]["t"]  # one after the other
    assert [e["type"] for e in engine.events(engine.workspace / "runs" / "b")] == ["finished"]  # never started
    wait_until(lambda: listing(engine)["runs"] == [], what="the queue to empty")


def test_a_run_needing_more_gpus_than_the_engine_has_is_refused(engine: Engine):
    result = engine.run("queue", "add", str(engine.workspace / "spec.yaml"), "--gpus", "2")
    assert result.returncode == 2
    assert "needs 2 GPU(s)" in result.stderr and "has 1" in result.stderr
    assert not (engine.workspace / "runs").exists() or engine.run_folders() == []


def test_moving_a_run_that_is_not_waiting_says_so(engine: Engine):
    queue(engine, "pause")
    queue(engine, "add", str(engine.workspace / "spec.yaml"), "--run-id", "a")
    queue(engine, "cancel", "a")
    result = engine.run("queue", "move", "a", "--to", "1")
    assert result.returncode == 2 and "not waiting in the queue" in result.stderr
