"""The run commands of `studio-engine` against hostile and careless input, through the real engine
process: run ids are names (never paths), run arguments are taken literally, `cancel` signals only
the run's own engine, one engine writes a run at a time, one damaged run hides no other, and a closed
pipe or a workspace that is a file end with a message, never a traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from engine.processes import process_start
from engine.protocol import EventWriter
from engine.rundir import RunDirectory, RunStatus
from tests.engine.conftest import Engine, one_thread, tiny_spec


def make_run(engine: Engine, run_id: str, *, state: str = "completed", events: int = 3) -> RunDirectory:
    """A run folder as the engine leaves one: spec, status and a few events written by its own writers."""
    run = RunDirectory.create(engine.workspace, run_id)
    run.spec_path.write_text("kind: pretrain\nname: tiny\n", encoding="utf-8")
    writer = EventWriter(run.events_path)
    for step in range(events - 1):
        writer.metric(step, "train", {"loss": 2.0 - step / 10})
    if state == "running":
        writer.heartbeat()
    else:
        writer.finished(state, {"step": events - 1})
    writer.close()
    run.write_status(RunStatus(state=state, pid=None, last_seq=writer.next_seq - 1, kind="pretrain", name="tiny",
                               step=events - 1))
    return run


def test_run_ids_are_names_never_paths(engine, corpus_file, tmp_path):
    spec = engine.write_spec(tiny_spec(str(corpus_file)))
    outside = tmp_path / "outside"
    for bad in ("../../x", str(outside), ".", "..", "a/b", "two\nlines", "", "-x", "x" * 200):
        result = engine.run("run", str(spec), f"--run-id={bad}")
        assert result.returncode == 2, (bad, result.stderr)
        assert "cannot be a run id" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not outside.exists() and not (tmp_path / "x").exists() and not (engine.workspace.parent / "x").exists()
    assert not list((engine.workspace / "runs").glob("*")) if (engine.workspace / "runs").exists() else True

    make_run(engine, "taken")
    result = engine.run("run", str(spec), "--run-id", "taken")
    assert result.returncode == 2 and "exists already" in result.stderr and "resume taken" in result.stderr
    assert "Traceback" not in result.stderr
    assert json.loads((engine.workspace / "runs" / "taken" / "status.json").read_text())["state"] == "completed"


def test_run_arguments_are_taken_literally(engine):
    make_run(engine, "tiny-1")
    make_run(engine, "other-1")
    for pattern in ("tiny*", "**", "/", "t[i]ny-1", "*", "?iny-1", ""):
        for verb in ("show", "attach", "cancel", "resume"):
            result = engine.run(verb, pattern)
            assert result.returncode == 1, (verb, pattern, result.stdout, result.stderr)
            assert "No run" in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert engine.run("show", "tiny").stdout.startswith("Run tiny-1 ")  # a unique prefix
    assert engine.run("show", str(engine.workspace / "runs" / "other-1")).stdout.startswith("Run other-1 ")
    make_run(engine, "tiny-2")
    result = engine.run("show", "tiny")
    assert result.returncode == 1 and "matches several runs (tiny-1, tiny-2)" in result.stderr


@pytest.fixture
def bystander():
    """An unrelated process in a process group of its own: what a forged status.json would point at."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
    yield process
    process.kill()
    process.wait()


def test_cancel_signals_only_the_runs_own_engine(engine, bystander):
    run = make_run(engine, "forged", state="running")
    here = socket.gethostname()
    started = process_start(bystander.pid)
    forgeries = {  # status.json as a crash, a copied workspace or a hostile hand could leave it
        "its start time unrecorded": {"host": here},
        "another start time": {"host": here, "pid_started": "0:1"},
        # The bystander's own start time: only the lock (or a command line naming the run) tells it apart.
        "the bystander's start time": {"host": here, "pid_started": started},
        "another computer": {"host": "elsewhere.example", "pid_started": started},
    }
    for what, fields in forgeries.items():
        run.status_path.write_text(json.dumps({"state": "running", "pid": bystander.pid, "kind": "pretrain", **fields}))
        for force in ((), ("--force",)):
            result = engine.run("cancel", "forged", *force)
            assert result.returncode == 1, (what, force, result.stdout)
            # Refused: as not this run's engine, or (a start time that is not the process's) as a run whose engine is gone.
            assert ("not signalling anything" in result.stderr or "is not running" in result.stderr), result.stderr
            assert "Traceback" not in result.stderr
            assert bystander.poll() is None, f"{what} {force}: the bystander was killed"
    assert "elsewhere.example" in result.stderr


