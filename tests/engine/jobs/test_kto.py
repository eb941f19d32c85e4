"""The kto job: answers judged good or bad one at a time — a single-answer labeling queue judged by
the task checker, LLaMA-Factory kto_tag and TRL unpaired files, and pairs read as a good and a bad
answer — trained with LoRA through the real engine process; the figures as metric events, a merged
policy, the preview of a judged answer as KTO trains on it, and bad input named clearly."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, run_in_process, with_overrides
from tests.engine.policy_fixtures import tiny_policy

TRAIN = {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-3, "warmup_steps": 0, "eval_every": 2,
         "checkpoint_every": 4, "log_every": 1}
EVALUATION = {"task": "addition", "examples": 4, "max_new_tokens": 4}


def addition_answers(count: int, seed: int) -> list[tuple[str, str, bool]]:
    """(prompt, answer, right) of built-in addition tasks: right and wrong answers, alternately."""
    from engine.tasks.generators import generate

    return [(f"{r['instruction']}\n\n{r['input']}", r["output"] if i % 2 else str(int(r["output"]) + 1 + i % 7),
             bool(i % 2)) for i, r in enumerate(generate("addition", count, seed))]


def judge_queue_by_checker(store_path: Path, name: str, answers: list[tuple[str, str, bool]]) -> None:
    """A single-answer queue whose items the task checker judges: good when the answer is right."""
    from engine.labeling.store import LabelStore

    store = LabelStore(store_path, rng=random.Random(0))
    queue = store.create_queue(name, mode="single")
    store.add_items(queue, [{"prompt": prompt, "candidates": [{"text": text, "model": "a"}]}
                            for prompt, text, _ in answers])
    right = {(prompt, text): good for prompt, text, good in answers}
    while (task := store.next_task(queue, "checker")) is not None:
        good = right[(task.item.prompt, task.item.candidates[0].text)]
        store.add_label(task, "good" if good else "bad", kind="checker", source="test")
    store.close()


def kto_spec(model: Path, sources: list[str], **overrides) -> dict:
    spec = {"kind": "kto", "name": "kto", "model": {"path": str(model)},
            "data": {"sources": sources, "eval_fraction": 0.25, "max_length": 64},
            "method": {"name": "lora", "lora": {"rank": 4, "alpha": 8}},
            "train": dict(TRAIN), "evaluation": dict(EVALUATION), "resources": {"device": "cpu"}, "seed": 0}
    return with_overrides(spec, overrides)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The model and the judged answers of this module; the engine run starts at once, in the background."""
    root = tmp_path_factory.mktemp("kto")
    tiny = tiny_policy(root / "models")
    engine = Engine(root / "ws")
    engine.workspace.mkdir()
    judge_queue_by_checker(engine.workspace / "store.db", "judged", addition_answers(12, 1))
    kto_tag = root / "llamafactory_kto.json"
    kto_tag.write_text(json.dumps([
        {"conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": text}], "kto_tag": good}
        for prompt, text, good in addition_answers(8, 2)]), encoding="utf-8")
    unpaired = root / "unpaired.jsonl"
    unpaired.write_text("".join(json.dumps({"prompt": p, "completion": t, "label": g}) + "\n"
                                for p, t, g in addition_answers(8, 3)), encoding="utf-8")
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"instruction": p, "chosen": t, "rejected": t + "0"}) + "\n"
                             for p, t, _ in addition_answers(4, 4)), encoding="utf-8")
    sources = ["queue:judged", str(kto_tag), str(unpaired), str(pairs)]
    spec = engine.write_spec(kto_spec(tiny.chat, sources, **{"train.packing": "on"}), "kto.yaml")
    process = engine.popen("run", str(spec), "--json")
    yield SimpleNamespace(tiny=tiny, engine=engine, sources=sources, spec=spec, process=process, result=None)
    if process.poll() is None:  # its test was not selected
        process.kill()
        process.communicate()


def engine_events(setup) -> list[dict]:
    """The events of the module's engine run (packed), once it has completed."""
    if setup.result is None:
        stdout, stderr = setup.process.communicate(timeout=600)
        events = setup.engine.stdout_events(stdout)
        assert setup.process.returncode == 0 and events[-1]["status"] == "completed", (events[-1], stderr[-3000:])
        setup.result = events
    return setup.result


