"""Answers judged one at a time (TRL unpaired, LLaMA-Factory kto_tag) imported into single-answer queues:
labeled with the file's verdicts or left for annotators to judge, what KTO then reads, and unreadable rows
named with their file and line."""

from __future__ import annotations

import json

import pytest

from engine.labeling.formats import import_preferences, judged_answers
from engine.labeling.store import LabelStore, LabelStoreError

UNPAIRED = [{"prompt": "2 + 2 =", "completion": "4", "label": True},
            {"prompt": "2 + 2 =", "completion": "5", "label": False},
            {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of Italy?"}],
             "completion": [{"role": "assistant", "content": "Rome."}], "label": True}]
KTO_TAG = [{"instruction": "Add the numbers.", "input": "3 + 4", "output": "7", "kto_tag": True},
           {"conversations": [{"from": "human", "value": "Reverse 'ab'"}, {"from": "gpt", "value": "ab"}],
            "kto_tag": False}]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path):
    return LabelStore(tmp_path / "store.db")


def test_judged_answers_become_single_answer_items_with_the_files_verdicts(tmp_path, store):
    report = import_preferences(store, "judged", _write_jsonl(tmp_path / "u.jsonl", UNPAIRED), create_mode="auto")
    assert (report.format, report.added, report.labeled, report.good, report.malformed) == ("trl-unpaired", 3, 3, 2, [])
    assert store.queue("judged").mode == "single"
    items = store.items("judged")
    assert [len(i.candidates) for i in items] == [1, 1, 1]
    assert items[2].meta["prompt_messages"][0] == {"role": "system", "content": "Be brief."}
    labels = store.labels("judged")
    assert [(l.verdict, l.kind, l.annotator, l.shown, l.ranking) for l in labels] == [
        ("good", "import", "import:u.jsonl", (0,), None), ("bad", "import", "import:u.jsonl", (0,), None),
        ("good", "import", "import:u.jsonl", (0,), None)]
    read = judged_answers(store, "judged")  # what `kind: kto` reads from queue:judged
    assert [(a.answer.text, a.good) for a in read.answers] == [("4", True), ("5", False), ("Rome.", True)]

    kto = tmp_path / "kto.json"  # LLaMA-Factory's files are JSON arrays
    kto.write_text(json.dumps(KTO_TAG, indent=1), encoding="utf-8")
    tagged = import_preferences(store, "judged", kto)
    assert (tagged.format, tagged.added, tagged.good) == ("llamafactory-kto", 2, 1)
    assert [i.prompt for i in store.items("judged")[3:]] == ["Add the numbers.\n3 + 4", "Reverse 'ab'"]


def test_unlabeled_answers_wait_for_annotators_who_judge_them(tmp_path, store):
    store.create_queue("review", mode="single")
    report = import_preferences(store, "review", _write_jsonl(tmp_path / "u.jsonl", UNPAIRED), labeled=False)
    assert (report.added, report.labeled, report.annotator) == (3, 0, None) and store.labels("review") == []
    task = store.next_task("review", "ann")
    assert task.shown == (0,)
    store.add_label(task, "bad", source="gui")  # relabeled: the file said good
    assert [(a.answer.text, a.good) for a in judged_answers(store, "review").answers] == [("4", False)]


def test_rows_it_cannot_read_are_named_with_file_and_line_and_the_rest_imported(tmp_path, store):
    lines = [UNPAIRED[0], {"prompt": "x", "completion": "y", "label": "yes"}, {"prompt": "x", "label": True},
             {"prompt": " ", "completion": "y", "label": False}, {"prompt": "2 + 2 =", "completion": "4", "label": False}]
    path = _write_jsonl(tmp_path / "bad.jsonl", lines)
    with path.open("a", encoding="utf-8") as f:
        f.write("{not json\n")
    report = import_preferences(store, "judged", path, create_mode="single")
    assert (report.records, report.added) == (6, 1)
    assert [p.where for p in report.malformed] == [f"bad.jsonl, line {n}" for n in (2, 3, 4, 6)]
    messages = [p.message for p in report.malformed]
    assert all(m.startswith("not a trl-unpaired record: ") for m in messages[:3]) and "JSON" in messages[3]
    assert "label is a text; it must be true (a good answer) or false (a bad one)" in messages[0]
    assert "'completion' is missing" in messages[1] and "the prompt is empty" in messages[2]
    assert [(p.where, p.message) for p in report.duplicates] == [
        ("bad.jsonl, line 5", "same prompt and answers as line 1 but the opposite verdict")]


def test_a_queue_whose_mode_cannot_hold_the_file_is_refused_before_anything_is_added(tmp_path, store):
    store.create_queue("pairs")
    with pytest.raises(LabelStoreError, match="answers judged one at a time .* is a pair queue.*--create"):
        import_preferences(store, "pairs", _write_jsonl(tmp_path / "u.jsonl", UNPAIRED))
    store.create_queue("single", mode="single")
    pairs = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "2 + 2 =", "chosen": "4", "rejected": "5"}])
    with pytest.raises(LabelStoreError, match="holds preference pairs.*takes single answers"):
        import_preferences(store, "single", pairs)
    assert store.items("pairs") == [] and store.items("single") == []
    made = import_preferences(store, "new-pairs", pairs, create_mode="auto")
    assert made.added == 1 and store.queue("new-pairs").mode == "pair"
