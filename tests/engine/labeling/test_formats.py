"""Preference files in and out of labeling queues: round trips, position bias, majority, reports with line numbers."""

from __future__ import annotations

import json

import pytest

from engine.errors import DataError
from engine.labeling.formats import export_preferences, import_preferences, preference_pairs
from engine.labeling.records import read_records
from engine.labeling.store import LabelStore, Task

SYSTEM = {"role": "system", "content": "Answer in one word."}
TRL_CHAT = [
    {"prompt": [{"role": "user", "content": "What colour is the sky?"}],
     "chosen": [{"role": "assistant", "content": "Blue."}], "rejected": [{"role": "assistant", "content": "Green."}]},
    {"prompt": [SYSTEM, {"role": "user", "content": "Capital of France?"}, {"role": "assistant", "content": "Paris."},
                {"role": "user", "content": "And of Italy?"}],
     "chosen": [{"role": "assistant", "content": "Rome."}], "rejected": [{"role": "assistant", "content": "Milan."}]},
    {"prompt": [{"role": "user", "content": "Dis « bonjour » ✓"}],
     "chosen": [{"role": "assistant", "content": "bonjour"}], "rejected": [{"role": "assistant", "content": ""}]},
]
TRL = [{"prompt": "2 + 2 =", "chosen": " 4", "rejected": " 5"},
       {"prompt": "Reverse 'ab':", "chosen": "ba", "rejected": "ab\n"},
       {"prompt": "Ünïcode ✓", "chosen": "yes", "rejected": "no"}]
HH = [{"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?",
       "rejected": "\n\nHuman: Hi there\n\nAssistant: What do you want."},
      {"chosen": "\n\nHuman: Name a fruit.\n\nAssistant: Apple.\n\nHuman: Another?\n\nAssistant: Pear.",
       "rejected": "\n\nHuman: Name a fruit.\n\nAssistant: Apple.\n\nHuman: Another?\n\nAssistant: Apple again."}]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def store(tmp_path):
    s = LabelStore(tmp_path / "store.db")
    s.create_queue("q")
    return s


@pytest.mark.parametrize("fmt, records", [("trl", TRL), ("trl-chat", TRL_CHAT), ("hh", HH)])
def test_export_of_an_import_gives_the_file_back(tmp_path, store, fmt, records):
    source = _write_jsonl(tmp_path / f"in-{fmt}.jsonl", records)
    report = import_preferences(store, "q", source)
    assert (report.format, report.added, report.labeled, report.malformed, report.duplicates) == (
        fmt, len(records), len(records), [], [])
    out = export_preferences(store, "q", tmp_path / "out.jsonl", fmt)
    assert out.written == len(records)
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == source.read_text(encoding="utf-8")


def test_conversations_keep_their_system_and_earlier_turns_across_formats(tmp_path, store):
    import_preferences(store, "q", _write_jsonl(tmp_path / "chat.jsonl", TRL_CHAT[1:2]))
    item = store.items("q")[0]
    assert item.prompt.startswith("System: Answer in one word.\n\nUser: Capital of France?")
    export_preferences(store, "q", tmp_path / "hh.jsonl", "hh")
    hh = json.loads((tmp_path / "hh.jsonl").read_text())
    assert hh["chosen"] == ("\n\nSystem: Answer in one word.\n\nHuman: Capital of France?\n\nAssistant: Paris."
                            "\n\nHuman: And of Italy?\n\nAssistant: Rome.")
    # ... and the HH transcript reads back as the same conversation.
    other = LabelStore(tmp_path / "other.db")
    other.create_queue("q")
    import_preferences(other, "q", tmp_path / "hh.jsonl")
    export_preferences(other, "q", tmp_path / "chat.out.jsonl", "trl-chat")
    assert json.loads((tmp_path / "chat.out.jsonl").read_text()) == TRL_CHAT[1]


@pytest.mark.parametrize("shown, verdict, chosen", [((0, 1), "left", "a"), ((1, 0), "left", "b"),
                                                    ((1, 0), "right", "a"), ((0, 1), "right", "b")])
def test_export_follows_the_candidate_chosen_not_the_side_it_was_shown_on(tmp_path, store, shown, verdict, chosen):
    store.add_items("q", [{"prompt": "p", "candidates": ["a", "b"]}])
    store.add_label(Task(item=store.items("q")[0], annotator="ann", shown=shown), verdict)
    [pair] = preference_pairs(store, "q").pairs
    assert (pair.chosen.text, pair.rejected.text) == (chosen, "b" if chosen == "a" else "a")


def test_a_ranking_gives_every_pair_it_implies(tmp_path):
    store = LabelStore(tmp_path / "store.db")
    store.create_queue("r", mode="rank")
    store.add_items("r", [{"prompt": "p", "candidates": ["x", "y", "z"]}])
    store.add_label(Task(item=store.items("r")[0], annotator="ann", shown=(1, 2, 0)), "rank", ranking=[2, 0, 1])
    pairs = preference_pairs(store, "r").pairs
    assert sorted((p.chosen.text, p.rejected.text) for p in pairs) == [("x", "y"), ("z", "x"), ("z", "y")]


