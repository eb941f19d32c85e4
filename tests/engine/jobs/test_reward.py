"""The reward job through the real engine process: a tiny llama learns which answer is preferred
(held-out pairwise accuracy from chance to ≥ 0.9, measured at step 0 and live), its reward model
loads with AutoModelForSequenceClassification alone and ranks new pairs; LoRA on top of an SFT
adapter, from a checker-labeled queue, cancelled and resumed; and bad input named clearly.

Engine runs are few (each one loads torch, transformers and TRL) and start ahead of their tests in a
RunPool, side by side; the checks that need no process call the engine's functions directly."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, RunPool, pooled, start_pooled
from tests.engine.reward_fixtures import WORDS, marker_pairs, reward_spec, tiny  # noqa: F401 (tiny is a fixture)


def eval_points(events: list[dict]) -> list[tuple[int, dict]]:
    return [(e["step"], e["values"]) for e in events
            if e["type"] == "metric" and e["split"] == "eval" and "pairwise_accuracy" in e["values"]]


def scores(folder: Path, pairs: list[dict]) -> list[tuple[float, float]]:
    """(score of chosen, score of rejected) by the saved reward model, loaded with transformers alone."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.num_labels == 1

    def score(prompt: str, answer: str) -> float:
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": answer}], tokenize=False)
        with torch.no_grad():
            return model(**tokenizer(text, return_tensors="pt")).logits[0, 0].item()

    return [(score(p["prompt"], p["chosen"]), score(p["prompt"], p["rejected"])) for p in pairs]


def checker_labeled_queue(workspace: Path, name: str, pairs: list[dict]) -> None:
    """A labeling queue of `pairs` in the workspace's store, each item labeled by the checker (chosen wins)."""
    from engine.labeling.store import LabelStore

    store = LabelStore(workspace / "store.db")
    store.create_queue(name)
    store.add_items(name, [{"prompt": p["prompt"], "candidates": [p["chosen"], p["rejected"]]} for p in pairs])
    while (task := store.next_task(name, "checker")) is not None:  # candidate 0 is the right one
        store.add_label(task, "left" if task.shown[0] == 0 else "right", kind="checker")
    store.close()


def run_to_completion(spec: dict):
    def job(engine: Engine):
        return engine, engine.run("run", str(engine.write_spec(spec)), "--json", timeout=300)
    return job


def cancel_then_resume(spec: dict):
    """Start the run, cancel it once the baseline is measured (training then stops after its first
    step or so, with a checkpoint), and resume it."""
    def job(engine: Engine):
        process = engine.popen("run", str(engine.write_spec(spec)), "--json", capture=False)
        try:
            run_dir = engine.first_run(timeout=200)
            engine.wait_for(run_dir, lambda e: e["type"] == "metric" and e["split"] == "eval", timeout=200)
            process.send_signal(signal.SIGINT)
            process.wait(timeout=100)
        finally:
            process.kill()
        cancelled = engine.events(run_dir)
        checkpoints = sorted(p.name for p in (run_dir / "checkpoints").glob("checkpoint-*"))
        output_after_cancel = (run_dir / "output" / "reward_model").exists()
        resumed = engine.run("resume", run_dir.name, "--json", timeout=300)
        return SimpleNamespace(run_dir=run_dir, returncode=process.returncode, cancelled=cancelled,
                               checkpoints=checkpoints, output_after_cancel=output_after_cancel, resumed=resumed)
    return job


BAD_SOURCES = ["empty-queue", "not-preferences", "instruction-data", "max-length"]
LORA_PAIRS = marker_pairs(60, seed=1)


def empty_queue(workspace: Path, name: str) -> None:
    """A queue with an item and no label."""
    from engine.labeling.store import LabelStore

    store = LabelStore(workspace / "store.db")
    store.create_queue(name)
    store.add_items(name, [{"prompt": "Say hi.", "candidates": ["hi", "hello"]}])
    store.close()


def lora_spec(tiny: SimpleNamespace) -> dict:  # noqa: F811
    return reward_spec(tiny, **{"model.adapter": str(tiny.adapter), "data.sources": ["queue:answers"],
                                "method": {"name": "lora", "lora": {"rank": 4, "alpha": 8}},
                                "train.max_steps": 30, "train.log_every": 1, "train.checkpoint_every": 1000,
                                "train.eval_every": 1000})


