"""The clean job through the real engine process: outputs, fates, the report, the dry run, the demo
stage, and bad input (broken lines, missing fields, binary files, mixed encodings, empty input).

The module's runs are started ahead of their tests by a RunPool, side by side (each is mostly
interpreter start-up); each test checks its own run. The cancel test runs its engine itself."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.data.sources import load_documents
from engine.demo import demo_clean_spec_data
from engine.specs.corpus import DataSpec
from tests.engine.conftest import Engine, RunPool, pooled, start_pooled

WORDS = ("the of and to in that with have be is for on as by this it from at an are was which not or "
         "data model parser returns value list error file name buffer stream token record index "
         "handler queue builder reader writer cache socket thread window option default result").split()


def prose(rng: random.Random, sentences: int = 8) -> str:
    out = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(9, 14))]
        out.append(" ".join(words).capitalize() + ".")
    return " ".join(out)


@pytest.fixture(scope="module")
def dirty_corpus(tmp_path_factory) -> dict:
    """A JSONL file with planted problems, and what each line is (read only: the module's runs share it)."""
    rng = random.Random(1)
    docs = [prose(rng) for _ in range(40)]
    original = docs[3]
    words = original.split()
    words[-1] = "socket."  # the last word changed: a near duplicate (5-gram Jaccard ~0.97)
    lines = [json.dumps({"text": d}) for d in docs]
    lines.append(json.dumps({"text": " ".join(words)}))                            # line 41: near dup of line 4
    lines.append(json.dumps({"text": docs[7].upper().replace(" ", "  ")}))         # line 42: exact dup (case/spacing)
    lines.append(json.dumps({"text": "Too short to keep."}))                       # line 43: gopher.min_words
    lines.append(json.dumps({"text": prose(rng) + " Write to jane.doe@example.org or call +44 20 7946 0958."}))  # 44
    lines.append("{not json")                                                      # line 45: broken
    lines.append(json.dumps({"body": "no text field here"}))                       # line 46: missing field
    lines.append(json.dumps({"text": prose(rng).replace("the", "thé", 3).encode().decode("latin-1")}))  # 47 mojibake
    path = tmp_path_factory.mktemp("dirty") / "dirty.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"path": path, "near": "dirty.jsonl:41", "near_of": "dirty.jsonl:4", "exact": "dirty.jsonl:42",
            "exact_of": "dirty.jsonl:8", "short": "dirty.jsonl:43", "pii": "dirty.jsonl:44",
            "mojibake": "dirty.jsonl:47"}


def clean_spec(*sources: str, **sections) -> dict:
    spec = {"kind": "clean", "name": "cl", "input": {"sources": list(sources)}, "workers": 2, "batch_documents": 7}
    spec.update(sections)
    return spec


def start_run(make_spec):
    """A RunPool job: write the inputs and the spec that `make_spec(workspace)` gives, then run it."""
    def job(engine: Engine):
        return engine, engine.run("run", str(engine.write_spec(make_spec(engine.workspace))), "--json")
    return job


def run_clean(engine, result) -> tuple[Path, list[dict]]:
    assert result.returncode == 0, result.stderr[-3000:]
    events = engine.stdout_events(result.stdout)
    assert events[-1]["status"] == "completed", events[-1]
    return engine.only_run(), events


# Each bad input, and what the run's error must say about it.
BAD_INPUTS = {"missing-field": "no field 'text' (fields: 'content', 'meta')", "empty": "The input is empty",
              "binary-only": "binary file", "no-such-file": "does not exist"}


def bad_input(workspace: Path, case: str) -> Path:
    """The input file of a bad-input case (written, but for no-such-file)."""
    if case == "missing-field":
        path = workspace / "a.jsonl"
        path.write_text('{"content": "x", "meta": 1}\n', encoding="utf-8")
    elif case == "empty":
        path = workspace / "empty.jsonl"
        path.write_text("\n\n", encoding="utf-8")
    elif case == "binary-only":
        path = workspace / "image.txt"
        path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    else:
        path = workspace / "missing.jsonl"
    return path


# Lines that are valid JSON but no record can be (line numbers of hostile_file).
HOSTILE_LINES = {3: "nested too deeply", 4: "holds a number of 5,000 digits", 5: "holds the escape \\ud800"}


def hostile_file(workspace: Path) -> Path:
    """Prose on lines 1, 2 and 6, between a record nested 100,000 levels deep, one with a 5,000-digit
    number and one with half a surrogate pair."""
    rng = random.Random(7)
    lines = [json.dumps({"text": prose(rng)}) for _ in range(2)]
    lines += ['{"text": "deep", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}",
              '{"text": "big", "n": ' + "9" * 5000 + "}",
              '{"text": "half \\ud800 a pair"}',
              json.dumps({"text": prose(rng)})]
    path = workspace / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def line_corpus(workspace: Path) -> Path:
    """A .txt corpus written one document a line: 300 documents of 60 words."""
    rng = random.Random(3)
    path = workspace / "lines.txt"
    path.write_text("".join(" ".join(rng.choice(WORDS) for _ in range(60)).capitalize() + ".\n" for _ in range(300)),
                    encoding="utf-8")
    return path


