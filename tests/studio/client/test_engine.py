"""The engine client: QProcess handles that never block, event streams read in arbitrary chunks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import yaml

from engine.protocol import EventWriter
from engine.rundir import RunDirectory, RunStatus
from studio.client import EngineCommand, EventStream, LocalEngine

EVENTS = [{"v": 1, "seq": i, "t": 1000.0 + i, "type": "metric", "step": i, "split": "train",
           "values": {"loss": 1.0 / (i + 1)}} for i in range(1, 6)]
STARTED = {"v": 1, "seq": 0, "t": 1000.0, "type": "started", "run_id": "r", "spec": {}, "host": "h", "pid": 1,
           "engine_version": "0", "devices": []}


def stand_in_engine(tmp_path, payload: bytes, chunks: list[int]) -> list[str]:
    """An `entry` for LocalEngine: a real child process writing `payload` in chunks of these sizes."""
    script = tmp_path / "stand_in_engine.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        data = {payload!r}
        sizes = {chunks!r}
        out = sys.stdout.buffer
        i = 0
        while i < len(data):
            for size in sizes:
                out.write(data[i:i + size]); out.flush(); i += size
                time.sleep(0.002)
        sys.exit(0)
    """))
    return [sys.executable, str(script)]


def collect(qtbot, stream: EventStream, timeout=20_000):
    batches, errors = [], []
    stream.events.connect(batches.append)
    stream.error.connect(errors.append)
    with qtbot.waitSignal(stream.ended, timeout=timeout) as ended:
        pass
    return batches, errors, ended.args[0]


def test_a_stream_in_odd_chunks_gives_every_event_once_in_order(qtbot, tmp_path):
    lines = [json.dumps(STARTED)] + [json.dumps(e) for e in EVENTS[:3]]
    lines += ["Some library printed this to stdout", json.dumps(EVENTS[1])]  # noise and a repeated seq
    payload = ("\n".join(lines) + "\n" + json.dumps(EVENTS[3]) + "\n" + json.dumps(EVENTS[4])).encode()
    engine = LocalEngine(workspace=tmp_path, entry=stand_in_engine(tmp_path, payload, [1, 7, 13, 64, 3]))
    stream = engine.attach("r", from_seq=0)
    batches, errors, exit = collect(qtbot, stream)
    events = [e for batch in batches for e in batch]
    assert [e["seq"] for e in events] == [0, 1, 2, 3, 4, 5]  # the unterminated last line counts too
    assert events[3]["values"] == {"loss": 0.25}
    assert len(batches) > 1 and errors == []
    assert exit.code == 0 and not exit.crashed
    assert stream.next_seq == 6


def test_a_stream_from_a_later_seq_drops_what_came_before(qtbot, tmp_path):
    payload = "".join(json.dumps(e) + "\n" for e in [STARTED, *EVENTS]).encode()
    engine = LocalEngine(workspace=tmp_path, entry=stand_in_engine(tmp_path, payload, [100]))
    batches, _, _ = collect(qtbot, engine.attach("r", from_seq=3))
    assert [e["seq"] for b in batches for e in b] == [3, 4, 5]


def test_an_engine_speaking_another_protocol_version_is_reported_in_a_sentence(qtbot, tmp_path):
    payload = (json.dumps(dict(STARTED, v=99)) + "\n" + json.dumps(dict(EVENTS[0], v=99)) + "\n").encode()
    engine = LocalEngine(workspace=tmp_path, entry=stand_in_engine(tmp_path, payload, [5]))
    stream = engine.attach("r")
    batches, errors, _ = collect(qtbot, stream)
    assert batches == []
    assert len(errors) == 1 and "v99" in errors[0] and "the studio is too old" in errors[0]
    assert stream.mismatch == errors[0]