BAD_SOURCE_RUNS = {
    "empty-queue": (lambda tiny: reward_spec(tiny, **{"data.sources": ["queue:fresh"]}),
                    lambda engine: empty_queue(engine.workspace, "fresh")),
    "not-preferences": (lambda tiny: reward_spec(tiny, **{"data.sources": [str(tiny.not_prefs)]}), None),
    "instruction-data": (lambda tiny: reward_spec(tiny, **{"data.sources": [str(tiny.instructions)]}), None),
    "max-length": (lambda tiny: reward_spec(tiny, **{"data.max_length": 512}), None),
}
# What each bad source's error must say.
BAD_SOURCE_SAYS = {
    "empty-queue": ("No preference pairs: queue:fresh", "Label"),
    "not-preferences": ("answers.jsonl", "chosen"),
    "instruction-data": ("No preference pairs: ", "instructions.jsonl looks like instruction data for fine-tuning "
                         "(alpaca format), not preference pairs; 5 records like instructions.jsonl, line 1: not a "
                         "llamafactory record: the field 'chosen' is missing", "Give a preference file"),
    "max-length": ("data.max_length is 512 tokens, more than the 256 positions the model base reads", "rotary",
                   "at most that many tokens"),
}


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, tiny) -> RunPool:  # noqa: F811
    pool = RunPool(tmp_path_factory.mktemp("reward-runs"))
    start_pooled(request, pool, tiny=tiny)
    yield pool
    pool.close()


