"""engine/data/locate.py: where a data source is (files, folders, globs, saved and hub datasets,
built-ins), the rows of datasets, and errors that name the source and the spec's field."""

import pytest

from engine.data.locate import DataSource, dataset_records, open_dataset, resolve_source
from engine.errors import DataError

FIELD = "data.sources"


def test_files_folders_and_globs_resolve_to_their_data_files(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for name in ("a.jsonl", "sub/b.csv", ".hidden/c.jsonl", "notes.md"):
        (tmp_path / name).write_text("", encoding="utf-8")
    assert resolve_source(str(tmp_path / "a.jsonl"), FIELD) == DataSource(str(tmp_path / "a.jsonl"), "files",
                                                                         (tmp_path / "a.jsonl",))
    assert resolve_source(str(tmp_path), FIELD).files == (tmp_path / "a.jsonl", tmp_path / "sub" / "b.csv")
    assert resolve_source(str(tmp_path / "**" / "*.csv"), FIELD).files == (tmp_path / "sub" / "b.csv",)


def test_sources_that_are_not_there_name_the_field(tmp_path):
    cases = [(str(tmp_path / "nope.jsonl"), "does not exist (no such file or folder)"),
             (str(tmp_path / "*.parquet"), "matches no file"),
             ("builtin:nothing", "Unknown built-in source 'builtin:nothing'")]
    (tmp_path / "empty").mkdir()
    cases.append((str(tmp_path / "empty"), "holds no data file"))
    for source, expected in cases:
        with pytest.raises(DataError) as raised:
            resolve_source(source, FIELD, ["builtin:tasks"])
        assert expected in raised.value.message and f"({FIELD})" in raised.value.message
    with pytest.raises(DataError) as raised:
        resolve_source("builtin:nothing", FIELD, ["builtin:tasks"])
    assert "builtin:tasks" in raised.value.hint
    assert resolve_source("builtin:tasks", FIELD, ["builtin:tasks"]).kind == "builtin"


def test_hub_ids_with_or_without_prefix(tmp_path):
    assert resolve_source("hub:owner/name", FIELD) == DataSource("hub:owner/name", "hub", location="owner/name")
    found = resolve_source("owner/name", FIELD)
    assert (found.kind, found.location, found.missing_locally, found.name) == ("hub", "owner/name", True,
                                                                               "hub dataset owner/name")
    (tmp_path / "data").mkdir()
    with pytest.raises(DataError, match="does not exist"):  # a path in a folder that exists is a local path
        resolve_source(str(tmp_path / "data" / "missing"), FIELD)


def test_a_hub_dataset_offline_is_a_clear_error(monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as raised:
        open_dataset(resolve_source("someone/some-corpus", FIELD), FIELD)
    message = raised.value.message
    assert "'someone/some-corpus' (data.sources)" in message and "HF_HUB_OFFLINE=1" in message
    assert "no local file or folder named someone/some-corpus" in message and "network" in raised.value.hint


def test_saved_datasets_give_their_train_split_or_the_one_asked_for(tmp_path):
    import datasets

    one = tmp_path / "one"
    datasets.Dataset.from_dict({"text": ["a", "b"]}).save_to_disk(one)
    found = resolve_source(str(one), FIELD)
    records = list(dataset_records(open_dataset(found, FIELD), found.name))
    assert [(r.value, r.where, r.place) for r in records] == [({"text": "a"}, f"{one}, row 1", "one:#0"),
                                                              ({"text": "b"}, f"{one}, row 2", "one:#1")]
    assert found.size_bytes > 0
    several = tmp_path / "several"
    datasets.DatasetDict({"a": datasets.Dataset.from_dict({"x": [1]}),
                          "b": datasets.Dataset.from_dict({"x": [2]})}).save_to_disk(several)
    found = resolve_source(str(several), FIELD)
    with pytest.raises(DataError, match="several splits and none is called 'train'"):
        open_dataset(found, FIELD)
    assert open_dataset(found, FIELD, "b")["x"] == [2]
    with pytest.raises(DataError) as raised:
        open_dataset(found, FIELD, "test", "prompts.split")
    assert "no split 'test' (prompts.split); it has a, b" in raised.value.message
    (several / "dataset_dict.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(DataError, match="looks like a saved dataset but cannot be read"):
        open_dataset(found, FIELD)


def test_dataset_records_can_leave_columns_out():
    import datasets

    rows = datasets.Dataset.from_dict({"text": ["a"], "id": ["x"], "big": ["…"]})
    assert [r.value for r in dataset_records(rows, "rows", ["text", "id", "absent"])] == [{"text": "a", "id": "x"}]
