"""An arena through the real engine process: two models (a base model and the same model with a LoRA
adapter) answer the same prompts once each, with recorded seeds (`kind: generate`); the answers
become a pair queue (`labels import-batch`); two annotators label them as the Label page would (the
store hands out each item in a random order); `labels ratings` turns the votes into ratings."""

from __future__ import annotations

import json

from engine.labeling.ratings import arena
from engine.labeling.store import LabelStore
from tests.engine.conftest import with_overrides
from tests.tiny_models import random_lora_adapter, save_model, tiny_byte_bpe, tiny_llama


def test_two_models_answers_become_a_blind_queue_whose_votes_become_ratings(engine, tmp_path):
    texts = [f"Reverse the order of the words. cat red sun {i} apple tree moon" for i in range(200)]
    tokenizer = tiny_byte_bpe(texts, vocab_size=300, max_length=256)
    base = save_model(tmp_path / "base", tiny_llama(tokenizer), tokenizer)
    adapter = random_lora_adapter(tiny_llama(tokenizer), base, tmp_path / "adapter")
    spec = with_overrides({"kind": "generate", "name": "arena",
                           "models": [{"path": str(base), "label": "base"},
                                      {"path": str(base), "adapter": str(adapter), "label": "tuned"}],
                           "prompts": {"sources": ["builtin:tasks"], "task": "reverse", "task_examples": 6},
                           "candidates_per_model": 1, "sampling": {"max_new_tokens": 6}, "seed": 3,
                           "resources": {"device": "cpu"}}, {})
    engine.env["HF_HUB_OFFLINE"] = "1"
    generated = engine.run("run", str(engine.write_spec(spec)), "--json", timeout=300)
    assert generated.returncode == 0, generated.stderr[-3000:]
    run_id = json.loads(generated.stdout.splitlines()[0])["run_id"]

    created = engine.run("labels", "create", "arena", "--overlap", "1")  # every item to two annotators
    assert created.returncode == 0, created.stderr
    imported = engine.run("labels", "import-batch", run_id, "--queue", "arena", "--json")
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    store = LabelStore(engine.workspace / "store.db")
    items = store.items("arena")
    assert report["added"] == len(items) >= 4  # prompts whose two answers differ
    for item in items:
        assert sorted(c.model for c in item.candidates) == ["base", "tuned"]
        assert all(isinstance(c.seed, int) for c in item.candidates)

    # Both annotators prefer the tuned model's answer, whichever side the store shows it on; bob
    # once prefers the base model.
    sides = []
    for annotator in ("ann", "bob"):
        while (task := store.next_task("arena", annotator)) is not None:
            tuned_side = [store.item(task.item.id).candidates[i].model for i in task.shown].index("tuned")
            sides.append(tuned_side)
            verdict = "left" if tuned_side == 0 else "right"
            if annotator == "bob" and task.item.position == 0:
                verdict = "right" if verdict == "left" else "left"
            store.add_label(task, verdict)
    assert set(sides) == {0, 1}  # shown on both sides: the order is drawn per item

    rated = engine.run("labels", "ratings", "--queue", "arena", "--json", "--seed", "2")
    assert rated.returncode == 0, rated.stderr
    found = json.loads(rated.stdout)
    expected = arena(store, "arena", seed=2).to_json()
    assert found == expected
    tuned, base_rating = found["overall"]["ratings"]
    assert tuned["model"] == "tuned" and tuned["low"] < tuned["rating"] < tuned["high"]
    assert tuned["rating"] > 1000 > base_rating["rating"]
    assert found["overall"]["votes"] == tuned["votes"] == store.label_count("arena") == 2 * len(items)
    assert found["per_annotator"]["ann"]["ratings"][0]["losses"] == 0
    assert found["per_annotator"]["bob"]["ratings"][0]["losses"] == 1
    assert found["agreement"]["pairs"][0]["agreed"] == len(items) - 1

    shown = engine.run("labels", "ratings", "--queue", "arena", "--method", "elo")
    assert shown.returncode == 0, shown.stderr
    assert f"Arena 'arena': 2 models, {found['overall']['votes']} votes." in shown.stdout
    assert "Everyone: Elo," in shown.stdout and "1 tuned" in shown.stdout and "95% CI" in shown.stdout

    missing = engine.run("labels", "ratings", "--queue", "nope")
    assert missing.returncode == 2 and "No labeling queue 'nope'" in missing.stderr