@pooled("full", lambda f: run_to_completion(reward_spec(f.tiny)))
def test_full_training_learns_the_preference_live_and_saves_a_model_that_ranks_new_pairs(runs):
    engine, result = runs.result("full")
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    events = engine.stdout_events(result.stdout)
    summary = events[-1]["summary"]
    assert events[-1]["status"] == "completed", events[-1]

    points = eval_points(events)
    assert [step for step, _ in points] == [0, 5, 10, 15]  # before training, live, and at the end
    assert all("mean_margin" in values for _, values in points)
    assert points[0][1]["pairwise_accuracy"] < 0.8 and points[-1][1]["pairwise_accuracy"] >= 0.9
    assert points[-1][1]["mean_margin"] > points[0][1]["mean_margin"]
    train = [e["values"] for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert any("loss" in v for v in train) and any("pairwise_accuracy" in v for v in train)
    assert summary["dropped"] == 3 and summary["train_pairs"] + summary["held_out_pairs"] == 200
    assert any(e["type"] == "log" and "3 pairs are longer than data.max_length" in e["message"] for e in events)
    assert summary["pairwise_accuracy"] >= 0.9
    assert summary["pairwise_accuracy_before"] == points[0][1]["pairwise_accuracy"]

    run_dir = engine.only_run()
    assert (run_dir / "checkpoints" / "checkpoint-15").is_dir()
    folder = run_dir / "output" / "reward_model"
    assert summary["reward_model"] == str(folder) and "pairwise_accuracy" in (folder / "README.md").read_text()
    ranked = scores(folder, marker_pairs(40, seed=99))
    assert sum(chosen > rejected for chosen, rejected in ranked) >= 36


PACKING_RUN = {"train.max_steps": 6, "train.log_every": 1, "train.eval_every": 1000, "train.checkpoint_every": 1000}


@pooled("packed", lambda f: run_to_completion(reward_spec(f.tiny, **{**PACKING_RUN, "train.packing": "on"})))
@pooled("padded", lambda f: run_to_completion(reward_spec(f.tiny, **{**PACKING_RUN, "train.packing": "off"})))
def test_packed_and_padded_runs_give_the_same_losses_and_count_their_padding(runs):
    losses, efficiency = {}, {}
    for name in ("packed", "padded"):
        engine, result = runs.result(name)
        assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
        events = engine.stdout_events(result.stdout)
        logs = [e["message"] for e in events if e["type"] == "log"]
        assert (f"Batches: {name}, padding-free (each score read at its conversation's last token)." if name == "packed"
                else "Batches: padded.") in logs
        train = [e["values"] for e in events if e["type"] == "metric" and e["split"] == "train" and "loss" in e["values"]]
        losses[name] = [values["loss"] for values in train]
        efficiency[name] = [values["padding_efficiency"] for values in train]
        assert all(values["tokens_per_s"] > 0 for values in train)
    assert len(losses["packed"]) == 6
    # Packed rows hold no padding; the padded batches of pairs of different lengths do.
    assert efficiency["packed"] == [1.0] * 6 and all(0 < e < 1 for e in efficiency["padded"]), efficiency
    assert losses["packed"] == pytest.approx(losses["padded"], rel=1e-3)  # same pairs, same steps, same weights
    assert losses["packed"][-1] < losses["packed"][0]


@pooled("lora", lambda f: cancel_then_resume(lora_spec(f.tiny)),
        prepare=lambda f: lambda engine: checker_labeled_queue(engine.workspace, "answers", LORA_PAIRS))
def test_lora_on_an_sft_adapter_from_a_checker_labeled_queue_cancels_resumes_and_merges(runs):
    lora = runs.result("lora")
    assert lora.returncode == 130 and lora.cancelled[-1]["status"] == "cancelled"
    assert len(lora.checkpoints) == 1 and not lora.output_after_cancel  # a checkpoint at the cancel, no model yet
    stopped_at = int(lora.checkpoints[0].split("-")[1])
    assert 1 <= stopped_at < 30

    assert lora.resumed.returncode == 0, lora.resumed.stderr[-3000:]
    events = [json.loads(line) for line in (lora.run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[-1]["status"] == "completed"
    assert [e for e in events if e["type"] == "started"][-1]["resumed_from_step"] == stopped_at
    assert [step for step, _ in eval_points(events)] == [0, 30]  # no second baseline after the resume
    summary = events[-1]["summary"]
    assert summary["train_pairs"] + summary["held_out_pairs"] == 60 and summary["trainable_parameters"] < 10_000
    assert any("+ adapter" in e.get("message", "") for e in events if e["type"] == "log")
    folder = lora.run_dir / "output" / "reward_model"
    assert not (folder / "adapter_config.json").exists()  # merged: one plain model folder
    assert len(scores(folder, LORA_PAIRS[:2])) == 2


@pooled(lambda f, case: case, lambda f, case: run_to_completion(BAD_SOURCE_RUNS[case][0](f.tiny)),
        prepare=lambda f, case: BAD_SOURCE_RUNS[case][1])
@pytest.mark.parametrize("case", BAD_SOURCES)
def test_bad_preferences_name_the_source_and_what_to_do(runs, tiny, case):
    _, result = runs.result(case)
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    text = error["message"] + " " + error["hint"]
    assert error["type"] == "data_error" and all(part in text for part in BAD_SOURCE_SAYS[case]), text


def preview_of(spec: dict):
    def job(engine: Engine):
        return engine.run("preview", str(engine.write_spec(spec)))
    return job


@pooled("preview", lambda f: preview_of(reward_spec(f.tiny, **{"data.max_length": 24})))
def test_preview_shows_each_sources_format_and_a_pair_as_the_reward_model_reads_it(runs, tiny):
    result = runs.result("preview")
    assert result.returncode == 0, result.stderr[-2000:]
    text = result.stdout
    assert f"Pairs ({tiny.prefs}: trl): " in text and "training and" in text
    assert "of 203 measured pairs are longer than data.max_length (24 tokens) and would be dropped" in text
    line = int(re.search(r"prefs\.jsonl, line (\d+), as the reward model reads it", text).group(1))
    shown = json.loads(tiny.prefs.read_text().splitlines()[line - 1])
    assert f"⟦{shown['chosen']}<|im_end|>" in text and f"⟦{shown['rejected']}<|im_end|>" in text
    assert text.count(shown["prompt"]) == 2  # the prompt before each answer, unmarked


def test_chat_template_auto_lays_out_one_turn_plainly_and_refuses_several_turns_without_a_template(tiny):
    from transformers import AutoTokenizer

    from engine.errors import TokenizerError
    from engine.rlhf.preferences import Pair
    from engine.rlhf.reward_data import conversation_ids, reward_template

    tokenizer = AutoTokenizer.from_pretrained(tiny.base)
    tokenizer.chat_template = None
    one = Pair([{"role": "user", "content": "Hi?"}], [{"role": "assistant", "content": "good"}],
               [{"role": "assistant", "content": "bad"}], "prefs.jsonl, line 1")
    template, added = reward_template(tokenizer, "auto", [one])
    assert added == 0 and tokenizer.decode(conversation_ids(one.prompt + one.chosen, tokenizer, template)) == (
        "<|bos|>User: Hi?\nAssistant: good<|eos|>\n")
    tokenizer.chat_template = None
    several = Pair([{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Yes?"},
                    {"role": "user", "content": "Well?"}], one.chosen, one.rejected, "prefs.jsonl, line 7")
    with pytest.raises(TokenizerError, match="line 7") as raised:
        reward_template(tokenizer, "auto", [one, several])
    assert "data.chat_template: chatml" in raised.value.hint
    own, _ = reward_template(AutoTokenizer.from_pretrained(tiny.base), "auto", [several])
    assert "<|im_start|>" in own
