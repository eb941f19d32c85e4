"""The run tracker: launched and re-attached runs reach the store with no gap and no duplicate."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
import yaml

from engine.protocol import EventWriter, read_events
from engine.rundir import RunDirectory, RunStatus
from studio.client import LocalEngine
from studio.client.run_tracker import RunTracker
from studio.models.store import Store

SPEC = {"kind": "pretrain", "name": "tiny", "train": {"max_steps": 100}}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.db")
    yield s
    s.close()


@pytest.fixture
def tracker(store, workspace, qtbot):
    t = RunTracker(store, LocalEngine(workspace=workspace))
    yield t
    t.shutdown()


def make_run(workspace, run_id: str, pid: int, metrics: int, state: str = "running"):
    """A run folder as a detached engine leaves it: spec, status, and `metrics` metric events."""
    run = RunDirectory.create(workspace, run_id)
    run.spec_path.write_text(yaml.safe_dump(SPEC))
    run.write_status(RunStatus(state=state, pid=pid, kind="pretrain", name="tiny"))
    writer = EventWriter(run.events_path)
    writer.started(run_id, SPEC, "host", pid, "0.1.0", [])
    for step in range(1, metrics + 1):
        write_metric(writer, step)
    return run, writer


def write_metric(writer: EventWriter, step: int) -> None:
    writer.metric(step, "train", {"loss": 10.0 / step, "lr": 0.001})
    if step % 10 == 0:
        writer.log("info", f"step {step}")


def assert_history_complete(store: Store, run: RunDirectory) -> None:
    """The store holds exactly the run's events.jsonl: every metric seq once, every stored event once."""
    events = list(read_events(run.events_path))
    assert [e["seq"] for e in events] == list(range(len(events)))
    metric_seqs = [e["seq"] for e in events if e["type"] == "metric"]
    stored = [r[0] for r in store.conn.execute(
        "SELECT seq FROM metrics WHERE run_id = ? AND name = 'loss' ORDER BY seq", (run.run_id,))]
    assert stored == metric_seqs
    steps, _, values = store.metric_series(run.run_id, "train", "loss")
    assert steps.tolist() == list(range(1, len(metric_seqs) + 1))
    assert values.tolist() == [10.0 / s for s in steps]
    kept = [e["seq"] for e in events if e["type"] in ("started", "log", "finished")]
    assert [e["seq"] for e in store.events(run.run_id)] == kept
    assert store.get_run(run.run_id).last_seq == events[-1]["seq"]


def test_reattach_after_a_restart_continues_without_gap_or_duplicate(qtbot, store, tracker, workspace):
    run, writer = make_run(workspace, "tiny-live", pid=os.getpid(), metrics=30)
    # The studio had stored the run up to seq 15 when it was closed.
    store.add_run("tiny-live", kind="pretrain", name="tiny", run_dir=run.path, state="running")
    store.add_events("tiny-live", list(read_events(run.events_path))[:16])
    seen: list[dict] = []
    tracker.run_events.connect(lambda run_id, events: seen.extend(events))

    attached = tracker.reattach_active()

    assert attached == ["tiny-live"]
    assert store.get_run("tiny-live").last_seq == writer.next_seq - 1  # caught up from the file at once
    for step in range(31, 41):
        write_metric(writer, step)
    qtbot.waitUntil(lambda: store.get_run("tiny-live").last_seq == writer.next_seq - 1, timeout=30_000)

    # The attach process drops while the run is alive: the tracker re-attaches from the last seq.
    tracker._streams["tiny-live"].process.kill()
    qtbot.waitUntil(lambda: not tracker.is_attached("tiny-live"), timeout=10_000)
    for step in range(41, 51):
        write_metric(writer, step)
    qtbot.waitUntil(lambda: tracker.is_attached("tiny-live"), timeout=10_000)
    with qtbot.waitSignal(tracker.run_state_changed, timeout=30_000,
                          check_params_cb=lambda run_id, state: state == "completed"):
        writer.finished("completed", {"step": 50, "final_loss": 0.2})
        run.write_status(RunStatus(state="completed", pid=os.getpid(), last_seq=writer.next_seq - 1))
    writer.close()

    assert_history_complete(store, run)
    seqs = [e["seq"] for e in seen]
    assert seqs == list(range(16, writer.next_seq))  # every new event re-emitted once, in order
    record = store.get_run("tiny-live")
    assert (record.state, record.step, record.summary["final_loss"]) == ("completed", 50, 0.2)


