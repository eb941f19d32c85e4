"""The grpo job: the built-in task's checker as reward through the real engine process (LoRA), a
reward model as reward in this process (full training), and bad input named clearly: a reward model
that reads other tokens than the policy, a checker without built-in task prompts, greedy sampling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, run_in_process, with_overrides
from tests.engine.policy_fixtures import tiny_policy

TRAIN = {"max_steps": 4, "batch_size": 2, "learning_rate": 1e-3, "warmup_steps": 0, "eval_every": 2,
         "checkpoint_every": 4, "log_every": 1}


def grpo_spec(model: Path, **overrides) -> dict:
    spec = {"kind": "grpo", "name": "grpo", "model": {"path": str(model)},
            "prompts": {"sources": ["builtin:tasks"], "task": "addition", "task_examples": 8},
            "group_size": 3, "sampling": {"temperature": 1.0, "max_new_tokens": 4},
            "method": {"name": "lora", "lora": {"rank": 4, "alpha": 8}}, "train": dict(TRAIN),
            "evaluation": {"task": "addition", "examples": 4, "max_new_tokens": 4},
            "resources": {"device": "cpu"}, "seed": 0}
    return with_overrides(spec, overrides)


def reward_model(policy: Path, folder: Path, tokenizer_from: Path | None = None) -> Path:
    """A one-score sequence classifier on the policy's architecture, saved with the policy's tokenizer
    (or another one)."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    config = AutoConfig.from_pretrained(policy)
    config.num_labels = 1
    torch.manual_seed(1)
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_from or policy).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The tiny policy; the engine run starts at once, in the background."""
    root = tmp_path_factory.mktemp("grpo")
    tiny = tiny_policy(root / "models")
    engine = Engine(root / "ws")
    engine.workspace.mkdir()
    process = engine.popen("run", str(engine.write_spec(grpo_spec(tiny.chat, **{"train.packing": "on"}))), "--json")
    yield SimpleNamespace(root=root, tiny=tiny, engine=engine, process=process, events=None)
    if process.poll() is None:  # its test was not selected
        process.kill()
        process.communicate()


def test_a_reward_model_scores_the_answers_in_process(setup, tmp_path):
    """Full training with a reward model (β 0: no reference model); its scores are the rewards."""
    folder = reward_model(setup.tiny.chat, setup.root / "reward")
    spec = grpo_spec(setup.tiny.chat, **{"reward": {"source": "reward_model", "reward_model": str(folder)},
                                         "method": {"name": "full"}, "beta": 0.0, "train.max_steps": 2,
                                         "train.learning_rate": 1e-4, "evaluation": {"task": "none"}})
    result = run_in_process(spec, tmp_path)
    assert result.error is None, result.error
    train = [e["values"] for e in result.events if e["type"] == "metric" and e["split"] == "train"]
    assert len(train) == 2 and all(isinstance(v["reward"], float) and v["reward_std"] > 0 for v in train)
    assert not any(e["type"] == "metric" and "task_accuracy" in e["values"] for e in result.events)
    assert result.summary["prompts"] == 8 and "reward_last" in result.summary
    assert any(f"Reward model: {folder}" in e.get("message", "") for e in result.events)


def test_the_reward_model_scores_the_conversation_as_the_reward_job_encodes_it(setup):
    from transformers import AutoTokenizer

    from engine.finetune.rendering import render
    from engine.generate.prompts import Prompt
    from engine.rlhf.grpo_rewards import RewardModelScorer
    from engine.specs.chat import CHAT_PRESETS

    tokenizer = AutoTokenizer.from_pretrained(setup.tiny.chat)
    template = CHAT_PRESETS["chatml"][0]
    prompt = Prompt(id="p", text="Add 2 and 3.", messages=[{"role": "user", "content": "Add 2 and 3."}], where="p")
    scorer = RewardModelScorer(None, tokenizer, template, [prompt], max_length=256)
    expected = render({"messages": [*prompt.messages, {"role": "assistant", "content": "5"}]}, tokenizer, template,
                      "all", 256, "truncate").input_ids
    assert scorer.input_ids(prompt, " 5\n") == expected
    assert tokenizer.convert_ids_to_tokens(expected[0]) == tokenizer.bos_token and "<|im_end|>" in \
        tokenizer.convert_ids_to_tokens(expected)


def test_a_reward_model_with_another_tokenizer_is_refused(setup, tmp_path):
    from transformers import AutoTokenizer

    other = tmp_path / "other-tokenizer"
    tokenizer = AutoTokenizer.from_pretrained(setup.tiny.chat)
    tokenizer.add_tokens(["<|extra|>"], special_tokens=True)
    tokenizer.save_pretrained(other)
    folder = reward_model(setup.tiny.chat, tmp_path / "reward", tokenizer_from=other)
    spec = grpo_spec(setup.tiny.chat, **{"reward": {"source": "reward_model", "reward_model": str(folder)}})
    result = run_in_process(spec, tmp_path)
    error = result.error
    assert error is not None and f"The reward model {folder} (reward.reward_model) reads other tokens" in error.message
    assert "vocabulary has" in error.message and "reward.source: checker" in error.hint


@pytest.mark.parametrize("case", ["checker-on-a-file", "greedy", "no-reward-model"])
def test_inconsistent_specs_are_refused(case):
    from engine.specs import SpecError, parse_spec

    overrides, expected = {
        "checker-on-a-file": ({"prompts.sources": ["prompts.jsonl"]},
                              ["reward.source is checker", "prompts.jsonl", "[builtin:tasks]"]),
        "greedy": ({"sampling.do_sample": False}, ["sampling.do_sample: true"]),
        "no-reward-model": ({"reward": {"source": "reward_model"}}, ["reward.reward_model is empty"]),
    }[case]
    with pytest.raises(SpecError) as info:
        parse_spec(grpo_spec(Path("m"), **overrides))
    assert all(part in str(info.value) for part in expected), str(info.value)


def engine_events(setup) -> list[dict]:
    """The events of the module's engine run (packed), once it has completed."""
    if setup.events is None:
        stdout, stderr = setup.process.communicate(timeout=600)
        assert setup.process.returncode == 0, stderr[-3000:]
        setup.events = setup.engine.stdout_events(stdout)
    return setup.events