def start_long_detached_run(engine: Engine, corpus_file, run_id: str) -> tuple[Path, int]:
    """A run of 5,000 steps started with `run --detach`: its folder and its engine's pid."""
    one_thread(engine)
    spec = tiny_spec(str(corpus_file), **{"train.max_steps": 5000, "train.checkpoint_every": 5000})
    result = engine.run("run", str(engine.write_spec(spec)), "--detach", "--run-id", run_id)
    assert result.returncode == 0, result.stderr
    return engine.workspace / "runs" / run_id, json.loads(result.stdout)["pid"]


@pytest.mark.slow
def test_a_cancel_that_reaches_a_detached_engine_while_it_starts_ends_the_run_cancelled(engine, corpus_file):
    # Signalled within milliseconds of its start, long before its imports are done and its handler is in
    # place: the signal waits (the child starts with it blocked) and the run ends as a cancel, not a crash.
    run_dir, pid = start_long_detached_run(engine, corpus_file, "early")
    os.kill(pid, signal.SIGINT)
    events = engine.wait_for(run_dir, lambda e: e["type"] == "finished")
    assert events[-1]["status"] == "cancelled", events[-1]
    assert json.loads(engine.run("show", "early", "--json").stdout)["state"] == "cancelled"
    assert "KeyboardInterrupt" not in (run_dir / "engine.log").read_text(encoding="utf-8")


@pytest.mark.slow
def test_cancel_force_stops_the_runs_own_engine_at_once(engine, corpus_file):
    run_dir, pid = start_long_detached_run(engine, corpus_file, "long")
    engine.wait_for(run_dir, lambda e: e["type"] == "metric")
    result = engine.run("cancel", "long", "--force")
    assert result.returncode == 0, result.stderr
    assert process_start(pid) is None  # gone
    events = engine.events(run_dir)
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "cancelled"
    assert json.loads(engine.run("show", "long", "--json").stdout)["state"] == "cancelled"


@pytest.mark.slow
def test_two_resumes_of_one_run_one_runs_and_the_other_is_refused(engine, tmp_path, corpus_file):
    one_thread(engine)
    corpus = tmp_path / "later.jsonl"
    spec = tiny_spec(str(corpus), **{"train.max_steps": 30, "train.checkpoint_every": 10})
    first = engine.run("run", str(engine.write_spec(spec)), "--json", "--run-id", "twice")
    assert first.returncode == 1  # its corpus is not there yet
    corpus.write_bytes(corpus_file.read_bytes())
    resumes = [engine.popen("resume", "twice", "--json") for _ in range(2)]
    outcomes = [process.communicate(timeout=300) + (process.returncode,) for process in resumes]
    codes = sorted(code for _, _, code in outcomes)
    assert codes == [0, 2], [(code, err[-800:]) for _, err, code in outcomes]
    refused = next(err for _, err, code in outcomes if code == 2)
    assert "is being run by another engine process" in refused and "Traceback" not in refused
    events = engine.events(engine.workspace / "runs" / "twice")
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e["status"] for e in events if e["type"] == "finished"] == ["failed", "completed"]
    assert len([e for e in events if e["type"] == "started"]) == 2


