"""The readers a user — or a damaged or hostile file — controls, fed arbitrary bytes and hostile structures
by hypothesis: spec YAML (`load_spec`, `studio-engine validate`), events.jsonl and status.json (`list`,
`show`, `attach`, and the studio's reader and store), and serve requests. Every outcome is a clear
message — a SpecError, a skipped and logged line, an `unreadable` run, an error answer — never another
exception or a hang, and memory stays bounded. Bounded in time: a fixed number of examples (derandomized,
so a run is repeatable), each with a deadline."""

from __future__ import annotations

import json
import subprocess
import tracemalloc
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.kinds  # noqa: F401 (the registry load_spec reads: loaded here, not in the first example's deadline)
from engine.protocol import EVENT_TYPES, EventReader, read_events
from engine.rundir import RUN_STATES, RunDirectory, RunStatus
from engine.serve.protocol import RequestError, parse_request
from engine.specs import SpecError, load_spec
from tests.engine.conftest import Engine

FUZZ = settings(max_examples=150, deadline=timedelta(seconds=5), derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
THROUGH_THE_ENGINE = settings(FUZZ, max_examples=6, deadline=timedelta(seconds=60))
MEMORY_LIMIT = 64 << 20  # what one reader may hold at its peak for one input of these sizes

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
deep_json = st.integers(900, 120_000).map(lambda n: "[" * n + "]" * n)
huge_ints = st.integers(4400, 30_000).map(lambda n: "9" * n)
EVENT_FIELDS = ["step", "split", "values", "status", "summary", "error", "level", "message", "prompt", "text", "kind",
                "path", "meta", "stage", "done", "total", "unit", "eta_s", "spec", "pid", "host", "run_id", "devices"]


@st.composite
def event_shaped(draw) -> dict:
    """An object that looks like an event, with any value (or none) in any of its fields."""
    event = {"v": draw(st.sampled_from([1, 0, 2, "1", None])),
             "seq": draw(st.integers(-3, 40) | json_values),
             "t": draw(st.floats(0, 2e9) | json_values),
             "type": draw(st.sampled_from(sorted(EVENT_TYPES)) | st.text(max_size=8))}
    for name in draw(st.lists(st.sampled_from(EVENT_FIELDS), max_size=6, unique=True)):
        event[name] = draw(json_values)
    return event


def _line(value: dict | str) -> bytes:
    return (value if isinstance(value, str) else json.dumps(value)).encode("utf-8", "surrogatepass")


event_lines = st.lists(
    st.one_of(event_shaped().map(_line), st.binary(max_size=80),
              deep_json.map(lambda d: _line('{"v":1,"seq":0,"type":"log","level":"info","message":' + d + "}")),
              huge_ints.map(lambda n: _line('{"v":1,"seq":' + n + ',"type":"heartbeat"}')),
              st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass"))),
    max_size=25)


def _bounded(reader, *args):
    """`reader(*args)`, checking the memory it held at its peak."""
    tracemalloc.start()
    try:
        result = reader(*args)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"{reader.__name__} held {peak / 2**20:.0f} MiB"
    return result


def _check_events(events: list[dict]) -> None:
    seqs = [e["seq"] for e in events]
    assert all(type(s) is int and s >= 0 for s in seqs) and seqs == sorted(set(seqs))
    for event in events:
        if event["type"] == "metric":
            assert type(event["step"]) is int and isinstance(event["split"], str) and isinstance(event["values"], dict)
        if event["type"] == "finished":
            assert isinstance(event["summary"], dict) and isinstance(event.get("error") or {}, dict)
        json.dumps(event).encode("utf-8")  # no half characters left in it


@FUZZ
@given(lines=event_lines, cuts=st.lists(st.integers(1, 64), max_size=8))
def test_events_jsonl_gives_events_or_skips_lines(tmp_path_factory, lines, cuts):
    data = b"\n".join(lines)
    reader, events, position = EventReader(), [], 0
    for cut in cuts:  # the bytes as a pipe delivers them: in arbitrary pieces
        events += reader.feed(data[position:position + cut])
        position += cut
    events += reader.feed(data[position:]) + reader.flush()
    _check_events(events)
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    path.write_bytes(data)
    stored = _bounded(lambda p: list(read_events(p)), path)
    assert [e["seq"] for e in stored] == [e["seq"] for e in events]

    from studio.models.store import Store  # the studio's reader ingests what the protocol lets through

    store = Store(path.parent / "store.db")
    try:
        store.add_events("fuzzed", stored)
        assert store.get_run("fuzzed") is not None or not stored
    finally:
        store.close()


status_files = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"state": st.sampled_from(RUN_STATES) | json_values},
                          optional={name: json_values | st.integers(-2**70, 2**70)
                                    for name in ("pid", "host", "last_seq", "kind", "name", "step", "updated",
                                                 "pid_started")}).map(lambda v: _line(v)),
    deep_json.map(str.encode), huge_ints.map(lambda n: b'{"state": "running", "pid": ' + n.encode() + b"}"))