def test_a_run_that_died_while_the_studio_was_closed_is_marked_failed(qtbot, store, tracker, workspace):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    run, writer = make_run(workspace, "tiny-dead", pid=gone.pid, metrics=5)
    writer.close()
    store.add_run("tiny-dead", kind="pretrain", run_dir=run.path, state="running")
    states = []
    tracker.run_state_changed.connect(lambda run_id, state: states.append((run_id, state)))

    assert tracker.reattach_active() == []

    record = store.get_run("tiny-dead")
    assert record.state == "failed" and record.error["type"] == "engine_gone"
    assert states[-1] == ("tiny-dead", "failed")
    assert_history_complete(store, run)


def test_runs_in_the_workspace_unknown_to_the_store_are_imported(qtbot, store, tracker, workspace):
    run, writer = make_run(workspace, "tiny-cli", pid=123, metrics=12, state="completed")
    writer.finished("completed", {"step": 12})
    writer.close()
    added = []
    tracker.run_added.connect(added.append)

    assert tracker.reattach_active() == []

    assert added == ["tiny-cli"]
    record = store.get_run("tiny-cli")
    assert (record.kind, record.name, record.state, record.total_steps) == ("pretrain", "tiny", "completed", 100)
    assert_history_complete(store, run)
    tracker.reattach_active()  # a second look changes nothing
    assert added == ["tiny-cli"]
    assert_history_complete(store, run)


def test_an_invalid_spec_is_reported_by_launch_failed(qtbot, tracker, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("kind: pretrain\nname: bad\nmodel:\n  hidden_size: 30\n  heads: 4\n")
    with qtbot.waitSignal(tracker.launch_failed, timeout=60_000) as failed:
        tracker.launch(spec)
    assert "the spec is not valid" in failed.args[0] and "heads" in failed.args[0]


@pytest.mark.slow
def test_a_real_run_streams_its_metrics_into_the_store(qtbot, store, tracker, workspace, tmp_path):
    rng = random.Random(0)
    words = "the a function returns reads list value name error default bytes item new each".split()
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": " ".join(rng.choice(words) for _ in range(60)) + "."}) + "\n"
                              for _ in range(300)))
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({
        "kind": "pretrain", "name": "tiny-real",
        "data": {"sources": [str(corpus)], "eval_fraction": 0.1},
        "tokenizer": {"train": {"vocab_size": 300}},
        "model": {"hidden_size": 32, "layers": 1, "heads": 2, "context_length": 32},
        "train": {"max_steps": 20, "batch_size": 4, "warmup_steps": 2, "log_every": 2, "eval_every": 10,
                  "checkpoint_every": 10, "sample_every": 10, "sample_max_new_tokens": 4},
        "resources": {"device": "cpu"},
    }))
    added, errors = [], []
    tracker.run_added.connect(added.append)
    tracker.run_error.connect(lambda run_id, message: errors.append(message))
    tracker.launch_failed.connect(errors.append)

    with qtbot.waitSignal(tracker.run_state_changed, timeout=240_000,
                          check_params_cb=lambda run_id, state: state not in ("starting", "running")) as done:
        tracker.launch(spec)
    run_id, state = done.args
    record = store.get_run(run_id)
    assert state == "completed", (record.error, errors)
    assert added == [run_id] and errors == []
    assert (record.kind, record.name, record.total_steps, record.step) == ("pretrain", "tiny-real", 20, 20)
    steps, _, losses = store.metric_series(run_id, "train", "loss")
    assert len(steps) >= 5 and steps[-1] == 20 and (losses > 0).all()
    assert ("eval", "loss") in store.metric_names(run_id)
    events = list(read_events(RunDirectory(record.run_dir).events_path))
    assert record.last_seq == events[-1]["seq"]
    metric_seqs = {e["seq"] for e in events if e["type"] == "metric"}
    stored = {r[0] for r in store.conn.execute("SELECT DISTINCT seq FROM metrics WHERE run_id = ?", (run_id,))}
    assert stored == metric_seqs
