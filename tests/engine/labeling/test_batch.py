"""A generate run's candidates.jsonl imported into pair and ranking queues."""

from __future__ import annotations

import json

import pytest

from engine.errors import DataError
from engine.labeling.batch import import_batch
from engine.labeling.formats import export_preferences, prompt_messages_of
from engine.labeling.store import LabelStore, Task


def _generate_run(workspace, run_id="gen-20260101-000000-abcd"):
    run = workspace / "runs" / run_id
    (run / "output").mkdir(parents=True)
    (run / "spec.yaml").write_text("kind: generate\n", encoding="utf-8")
    lines = [
        {"id": "p0", "prompt": "Reverse: a b c", "meta": {"task": "reverse", "system": "Be exact."},
         "candidates": [{"text": "c b a", "model": "m1", "seed": 0, "meta": {"logprob": -1.5}},
                        {"text": "c a b", "model": "m1", "seed": 1},
                        {"text": "c b a", "model": "m2", "seed": 0},
                        {"text": "a b c", "model": "m2", "seed": 1}]},
        {"id": "p1", "prompt": "Say yes", "candidates": [{"text": "yes", "model": "m1", "seed": 0},
                                                         {"text": "yes", "model": "m1", "seed": 1}]},
    ]
    text = "\n".join(json.dumps(line) for line in lines) + "\n{\"prompt\": \"no candidates\"}\n"
    (run / "output" / "candidates.jsonl").write_text(text, encoding="utf-8")
    return run


def test_pair_queue_gets_every_pair_of_distinct_answers_with_their_origin(tmp_path):
    run = _generate_run(tmp_path)
    store = LabelStore(tmp_path / "store.db")
    store.create_queue("pairs")

    report = import_batch(store, "pairs", "gen-2026", workspace=tmp_path)  # a unique prefix of the run id
    assert (report.prompts, report.added, report.collapsed) == (3, 3, 2)  # C(3, 2) pairs; two copies collapsed
    assert [(p.where, p.message) for p in report.skipped] == [
        ("candidates.jsonl, line 2", "only 1 different answer (2 candidates): nothing to compare")]
    assert report.malformed[0].where == "candidates.jsonl, line 3" and "candidates must be a list" in report.malformed[0].message

    items = store.items("pairs")
    assert [[c.text for c in i.candidates] for i in items] == [["c b a", "c a b"], ["c b a", "a b c"], ["c a b", "a b c"]]
    best = items[0].candidates[0]
    assert (best.model, best.seed, best.meta["logprob"], best.meta["same_text_from"]) == (
        "m1", 0, -1.5, [{"model": "m2", "seed": 0}])
    assert items[0].meta["prompt_id"] == "p0" and items[0].meta["batch"]["run"] == run.name
    assert prompt_messages_of(items[0]) == [{"role": "system", "content": "Be exact."},
                                            {"role": "user", "content": "Reverse: a b c"}]

    again = import_batch(store, "pairs", run / "output" / "candidates.jsonl")
    assert again.added == 0 and len(again.duplicates) == 3
    assert again.duplicates[0].message.startswith("already in queue 'pairs'")


def test_rank_queue_gets_one_item_with_all_distinct_answers(tmp_path):
    run = _generate_run(tmp_path)
    store = LabelStore(tmp_path / "store.db")
    store.create_queue("ranks", mode="rank")
    report = import_batch(store, "ranks", run)  # the run folder
    assert report.added == 1
    assert [c.text for c in store.items("ranks")[0].candidates] == ["c b a", "c a b", "a b c"]


def test_a_run_without_candidates_is_a_sentence(tmp_path):
    run = _generate_run(tmp_path)
    (run / "output" / "candidates.jsonl").unlink()
    store = LabelStore(tmp_path / "store.db")
    store.create_queue("q")
    with pytest.raises(DataError, match="has no candidates.jsonl in .*output"):
        import_batch(store, "q", run.name, workspace=tmp_path)
    with pytest.raises(DataError, match="No candidates.jsonl in"):
        import_batch(store, "q", run)
    with pytest.raises(DataError, match="No file, folder or run 'nope'"):
        import_batch(store, "q", "nope", workspace=tmp_path)


def test_a_chat_prompt_keeps_its_turns_for_conversational_exports(tmp_path):
    messages = [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}]
    path = tmp_path / "candidates.jsonl"
    line = {"id": "c", "prompt": "User: Hi\n\nAssistant: Hello\n\nUser: 2+2?", "meta": {"messages": messages},
            "candidates": [{"text": "4", "model": "m", "seed": 0}, {"text": "5", "model": "m", "seed": 1}]}
    path.write_text(json.dumps(line) + "\n", encoding="utf-8")
    store = LabelStore(tmp_path / "store.db")
    store.create_queue("q")
    import_batch(store, "q", path)
    store.add_label(Task(item=store.items("q")[0], annotator="ann", shown=(1, 0)), "right")
    export_preferences(store, "q", tmp_path / "out.jsonl", "trl-chat")
    assert json.loads((tmp_path / "out.jsonl").read_text()) == {
        "prompt": messages, "chosen": [{"role": "assistant", "content": "4"}],
        "rejected": [{"role": "assistant", "content": "5"}]}


def test_the_task_checker_labels_a_queue_and_says_it_is_not_human(tmp_path):
    from engine.labeling.checker_labels import label_by_checker
    from engine.labeling.formats import preference_pairs
    from engine.labeling.store import LabelStore

    store = LabelStore(tmp_path / "store.db")
    store.create_queue("q")
    meta = {"task": "addition"}

    def item(prompt: str, a: bool, b: bool) -> dict:
        return {"prompt": prompt, "meta": meta, "candidates": [{"text": f"{prompt} A", "meta": {"correct": a}},
                                                              {"text": f"{prompt} B", "meta": {"correct": b}}]}

    store.add_items("q", [item("1", True, False), item("2", False, True), item("3", True, True),
                          item("4", False, False), {"prompt": "5", "candidates": ["x", "y"]}])
    report = label_by_checker(store, "q")
    assert (report.annotator, report.preferences, report.ties, report.both_bad, report.unchecked) == \
        ("checker:addition", 2, 1, 1, 1)
    assert {label.kind for label in store.labels("q")} == {"checker"}
    pairs = preference_pairs(store, "q").pairs
    assert sorted((p.chosen.text, p.rejected.text) for p in pairs) == [("1 A", "1 B"), ("2 B", "2 A")]
    assert label_by_checker(store, "q").already == 4  # running it again labels nothing twice
