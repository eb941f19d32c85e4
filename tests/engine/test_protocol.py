import json

from hypothesis import given, strategies as st

from engine.protocol import (PROTOCOL_VERSION, EventReader, EventWriter, ProtocolMismatch, check_version,
                             json_lines_sink, read_events)


def test_writer_numbers_events_without_gaps_and_writes_file_and_sink(tmp_path, capsys):
    seen = []
    writer = EventWriter(tmp_path / "events.jsonl", [seen.append])
    writer.log("info", "hello")
    writer.metric(1, "train", {"loss": 2.5})
    writer.finished("completed", {"step": 1})
    stored = list(read_events(tmp_path / "events.jsonl"))
    assert [e["seq"] for e in stored] == [0, 1, 2]
    assert stored == seen
    assert all(e["v"] == PROTOCOL_VERSION and "t" in e for e in stored)


def test_writer_stores_the_files_of_its_workspace_relative_to_it(tmp_path):
    run = tmp_path / "runs" / "r1"
    (run / "output" / "model").mkdir(parents=True)
    writer = EventWriter(run / "events.jsonl", workspace=tmp_path)
    writer.started(run_id="r1", spec={"model": {"path": str(tmp_path / "base")}}, host="h", pid=1,
                   engine_version="0", devices=[])
    writer.artifact("model", str(run / "output" / "model"), {"html": str(run / "report.html"), "rows": 3})
    writer.log("info", f"Saved {run / 'output' / 'model'}")  # prose stays as written
    writer.finished("completed", {"model": str(run / "output" / "model"), "outside": "/elsewhere/x"})
    started, artifact, log, finished = read_events(run / "events.jsonl")
    assert started["spec"]["model"]["path"] == "./base"
    assert artifact["path"] == "runs/r1/output/model" and artifact["meta"] == {"html": "runs/r1/report.html", "rows": 3}
    assert log["message"] == f"Saved {run / 'output' / 'model'}"
    assert finished["summary"] == {"model": "runs/r1/output/model", "outside": "/elsewhere/x"}


def test_writer_continues_seq_after_a_truncated_tail(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer.log("info", "a")
    writer.log("info", "b")
    writer.close()
    with open(path, "a") as f:
        f.write('{"v":1,"seq":2,"t":1,"type":"lo')  # killed mid-write
    writer = EventWriter(path)
    writer.log("info", "c")
    writer.close()
    assert [e["seq"] for e in read_events(path)] == [0, 1, 2]
    assert list(read_events(path))[-1]["message"] == "c"


def test_non_finite_numbers_become_null():
    seen = []
    EventWriter(None, [seen.append]).metric(3, "train", {"loss": float("nan"), "x": float("inf")})
    assert seen[0]["values"] == {"loss": None, "x": None}


def test_json_lines_sink_writes_one_parseable_line(tmp_path):
    path = tmp_path / "out.txt"
    with open(path, "w") as stream:
        EventWriter(None, [json_lines_sink(stream)]).sample(5, "p", "multi\nline")
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["text"] == "multi\nline"


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_reader_handles_any_chunking(cuts):
    events = [{"v": 1, "seq": i, "t": 0, "type": "metric", "step": i, "split": "train", "values": {"loss": 1.0}}
              for i in range(20)]
    data = ("library noise on stdout\n" + "".join(json.dumps(e) + "\n" for e in events)).encode()
    reader, got, pos, i = EventReader(), [], 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        got += reader.feed(data[pos:pos + step])
        pos, i = pos + step, i + 1
    got += reader.flush()
    assert [e["seq"] for e in got] == list(range(20))


def test_reader_resumes_from_seq_and_drops_duplicates():
    lines = b"".join(json.dumps({"v": 1, "seq": i, "t": 0, "type": "heartbeat"}).encode() + b"\n" for i in range(6))
    reader = EventReader(next_seq=3)
    assert [e["seq"] for e in reader.feed(lines)] == [3, 4, 5]
    assert reader.feed(lines) == []  # the same stream again: nothing new


def test_reader_tolerates_truncated_last_line():
    reader = EventReader()
    assert reader.feed(b'{"v":1,"seq":0,"t":0,"type":"heartbeat"}\n{"v":1,"seq":1,') != []
    assert reader.flush() == []


def test_version_mismatch_is_explained():
    check_version({"v": PROTOCOL_VERSION})
    for v, word in ((PROTOCOL_VERSION + 1, "studio is too old"), (0, "engine is too old")):
        try:
            check_version({"v": v})
        except ProtocolMismatch as e:
            assert word in str(e)
        else:
            raise AssertionError("no mismatch raised")
