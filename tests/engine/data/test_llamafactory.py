"""LLaMA-Factory's dataset_info.json as a data source: entries' columns and tags mapped to the default
layout, the entries Atelier cannot use named with what to do, and the entries read through the real
engine by fine-tuning's and KTO's previews."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.llamafactory import registry_entry, registry_names
from engine.data.locate import resolve_source
from engine.errors import DataError
from tests.engine.conftest import Engine
from tests.engine.finetune_fixtures import finetune_spec
from tests.engine.policy_fixtures import tiny_policy

REGISTRY = {
    "qa": {"file_name": "qa.json", "columns": {"prompt": "question", "query": "context", "response": "answer",
                                               "system": "sys"}},
    "chat": {"file_name": "chat/", "formatting": "sharegpt", "columns": {"messages": "messages"},
             "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                      "system_tag": "system"}},
    "prefs": {"file_name": "prefs.json", "ranking": True, "columns": {"prompt": "q", "chosen": "good",
                                                                      "rejected": "bad"}},
    "kto": {"file_name": "kto.json", "formatting": "sharegpt", "columns": {"messages": "conversations",
                                                                           "kto_tag": "verdict"}},
    "alpaca_en": {"hf_hub_url": "llamafactory/alpaca_en"},
    "belle": {"script_url": "belle_multiturn"},
    "mllm": {"file_name": "qa.json", "formatting": "sharegpt", "columns": {"messages": "messages",
                                                                           "images": "images"}},
    "gone": {"file_name": "missing.json"},
}


def write_registry(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dataset_info.json").write_text(json.dumps(REGISTRY), encoding="utf-8")
    (folder / "qa.json").write_text(json.dumps([
        {"question": f"Say {i}.", "context": "", "answer": str(i), "sys": "Answer with a number."} for i in range(12)]))
    (folder / "chat").mkdir(exist_ok=True)
    (folder / "chat" / "part.jsonl").write_text(json.dumps({"messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"}]}) + "\n")
    (folder / "prefs.json").write_text(json.dumps([{"q": f"Add 1 and {i}.", "good": str(i + 1), "bad": str(i + 2)}
                                                   for i in range(6)]))
    (folder / "kto.json").write_text(json.dumps([
        {"conversations": [{"from": "human", "value": f"Add 2 and {i}."}, {"from": "gpt", "value": str(i + 2 + i % 2)}],
         "verdict": i % 2 == 0} for i in range(6)]))
    return folder / "dataset_info.json"


def records(source: str) -> list:
    found = resolve_source(source, "data.sources")
    return [record.value for path in found.files for record in found.records(path)]


def test_columns_and_tags_map_to_the_default_layout(tmp_path):
    registry = write_registry(tmp_path / "data")
    assert records(f"{registry}#qa")[0] == {"instruction": "Say 0.", "input": "", "output": "0",
                                            "system": "Answer with a number."}
    assert records(f"{registry}#chat") == [{"conversations": [
        {"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}]
    assert records(f"{registry}#prefs")[0] == {"instruction": "Add 1 and 0.", "chosen": "1", "rejected": "2"}
    assert records(f"{registry}#kto")[1]["kto_tag"] is False
    assert registry_entry(f"{registry}#prefs", "data.sources").ranking


@pytest.mark.parametrize("name, message, hint", [
    ("alpaca_en", "is a hub dataset (hf_hub_url: llamafactory/alpaca_en), not local files",
     "hub:llamafactory/alpaca_en"),
    ("belle", "is a loading script (belle_multiturn), which Atelier does not run", "set file_name"),
    ("mllm", "has images: Atelier trains text-only models", "without images"),
    ("gone", "names file_name missing.json, but", "relative to the folder of dataset_info.json"),
    ("nothing", "has no entry 'nothing'; its entries: alpaca_en, belle, chat,", "after '#'"),
])
def test_entries_that_cannot_be_used_are_named_with_what_to_do(tmp_path, name, message, hint):
    registry = write_registry(tmp_path / "data")
    with pytest.raises(DataError) as caught:
        resolve_source(f"{registry}#{name}", "data.sources")
    assert message in caught.value.message and "(data.sources)" in caught.value.message
    assert hint in caught.value.hint


def test_the_picker_lists_every_entry_with_what_it_is(tmp_path):
    names = registry_names(write_registry(tmp_path / "data"))
    assert names["qa"] == "alpaca; qa.json" and names["prefs"] == "alpaca, ranking; prefs.json"
    assert names["kto"] == "sharegpt, kto_tag; kto.json"
    assert names["alpaca_en"].startswith("cannot be used: ")


def test_entries_read_by_fine_tuning_and_kto_through_the_engine(tmp_path):
    tiny = tiny_policy(tmp_path / "models")
    registry = write_registry(tmp_path / "data")
    engine = Engine(tmp_path / "ws")
    engine.workspace.mkdir()
    finetune = engine.write_spec(finetune_spec(tiny.chat, **{"data.sources": [f"{registry}#qa"]}), "ft.yaml")
    kto = engine.write_spec({"kind": "kto", "model": {"path": str(tiny.chat)},
                             "data": {"sources": [f"{registry}#kto", f"{registry}#prefs"], "eval_fraction": 0.0}},
                            "kto.yaml")
    running = [engine.popen("preview", str(spec), "--json") for spec in (finetune, kto)]
    (ft_out, ft_err), (kto_out, kto_err) = (p.communicate(timeout=300) for p in running)
    assert running[0].returncode == 0, ft_err[-2000:]
    shown = json.loads(ft_out)
    assert shown["format"] == "alpaca", shown.keys()
    assert "Answer with a number." in json.dumps(shown["examples"])
    assert running[1].returncode == 0, kto_err[-2000:]
    judged = json.loads(kto_out)
    assert judged["formats"] == {f"{registry}#kto": "llamafactory-kto", f"{registry}#prefs": "llamafactory"}
    assert judged["answers"] == {"train": 18, "held_out": 0, "good": 9}