@FUZZ
@given(status=status_files, lines=event_lines)
def test_a_run_of_any_bytes_is_listed_and_shown_or_said_unreadable(tmp_path_factory, capsys, status, lines):
    from engine.cli import main

    workspace = tmp_path_factory.mktemp("ws")
    run = RunDirectory.create(workspace, "fuzzed", "kind: pretrain\n")
    run.status_path.write_bytes(status)
    run.events_path.write_bytes(b"\n".join(lines))
    read = run.read_status()
    assert read is None or isinstance(read, RunStatus) and read.state in RUN_STATES
    assert (run.status_problem() is None) == (read is not None)
    effective = run.effective_status()
    if effective is not None and effective.active:
        assert isinstance(run.engine_problem(effective) or "", str)
    for command in (["list"], ["show", "fuzzed"], ["show", "fuzzed", "--json"], ["attach", "fuzzed", "--json"]):
        assert _bounded(main, ["--workspace", str(workspace), *command]) == 0, command
    capsys.readouterr()
    assert main(["--workspace", str(workspace), "list", "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert listed["run_id"] == "fuzzed" and listed["state"] in (*RUN_STATES, "unreadable", "unknown")
    assert (listed["state"] == "unreadable") == ("problem" in listed)


spec_texts = st.one_of(
    st.binary(max_size=300),
    st.text(alphabet=st.sampled_from(list("kindame: -[]{},&*!|>'\"#\n\t\\u0123456789pretrain")), max_size=200),
    json_values.map(lambda v: json.dumps(v)),
    st.tuples(st.integers(2, 12), st.integers(2, 12)).map(
        lambda fd: "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * fd[0]) if i else 'x'}]\n" for i in range(fd[1]))),
    deep_json.map(lambda d: "kind: pretrain\nname: x\nextra: " + d),
    st.integers(70, 3000).map(lambda n: "".join(" " * i + "k:\n" for i in range(n))),
    st.sampled_from(["kind", "name", "train", "seed"]).map(lambda k: f"kind: pretrain\nname: x\n{k}: 1\n{k}: 2\n"),
    huge_ints.map(lambda n: f"kind: pretrain\nname: x\nseed: {n}\n"),
    st.just("!!python/object/apply:os.system ['touch /tmp/pwned']\n"),
).map(lambda v: v if isinstance(v, bytes) else v.encode("utf-8", "surrogatepass"))


@FUZZ
@given(data=spec_texts)
def test_spec_yaml_gives_a_spec_or_located_problems(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_bytes(data)
    try:
        _bounded(load_spec, path)
    except SpecError as e:
        assert e.problems and all(p.message for p in e.problems)
        assert len(str(e)) < 20_000
    assert not Path("/tmp/pwned").exists()


@FUZZ
@given(line=st.one_of(st.binary(max_size=300), event_shaped().map(_line), deep_json.map(str.encode),
                      huge_ints.map(lambda n: ('{"op": "models", "id": ' + n + "}").encode()),
                      st.fixed_dictionaries({"op": st.sampled_from(["load", "generate", "cancel", "unload", "models",
                                                                    "shutdown"]) | json_values,
                                             "id": json_values}, optional={"model": json_values,
                                                                           "prompt": json_values,
                                                                           "sampling": json_values,
                                                                           "messages": json_values}).map(_line)))
def test_a_serve_request_line_is_a_request_or_an_error(line):
    try:
        _bounded(parse_request, line)
    except RequestError as e:
        assert e.message and e.hint


# -- the same through the real engine process, fewer examples (each one starts Python) ----------------

@THROUGH_THE_ENGINE
@given(data=spec_texts)
def test_validate_answers_any_file_with_a_verdict(tmp_path_factory, data):
    engine = Engine(tmp_path_factory.mktemp("ws"))
    path = engine.workspace / "spec.yaml"
    path.write_bytes(data)
    result = subprocess.run(engine.command("validate", str(path)), capture_output=True, text=True, timeout=60,
                            env=engine.env)
    assert result.returncode in (0, 2) and "Traceback" not in result.stderr, result.stderr[-2000:]


@THROUGH_THE_ENGINE
@given(status=status_files, lines=event_lines)
def test_list_show_attach_answer_any_run_folder(tmp_path_factory, status, lines):
    engine = Engine(tmp_path_factory.mktemp("ws"))
    good = RunDirectory.create(engine.workspace, "good", "kind: pretrain\n", RunStatus(state="completed"))
    assert good.exists()
    run = RunDirectory.create(engine.workspace, "fuzzed", "kind: pretrain\n")
    run.status_path.write_bytes(status)
    run.events_path.write_bytes(b"\n".join(lines))
    listing = engine.run("list", "--json")
    assert listing.returncode == 0, listing.stderr[-2000:]
    assert {r["run_id"] for r in json.loads(listing.stdout)} == {"good", "fuzzed"}
    for command in (("show", "fuzzed"), ("attach", "fuzzed", "--json")):
        result = engine.run(*command)
        assert result.returncode == 0 and "Traceback" not in result.stderr, (command, result.stderr[-2000:])