def test_the_child_environment_is_unbuffered_utf8_and_passes_offline_flags(qtbot, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    script = tmp_path / "env.py"
    script.write_text("import json, os\nprint('noise first')\nprint(json.dumps({k: os.environ.get(k) for k in "
                      "('PYTHONUNBUFFERED', 'PYTHONIOENCODING', 'HF_HUB_OFFLINE')}))\n")
    engine = LocalEngine(workspace=tmp_path, entry=[sys.executable, str(script)])
    command = engine.list_runs()
    with qtbot.waitSignal(command.succeeded, timeout=20_000) as answer:
        pass
    assert answer.args[0] == {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8", "HF_HUB_OFFLINE": "1"}


def test_an_interpreter_that_does_not_exist_fails_with_a_sentence(qtbot, tmp_path):
    engine = LocalEngine(python=tmp_path / "no-python", workspace=tmp_path)
    command = engine.start_run(tmp_path / "spec.yaml")
    with qtbot.waitSignal(command.failed, timeout=20_000) as failed:
        pass
    assert failed.args[0].startswith("Could not start the engine with")
    assert "settings" in failed.args[0]


def test_a_spec_error_reaches_the_user_with_every_problem(qtbot, tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump({"kind": "pretrain", "name": "bad", "train": {"max_stepz": 5,
                                                                                 "batch_size": 0}}))
    engine = LocalEngine(workspace=tmp_path / "ws")
    command = engine.start_run(spec)
    with qtbot.waitSignal(command.failed, timeout=60_000) as failed:
        pass
    message = failed.args[0]
    assert message.startswith("Could not start the run: the spec is not valid.")
    assert "max_stepz" in message and "batch_size" in message
    assert command.exit.code == 2


def test_attach_through_the_real_cli_follows_a_run_until_it_finishes(qtbot, workspace):
    run = RunDirectory.create(workspace, "tiny-1")
    run.spec_path.write_text("kind: pretrain\nname: tiny\n")
    run.write_status(RunStatus(state="running", pid=os.getpid(), kind="pretrain", name="tiny"))
    writer = EventWriter(run.events_path)
    writer.started("tiny-1", {"kind": "pretrain"}, "h", os.getpid(), "0", [])
    for step in range(1, 4):
        writer.metric(step, "train", {"loss": 3.0 / step})

    engine = LocalEngine(workspace=workspace)
    stream = engine.attach("tiny-1", from_seq=2)
    seen = []
    stream.events.connect(seen.extend)
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=60_000)  # seqs 2 and 3, from the file
    writer.metric(4, "train", {"loss": 0.5})
    writer.finished("completed", {"step": 4})
    run.write_status(RunStatus(state="completed", pid=os.getpid(), last_seq=writer.next_seq - 1))
    with qtbot.waitSignal(stream.ended, timeout=30_000) as ended:
        pass
    writer.close()
    assert [e["seq"] for e in seen] == [2, 3, 4, 5]
    assert seen[-1]["type"] == "finished" and stream.saw_finished
    assert ended.args[0].code == 0


def test_handles_are_kept_alive_by_the_engine_and_released_when_done(qtbot, tmp_path):
    engine = LocalEngine(workspace=tmp_path, entry=[sys.executable, "-c", "print('{}')"])
    done = []
    command = engine.list_runs()
    command.succeeded.connect(done.append)
    assert isinstance(command, EngineCommand)
    del command  # the caller may drop its reference
    qtbot.waitUntil(lambda: done == [{}], timeout=20_000)
    qtbot.waitUntil(lambda: not engine._live, timeout=5_000)


def test_the_equivalent_cli_command_is_shown_for_review(tmp_path):
    engine = LocalEngine(workspace=tmp_path / "my ws")
    assert engine.display_command("run", "spec.yaml") == f"studio-engine --workspace '{tmp_path / 'my ws'}' run spec.yaml"
    assert engine.command_line("list", "--json")[:3] == [sys.executable, "-m", "engine.cli"]


def test_the_backend_modules_import_no_training_libraries():
    code = ("import sys, studio.models.store, studio.client, studio.client.run_tracker, studio.pages.runs.page; "
            "heavy = {'torch', 'transformers', 'datasets', 'peft', 'trl'} & {m.split('.')[0] for m in sys.modules}; "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    assert out.stdout.strip() == "[]"


def test_an_indented_answer_is_read_whole_even_when_its_last_list_item_parses_alone():
    from studio.client.engine import _last_json

    answer = {"run_id": "r", "checkpoints": ["/runs/r/checkpoints/checkpoint-70"]}
    assert _last_json(json.dumps(answer, indent=2)) == answer
    assert _last_json("a library's line\n" + json.dumps(answer, indent=2)) == answer
