"""Fuzzing every reader of data a user brings: arbitrary bytes and hostile structures (deep nesting,
numbers too long to convert, half surrogate pairs, NaN, cut files, odd line endings, wrong types in
every field) as .jsonl .json .csv .parquet .txt files, through the one reader (engine/data/reader.py)
and the readers above it — fine-tuning records, preference pairs, the cleaning reader, the
pretraining corpus — and the label import of preference and candidate files.

Every outcome is a clear message: the records read, broken ones skipped and listed with where they
are, or a DataError with a message that names the file and a hint. Anything else (a traceback, a
hang past the deadline) fails. Bounded in time: a fixed number of examples each, a deadline per
example; and in memory: reading a hostile file may take a small multiple of its size, no more."""

from __future__ import annotations

import json
import os
import string
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.data.reader import read_records
from engine.errors import DataError

SUFFIXES = (".jsonl", ".json", ".csv", ".txt", ".parquet")
# FUZZ_N=2000 (say) hunts with more examples, drawn afresh each run; without it the examples are the same every run.
HUNT = os.environ.get("FUZZ_N")
FUZZ = settings(max_examples=int(HUNT or 60), deadline=timedelta(seconds=20), suppress_health_check=list(HealthCheck),
                derandomize=not HUNT)

# -- what a user's file may hold ------------------------------------------------------------------------

# JSON text no well-behaved writer produces, but the json module (or a careless one) accepts.
HOSTILE_JSON = st.one_of(
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a": ' * n + "1" + "}" * n),
    st.integers(4000, 12000).map(lambda n: "9" * n),
    st.integers(4000, 12000).map(lambda n: "-0." + "1" * n),
    st.sampled_from(['"\\ud800"', '"x\\udfff"', '{"\\udc00": 1}', '"\\ud83d\\ude00"', "NaN", "-Infinity",
                     "1e999999", '"\\u0000"', "null", "true", "[]", "{}", '""', '"<image>"']),
)
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.text(max_size=12), children, max_size=4)),
    max_leaves=12,
).map(json.dumps) | HOSTILE_JSON
# The fields the readers look for, so that fuzzed records reach past format detection.
FIELDS = ("text", "messages", "conversations", "instruction", "input", "output", "prompt", "completion", "chosen",
          "rejected", "role", "content", "from", "value", "label", "images", "tools", "candidates", "id", "meta")


@st.composite
def json_record(draw) -> str:
    """One JSON value as text: usually an object whose fields are the readers' own, holding anything."""
    if draw(st.integers(0, 5)) == 0:
        return draw(JSON_VALUES)
    keys = draw(st.lists(st.sampled_from(FIELDS) | st.text(max_size=8), min_size=1, max_size=5, unique=True))
    fields = []
    for key in keys:
        value = draw(JSON_VALUES)
        if key in ("messages", "conversations", "chosen", "rejected", "prompt", "candidates") and draw(st.booleans()):
            turns = draw(st.lists(st.tuples(st.sampled_from(["user", "assistant", "system", "human", "gpt", "tool",
                                                             "function_call", "observation", "x"]), JSON_VALUES),
                                  max_size=4))
            value = "[" + ", ".join(f'{{"role": "{r}", "from": "{r}", "content": {v}, "value": {v}}}'
                                    for r, v in turns) + "]"
        fields.append(f"{json.dumps(key)}: {value}")
    return "{" + ", ".join(fields) + "}"


@st.composite
def hostile_file(draw) -> tuple[str, bytes]:
    """(suffix, bytes): arbitrary bytes, or records of the suffix's format built from hostile parts,
    with odd line endings, a BOM, blank lines, or cut short."""
    suffix = draw(st.sampled_from(SUFFIXES))
    if suffix == ".parquet" or draw(st.integers(0, 4)) == 0:
        return suffix, (draw(parquet_bytes()) if suffix == ".parquet" and draw(st.booleans())
                        else draw(st.binary(max_size=3000)))
    records = draw(st.lists(json_record(), min_size=0, max_size=6))
    end = draw(st.sampled_from(["\n", "\r\n", "\n\n", "\r"]))
    if suffix == ".json" and draw(st.booleans()):
        text = draw(st.sampled_from(["[{}]", '{{"data": [{}]}}'])).format(",\n".join(records))
    elif suffix == ".csv":
        header = ",".join(draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4)))
        cells = st.text(alphabet=string.printable + "\"\u00e9\u2028\x00", max_size=40)
        rows = draw(st.lists(st.lists(cells, max_size=5), max_size=6))
        text = end.join([header] + [",".join(row) for row in rows])
    elif suffix == ".txt":
        text = end.join(draw(st.lists(st.text(max_size=80), max_size=8)))
    else:
        text = end.join(records)
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if data and draw(st.integers(0, 3)) == 0:
        data = data[:draw(st.integers(0, len(data)))]  # cut short, maybe inside a character
    return suffix, data