def _damage(engine: Engine) -> dict[str, str]:
    """Runs damaged in the ways a crash, a full disk or a hostile hand can: run id -> what `list` must say."""
    damaged = {}
    lines = {
        "huge-int": '{"v":1,"seq":2,"t":1,"type":"metric","step":' + "9" * 5000 + ',"split":"train","values":{}}',
        "deep": '{"v":1,"seq":2,"t":1,"type":"log","level":"info","message":' + "[" * 100000 + "]" * 100000 + "}",
        "wrong-types": '{"v":1,"seq":2,"t":1,"type":"metric","step":"2","split":"train","values":[1,2]}',
        "bad-finished": '{"v":1,"seq":2,"t":1,"type":"finished","status":"failed","summary":{},"error":"boom"}',
        "bad-seq": '{"v":1,"seq":true,"t":1,"type":"heartbeat"}',
        "binary": "\udcff\udcfe not text",
    }
    for run_id, line in lines.items():
        run = make_run(engine, run_id, events=2)
        with open(run.events_path, "ab") as f:
            f.write(line.encode("utf-8", "surrogateescape") + b"\n")
        damaged[run_id] = "completed"
    statuses = {
        "status-latin1": "{\"state\": \"caf\xe9\"}".encode("latin-1"),
        "status-list": b"[1, 2, 3]",
        "status-bad-pid": b'{"state": "running", "pid": "1; rm -rf /", "host": "h"}',
        "status-huge-pid": b'{"state": "running", "pid": ' + b"9" * 30 + b"}",
        "status-deep": b"[" * 100000 + b"]" * 100000,
        "status-unknown-state": b'{"state": "exploded"}',
    }
    for run_id, data in statuses.items():
        run = make_run(engine, run_id)
        run.status_path.write_bytes(data)
        damaged[run_id] = "unreadable"
    for run_id, name, state in (("fifo-status", "status.json", "unreadable"), ("fifo-events", "events.jsonl", "completed")):
        run = make_run(engine, run_id)
        (run.path / name).unlink()
        os.mkfifo(run.path / name)  # reading it would wait for a writer that never comes
        damaged[run_id] = state
    return damaged


def test_one_damaged_run_hides_no_other(engine):
    good = make_run(engine, "good", events=4)
    damaged = _damage(engine)
    listing = engine.run("list", "--json")
    assert listing.returncode == 0, listing.stderr
    runs = {r["run_id"]: r for r in json.loads(listing.stdout)}
    assert set(runs) == {"good", *damaged}
    assert runs["good"]["state"] == "completed" and runs["good"]["last_metrics"]["train"]["loss"] == pytest.approx(1.8)
    for run_id, state in damaged.items():
        assert runs[run_id]["state"] == state, runs[run_id]
        if state == "unreadable":
            assert "status.json" in runs[run_id]["problem"], runs[run_id]
    assert runs["status-list"]["problem"] == "status.json holds list, not an object"
    table = engine.run("list")
    assert table.returncode == 0 and all(run_id in table.stdout for run_id in damaged)
    for run_id in ("good", *damaged):
        for command in (("show", run_id), ("show", run_id, "--json"), ("attach", run_id, "--json")):
            result = engine.run(*command)
            assert result.returncode == 0, (command, result.stderr[-2000:])
            assert "Traceback" not in result.stderr
        printed = [json.loads(line) for line in engine.run("attach", run_id, "--json").stdout.splitlines()]
        assert [e["seq"] for e in printed] == list(range(len(printed)))  # the damaged line skipped
    assert "Unreadable: status.json is not UTF-8 text" in engine.run("show", "status-latin1").stdout
    follow = engine.run("attach", "huge-int", "--follow", "--json", timeout=60)
    assert follow.returncode == 0 and json.loads(follow.stdout.splitlines()[-1])["type"] == "finished"
    assert good.read_status().state == "completed"


def test_a_closed_pipe_or_a_file_for_a_workspace_ends_with_a_message(engine, tmp_path):
    make_run(engine, "tiny-1", events=200)
    for command in (("show", "tiny-1"), ("list",), ("attach", "tiny-1", "--json"), ("list", "--json")):
        process = engine.popen(*command)
        process.stdout.close()  # the reader is gone before the first line: `studio-engine show | head -0`
        _, err = process.communicate(timeout=60)
        assert process.returncode == 128 + signal.SIGPIPE, (command, err)
        assert err == "", (command, err)
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file")
    for command in (("list",), ("show", "x"), ("run", "spec.yaml")):
        result = subprocess.run([sys.executable, "-m", "engine.cli", "--workspace", str(not_a_folder), *command],
                                capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
        assert result.returncode == 2, result.stderr
        assert "is a file, not a folder" in result.stderr and "Traceback" not in result.stderr
    assert not_a_folder.read_text() == "a file"
