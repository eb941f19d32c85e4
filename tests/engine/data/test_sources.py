"""load_documents: every source format, shuffling and splits, and a clear DataError for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.data.sources import load_documents
from engine.errors import DataError
from engine.specs.corpus import DataSpec


def load(*sources: str | Path, **options) -> datasets.DatasetDict:
    options.setdefault("eval_fraction", 0.0)
    return load_documents(DataSpec(sources=[str(s) for s in sources], **options), seed=0)


def texts(result: datasets.DatasetDict) -> list[str]:
    return sorted([*result["train"]["text"], *result["eval"]["text"]])


def load_error(*sources: str | Path, **options) -> DataError:
    with pytest.raises(DataError) as info:
        load(*sources, **options)
    assert info.value.hint, "every DataError tells the user what to do"
    return info.value


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- formats -------------------------------------------------------------------------------------

def test_txt_file_is_one_document_unless_paragraphs_or_lines_are_asked_for(tmp_path):
    path = tmp_path / "essay.txt"
    path.write_text("First paragraph,\nwrapped.\n\nSecond paragraph.\n\n\nThird.", encoding="utf-8")
    assert texts(load(path)) == ["First paragraph,\nwrapped.\n\nSecond paragraph.\n\n\nThird."]
    assert texts(load(path, txt_documents="paragraph")) == ["First paragraph,\nwrapped.", "Second paragraph.", "Third."]
    assert texts(load(path, txt_documents="line")) == ["First paragraph,", "Second paragraph.", "Third.", "wrapped."]


def test_jsonl_uses_text_field_and_drops_empty_documents(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"body": "alpha", "id": 1}, {"body": "  "}, {"body": None},
                                              {"body": "beta"}])
    result = load(path, text_field="body")
    assert texts(result) == ["alpha", "beta"]
    assert result["train"].column_names == ["text"]


def test_json_list_and_data_wrapper(tmp_path):
    (tmp_path / "list.json").write_text(json.dumps([{"text": "one"}, {"text": "two"}]), encoding="utf-8")
    (tmp_path / "wrapped.json").write_text(json.dumps({"data": [{"text": "three"}]}), encoding="utf-8")
    assert texts(load(tmp_path / "list.json", tmp_path / "wrapped.json")) == ["one", "three", "two"]


def test_csv_with_quoted_multiline_text(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('id,content\n1,"line one\nline two, with a comma"\n2,plain\n', encoding="utf-8")
    assert texts(load(path, text_field="content")) == ["line one\nline two, with a comma", "plain"]


def test_parquet_reads_the_text_column(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a parquet row", "another"], "n": [1, 2]}), path)
    assert texts(load(path)) == ["a parquet row", "another"]


def test_saved_dataset_and_dataset_dict(tmp_path):
    datasets.Dataset.from_dict({"content": ["saved one", "saved two"]}).save_to_disk(tmp_path / "single")
    datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["train row"]}),
        "test": datasets.Dataset.from_dict({"text": ["test row"]}),
    }).save_to_disk(tmp_path / "splits")
    assert texts(load(tmp_path / "single", text_field="content")) == ["saved one", "saved two"]
    assert texts(load(tmp_path / "splits")) == ["train row"]
    before = sorted(p.name for p in (tmp_path / "single").iterdir())
    load(tmp_path / "single", text_field="content", eval_fraction=0.5)
    assert sorted(p.name for p in (tmp_path / "single").iterdir()) == before  # no cache files left behind


def test_folder_is_read_recursively_and_glob_matches(tmp_path):
    (tmp_path / "corpus" / "sub").mkdir(parents=True)
    (tmp_path / "corpus" / "a.txt").write_text("from a", encoding="utf-8")
    (tmp_path / "corpus" / "sub" / "b.txt").write_text("from b", encoding="utf-8")
    write_jsonl(tmp_path / "corpus" / "sub" / "c.jsonl", [{"text": "from c"}])
    (tmp_path / "corpus" / "notes.md").write_text("not a data file", encoding="utf-8")
    assert texts(load(tmp_path / "corpus")) == ["from a", "from b", "from c"]
    assert texts(load(tmp_path / "corpus" / "**" / "*.txt")) == ["from a", "from b"]


def test_sources_mix_with_the_builtin_corpus(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("my own document", encoding="utf-8")
    result = load("builtin:python-docs", path)
    all_texts = texts(result)
    assert "my own document" in all_texts and len(all_texts) > 1000


# --- shuffling, max_documents, eval split -----------------------------------------------------------

@pytest.fixture
def hundred(tmp_path) -> Path:
    return write_jsonl(tmp_path / "h.jsonl", [{"text": f"document {i}"} for i in range(100)])


def test_split_is_seeded_disjoint_and_sized(hundred):
    spec = DataSpec(sources=[str(hundred)], eval_fraction=0.1)
    a, b, c = (load_documents(spec, seed=seed) for seed in (1, 1, 2))
    a_train, a_eval = list(a["train"]["text"]), list(a["eval"]["text"])
    assert (len(a_train), len(a_eval)) == (90, 10)
    assert a_train == list(b["train"]["text"]) and a_eval == list(b["eval"]["text"])
    assert a_train != list(c["train"]["text"])
    assert not set(a_train) & set(a_eval)
    assert a_train != sorted(a_train, key=lambda t: int(t.split()[1]))  # shuffled


def test_max_documents_and_eval_fraction_zero(hundred):
    result = load(hundred, max_documents=7)
    assert len(result["train"]) == 7 and len(result["eval"]) == 0
    assert result["eval"].column_names == ["text"]


def test_tiny_corpus_still_gets_one_eval_document(tmp_path):
    path = write_jsonl(tmp_path / "two.jsonl", [{"text": "first"}, {"text": "second"}])
    result = load(path, eval_fraction=0.01)
    assert (len(result["train"]), len(result["eval"])) == (1, 1)
    single = write_jsonl(tmp_path / "one.jsonl", [{"text": "only"}])
    result = load(single, eval_fraction=0.2)
    assert (len(result["train"]), len(result["eval"])) == (1, 0)


def test_progress_is_reported_per_source(tmp_path):
    (tmp_path / "a.txt").write_text("a", encoding="utf-8")
    calls = []
    load_documents(DataSpec(sources=[str(tmp_path / "a.txt")]), 0, lambda *args: calls.append(args))
    assert calls[0] == (f"reading {tmp_path / 'a.txt'}", 0, 1) and calls[-1][1:] == (1, 1)


# --- errors a user can fix ---------------------------------------------------------------------------

def test_missing_file(tmp_path):
    error = load_error(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in error.message and "does not exist" in error.message


def test_glob_that_matches_nothing(tmp_path):
    error = load_error(tmp_path / "*.parquet")
    assert "*.parquet" in error.message and "matches no file" in error.message


def test_jsonl_line_that_is_not_json_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "fine"}\n\n{"text": "oops"\n', encoding="utf-8")
    error = load_error(path)
    assert "broken.jsonl" in error.message and "line 3" in error.message and "not valid JSON" in error.message


def test_missing_text_field_names_the_fields_present(tmp_path):
    path = write_jsonl(tmp_path / "fields.jsonl", [{"text": "ok"}, {"body": "x", "title": "y"}])
    error = load_error(path)
    assert "fields.jsonl" in error.message and "line 2" in error.message
    assert "'text'" in error.message and "'body'" in error.message and "'title'" in error.message
    assert "text_field" in error.hint


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".json"])
def test_missing_text_column_in_table_files(tmp_path, suffix):
    path = tmp_path / f"table{suffix}"
    if suffix == ".csv":
        path.write_text("title,body\nx,y\n", encoding="utf-8")
    elif suffix == ".parquet":
        pq.write_table(pa.table({"title": ["x"], "body": ["y"]}), path)
    else:
        path.write_text(json.dumps([{"title": "x", "body": "y"}]), encoding="utf-8")
    error = load_error(path)
    assert path.name in error.message and "'text'" in error.message
    assert "'title'" in error.message and "'body'" in error.message


def test_missing_column_in_saved_dataset(tmp_path):
    datasets.Dataset.from_dict({"content": ["x"]}).save_to_disk(tmp_path / "saved")
    error = load_error(tmp_path / "saved")
    assert "saved" in error.message and "'content'" in error.message


def test_non_string_text_field(tmp_path):
    path = write_jsonl(tmp_path / "numbers.jsonl", [{"text": 42}])
    error = load_error(path)
    assert "numbers.jsonl, line 1: field 'text' is a number, not text." in error.message


def test_undecodable_bytes_name_file_and_offset(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Caf\xe9 cr\xe8me".encode("latin-1"))
    error = load_error(path)
    assert "latin1.txt" in error.message and "UTF-8" in error.message and "byte offset 3" in error.message
    assert "iconv -f latin1 -t utf-8" in error.hint


def test_empty_corpus(tmp_path):
    path = write_jsonl(tmp_path / "empty.jsonl", [{"text": ""}, {"text": "  \n"}])
    error = load_error(path)
    assert "empty" in error.message and "empty.jsonl" in error.message


def test_unsupported_file_type_and_unknown_builtin(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# notes", encoding="utf-8")
    assert "notes.md" in load_error(path).message
    assert "builtin:nothing" in load_error("builtin:nothing").message


@pytest.mark.parametrize("source", ["hub:someone/some-corpus", "someone/some-corpus"])
def test_hub_dataset_offline_is_a_clear_error(source):
    error = load_error(source)
    assert "someone/some-corpus" in error.message and "network" in error.hint