def test_several_annotators_are_resolved_by_majority_and_the_rest_is_counted(tmp_path, store):
    store.add_items("q", [{"prompt": f"p{i}", "candidates": [f"a{i}", f"b{i}"]} for i in range(6)])
    items = store.items("q")
    votes = {0: ["left", "left", "right"], 1: ["left", "right"], 2: ["tie"], 3: ["both_bad", "both_bad"],
             4: ["skip"]}  # item 5 stays unlabeled
    for index, verdicts in votes.items():
        for n, verdict in enumerate(verdicts):
            store.add_label(Task(item=items[index], annotator=f"ann{n}", shown=(0, 1)), verdict)

    result = preference_pairs(store, "q")
    assert [(p.chosen.text, p.votes) for p in result.pairs] == [("a0", 2)]
    assert (result.conflicts, result.ties, result.both_bad, result.skipped, result.unlabeled) == (1, 1, 1, 1, 1)
    assert preference_pairs(store, "q", policy="unanimous").conflicts == 2
    assert sorted(p.chosen.text for p in preference_pairs(store, "q", policy="all").pairs) == ["a0", "a0", "a1", "b0", "b1"]


def test_malformed_records_and_duplicates_are_reported_with_their_lines(tmp_path, store):
    lines = [json.dumps(TRL[0]), "", "{not json", json.dumps({"prompt": "p", "chosen": "x"}),
             json.dumps(TRL[0]), json.dumps({"prompt": "p", "chosen": 3, "rejected": "y"}),
             json.dumps({"prompt": "2 + 2 =", "chosen": " 5", "rejected": " 4"}), json.dumps(TRL_CHAT[0]),
             json.dumps(TRL[1])]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    report = import_preferences(store, "q", path)
    assert (report.format, report.records, report.added, report.labeled) == ("trl", 8, 2, 2)
    assert [(p.where, p.message) for p in report.duplicates] == [
        ("mixed.jsonl, line 5", "same prompt and answers as line 1"),
        ("mixed.jsonl, line 7", "same prompt and answers as line 1 but the opposite preference")]
    malformed = {p.where: p.message for p in report.malformed}
    assert list(malformed) == ["mixed.jsonl, line 3", "mixed.jsonl, line 4", "mixed.jsonl, line 6",
                               "mixed.jsonl, line 8"]
    assert malformed["mixed.jsonl, line 3"].startswith("not valid JSON")
    assert "'rejected' is missing" in malformed["mixed.jsonl, line 4"]
    assert "chosen is a number, not a text" in malformed["mixed.jsonl, line 6"]
    assert "looks like a trl-chat record" in malformed["mixed.jsonl, line 8"]

    again = import_preferences(store, "q", path)
    assert again.added == 0
    assert {p.where: p.message for p in again.duplicates}["mixed.jsonl, line 9"] == "already in queue 'q'"
    assert [p.where for p in again.duplicates] == [f"mixed.jsonl, line {n}" for n in (1, 5, 7, 9)]


def test_llamafactory_alpaca_and_sharegpt_styles(tmp_path, store):
    alpaca = [{"instruction": "Translate to French", "input": "cat", "chosen": "chat", "rejected": "chien"},
              {"instruction": "Say hi", "chosen": "hi", "rejected": "bye", "system": "Be nice.",
               "history": [["Hello?", "Hello."]]},
              {"instruction": "Broken", "chosen": "x"}]
    sharegpt = [{"conversations": [{"from": "system", "value": "Be terse."}, {"from": "human", "value": "2+2?"}],
                 "chosen": {"from": "gpt", "value": "4"}, "rejected": {"from": "gpt", "value": "5"}},
                {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}],
                 "chosen": {"from": "gpt", "value": "a"}, "rejected": {"from": "gpt", "value": "b"}}]
    (tmp_path / "alpaca.json").write_text(json.dumps(alpaca, indent=2), encoding="utf-8")
    _write_jsonl(tmp_path / "sharegpt.jsonl", sharegpt)

    a = import_preferences(store, "q", tmp_path / "alpaca.json")
    assert (a.format, a.added) == ("llamafactory", 2)
    [problem] = a.malformed
    assert problem.where == "alpaca.json, record 3 (line 20)" and "'rejected' is missing" in problem.message
    s = import_preferences(store, "q", tmp_path / "sharegpt.jsonl")
    assert (s.format, s.added) == ("llamafactory", 1)
    assert s.malformed[0].where == "sharegpt.jsonl, line 2"
    assert "the last turn of conversations is assistant" in s.malformed[0].message

    export_preferences(store, "q", tmp_path / "out.jsonl", "trl-chat")
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert out[0] == {"prompt": [{"role": "user", "content": "Translate to French\ncat"}],
                      "chosen": [{"role": "assistant", "content": "chat"}],
                      "rejected": [{"role": "assistant", "content": "chien"}]}
    assert out[1]["prompt"] == [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hello?"},
                                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Say hi"}]
    assert out[2]["prompt"] == [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "2+2?"}]


