"""The studio database: idempotent ingestion by seq, run state from events, fast metric series."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from studio.models.store import Store


def metric(seq, step, loss, split="train", t=None, **more):
    return {"v": 1, "seq": seq, "t": t if t is not None else 1000.0 + seq, "type": "metric", "step": step,
            "split": split, "values": {"loss": loss, **more}}


def event(seq, type, **fields):
    return {"v": 1, "seq": seq, "t": 1000.0 + seq, "type": type, **fields}


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "store.db")
    yield s
    s.close()


def test_reingesting_the_same_seqs_never_duplicates(store):
    store.add_run("r1", kind="pretrain", name="tiny")
    first = [metric(i, i * 10, 1.0 / (i + 1), lr=0.1) for i in range(10)]
    assert len(store.add_events("r1", first)) == 10
    overlapping = [metric(i, i * 10, 1.0 / (i + 1), lr=0.1) for i in range(5, 15)]
    new = store.add_events("r1", overlapping)
    assert [e["seq"] for e in new] == list(range(10, 15))
    assert store.add_events("r1", first) == []
    steps, _, values = store.metric_series("r1", "train", "loss")
    assert steps.tolist() == [i * 10 for i in range(15)]
    assert np.allclose(values, [1.0 / (i + 1) for i in range(15)])
    assert store.conn.execute("SELECT count(*) FROM metrics").fetchone()[0] == 30
    assert store.get_run("r1").last_seq == 14


def test_a_batch_out_of_order_is_ingested_in_seq_order(store):
    events = [event(0, "started", spec={"kind": "pretrain", "name": "x", "train": {"max_steps": 100}}),
              metric(2, 20, 2.0), metric(1, 10, 3.0), event(3, "log", level="info", message="hello")]
    store.add_events("r1", list(reversed(events)))
    run = store.get_run("r1")
    assert (run.state, run.kind, run.name, run.total_steps, run.step, run.last_seq) == \
        ("running", "pretrain", "x", 100, 20, 3)
    assert [e["seq"] for e in store.events("r1")] == [0, 3]
    assert store.events("r1", ["log"])[0]["message"] == "hello"


def test_a_ppo_run_counts_its_iterations_as_steps(store):
    store.add_events("p1", [event(0, "started", spec={"kind": "ppo", "name": "p", "train": {"iterations": 40}})])
    assert store.get_run("p1").total_steps == 40
    store.add_events("p1", [event(1, "progress", stage="train", done=12, total=40, unit="iterations", eta_s=30.0)])
    assert (store.get_run("p1").step, store.get_run("p1").total_steps) == (12, 40)


def test_state_and_progress_follow_the_events_and_never_go_back(store):
    store.add_events("r1", [event(0, "started", spec={"kind": "pretrain", "name": "run"}, pid=123, host="h"),
                            event(1, "progress", stage="train", done=5, total=50, unit="steps", eta_s=12.5),
                            event(2, "heartbeat")])
    run = store.get_run("r1")
    assert (run.state, run.step, run.total_steps, run.eta_s, run.progress_stage, run.pid) == \
        ("running", 5, 50, 12.5, "train", 123)
    store.add_events("r1", [event(3, "finished", status="failed", summary={"step": 5},
                                  error={"type": "data_error", "message": "empty corpus", "hint": "add text"})])
    run = store.get_run("r1")
    assert run.state == "failed" and run.error["message"] == "empty corpus" and run.summary == {"step": 5}
    assert not run.active
    # An old `started` delivered again (a re-attach from seq 0) does not revive the run.
    store.add_events("r1", [event(0, "started", spec={})])
    assert store.get_run("r1").state == "failed"
    # Heartbeats and metrics are not kept as events.
    assert [e["type"] for e in store.events("r1")] == ["started", "finished"]


def test_missing_values_read_back_as_nan_and_a_resumed_step_keeps_the_later_value(store):
    store.add_events("r1", [metric(0, 10, 3.0), metric(1, 20, None), metric(2, 30, 2.0),
                            metric(3, 40, 1.5),
                            # resumed from the checkpoint at step 20: steps 30 and 40 are logged again
                            metric(4, 30, 1.9), metric(5, 40, 1.4), metric(6, 50, 1.2)])
    steps, times, values = store.metric_series("r1", "train", "loss")
    assert steps.tolist() == [10, 20, 30, 40, 50]
    assert math.isnan(values[1])
    assert values[2:].tolist() == [1.9, 1.4, 1.2]
    assert times.tolist() == [1000.0, 1001.0, 1004.0, 1005.0, 1006.0]
    assert store.last_metric("r1", "train", "loss") == 1.2
    assert store.final_loss("r1") == 1.2


def test_metric_names_lists_each_series_once(store):
    store.add_events("r1", [metric(0, 1, 2.0, lr=0.1), metric(1, 2, 1.9, lr=0.2),
                            metric(2, 2, 2.5, split="eval", perplexity=12.0)])
    assert store.metric_names("r1") == [("eval", "loss"), ("eval", "perplexity"), ("train", "loss"),
                                        ("train", "lr")]
    assert store.metric_names("r1", split="eval") == [("eval", "loss"), ("eval", "perplexity")]
    assert store.metric_names("nope") == []


def test_runs_filter_by_kind_state_and_text(store):
    store.add_run("a", kind="pretrain", name="small_llama", state="running", created=3)
    store.add_run("b", kind="finetune", name="chat-lora", state="completed", created=2)
    store.add_run("c", kind="pretrain", name="big%run", state="failed", created=1)
    assert [r.run_id for r in store.runs()] == ["a", "b", "c"]
    assert [r.run_id for r in store.runs(kind="pretrain")] == ["a", "c"]
    assert [r.run_id for r in store.runs(state="active")] == ["a"]
    assert [r.run_id for r in store.runs(state=["completed", "failed"])] == ["b", "c"]
    assert [r.run_id for r in store.runs(text="LORA")] == ["b"]
    assert [r.run_id for r in store.runs(text="%")] == ["c"]  # wildcards are literal
    assert [r.run_id for r in store.runs(text="_")] == ["a"]
    assert store.kinds() == ["finetune", "pretrain"]


def test_delete_run_forgets_everything_about_it(store):
    store.add_events("r1", [event(0, "started", spec={}), metric(1, 1, 2.0)])
    store.add_events("r2", [metric(0, 1, 5.0)])
    store.delete_run("r1")
    assert store.get_run("r1") is None
    assert store.metric_names("r1") == [] and store.events("r1") == []
    assert store.metric_names("r2") == [("train", "loss")]


def test_settings_round_trip_and_survive_reopening(tmp_path):
    store = Store(tmp_path / "store.db")
    store.set_setting("engine.python", "/usr/bin/python3")
    store.set_setting("window", {"width": 1200, "sidebar": [1, 2]})
    store.add_events("r1", [metric(0, 1, 2.0)])
    store.close()
    again = Store(tmp_path / "store.db")
    assert again.get_setting("engine.python") == "/usr/bin/python3"
    assert again.get_setting("window") == {"width": 1200, "sidebar": [1, 2]}
    assert again.get_setting("missing", 42) == 42
    assert again.get_run("r1").last_seq == 0
    assert again.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again.close()


def test_run_folders_and_session_models_stay_with_a_moved_workspace(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    store = Store(old / "store.db")
    (old / "runs" / "local-1" / "output" / "model").mkdir(parents=True)
    store.add_run("local-1", kind="finetune", run_dir=old / "runs" / "local-1")
    store.add_run("remote-1", kind="finetune", engine="gpu-box", run_dir=old / "runs" / "remote-1")
    store.save_playground_session("s", variants=[], rows=[], outputs={},
                                  models=[{"path": str(old / "runs" / "local-1" / "output" / "model")},
                                          {"path": "Qwen/Qwen2.5-0.5B"}])
    assert store.conn.execute("SELECT run_dir FROM runs WHERE run_id = 'local-1'").fetchone()[0] == "runs/local-1"
    store.close()
    old.rename(new)
    moved = Store(new / "store.db")
    assert moved.get_run("local-1").run_dir == str(new / "runs" / "local-1")
    assert [r.run_dir for r in moved.runs(kind="finetune") if r.run_id == "local-1"] == [str(new / "runs" / "local-1")]
    assert moved.get_run("remote-1").run_dir == str(old / "runs" / "remote-1")  # a folder on the SSH host
    assert moved.playground_session("s").models == [{"path": str(new / "runs" / "local-1" / "output" / "model")},
                                                    {"path": "Qwen/Qwen2.5-0.5B"}]
    moved.close()


def test_metric_series_of_one_million_rows(store, capsys):
    n, batch = 1_000_000, 50_000
    store.add_run("big", kind="pretrain")
    start = time.perf_counter()
    for first in range(0, n, batch):
        store.add_events("big", [metric(seq, seq, 10.0 / (seq + 1), t=float(seq))
                                 for seq in range(first, first + batch)])
    ingest_s = time.perf_counter() - start
    store.add_events("other", [metric(0, 0, 1.0)])  # a neighbour series must not leak in
    start = time.perf_counter()
    steps, times, values = store.metric_series("big", "train", "loss")
    query_s = time.perf_counter() - start
    with capsys.disabled():
        print(f"\nstore: ingested {n:,} metric rows in {ingest_s:.2f} s; "
              f"metric_series read them in {query_s:.3f} s")
    assert len(steps) == n and steps.dtype == np.int64
    assert (np.diff(steps) == 1).all()
    assert values[0] == 10.0 and values[-1] == pytest.approx(10.0 / n)
    assert times[-1] == float(n - 1)


@pytest.mark.slow
def test_writes_wait_for_a_large_label_import_and_none_is_lost(tmp_path):
    """The studio's store and `studio-engine labels import` share store.db; the import writes its file in
    one transaction (seconds for a large file). The store's writes meanwhile wait for it, and all land."""
    import json
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "store.db"
    Store(path).close()
    prefs = tmp_path / "prefs.jsonl"
    with open(prefs, "w", encoding="utf-8") as f:
        for i in range(250_000):
            f.write(json.dumps({"prompt": f"What is {i} plus {i}?", "chosen": f"{2 * i}", "rejected": f"{2 * i + 1}"})
                    + "\n")
    root = Path(__file__).resolve().parents[3]
    importer = subprocess.Popen([sys.executable, "-m", "engine.cli", "--workspace", str(tmp_path), "labels", "import",
                                 str(prefs), "--queue", "big", "--create"], cwd=root, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        probe = sqlite3.connect(path, timeout=0)
        deadline = time.monotonic() + 120
        while True:  # until the import holds the write lock
            assert importer.poll() is None and time.monotonic() < deadline, importer.communicate()
            try:
                probe.execute("BEGIN IMMEDIATE")
                probe.execute("ROLLBACK")
            except sqlite3.OperationalError:
                break
            time.sleep(0.02)
        probe.close()
        store = Store(path)
        written = 0
        while importer.poll() is None or written < 3:
            store.add_events("beside-import", [metric(written, written, 1.0 / (written + 1))])
            store.set_setting(f"key-{written}", written)
            written += 1
        out, err = importer.communicate(timeout=120)
    finally:
        importer.kill()
    assert importer.returncode == 0, err
    assert "Imported 250000 of 250000" in out
    assert store.get_run("beside-import").last_seq == written - 1
    assert store.metric_series("beside-import", "train", "loss")[0].tolist() == list(range(written))
    assert [store.get_setting(f"key-{i}") for i in range(written)] == list(range(written))
    store.close()