@st.composite
def parquet_bytes(draw) -> bytes:
    """A Parquet file of odd columns: nested lists, structs, nulls, binary, numbers where text belongs."""
    rows = draw(st.integers(0, 5))
    columns = {}
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=4, unique=True)):
        kind = draw(st.sampled_from(["text", "null", "int", "binary", "nested", "struct"]))
        if kind == "text":
            columns[name] = pa.array(draw(st.lists(st.text(max_size=20) | st.none(), min_size=rows, max_size=rows)))
        elif kind == "null":
            columns[name] = pa.nulls(rows)
        elif kind == "int":
            columns[name] = pa.array(draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=rows, max_size=rows)))
        elif kind == "binary":
            columns[name] = pa.array(draw(st.lists(st.binary(max_size=10), min_size=rows, max_size=rows)))
        elif kind == "nested":
            depth = draw(st.integers(1, 30))
            value: object = "x"
            for _ in range(depth):
                value = [value]
            columns[name] = pa.array([value] * rows)
        else:
            columns[name] = pa.array([{"role": "user", "content": draw(st.text(max_size=10))}] * rows)
    with TemporaryDirectory() as folder:
        path = Path(folder) / "t.parquet"
        pq.write_table(pa.table(columns), path)
        return path.read_bytes()


# -- the readers ------------------------------------------------------------------------------------

def read_file(path: Path) -> None:
    problems: list[tuple[str, str, str]] = []
    for txt_documents in ("file", "paragraph", "line"):
        read_records(path, on_problem=lambda *problem: problems.append(problem), txt_documents=txt_documents)
    assert all(where.startswith(str(path)) and problem for where, problem, _ in problems), problems
    read_records(path)  # the first broken record raises, named


def finetune_records(path: Path) -> None:
    from engine.finetune.records import load_records
    from engine.specs.finetune import FinetuneData

    load_records(FinetuneData(sources=[str(path)], txt_documents="line"), seed=0)


def preference_pairs(path: Path) -> None:
    from engine.rlhf.preferences import load_pairs

    load_pairs([str(path)], None, 0.2, 0)


def cleaning_reader(path: Path) -> None:
    from engine.cleaning.reader import CorpusReader, Problems
    from engine.specs.clean import CleanInput, RepairStep

    problems = Problems(stop=False)
    for document in CorpusReader(CleanInput(sources=[str(path)], txt_documents="paragraph"), RepairStep(), problems):
        assert isinstance(document.text, str)
        document.text.encode("utf-8")  # what the cleaned dataset is written as
    assert all(p["where"].startswith(str(path)) for p in problems.examples), problems.examples


def pretraining_corpus(path: Path) -> None:
    from engine.data.sources import load_documents
    from engine.specs.corpus import DataSpec

    load_documents(DataSpec(sources=[str(path)], eval_fraction=0.2), seed=0)


def label_import(path: Path) -> None:
    from engine.labeling.batch import import_batch
    from engine.labeling.formats import import_preferences
    from engine.labeling.store import LabelStore

    store = LabelStore(path.parent / "store.db")
    try:
        store.create_queue("pairs")
        store.create_queue("batch")
        report = import_preferences(store, "pairs", path)
        assert all(p.where.startswith(path.name) for p in report.malformed + report.duplicates), report
        batch = import_batch(store, "batch", path)
        assert all(p.where.startswith(path.name) for p in batch.malformed + batch.skipped), batch
    finally:
        store.close()


READERS: dict[str, Callable[[Path], None]] = {
    "reader": read_file, "finetune": finetune_records, "preferences": preference_pairs, "clean": cleaning_reader,
    "pretrain": pretraining_corpus, "labels": label_import}


def outcome(reader: Callable[[Path], None], path: Path) -> str:
    """"read", or the DataError's message; anything else propagates and fails the test."""
    try:
        reader(path)
    except DataError as error:
        assert error.message and error.hint, error
        assert path.name in error.message + error.hint, error  # located: the file is named
        assert "Traceback" not in error.message
        return error.message
    return "read"


def fuzz(reader: Callable[[Path], None], suffix: str, data: bytes) -> None:
    with TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes(data)
        outcome(reader, path)


@pytest.mark.parametrize("reader", list(READERS))
@FUZZ
@given(file=hostile_file())
def test_every_reader_names_or_skips_whatever_a_file_holds(reader, file):
    fuzz(READERS[reader], *file)


@settings(FUZZ, max_examples=10)
@given(depth=st.integers(50_000, 400_000), width=st.integers(1, 3))
def test_memory_stays_within_a_small_multiple_of_the_file(depth, width):
    """The largest hostile lines (nesting hundreds of thousands deep, numbers of 100,000 digits) cost
    at most a few times their size to read and reject, in every reader."""
    lines = ['{"text": "x", "meta": ' + "[" * depth + "]" * depth + "}"] * width
    lines += ['{"text": "y", "n": ' + "7" * 100_000 + "}", '{"prompt": "p", "chosen": "a", "rejected": "b"}']
    data = "\n".join(lines).encode()
    with TemporaryDirectory() as folder:
        for name, reader in READERS.items():
            path = Path(folder) / name / "data.jsonl"
            path.parent.mkdir()
            path.write_bytes(data)
            tracemalloc.start()
            try:
                outcome(reader, path)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            assert peak < 20 * len(data) + 64 * 2**20, (name, peak, len(data))