def test_trl_implicit_prompt_and_hh_records_that_differ_early(tmp_path):
    implicit = {"chosen": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "good"}],
                "rejected": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "bad"}]}
    forked = {"chosen": "\n\nHuman: a\n\nAssistant: b\n\nHuman: c\n\nAssistant: d",
              "rejected": "\n\nHuman: a\n\nAssistant: X\n\nHuman: c\n\nAssistant: e"}
    chat = read_records(_write_jsonl(tmp_path / "implicit.jsonl", [implicit]))
    assert (chat.format, chat.records[0].prompt, chat.records[0].chosen_text) == ("trl-chat", "q", "good")
    hh = read_records(_write_jsonl(tmp_path / "hh.jsonl", [HH[0], forked]))
    assert "differ before their last 'Assistant:' turn" in hh.problems[0].message


def test_unlabeled_import_leaves_the_pairs_to_annotators(tmp_path, store):
    report = import_preferences(store, "q", _write_jsonl(tmp_path / "p.jsonl", TRL), labeled=False)
    assert (report.added, report.labeled, report.annotator) == (3, 0, None)
    assert store.label_count("q") == 0
    task = store.next_task("q", "alice")
    assert {c.text for c in task.item.candidates} == {" 4", " 5"}


def test_import_labels_are_the_labels_the_store_would_write(tmp_path, store):
    import_preferences(store, "q", _write_jsonl(tmp_path / "p.jsonl", TRL[:1]))
    store.add_items("q", [{"prompt": "other", "candidates": ["c", "d"]}])
    reference = store.add_label(Task(item=store.items("q")[1], annotator="import:p.jsonl", shown=(0, 1)), "left",
                                kind="import", source="import")
    bulk = store.labels("q")[0]
    fields = ("queue_id", "annotator", "kind", "verdict", "shown", "swapped", "ranking", "comment", "seconds",
              "source", "retracted", "preference")
    assert {f: getattr(bulk, f) for f in fields} == {f: getattr(reference, f) for f in fields}
    assert store.progress("q").done == 2


def test_files_that_cannot_be_read_say_why(tmp_path, store):
    (tmp_path / "odd.jsonl").write_text(json.dumps({"question": "q", "answer": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="Cannot tell the preference format .* the fields question, answer"):
        import_preferences(store, "q", tmp_path / "odd.jsonl")
    with pytest.raises(DataError, match="No preference file"):
        import_preferences(store, "q", tmp_path / "missing.jsonl")
    (tmp_path / "cut.json").write_text('[{"instruction": "a", "chosen": "b", "rejected": "c"},\n {"instr', encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON in record 2: .* at line 2"):
        import_preferences(store, "q", tmp_path / "cut.json")


def test_preference_records_with_tool_calls_or_media_are_left_out_and_named(tmp_path, store):
    rows = [{"prompt": "Weather?", "chosen": "Sunny.", "rejected": "Rain.", "tools": [{"type": "function"}]},
            {"prompt": "What is this?", "chosen": "A cat.", "rejected": "A dog.", "images": ["cat.png"]},
            {"prompt": [{"role": "user", "content": "Weather?"}],
             "chosen": [{"role": "assistant", "content": "", "tool_calls": [{"id": "1"}]}],
             "rejected": [{"role": "assistant", "content": "Rain."}]},
            {"conversations": [{"from": "human", "value": "Weather?"}, {"from": "function_call", "value": "{}"},
                               {"from": "observation", "value": "sunny"}, {"from": "human", "value": "So?"}],
             "chosen": {"from": "gpt", "value": "Sunny."}, "rejected": {"from": "gpt", "value": "Rain."}},
            {"prompt": "Fine?", "chosen": "Yes.", "rejected": "No.", "id": 7}]
    problems = {}
    for i, row in enumerate(rows):  # a file each: a file's format is that of its first record
        path = tmp_path / f"prefs{i}.jsonl"
        path.write_text(json.dumps(row) + "\n", encoding="utf-8")
        report = import_preferences(store, "q", path)
        assert report.added == (i == 4)
        problems.update({p.where: p.message for p in report.malformed})
    assert "the field 'tools' holds tool definitions" in problems["prefs0.jsonl, line 1"]
    assert "the field 'images' holds images" in problems["prefs1.jsonl, line 1"]
    assert "turn 1 of chosen: 'tool_calls' holds tool calls" in problems["prefs2.jsonl, line 1"]
    assert "turn 2 of conversations: the role 'function_call'" in problems["prefs3.jsonl, line 1"]
    assert len(problems) == 4
