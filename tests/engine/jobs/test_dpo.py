"""The dpo job: the sigmoid loss with LoRA on a labeling queue labelled by the task checker and a
preference file, through the real engine process; the IPO loss with full training of a model with
its SFT adapter merged in, in this process; pairwise and task figures as metric events; a merged
policy that loads on its own; and bad input named clearly. The engine runs start together, in the
background, when the module's fixture is first used (each one imports torch, transformers and TRL)."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, run_in_process, with_overrides
from tests.engine.policy_fixtures import tiny_policy
from tests.tiny_models import random_lora_adapter

TRAIN = {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-3, "warmup_steps": 0, "eval_every": 2,
         "checkpoint_every": 4, "log_every": 1}
EVALUATION = {"task": "addition", "examples": 4, "max_new_tokens": 4}


def sft_adapter(base: Path, folder: Path) -> Path:
    """A LoRA adapter for `base` with random A and B (not the usual B = 0), so it changes the model."""
    from transformers import AutoModelForCausalLM

    return random_lora_adapter(AutoModelForCausalLM.from_pretrained(base), base, folder)


def addition_pairs(count: int, seed: int) -> list[tuple[str, str, str]]:
    """(prompt, right answer, wrong answer) of built-in addition tasks."""
    from engine.tasks.generators import generate

    return [(f"{r['instruction']}\n\n{r['input']}", r["output"], str(int(r["output"]) + 1 + i % 9))
            for i, r in enumerate(generate("addition", count, seed))]


def label_queue_by_checker(store_path: Path, name: str, pairs: list[tuple[str, str, str]], verdict: str | None = None):
    """A labeling queue whose items are labelled by the task checker (the right answer wins), or all
    given `verdict` (a tie gives no pair)."""
    from engine.labeling.store import LabelStore

    store = LabelStore(store_path, rng=random.Random(0))
    queue = store.create_queue(name)
    store.add_items(queue, [{"prompt": prompt, "candidates": [{"text": right, "model": "a"},
                                                              {"text": wrong, "model": "b"}]}
                            for prompt, right, wrong in pairs])
    while (task := store.next_task(queue, "checker")) is not None:
        given = verdict or ("left" if task.shown[0] == 0 else "right")  # candidate 0 is the right answer
        store.add_label(task, given, kind="checker", source="test")
    store.close()


def dpo_spec(model: Path, sources: list[str], **overrides) -> dict:
    spec = {"kind": "dpo", "name": "dpo", "model": {"path": str(model)},
            "data": {"sources": sources, "eval_fraction": 0.25, "max_length": 64},
            "train": dict(TRAIN), "evaluation": dict(EVALUATION), "resources": {"device": "cpu"}, "seed": 0}
    return with_overrides(spec, overrides)


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """The models and preferences of this module; the engine runs start at once, in the background."""
    root = tmp_path_factory.mktemp("dpo")
    tiny = tiny_policy(root / "models")
    engine = Engine(root / "ws")
    engine.workspace.mkdir()
    label_queue_by_checker(engine.workspace / "store.db", "sums", addition_pairs(16, 1))
    label_queue_by_checker(engine.workspace / "store.db", "ties", addition_pairs(4, 2), verdict="tie")
    prefs = root / "prefs.jsonl"
    prefs.write_text("".join(json.dumps({"prompt": p, "chosen": right, "rejected": wrong}) + "\n"
                             for p, right, wrong in addition_pairs(16, 3)), encoding="utf-8")
    turns = root / "turns.jsonl"
    turns.write_text(json.dumps({
        "prompt": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Hello."},
                   {"role": "user", "content": "Add 2 and 3."}],
        "chosen": [{"role": "assistant", "content": "5"}], "rejected": [{"role": "assistant", "content": "6"}]}) + "\n")
    specs = {
        "sigmoid-lora": dpo_spec(tiny.chat, ["queue:sums", str(prefs)], **{
            "loss_type": "sigmoid", "method.name": "lora", "method.lora": {"rank": 4, "alpha": 8},
            "train.packing": "on"}),
        "sigmoid-lora-padded": dpo_spec(tiny.chat, ["queue:sums", str(prefs)], **{
            "loss_type": "sigmoid", "method.name": "lora", "method.lora": {"rank": 4, "alpha": 8},
            "train.packing": "off"}),
        "turns-without-template": dpo_spec(tiny.plain, [str(turns)], **{"data.eval_fraction": 0.0}),
        "longer-than-the-model": dpo_spec(tiny.chat, [str(prefs)], **{"data.max_length": 300}),
        "orpo-full": dpo_spec(tiny.chat, [str(prefs)], **{"loss_type": "orpo", "method.name": "full",
                                                          "train.learning_rate": 1e-4}),
        "simpo-lora": dpo_spec(tiny.chat, [str(prefs)], **{"loss_type": "simpo", "beta": 2.0, "method.name": "lora",
                                                           "method.lora": {"rank": 4, "alpha": 8}}),
    }
    processes = {name: engine.popen("run", str(engine.write_spec(spec, f"{name}.yaml")), "--json")
                 for name, spec in specs.items()}
    yield SimpleNamespace(tiny=tiny, engine=engine, prefs=prefs, processes=processes, results={})
    for process in processes.values():
        if process.poll() is None:  # its test was not selected
            process.kill()
            process.communicate()


def engine_run(setup: SimpleNamespace, name: str) -> SimpleNamespace:
    if name not in setup.results:
        stdout, stderr = setup.processes[name].communicate(timeout=600)
        events = setup.engine.stdout_events(stdout)
        setup.results[name] = SimpleNamespace(returncode=setup.processes[name].returncode, events=events,
                                              stderr=stderr, finished=events[-1] if events else {})
    return setup.results[name]


def metrics(events: list[dict], split: str) -> list[dict]:
    return [e for e in events if e["type"] == "metric" and e["split"] == split]


def check_figures_and_policy(events: list[dict], summary: dict, pairs: int, merged: bool) -> None:
    train = metrics(events, "train")
    assert [m["step"] for m in train] == [1, 2, 3, 4]
    for figure in ("loss", "reward_accuracy", "reward_margin", "chosen_reward", "rejected_reward", "lr", "grad_norm"):
        assert all(isinstance(m["values"][figure], float) for m in train), figure
    held_out = [m for m in metrics(events, "eval") if "reward_accuracy" in m["values"]]
    assert [m["step"] for m in held_out] == [2, 4] and "loss" in held_out[0]["values"]
    task = [m for m in metrics(events, "eval") if "task_accuracy" in m["values"]]
    assert [m["step"] for m in task] == [0, 2, 4]  # before training, at eval_every, after training
    assert all(0.0 <= m["values"]["task_accuracy"] <= 1.0 for m in task)
    assert any(e["type"] == "sample" and "(expected: " in e["text"] for e in events)
    assert [e["path"].rsplit("/", 1)[-1] for e in events if e["type"] == "artifact" and e["kind"] == "checkpoint"] \
        == ["checkpoint-4"]

    assert summary["step"] == 4 and summary["train_pairs"] + summary["held_out_pairs"] == pairs
    assert summary["held_out_pairs"] > 0
    assert {"reward_accuracy", "reward_margin", "task_accuracy_before", "task_accuracy_after"} <= set(summary)
    policy = Path(summary["policy"])
    artifact = next(e for e in events if e["type"] == "artifact" and e["kind"] == "model")
    assert artifact["path"] == str(policy) and artifact["meta"]["merged"] == merged
    assert json.loads((policy.parent / "metrics.json").read_text())["step"] == 4

    # The policy is a whole model (a LoRA adapter merged in) with its tokenizer and chat template.
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(policy)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    assert not (policy / "adapter_config.json").exists() and "<|im_start|>" in tokenizer.chat_template
    assert not any("lora" in n for n, _ in model.named_parameters())
    assert "DPO" in (policy / "README.md").read_text()


def test_ipo_with_full_training_of_an_sft_adapter_in_process(setup, tmp_path):
    """IPO on every weight of the model with its SFT adapter merged in; the reference is that start
    model, frozen (saved in the run, where TRL loads it from)."""
    adapter = sft_adapter(setup.tiny.chat, tmp_path / "sft-adapter")
    result = run_in_process(dpo_spec(setup.tiny.chat, [str(setup.prefs)], **{
        "model.adapter": str(adapter), "loss_type": "ipo", "beta": 0.5, "method.name": "full",
        "train.learning_rate": 1e-4, "train.packing": "on"}), tmp_path)
    assert result.error is None, result.error
    check_figures_and_policy(result.events, result.summary, pairs=16, merged=False)
    log = " ".join(e.get("message", "") for e in result.events if e["type"] == "log")
    assert f"Merged the adapter {adapter}" in log and "the frozen start model" in log
    assert "Batches: packed, padding-free" in log  # the frozen reference model's forward packed too
    assert (result.run.path / "reference" / "model.safetensors").exists()


def test_a_queue_without_preferences_fails_naming_it(setup):
    result = run_in_process(dpo_spec(setup.tiny.chat, ["queue:ties"]), setup.engine.workspace)
    assert result.error is not None and "queue:ties" in result.error.message and "ties" in result.error.hint


def test_sigmoid_with_lora_on_a_queue_and_a_file_through_the_engine(setup):
    run = engine_run(setup, "sigmoid-lora")
    assert run.returncode == 0 and run.finished["status"] == "completed", (run.finished, run.stderr[-3000:])
    check_figures_and_policy(run.events, run.finished["summary"], pairs=32, merged=True)
    log = " ".join(e.get("message", "") for e in run.events if e["type"] == "log")
    assert "the policy with its adapter off" in log and f"from queue:sums, {setup.prefs}" in log


def test_packed_and_padded_runs_give_the_same_losses_and_count_their_padding(setup):
    losses, efficiency = {}, {}
    for name in ("sigmoid-lora", "sigmoid-lora-padded"):
        run = engine_run(setup, name)
        assert run.returncode == 0, (run.finished, run.stderr[-3000:])
        log = [e["message"] for e in run.events if e["type"] == "log"]
        assert ("Batches: packed, padding-free (each answer's log-probabilities read from its own positions)."
                if name == "sigmoid-lora" else "Batches: padded.") in log
        train = [m["values"] for m in metrics(run.events, "train")]
        losses[name] = [values["loss"] for values in train]
        efficiency[name] = [values["padding_efficiency"] for values in train]
        assert all(values["trained_tokens_per_s"] < values["tokens_per_s"] for values in train)  # prompts untrained
    assert efficiency["sigmoid-lora"] == [1.0] * 4 and all(0 < e < 1 for e in efficiency["sigmoid-lora-padded"])
    assert losses["sigmoid-lora"] == pytest.approx(losses["sigmoid-lora-padded"], rel=1e-3)


@pytest.mark.parametrize("name, merged", [("orpo-full", False), ("simpo-lora", True)])
def test_orpo_and_simpo_train_without_a_reference_through_the_engine(setup, name, merged):
    run = engine_run(setup, name)
    assert run.returncode == 0 and run.finished["status"] == "completed", (run.finished, run.stderr[-3000:])
    check_figures_and_policy(run.events, run.finished["summary"], pairs=16, merged=merged)
    log = " ".join(e.get("message", "") for e in run.events if e["type"] == "log")
    assert "reference: none (reference-free)" in log
    assert f"Padded batches: {name.split('-')[0]} reads every position's logits of padded rows" in log
    assert ("ORPO (λ 0.1)" if name == "orpo-full" else "SimPO (β 2.0, γ/β 0.5)") in log
    # The chosen answer's SFT term (ORPO) or the length-normalised margin (SimPO) moves the rewards apart.
    train = metrics(run.events, "train")
    assert train[-1]["values"]["reward_margin"] != train[0]["values"]["reward_margin"]


def test_conversations_need_a_chat_template(setup):
    run = engine_run(setup, "turns-without-template")
    assert run.returncode == 1 and run.finished["status"] == "failed", run.stderr[-2000:]
    error = run.finished["error"]
    assert "has several turns" in error["message"] and "data.chat_template: auto" in error["message"]
    assert "data.chat_template: chatml or plain" in error["hint"]


def test_a_max_length_past_the_policys_positions_is_refused_before_training(setup):
    run = engine_run(setup, "longer-than-the-model")
    assert run.returncode == 1 and run.finished["status"] == "failed", run.stderr[-2000:]
    error = run.finished["error"]
    assert error["type"] == "data_error", error
    assert "data.max_length is 300 tokens, more than the 256 positions the model chat reads" in error["message"]
    assert "rotary" in error["message"] and "at most that many tokens" in error["hint"]
    assert not any(e["type"] == "metric" and e["split"] == "train" for e in run.events)


def test_preview_shows_the_format_and_a_pair_as_dpo_trains_on_it(setup):
    spec = setup.engine.write_spec(dpo_spec(setup.tiny.chat, ["queue:sums", str(setup.prefs)]), "preview.yaml")
    result = setup.engine.run("preview", str(spec), "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    preview = json.loads(result.stdout)
    assert preview["formats"] == {"queue:sums": "queue", str(setup.prefs): "trl"} and preview["chat_template"]
    assert preview["pairs"]["train"] + preview["pairs"]["held_out"] == 32
    [example] = preview["examples"]
    right = example["messages"]["chosen"][0]["content"]
    assert example["chosen"]["text"] == f"{right}<|im_end|>" and example["prompt"]["text"].endswith("assistant\n")
    text = setup.engine.run("preview", str(spec))
    assert text.returncode == 0, text.stderr[-2000:]
    assert "Pairs (queue:sums: queue; " in text.stdout and "as DPO trains on it" in text.stdout
    assert f"⟦{right}<|im_end|>⟧" in text.stdout
    # The path the run will take: llama packs exactly, and on a CPU (a dense mask) batch by batch.
    assert preview["batches"] == {"packed": True, "text": "packed where one row computes less than padded rows, "
                                                          "batch by batch", "why_padded": None}
    assert text.stdout.rstrip().endswith("Batches: packed where one row computes less than padded rows, batch by batch")
    orpo = setup.engine.write_spec(dpo_spec(setup.tiny.chat, [str(setup.prefs)], loss_type="orpo"), "orpo.yaml")
    said = setup.engine.run("preview", str(orpo))
    assert said.returncode == 0, said.stderr[-2000:]
    assert said.stdout.rstrip().endswith("Batches: padded (loss_type orpo reads every position's logits of padded rows.)")


def test_pairs_are_tokenized_as_fine_tuning_renders_them(tmp_path):
    """bos first, the answer through its end-of-turn marker (chatml) or with eos after it (plain, which
    has no marker), and the prompt exactly as the generate job lays it out."""
    from transformers import AutoTokenizer

    from engine.finetune.rendering import render
    from engine.generate.prompts import prompt_token_ids
    from engine.rlhf.dpo_pairs import pair_prompt, tokenize_pairs
    from engine.rlhf.preferences import Pair
    from engine.specs.chat import CHAT_PRESETS

    tiny = tiny_policy(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny.chat)
    pair = Pair(prompt=[{"role": "user", "content": "Add the two numbers.\n\n12 + 30"}],
                chosen=[{"role": "assistant", "content": "42"}], rejected=[{"role": "assistant", "content": "43"}],
                where="test")
    for preset in ("chatml", "plain"):
        template = CHAT_PRESETS[preset][0]
        [row] = tokenize_pairs([pair], tokenizer, template, 256).rows
        assert row["prompt_ids"][0] == tokenizer.bos_token_id
        assert row["prompt_ids"] == prompt_token_ids(pair_prompt(pair), tokenizer, template)
        whole = render({"messages": pair.prompt + pair.chosen}, tokenizer, template, "responses", 256, "truncate")
        trained = [t for t, label in zip(whole.input_ids, whole.labels) if label != -100]
        assert row["chosen_ids"] == trained  # what fine-tuning trained on, and nothing after it
        end = "<|im_end|>" if preset == "chatml" else tokenizer.eos_token
        assert tokenizer.convert_ids_to_tokens(row["chosen_ids"][-1]) == end
        assert tokenizer.decode(row["rejected_ids"], skip_special_tokens=True).strip().endswith("43")

    # Without a template: the prompt text as is, then the answer on the next line and eos.
    [row] = tokenize_pairs([pair], tokenizer, None, 256).rows
    assert tokenizer.decode(row["prompt_ids"] + row["chosen_ids"]) == \
        f"{tokenizer.bos_token}Add the two numbers.\n\n12 + 30\n42{tokenizer.eos_token}"
    result = tokenize_pairs([pair], tokenizer, CHAT_PRESETS["chatml"][0], 8)
    assert (result.rows, result.too_long) == ([], 1)


def test_an_invalid_spec_is_refused_before_anything_runs(engine):
    bad = dpo_spec(Path("m"), ["queue:x"], loss_type="hinge")
    result: subprocess.CompletedProcess = engine.run("run", str(engine.write_spec(bad)))
    assert result.returncode == 2 and "loss_type" in result.stdout + result.stderr


def test_packing_on_is_refused_for_losses_that_read_padded_logits(engine):
    for loss in ("orpo", "simpo"):
        spec = dpo_spec(Path("m"), ["queue:x"], loss_type=loss, **{"train.packing": "on"})
        result = engine.run("validate", str(engine.write_spec(spec)))
        assert result.returncode == 2, result.stdout
        said = result.stdout + result.stderr
        assert f"train.packing: on cannot apply to loss_type {loss}" in said and "Set train.packing to auto" in said
    assert engine.run("validate", str(engine.write_spec(dpo_spec(Path("m"), ["queue:x"], **{
        "train.packing": "on"})))).returncode == 0
