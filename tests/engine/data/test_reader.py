"""engine/data/reader.py: the records of every file format, and errors that name the file, the line
or record, and what to do."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.reader import UnreadableFile, parquet_columns, read_records, read_text
from engine.errors import DataError


def values(path, **options) -> list:
    return [r.value for r in read_records(path, **options)]


# -- the formats -------------------------------------------------------------------------------------

def test_jsonl_gives_one_record_a_line_numbered_as_an_editor_does(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "a"}\n\n{"text": "b"}\r\n')
    records = read_records(path)
    assert [r.value for r in records] == [{"text": "a"}, {"text": "b"}]
    assert [(r.where, r.place) for r in records] == [(f"{path}, line 1", "d.jsonl:1"), (f"{path}, line 3", "d.jsonl:3")]


def test_json_reads_a_list_a_data_object_or_json_lines(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([{"a": 1}, {"a": 2}], indent=2), encoding="utf-8")
    records = read_records(listed, source="list.json")
    assert [r.value for r in records] == [{"a": 1}, {"a": 2}]
    assert [(r.where, r.place) for r in records] == [("list.json, record 1 (line 2)", "list.json:#0"),
                                                     ("list.json, record 2 (line 5)", "list.json:#1")]
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"data": [{"a": 1}]}), encoding="utf-8")
    assert [r.where for r in read_records(wrapped, source="wrapped.json")] == ["wrapped.json, record 1"]
    lines = tmp_path / "lines.json"
    lines.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    assert values(lines) == [{"a": 1}, {"a": 2}]
    empty = tmp_path / "empty.json"
    empty.write_text("  \n", encoding="utf-8")
    assert values(empty) == []


def test_a_jsonl_file_holding_a_json_array_is_read_as_one(tmp_path):
    path = tmp_path / "array.jsonl"
    path.write_text('[{"a": 1},\n {"a": 2}]', encoding="utf-8")
    assert [r.where for r in read_records(path, source="array.jsonl")] == ["array.jsonl, record 1 (line 1)",
                                                                         "array.jsonl, record 2 (line 2)"]


def test_csv_rows_are_records_named_by_their_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('q,a\n1,"two\nlines"\n3,4\n', encoding="utf-8")
    records = read_records(path, source="t.csv")
    assert [r.value for r in records] == [{"q": "1", "a": "two\nlines"}, {"q": "3", "a": "4"}]
    assert [r.where for r in records] == ["t.csv, line 3", "t.csv, line 4"]


def test_parquet_rows_stream_and_can_leave_columns_out(tmp_path):
    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"text": ["x", "y"], "id": [1, 2], "big": ["…", "…"]}), path)
    records = read_records(path, columns=["text", "id", "absent"])
    assert [r.value for r in records] == [{"text": "x", "id": 1}, {"text": "y", "id": 2}]
    assert [(r.where, r.place) for r in records] == [(f"{path}, row 1", "t.parquet:#0"), (f"{path}, row 2", "t.parquet:#1")]
    assert parquet_columns(path) == ["text", "id", "big"]


def test_a_txt_file_is_one_record_under_the_text_field(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("line one\nline two\n", encoding="utf-8")
    [record] = read_records(path, text_field="body")
    assert record.value == {"body": "line one\nline two\n"}
    assert (record.where, record.place) == (str(path), "notes.txt")
    assert read_text(path) == "line one\nline two\n"


def test_a_txt_file_can_hold_a_document_a_paragraph_or_a_line(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("First document,\nwrapped.\n\n\nSecond one.\n  \nThird.", encoding="utf-8")
    paragraphs = read_records(path, source="corpus.txt", txt_documents="paragraph")
    assert [r.value["text"] for r in paragraphs] == ["First document,\nwrapped.", "Second one.", "Third."]
    assert [(r.where, r.place) for r in paragraphs] == [
        ("corpus.txt, paragraph 1 (line 1)", "corpus.txt:#0"), ("corpus.txt, paragraph 2 (line 5)", "corpus.txt:#1"),
        ("corpus.txt, paragraph 3 (line 7)", "corpus.txt:#2")]
    lines = read_records(path, source="corpus.txt", txt_documents="line")
    assert [(r.value["text"], r.place) for r in lines] == [
        ("First document,", "corpus.txt:1"), ("wrapped.", "corpus.txt:2"), ("Second one.", "corpus.txt:5"),
        ("Third.", "corpus.txt:7")]
    wide = tmp_path / "wide.txt"
    wide.write_bytes("one\r\ntwo\r\n".encode("utf-16"))
    with pytest.raises(UnreadableFile, match="not UTF-8"):  # strict decoding; the clean job repairs UTF-16
        read_records(wide, txt_documents="line")


# -- errors ------------------------------------------------------------------------------------------

def test_a_malformed_jsonl_line_is_named_or_handed_to_on_problem(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n{"a": \n{"a": 3}\n', encoding="utf-8")
    with pytest.raises(DataError) as raised:
        read_records(path)
    assert raised.value.message.startswith(f"{path}, line 2: not valid JSON (")
    assert "one JSON object" in raised.value.hint
    problems = []
    kept = read_records(path, on_problem=lambda where, problem, hint: problems.append((where, problem)))
    assert [r.value for r in kept] == [{"a": 1}, {"a": 3}]
    assert problems[0][0] == f"{path}, line 2" and problems[0][1].startswith("not valid JSON")


# Lines that are valid JSON but no record can be: each is named and skipped alone.
HOSTILE = {"deep": '{"text": "x", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}",
           "deep-but-parsed": '{"text": "x", "meta": ' + "[" * 150 + "]" * 150 + "}",
           "huge-int": '{"text": "x", "n": ' + "9" * 5000 + "}",
           "surrogate": '{"text": "half \\ud800 a pair"}'}
HOSTILE_PROBLEMS = {"deep": "nested too deeply (more than 100 levels", "deep-but-parsed": "nested too deeply",
                    "huge-int": "holds a number of 5,000 digits", "surrogate": "holds the escape \\ud800"}


def test_records_no_reader_can_hold_are_skipped_alone_and_named(tmp_path):
    good = '{"text": "ok", "emoji": "\\ud83d\\ude00"}'
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join([good, *HOSTILE.values(), good]) + "\n", encoding="utf-8")
    problems = []
    kept = read_records(path, source="d.jsonl", on_problem=lambda where, problem, hint: problems.append((where, problem)))
    assert [r.value for r in kept] == [{"text": "ok", "emoji": "😀"}] * 2 and [r.number for r in kept] == [1, 6]
    assert [where for where, _ in problems] == [f"d.jsonl, line {n}" for n in range(2, 6)]
    assert all(HOSTILE_PROBLEMS[case] in problem for case, (_, problem) in zip(HOSTILE, problems)), problems
    with pytest.raises(DataError, match=r"d.jsonl, line 2: nested too deeply") as raised:
        read_records(path, source="d.jsonl")
    assert "100 levels" in raised.value.hint

    array = tmp_path / "d.json"
    array.write_text("[" + ",\n".join([good, *HOSTILE.values(), "1" * 5000, '"\\udbff"', '{"b": "]}[{\\""}']) + "]",
                     encoding="utf-8")
    problems.clear()
    kept = read_records(array, source="d.json", on_problem=lambda where, problem, hint: problems.append(where))
    assert [r.value for r in kept] == [{"text": "ok", "emoji": "😀"}, {"b": ']}[{"'}]
    assert problems == [f"d.json, record {n} (line {n})" for n in range(2, 8)]
    wrapped = tmp_path / "w.json"
    wrapped.write_text('{"data": [{"text": "ok"}, ' + HOSTILE["deep-but-parsed"] + "]}", encoding="utf-8")
    problems.clear()
    assert values(wrapped, on_problem=lambda where, problem, hint: problems.append(where)) == [{"text": "ok"}]
    assert problems == [f"{wrapped}, record 2"]
    wrapped.write_text('{"data": [' + HOSTILE["deep"] + "]}", encoding="utf-8")
    with pytest.raises(UnreadableFile, match="nested too deeply"):
        read_records(wrapped)


def test_json_syntax_errors_read_as_sentences(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "cut short\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"line 1: not valid JSON \(unterminated string starting at column 10\)\."):
        read_records(path)


def test_bytes_that_are_not_utf8_name_the_offset_and_line(tmp_path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"a": "ok"}\n{"a": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(UnreadableFile) as raised:
        read_records(path)
    message = raised.value.message
    assert str(path) in message and "not UTF-8" in message and "byte offset 22" in message and "(line 2)" in message
    assert "iconv" in raised.value.hint
    text = tmp_path / "latin.txt"
    text.write_bytes("Caf\xe9".encode("latin-1"))
    with pytest.raises(UnreadableFile, match=r"byte offset 3 \(line 1\)"):
        read_records(text)


def test_a_json_array_cut_by_a_syntax_error_says_which_record(tmp_path):
    path = tmp_path / "cut.json"
    path.write_text('[{"a": 1},\n {"a"', encoding="utf-8")
    with pytest.raises(UnreadableFile, match="not valid JSON in record 2: expecting .* at line 2, column 6"):
        read_records(path)
    path.write_text('[{"a": 1} {"a": 2}]', encoding="utf-8")
    with pytest.raises(UnreadableFile, match="expected ',' or ']' after record 1"):
        read_records(path)
    path.write_text('[{"a": 1},', encoding="utf-8")
    with pytest.raises(UnreadableFile, match="not closed"):
        read_records(path)
    path.write_text('{"b": 1}', encoding="utf-8")
    with pytest.raises(UnreadableFile, match=r"expected a list of records or \{\"data\": \[...\]\}, found an object without a \"data\" list"):
        read_records(path)


def test_a_damaged_parquet_file_and_unknown_suffixes(tmp_path):
    damaged = tmp_path / "bad.parquet"
    damaged.write_bytes(b"PAR1 not really")
    with pytest.raises(UnreadableFile, match="not a readable Parquet file"):
        read_records(damaged)
    with pytest.raises(UnreadableFile, match="not a readable Parquet file"):
        parquet_columns(damaged)
    notes = tmp_path / "notes.md"
    notes.write_text("# x", encoding="utf-8")
    with pytest.raises(UnreadableFile, match=r"unsupported file type '\.md'") as raised:
        read_records(notes)
    assert ".jsonl" in raised.value.hint


def test_the_reader_imports_nothing_heavy(heavy_imports):
    assert heavy_imports("engine.data.reader, engine.data.locate, engine.labeling.records") == []
