"""A clean job split into shards (`shards: N`: N local processes, then one global deduplication stage)
keeps exactly what the one-process run keeps, through the real engine process, on a corpus of a few
thousand documents with near duplicates planted across shards."""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.engine.conftest import Engine, RunPool, pooled, start_pooled

WORDS = ("the of and to in that with have be is for on as by this it from at an are was which not or "
         "data model parser returns value list error file name buffer stream token record index "
         "handler queue builder reader writer cache socket thread window option default result").split()
DOCUMENTS, BATCH, SHARDS = 3000, 100, 4


def prose(rng: random.Random, sentences: int = 8) -> str:
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(9, 14))).capitalize() + "."
                    for _ in range(sentences))


def reworded(rng: random.Random, text: str) -> str:
    """`text` with one word changed: a near duplicate (word 5-gram Jaccard about 0.9)."""
    words = text.split()
    i = rng.randrange(len(words) - 1)
    words[i] = rng.choice(WORDS)
    return " ".join(words)


def write_corpus(path: Path) -> dict:
    """DOCUMENTS lines: fresh prose, and copies planted in later batches (so, with SHARDS shards, mostly in
    other shards): near duplicates, chains of them (a copy of a copy, which may be judged against either
    depending on what was kept before), and exact copies in another case and spacing."""
    rng = random.Random(23)
    docs: list[str] = []
    planted = 0
    while len(docs) < DOCUMENTS:
        if len(docs) > 2 * BATCH and rng.random() < 0.15:
            source = docs[rng.randrange(len(docs) - BATCH)]
            kind = rng.random()
            docs.append(source.upper().replace(" ", "  ") if kind < 0.2 else reworded(rng, source))
            planted += 1
        else:
            docs.append(prose(rng))
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    return {"planted": planted}


def clean_spec(corpus: Path, **fields) -> dict:
    return {"kind": "clean", "name": "shards", "input": {"sources": [str(corpus)]}, "batch_documents": BATCH,
            **fields}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("shard-corpus") / "corpus.jsonl"
    return {"path": path, **write_corpus(path)}


def start_run(spec: dict):
    def job(engine: Engine):
        return engine, engine.run("run", str(engine.write_spec(spec)), "--json")
    return job


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, corpus) -> RunPool:
    pool = RunPool(tmp_path_factory.mktemp("shard-runs"))
    start_pooled(request, pool, corpus=corpus["path"])
    yield pool
    pool.close()


def finished(runs: RunPool, key: str) -> tuple[Engine, Path, list[dict]]:
    engine, result = runs.result(key)
    assert result.returncode == 0, result.stderr[-3000:]
    events = engine.stdout_events(result.stdout)
    assert events[-1]["status"] == "completed", events[-1]
    return engine, engine.only_run(), events


def fates(run_dir: Path) -> list[tuple]:
    db = sqlite3.connect(run_dir / "fates.sqlite")
    try:
        return db.execute("SELECT seq, id, fate, step, rule, duplicate_of, similarity FROM fates ORDER BY seq").fetchall()
    finally:
        db.close()


def batch_of(doc_id: str) -> int:
    return (int(doc_id.rsplit(":", 1)[1]) - 1) // BATCH


@pooled("one", lambda f: start_run(clean_spec(f.corpus, workers=1)))
@pooled("sharded", lambda f: start_run(clean_spec(f.corpus, shards=SHARDS)))
def test_a_sharded_clean_keeps_the_same_documents_as_one_process(runs, corpus):
    _, one_dir, _ = finished(runs, "one")
    _, sharded_dir, events = finished(runs, "sharded")
    assert any(f"{SHARDS} shard processes" in e.get("message", "") for e in events if e["type"] == "log")
    assert not (sharded_dir / "shards").exists()  # the shards' intermediate files are gone

    one = pq.read_table(one_dir / "output" / "dataset").to_pylist()
    sharded = pq.read_table(sharded_dir / "output" / "dataset").to_pylist()
    assert [r["id"] for r in sharded] == [r["id"] for r in one]
    assert sharded == one
    assert fates(sharded_dir) == fates(one_dir)  # each removed document names the same earlier one

    report_one = json.loads((one_dir / "output" / "report.json").read_text())
    report = json.loads((sharded_dir / "output" / "report.json").read_text())
    assert report["input"] == report_one["input"] and report["steps"] == report_one["steps"]
    assert report["input"]["documents"] == DOCUMENTS
    removed = {row["step"]: row["removed"] for row in report["steps"]}
    assert removed["near_dedup"] + removed["exact_dedup"] >= 0.9 * corpus["planted"]

    db = sqlite3.connect(sharded_dir / "fates.sqlite")
    pairs = db.execute("SELECT f.id, k.id FROM fates f JOIN fates k ON k.seq = f.duplicate_of "
                       "WHERE f.step = 'near_dedup'").fetchall()
    db.close()
    across = [(a, b) for a, b in pairs if batch_of(a) % SHARDS != batch_of(b) % SHARDS]
    assert len(across) > 100  # most near duplicates were found in another shard than their original


def broken_corpus(engine: Engine) -> Path:
    path = engine.workspace / "broken.jsonl"
    rng = random.Random(5)
    lines = [json.dumps({"text": prose(rng)}) for _ in range(250)]
    lines[180] = "{not json"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def start_broken(shards: int):
    def job(engine: Engine):
        spec = clean_spec(broken_corpus(engine), shards=shards, input={"sources": [str(broken_corpus(engine))],
                                                                        "on_bad_record": "stop"})
        return engine, engine.run("run", str(engine.write_spec(spec)), "--json")
    return job


@pooled("broken-sharded", lambda f: start_broken(3))
def test_a_shard_that_meets_a_broken_record_fails_the_run_with_the_records_line(runs):
    engine, result = runs.result("broken-sharded")
    assert result.returncode != 0
    error = engine.stdout_events(result.stdout)[-1]["error"]
    assert error["type"] == "data_error"
    assert "broken.jsonl, line 181: not valid JSON" in error["message"], error
    assert "on_bad_record" in error["hint"]


def test_workers_and_shards_together_are_refused_naming_both(engine, corpus):
    result = engine.run("validate", str(engine.write_spec(clean_spec(corpus["path"], shards=2, workers=2))))
    assert result.returncode == 2
    assert "workers (2) and shards (2)" in result.stdout + result.stderr