def lines_spec(workspace: Path, txt_documents: str | None) -> dict:
    source = {"sources": [str(line_corpus(workspace))]} | ({"txt_documents": txt_documents} if txt_documents else {})
    return clean_spec(input=source, quality={"gopher": {"max_words": 5000}}, near_dedup={"enabled": False})


def mixed_folder_spec(workspace: Path) -> dict:
    rng = random.Random(5)
    folder = workspace / "mixed"
    folder.mkdir()
    latin = prose(rng) + " Café crème, naïve façade."
    lines = [json.dumps({"text": prose(rng)}, ensure_ascii=False).encode() for _ in range(3)]
    lines.append(json.dumps({"text": latin}, ensure_ascii=False).encode("latin-1"))  # one line in Latin-1
    (folder / "a.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (folder / "b.txt").write_bytes("\ufeff".encode() + prose(rng).encode())           # UTF-8 with a BOM
    (folder / "c.txt").write_bytes(prose(rng).encode("utf-16"))                       # UTF-16 with its BOM
    (folder / "d.txt").write_bytes(b"\x00\x01\x02\xff" * 500)                          # binary
    return clean_spec(str(folder), exact_dedup={"enabled": False}, near_dedup={"enabled": False})


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, dirty_corpus) -> RunPool:
    pool = RunPool(tmp_path_factory.mktemp("clean-runs"))
    start_pooled(request, pool, dirty=dirty_corpus["path"])
    yield pool
    pool.close()


