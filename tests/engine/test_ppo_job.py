"""The ppo job through the real engine process, on a tiny policy and a reward model built by hand so
that its score means something: answers made of upper-case letters and digits score high. Engine
runs are few (each one loads torch and transformers): one full-weights run that is cancelled and
resumed, and beside it, in a RunPool, one short LoRA run and the bad inputs."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, RunPool, one_thread, selected_tests, with_overrides
from tests.tiny_models import save_model, tiny_byte_bpe, tiny_llama

REWARDED = set("ABCDEFGHIJKLMNOPQSTUVWXYZ0123456789")  # no "R": the prompts' "Reverse" must not score
TRAIN_METRICS = {"reward_mean", "reward_std", "kl", "kl_coef", "entropy", "policy_loss", "value_loss",
                 "clip_fraction", "approx_kl", "response_length"}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> SimpleNamespace:
    """A tiny llama policy (~41k parameters, byte-level tokenizer with a chatml template), the same
    policy without a chat template, a reward model on its tokenizer, and one on another tokenizer.

    The reward model (one layer, hidden size 8) is set by hand: each token's embedding says whether
    it is an upper-case letter or digit (dimension 0) or not (dimension 1); attention with zero
    queries and keys averages over the conversation, so its output is the share of rewarded
    tokens, which o_proj writes to dimension 2; the score reads dimension 2 after the final norm,
    8·share / √(1 + 8·share²)·2 — 0 for none, about 2.6 for an answer of eight such tokens."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from engine.specs import CHAT_PRESETS
    from engine.tasks.generators import generate

    root = tmp_path_factory.mktemp("ppo-models")
    texts = [f"{r['instruction']}\n\n{r['input']}\n{r['output']}" for r in generate("reverse", 300, 0)]

    def reward_model(tok, folder: Path) -> Path:
        config = LlamaConfig(vocab_size=len(tok), hidden_size=8, intermediate_size=8, num_hidden_layers=1,
                             num_attention_heads=1, max_position_embeddings=256, num_labels=1,
                             pad_token_id=tok.pad_token_id)
        model = LlamaForSequenceClassification(config)
        rewarded = [i for i in range(len(tok)) if (s := tok.decode([i])) and set(s) <= REWARDED]
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
            embeddings = model.model.embed_tokens.weight
            embeddings[:, 1] = 1.0
            embeddings[rewarded, 1], embeddings[rewarded, 0] = 0.0, 1.0
            layer = model.model.layers[0]
            for norm in (layer.input_layernorm, layer.post_attention_layernorm, model.model.norm):
                norm.weight.fill_(1.0)
            layer.self_attn.v_proj.weight[0, 0] = 1.0
            layer.self_attn.o_proj.weight[2, 0] = 1.0
            model.score.weight[0, 2] = 2.0
        return save_model(folder, model, tok)

    tok = tiny_byte_bpe(texts, vocab_size=320, max_length=256)
    policy = tiny_llama(tok, max_positions=256)
    save_model(root / "policy", policy, tok)
    tok.chat_template = None
    save_model(root / "policy-no-template", policy, tok)
    tok.chat_template = CHAT_PRESETS["chatml"][0]
    other = tiny_byte_bpe([t.upper() for t in texts], vocab_size=300, max_length=256)
    return SimpleNamespace(policy=root / "policy", no_template=root / "policy-no-template",
                           reward=reward_model(tok, root / "reward"),
                           other_reward=reward_model(other, root / "other-reward"))


def ppo_spec(models: SimpleNamespace, **overrides) -> dict:
    spec = {"kind": "ppo", "name": "ppo", "policy": {"path": str(models.policy)}, "reward_model": str(models.reward),
            "prompts": {"sources": ["builtin:tasks"], "task": "reverse", "task_examples": 64},
            "sampling": {"max_new_tokens": 8, "temperature": 1.0, "top_k": 0, "top_p": 1.0},
            "ppo": {"kl_mode": "adaptive", "kl_coef": 0.05, "kl_target": 4.0, "kl_horizon": 200},
            "method": {"name": "full"},
            "train": {"iterations": 16, "rollout_batch_size": 16, "learning_rate": 0.01, "sample_every": 4,
                      "eval_every": 8, "checkpoint_every": 8},
            "evaluation": {"task": "reverse", "examples": 8, "max_new_tokens": 8},
            "resources": {"device": "cpu"}, "seed": 0}
    return with_overrides(spec, overrides)


