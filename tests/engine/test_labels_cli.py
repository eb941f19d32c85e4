"""`studio-engine labels …` through the real engine process (each call costs a process start: few calls)."""

from __future__ import annotations

import json

from engine.labeling.store import LabelStore, Task


def _generate_run(workspace):
    run = workspace / "runs" / "gen-1"
    (run / "output").mkdir(parents=True)
    (run / "spec.yaml").write_text("kind: generate\n", encoding="utf-8")
    lines = [{"id": f"p{i}", "prompt": f"{i} + {i} =",
              "candidates": [{"text": str(2 * i), "model": "tiny", "seed": 0},
                             {"text": str(2 * i + 1), "model": "tiny", "seed": 1}]} for i in range(3)]
    (run / "output" / "candidates.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")


def test_create_import_label_stats_conflicts_export(engine, tmp_path):
    _generate_run(engine.workspace)
    guidelines = tmp_path / "guidelines.md"
    guidelines.write_text("Prefer the correct sum.", encoding="utf-8")

    created = engine.run("labels", "create", "sums", "--overlap", "1", "--guidelines", str(guidelines))
    assert created.returncode == 0, created.stderr
    assert "Created queue 'sums' (pair, 100% of items labeled by 2 annotators)" in created.stdout

    imported = engine.run("labels", "import-batch", "gen-1", "--queue", "sums", "--json")
    assert imported.returncode == 0, imported.stderr
    assert json.loads(imported.stdout)["added"] == 3

    store = LabelStore(engine.workspace / "store.db")  # the studio's store: <workspace>/store.db
    assert store.queue("sums").guidelines == "Prefer the correct sum."
    for n, item in enumerate(store.items("sums")):
        store.add_label(Task(item=item, annotator="alice", shown=(1, 0)), "right")  # the correct sum, shown right
        bob_says = "right" if n == 2 else "left"
        store.add_label(Task(item=item, annotator="bob", shown=(0, 1)), bob_says,
                        comment="odd is nicer" if n == 2 else "")

    stats = engine.run("labels", "stats", "--queue", "sums", "--json")
    figures = json.loads(stats.stdout)
    assert figures["progress"]["done"] == 3
    assert figures["agreement"]["pairs"][0]["agreed"] == 2
    assert figures["position_bias"] == {"left_share": 2 / 6, "sided_verdicts": 6}

    listed = engine.run("labels", "conflicts", "--queue", "sums")
    assert listed.returncode == 0, listed.stderr
    assert "1 item of queue 'sums' where annotators disagree" in listed.stdout
    assert "#3 (item 3): 2 + 2 =" in listed.stdout
    assert 'bob: B > A (said right) — "odd is nicer"' in listed.stdout

    out = tmp_path / "sums.jsonl"
    exported = engine.run("labels", "export", "--queue", "sums", "--format", "trl", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    assert "Wrote 2 pairs" in exported.stdout and "1 without a majority" in exported.stdout
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"prompt": "0 + 0 =", "chosen": "0", "rejected": "1"}, {"prompt": "1 + 1 =", "chosen": "2", "rejected": "3"}]


def test_bad_input_exits_2_with_a_sentence(engine, tmp_path):
    missing = engine.run("labels", "import", str(tmp_path / "nope.jsonl"), "--queue", "q", "--create")
    assert missing.returncode == 2
    assert "No preference file at" in missing.stderr and "What to do:" in missing.stderr
    queues = engine.run("labels", "queues", "--json")
    assert json.loads(queues.stdout)["queues"] == []  # the queue --create made was removed with the failed import