def fate(engine, run_dir: Path, doc_id: str) -> dict:
    result = engine.run("show", run_dir.name, "--doc", doc_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


@pooled("dirty", lambda f: start_run(lambda workspace: clean_spec(str(f.dirty))))
def test_clean_run_writes_the_dataset_report_and_every_documents_fate(runs, dirty_corpus):
    engine, result = runs.result("dirty")
    run_dir, events = run_clean(engine, result)
    output = run_dir / "output"

    table = pq.read_table(output / "dataset" / "data-00000.parquet")
    assert table.column_names == ["text", "id", "source"]
    rows = table.to_pylist()
    ids = [r["id"] for r in rows]
    assert ids == sorted(ids, key=lambda i: int(i.split(":")[1]))  # reading order kept
    assert dirty_corpus["near_of"] in ids and dirty_corpus["near"] not in ids
    assert dirty_corpus["exact_of"] in ids and dirty_corpus["exact"] not in ids
    assert dirty_corpus["short"] not in ids
    redacted = next(r["text"] for r in rows if r["id"] == dirty_corpus["pii"])
    assert "<EMAIL>" in redacted and "<PHONE>" in redacted and "jane.doe" not in redacted
    repaired = next(r["text"] for r in rows if r["id"] == dirty_corpus["mojibake"])
    assert "thé" in repaired and "Ã" not in repaired

    report = json.loads((output / "report.json").read_text())
    assert report["input"]["documents"] == 45 and report["input"]["skipped"] == 2
    wheres = [p["where"] for p in report["input"]["skipped_examples"]]
    assert any(w.endswith("line 45") for w in wheres) and any(w.endswith("line 46") for w in wheres)
    steps = {row["step"]: row for row in report["steps"]}
    assert steps["near_dedup"]["removed"] == 1 and steps["exact_dedup"]["removed"] == 1
    assert steps["quality"]["rules"]["quality.gopher.min_words"]["removed"] >= 1
    assert steps["pii"]["changes"]["pii.email"] == 1 and steps["repair"]["modified"] >= 1
    assert report["output"]["documents"] == len(rows)
    assert sum(report["histograms"]["before"]) == 45 and sum(report["histograms"]["after"]) == len(rows)
    clusters = {c["kept"]["id"]: c for c in report["clusters"]}
    near = clusters[dirty_corpus["near_of"]]
    assert near["members"][0]["id"] == dirty_corpus["near"] and near["kept"]["text"] and near["members"][0]["text"]
    assert (output / "report.html").read_text().count("<h3>") >= 2
    assert (output / "removed" / "quality.gopher.min_words.jsonl").exists()

    removed = fate(engine, run_dir, dirty_corpus["near"])
    assert removed["fate"] == "removed" and removed["step"] == "near_dedup"
    assert removed["duplicate_of_id"] == dirty_corpus["near_of"] and "Jaccard" in removed["reason"]
    assert fate(engine, run_dir, dirty_corpus["pii"])["fate"] == "modified"
    text_view = engine.run("show", run_dir.name, "--doc", dirty_corpus["short"])
    assert "REMOVED" in text_view.stdout and "quality.gopher.min_words" in text_view.stdout
    unknown = engine.run("show", run_dir.name, "--doc", "nope:1")
    assert unknown.returncode == 1 and "no document with id 'nope:1'" in unknown.stderr

    kinds = {e["kind"] for e in events if e["type"] == "artifact"}
    assert kinds == {"dataset", "report"}
    progress = [e for e in events if e["type"] == "progress"]
    assert progress and progress[-1]["done"] == progress[-1]["total"] and progress[-1]["unit"] == "MB"
    metric = next(e for e in events if e["type"] == "metric")
    assert metric["values"]["documents_in"] == 45 and metric["values"]["documents_out"] == len(rows)


@pooled("dirty-jsonl", lambda f: start_run(lambda workspace: clean_spec(str(f.dirty), output={"format": "jsonl"})))
def test_the_cleaned_dataset_feeds_the_training_corpus_loader(runs):
    run_dir, _ = run_clean(*runs.result("dirty-jsonl"))
    dataset = run_dir / "output" / "dataset"
    assert (dataset / "data-00000.jsonl").exists()
    loaded = load_documents(DataSpec(sources=[str(dataset)], eval_fraction=0.0), seed=0)
    report = json.loads((run_dir / "output" / "report.json").read_text())
    assert len(loaded["train"]) == report["output"]["documents"]


def test_dry_run_shows_what_each_step_would_remove_and_why(engine, dirty_corpus):
    spec = engine.write_spec(clean_spec(str(dirty_corpus["path"])))
    result = engine.run("preview", str(spec), "--json", "--sample", "100")
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    assert preview["sample"] == 45 and preview["problem_count"] == 2
    by_id = {d["id"]: d for d in preview["documents"]}
    near = by_id[dirty_corpus["near"]]
    assert near["fate"] == "removed" and near["step"] == "near_dedup" and near["duplicate_of"] == dirty_corpus["near_of"]
    assert by_id[dirty_corpus["short"]]["reason"] and "quality.gopher.min_words" in by_id[dirty_corpus["short"]]["reason"]
    assert by_id[dirty_corpus["pii"]]["fate"] == "modified" and "<EMAIL>" in by_id[dirty_corpus["pii"]]["final_text"]
    assert [row["step"] for row in preview["steps"]] == ["repair", "normalize", "quality", "pii", "exact_dedup",
                                                         "near_dedup"]
    assert not list((engine.workspace / "runs").glob("*")) if (engine.workspace / "runs").exists() else True

    text = engine.run("preview", str(spec), "--sample", "100")
    assert "would remove" in text.stdout and "near_dedup" in text.stdout


@pooled("broken-stop", lambda f: start_run(lambda workspace: clean_spec(
    str(f.dirty), input={"sources": [str(f.dirty)], "on_bad_record": "stop"})))
def test_broken_records_stop_the_run_when_the_spec_says_so(runs):
    engine, result = runs.result("broken-stop")
    assert result.returncode == 1
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    assert "dirty.jsonl, line 45: not valid JSON" in error["message"] and "on_bad_record" in error["hint"]
    assert not (engine.only_run() / "output" / "dataset").exists()


@pooled(lambda f, case: f"bad-{case}",
        lambda f, case: start_run(lambda workspace: clean_spec(str(bad_input(workspace, case)))))
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_fails_with_a_message_naming_the_problem(runs, case):
    _, result = runs.result(f"bad-{case}")
    expected = BAD_INPUTS[case]
    if case == "no-such-file":
        assert result.returncode == 1 and expected in result.stdout
        return
    assert result.returncode == 1, result.stdout[-2000:]
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    assert expected in error["message"] and error["hint"]


@pooled("hostile-skip", lambda f: start_run(lambda workspace: clean_spec(str(hostile_file(workspace)))))
def test_records_no_reader_can_hold_are_skipped_and_listed(runs):
    run_dir, events = run_clean(*runs.result("hostile-skip"))
    report = json.loads((run_dir / "output" / "report.json").read_text())
    assert report["input"]["documents"] == 3 and report["input"]["skipped"] == 3
    skipped = {int(p["where"].rsplit(" ", 1)[1]): p["problem"] for p in report["input"]["skipped_examples"]}
    assert skipped.keys() == HOSTILE_LINES.keys()
    assert all(HOSTILE_LINES[line] in problem for line, problem in skipped.items()), skipped


@pooled("hostile-stop", lambda f: start_run(lambda workspace: clean_spec(
    input={"sources": [str(hostile_file(workspace))], "on_bad_record": "stop"})))
def test_a_record_no_reader_can_hold_stops_the_run_with_its_line_when_the_spec_says_so(runs):
    engine, result = runs.result("hostile-stop")
    assert result.returncode == 1
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    assert error["type"] == "data_error", error
    assert "hostile.jsonl, line 3: nested too deeply" in error["message"] and "on_bad_record" in error["hint"]


@pooled("txt-whole", lambda f: start_run(lambda workspace: lines_spec(workspace, None)))
def test_a_run_that_keeps_nothing_fails_and_says_which_rules_removed_what(runs):
    engine, result = runs.result("txt-whole")
    assert result.returncode == 1, result.stdout[-2000:]
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    assert error["message"].startswith("Nothing is left after cleaning: the one document read was removed: "
                                       "quality.gopher.max_words removed 1 (e.g. lines.txt: 18000 words")
    assert "input.txt_documents" in error["hint"] and "line" in error["hint"]
    assert not (engine.only_run() / "output" / "dataset").exists()


@pooled("txt-lines", lambda f: start_run(lambda workspace: lines_spec(workspace, "line")))
def test_a_txt_corpus_of_a_document_a_line_is_read_line_by_line(runs):
    run_dir, _ = run_clean(*runs.result("txt-lines"))
    rows = pq.read_table(run_dir / "output" / "dataset" / "data-00000.parquet").to_pylist()
    assert len(rows) == 300 and rows[0]["id"] == "lines.txt:1" and rows[-1]["id"] == "lines.txt:300"
    assert all(len(row["text"].split()) == 60 for row in rows)


@pooled("mixed", lambda f: start_run(mixed_folder_spec))
def test_mixed_encodings_and_a_binary_file_in_a_folder_are_repaired_or_skipped(runs):
    run_dir, _ = run_clean(*runs.result("mixed"))
    report = json.loads((run_dir / "output" / "report.json").read_text())
    assert report["input"]["documents"] == 6 and report["input"]["skipped"] == 1
    assert "binary" in report["input"]["skipped_examples"][0]["problem"]
    assert {"repair.bom", "repair.utf16"} <= set(report["input"]["repairs"])
    texts = pq.read_table(run_dir / "output" / "dataset" / "data-00000.parquet").column("text").to_pylist()
    assert any("Café crème, naïve façade." in t for t in texts)


@pooled("demo", lambda f: start_run(lambda workspace: demo_clean_spec_data()))
def test_the_demo_cleaning_stage_finds_the_real_duplicates_of_the_standard_library(runs):
    engine, result = runs.result("demo")
    run_dir, _ = run_clean(engine, result)
    report = json.loads((run_dir / "output" / "report.json").read_text())
    pairs = {(c["kept"]["id"], m["id"]) for c in report["clusters"] for m in c["members"]}
    assert ("_py_abc:ABCMeta", "abc:ABCMeta") in pairs  # exact: the pure-Python twin of abc
    assert ("bz2:BZ2File.seek", "lzma:LZMAFile.seek") in pairs  # near: the same docstring, reworded
    steps = {row["step"]: row for row in report["steps"]}
    assert steps["near_dedup"]["removed"] >= 20 and steps["exact_dedup"]["removed"] >= 100
    assert report["output"]["documents"] > 0.6 * report["input"]["documents"]
    assert fate(engine, run_dir, "lzma:LZMAFile.seek")["duplicate_of_id"] == "bz2:BZ2File.seek"


def test_a_cancelled_clean_run_stops_its_workers_and_leaves_no_half_written_dataset(engine, tmp_path):
    import psutil

    rng = random.Random(9)
    path = tmp_path / "big.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for _ in range(60_000):
            f.write(json.dumps({"text": prose(rng)}) + "\n")
    spec = clean_spec(str(path), batch_documents=200)
    result = engine.run("run", str(engine.write_spec(spec)), "--detach")
    info = json.loads(result.stdout)
    run_dir = engine.workspace / "runs" / info["run_id"]
    engine.wait_for(run_dir, lambda e: e["type"] == "progress" and e["stage"] == "clean" and e["done"] > 0)
    workers = psutil.Process(info["pid"]).children(recursive=True)
    assert len(workers) >= 2  # spec.workers: 2 processes do the per-document steps
    assert engine.run("cancel", info["run_id"]).returncode == 0
    events = engine.wait_for(run_dir, lambda e: e["type"] == "finished", timeout=60)
    assert events[-1]["status"] == "cancelled"
    assert not (run_dir / "output" / "dataset").exists()
    assert not list((run_dir / "output").glob(".dataset.tmp-*"))
    psutil.wait_procs(workers, timeout=10)
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