def by_iteration(events: list[dict], split: str) -> dict[int, dict]:
    return {e["step"]: e["values"] for e in events if e["type"] == "metric" and e["split"] == split}


def start_run(spec: dict, name: str = "spec.yaml"):
    """A RunPool job: `run SPEC --json` in the job's workspace."""
    def job(engine: Engine):
        return engine.run("run", str(engine.write_spec(spec, name)), "--json", timeout=400)
    return job


def lora_spec(models: SimpleNamespace) -> dict:
    return ppo_spec(models, **{"method": {"name": "lora", "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}},
                               "value_model": "policy", "train.iterations": 3, "train.checkpoint_every": 2,
                               "train.learning_rate": 0.03, "evaluation": {"task": "none"}, "sampling.top_k": 50})


BAD_INPUTS = {
    # case: (spec overrides, what the message and hint must say)
    "other-tokenizer": (lambda m: {"reward_model": str(m.other_reward)},
                        lambda m: [str(m.other_reward), str(m.policy), "different tokenizers", "kind: reward"]),
    "no-template": (lambda m: {"policy.path": str(m.no_template), "chat_template": "model"},
                    lambda m: [f"policy {m.no_template.name}", "no chat template", "chat_template: auto"]),
}


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, models) -> RunPool:
    """The LoRA run and the bad inputs, started in the background while the first test runs."""
    pool = RunPool(tmp_path_factory.mktemp("ppo-runs"), workers=2)
    wanted = selected_tests(request)
    if "test_lora_policy_with_a_value_model_from_the_policy_saves_a_merged_model" in wanted:
        pool.submit("lora", start_run(lora_spec(models)))
    for case, (overrides, _) in BAD_INPUTS.items():
        if f"test_bad_input_is_named[{case}]" in wanted:
            pool.submit(f"bad-{case}", start_run(ppo_spec(models, **overrides(models))))
    yield pool
    pool.close()