def test_kto_with_lora_on_a_judged_queue_and_every_file_shape_through_the_engine(setup):
    events = engine_events(setup)
    finished = events[-1]
    log = " ".join(e.get("message", "") for e in events if e["type"] == "log")
    # 12 judged items, 8 + 8 judged records, 4 pairs giving 8 answers.
    summary = finished["summary"]
    assert summary["train_answers"] + summary["held_out_answers"] == 36, summary
    assert "the policy with its adapter off" in log and "KTO (kto loss, β 0.1)" in log
    train = [e for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert [m["step"] for m in train] == [1, 2, 3, 4]
    for figure in ("loss", "kl", "lr", "grad_norm"):
        assert all(isinstance(m["values"][figure], float) for m in train), figure
    held_out = [e for e in events if e["type"] == "metric" and e["split"] == "eval" and "loss" in e["values"]]
    assert [m["step"] for m in held_out] == [2, 4] and "reward_margin" in summary
    task = [e for e in events if e["type"] == "metric" and e["split"] == "eval" and "task_accuracy" in e["values"]]
    assert [m["step"] for m in task] == [0, 2, 4]

    from transformers import AutoModelForCausalLM

    policy = Path(summary["policy"])
    model = AutoModelForCausalLM.from_pretrained(policy)
    assert not any("lora" in n for n, _ in model.named_parameters())
    assert not (policy / "adapter_config.json").exists()


def test_packed_and_padded_runs_give_the_same_losses_and_count_their_padding(setup):
    """The engine's run packs every batch (its answers', its KL estimate's and the reference's forwards); the same
    run padded, in this process, gives the same losses."""
    padded = run_in_process(kto_spec(setup.tiny.chat, setup.sources, **{"train.packing": "off"}),
                            setup.engine.workspace)
    assert padded.error is None, padded.error
    figures = {}
    for name, events in (("packed", engine_events(setup)), ("padded", padded.events)):
        log = [e["message"] for e in events if e["type"] == "log"]
        assert ("Batches: packed, padding-free (each answer's log-probabilities read from its own positions)."
                if name == "packed" else "Batches: padded.") in log
        train = [e["values"] for e in events if e["type"] == "metric" and e["split"] == "train"]
        assert all(values["trained_tokens_per_s"] < values["tokens_per_s"] for values in train)  # prompts untrained
        figures[name] = {figure: [values[figure] for values in train]
                         for figure in ("loss", "kl", "padding_efficiency")}
    assert figures["packed"]["padding_efficiency"] == [1.0] * 4
    assert all(0 < e < 1 for e in figures["padded"]["padding_efficiency"])
    for figure in ("loss", "kl"):
        assert figures["packed"][figure] == pytest.approx(figures["padded"][figure], rel=1e-3, abs=1e-6), figure


def test_preview_shows_each_format_and_a_judged_answer_as_kto_trains_on_it(setup):
    result = setup.engine.run("preview", str(setup.spec), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    preview = json.loads(result.stdout)
    assert list(preview["formats"].values()) == ["queue", "llamafactory-kto", "trl-unpaired", "llamafactory"]
    assert preview["answers"]["train"] + preview["answers"]["held_out"] == 36
    [example] = preview["examples"]
    answer = example["messages"]["completion"][0]["content"]
    assert example["completion"]["text"] == f"{answer}<|im_end|>" and example["verdict"] in ("good", "bad")
    text = setup.engine.run("preview", str(setup.spec))
    assert text.returncode == 0, text.stderr[-2000:]
    assert "Judged answers (queue:judged: queue; " in text.stdout and "as KTO trains on it" in text.stdout
    assert f"⟦{answer}<|im_end|>⟧" in text.stdout
    assert preview["batches"]["packed"] and text.stdout.rstrip().endswith("Batches: packed, padding-free")  # on


def test_answers_all_of_one_verdict_are_refused(setup, tmp_path):
    same = tmp_path / "all-good.jsonl"
    same.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": "a", "label": True}) + "\n"
                            for i in range(6)), encoding="utf-8")
    result = run_in_process(kto_spec(setup.tiny.chat, [str(same)], **{"data.eval_fraction": 0.0}), tmp_path)
    assert result.error is not None and "judged good" in result.error.message
    assert "other verdict" in result.error.hint


def test_a_batch_of_one_is_refused_before_anything_runs(engine):
    bad = kto_spec(Path("m"), ["queue:x"], **{"train.batch_size": 1})
    result = engine.run("run", str(engine.write_spec(bad)))
    assert result.returncode == 2 and "at least 2 answers per step" in result.stdout + result.stderr