def test_checker_rewards_through_the_engine(setup):
    events = engine_events(setup)
    assert events[-1]["status"] == "completed"

    train = [e for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert [m["step"] for m in train] == [1, 2, 3, 4]
    for figure in ("loss", "reward", "reward_std", "zero_std_groups", "kl", "completion_length", "entropy", "lr"):
        assert all(isinstance(m["values"][figure], float) for m in train), figure
    assert all(0.0 <= m["values"]["reward"] <= 1.0 for m in train)
    task = [e for e in events if e["type"] == "metric" and "task_accuracy" in e["values"]]
    assert [m["step"] for m in task] == [0, 2, 4] and all("task_accuracy_sampled" in m["values"] for m in task)
    rewarded = [e for e in events if e["type"] == "sample" and "(reward " in e["text"]]
    assert rewarded and rewarded[0]["prompt"].startswith("Add the two numbers.\n\n")

    summary = events[-1]["summary"]
    assert summary["prompts"] == 8 and {"reward_first", "reward_last", "task_accuracy_before",
                                        "task_accuracy_after", "task_accuracy_sampled_after"} <= set(summary)
    from transformers import AutoModelForCausalLM

    policy = Path(summary["policy"])
    AutoModelForCausalLM.from_pretrained(policy)
    assert "GRPO" in (policy / "README.md").read_text()
    log = " ".join(e.get("message", "") for e in events if e["type"] == "log")
    assert "6 answers per step" in log and "reference: the policy with its adapter off" in log
    assert "Batches: packed, padding-free" in log and all(m["values"]["padding_efficiency"] == 1.0 for m in train)


def test_packed_and_padded_updates_give_the_same_losses_and_count_their_padding(setup, tmp_path):
    """The update's forwards (the policy's and the reference's: prompts padded on the left, answers on the right)
    packed and padded, scored by a reward model on prompts of several lengths: the same answers sampled, the same
    rewards, losses and KL."""
    import json

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": "Add " + " and ".join(str(n) for n in range(k + 2))}) + "\n"
                               for k in range(8)), encoding="utf-8")
    folder = reward_model(setup.tiny.chat, setup.root / "reward-for-packing")
    figures = {}
    for packing in ("on", "off"):
        result = run_in_process(grpo_spec(setup.tiny.chat, **{
            "prompts": {"sources": [str(prompts)]}, "reward": {"source": "reward_model", "reward_model": str(folder)},
            "beta": 0.1, "train.max_steps": 3, "evaluation": {"task": "none"}, "train.packing": packing}), tmp_path)
        assert result.error is None, result.error
        log = [e["message"] for e in result.events if e["type"] == "log"]
        assert ("Batches: packed, padding-free (each answer's log-probabilities read from its own positions)."
                if packing == "on" else "Batches: padded.") in log
        train = [e["values"] for e in result.events if e["type"] == "metric" and e["split"] == "train"]
        assert all(values["trained_tokens_per_s"] < values["tokens_per_s"] for values in train)  # prompts untrained
        figures[packing] = {figure: [values[figure] for values in train]
                            for figure in ("loss", "kl", "reward", "padding_efficiency")}
    assert figures["on"]["padding_efficiency"] == [1.0] * 3
    assert all(0 < e < 0.9 for e in figures["off"]["padding_efficiency"])
    assert figures["on"]["reward"] == pytest.approx(figures["off"]["reward"], rel=1e-4)  # the same answers
    assert max(abs(loss) for loss in figures["off"]["loss"]) > 1e-3 and figures["off"]["kl"][-1] > 0  # it learns
    for figure in ("loss", "kl"):
        assert figures["on"][figure] == pytest.approx(figures["off"][figure], rel=1e-3, abs=1e-6), figure