def test_reward_rises_with_kl_held_and_a_cancelled_run_resumes_where_it_stopped(engine, models, runs):
    one_thread(engine)
    process = engine.popen("run", str(engine.write_spec(ppo_spec(models))), "--json", capture=False)
    try:
        deadline = time.time() + 120
        while not (engine.workspace / "runs").is_dir() or not any((engine.workspace / "runs").iterdir()):
            assert time.time() < deadline
            time.sleep(0.1)
        run_dir = engine.only_run()
        engine.wait_for(run_dir, lambda e: e["type"] == "metric" and e["split"] == "train" and e["step"] >= 5)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    events = engine.events(run_dir)
    assert events[-1]["status"] == "cancelled"
    [checkpoint] = [p for p in (run_dir / "checkpoints").iterdir()]
    stopped_at = int(checkpoint.name.split("-")[1])
    assert 5 <= stopped_at < 16 and max(by_iteration(events, "train")) == stopped_at
    assert {p.name for p in checkpoint.iterdir()} >= {"policy", "value.pt", "optimizer.pt", "rng.pt",
                                                      "trainer_state.json"}

    result = engine.run("resume", run_dir.name, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    events = engine.events(run_dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert [e for e in events if e["type"] == "started"][-1]["resumed_from_step"] == stopped_at
    train = by_iteration(events, "train")
    assert sorted(train) == list(range(1, 17))  # each iteration once: the resumed run went on from the checkpoint
    assert all(TRAIN_METRICS <= set(values) for values in train.values())

    rewards = [train[i]["reward_mean"] for i in range(1, 17)]
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last > first + 0.5, rewards  # from ~0.4 (a token in nine is rewarded) to ~2
    assert train[1]["kl"] == 0.0  # the first answers come from the reference itself
    assert all(0 <= values["kl"] < 50 for values in train.values()), [v["kl"] for v in train.values()]
    assert train[16]["kl_coef"] > train[1]["kl_coef"]  # the KL went above its target: the adaptive coefficient rose
    assert all(0 <= values["clip_fraction"] <= 1 and 1 <= values["response_length"] <= 8 for values in train.values())

    evaluations = by_iteration(events, "eval")
    assert sorted(evaluations) == [0, 8, 16]
    assert set(evaluations[0]) == {"task_accuracy", "task_accuracy_sampled", "reward_mean"}
    assert evaluations[16]["reward_mean"] > evaluations[0]["reward_mean"]

    samples = [e for e in events if e["type"] == "sample"]
    assert {e["step"] for e in samples} == {1, 4, 8, 12, 16}
    for sample in samples:
        assert isinstance(sample["reward"], float) and f"reward {sample['reward']:.3f}" in sample["text"]
        assert sample["prompt"].startswith("Reverse the order of the words.") and "expected: " in sample["text"]
    progress = [e for e in events if e["type"] == "progress" and e["stage"] == "train"]
    assert progress[-1]["done"] == progress[-1]["total"] == 16 and progress[-2]["eta_s"] > 0

    summary = events[-1]["summary"]
    assert summary["reward_mean_after"] > summary["reward_mean_before"]
    assert summary["kl_final"] == round(train[16]["kl"], 4)
    assert summary["eval_reward_mean_after"] == round(evaluations[16]["reward_mean"], 4)
    assert "eval_task_accuracy_before" in summary and "eval_task_accuracy_after" in summary
    from transformers import AutoModelForCausalLM, AutoTokenizer

    policy = AutoModelForCausalLM.from_pretrained(summary["policy"])
    assert AutoTokenizer.from_pretrained(summary["policy"]).chat_template
    assert sum(p.numel() for p in policy.parameters()) == sum(
        p.numel() for p in AutoModelForCausalLM.from_pretrained(models.policy).parameters())


def test_lora_policy_with_a_value_model_from_the_policy_saves_a_merged_model(runs, models):
    result = runs.result("lora")
    assert result.returncode == 0, result.stderr[-3000:]
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["status"] == "completed", events[-1]
    train = by_iteration(events, "train")
    assert sorted(train) == [1, 2, 3] and not by_iteration(events, "eval")
    assert train[1]["kl"] == 0.0 and train[3]["kl"] != 0.0  # the reference is the policy with its adapter off
    assert any(e["type"] == "log" and e["level"] == "warning" and "top_k" in e["message"] for e in events)
    output = Path(events[-1]["summary"]["policy"])
    assert (output.parent.parent / "checkpoints" / "checkpoint-2" / "policy" / "adapter_config.json").exists()

    import torch
    from transformers import AutoModelForCausalLM

    assert not (output / "adapter_config.json").exists() and (output / "README.md").exists()
    merged, original = AutoModelForCausalLM.from_pretrained(output), AutoModelForCausalLM.from_pretrained(models.policy)
    assert set(merged.state_dict()) == set(original.state_dict())
    assert any(not torch.equal(merged.state_dict()[k], original.state_dict()[k]) for k in original.state_dict())


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_named(runs, models, case):
    result = runs.result(f"bad-{case}")
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    text = error["message"] + " " + error["hint"]
    assert error["hint"] and all(part in text for part in BAD_INPUTS[case][1](models)), text


def test_an_invalid_spec_is_refused_before_anything_runs(engine, models):
    invalid = engine.run("run", str(engine.write_spec(ppo_spec(models, **{"ppo.minibatches": 32}))))
    assert invalid.returncode == 2 and "ppo.minibatches" in invalid.stdout + invalid.stderr
