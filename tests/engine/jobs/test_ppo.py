"""The ppo job through the real engine process, on a tiny policy and a reward model built by hand so
that its score means something: answers made of upper-case letters and digits score high. Engine
runs are few (each one loads torch and transformers): one full-weights run that is cancelled and
resumed, and beside it, in a RunPool, one short LoRA run and the bad inputs."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, RunPool, one_thread, pooled, run_in_process, start_pooled
from tests.engine.ppo_fixtures import models, ppo_spec  # noqa: F401 (models is a fixture)

TRAIN_METRICS = {"reward_mean", "reward_std", "kl", "kl_coef", "entropy", "policy_loss", "value_loss",
                 "clip_fraction", "approx_kl", "response_length", "padding_efficiency"}


def by_iteration(events: list[dict], split: str) -> dict[int, dict]:
    return {e["step"]: e["values"] for e in events if e["type"] == "metric" and e["split"] == split}


def start_run(spec: dict, name: str = "spec.yaml"):
    """A RunPool job: `run SPEC --json` in the job's workspace; (engine, its result)."""
    def job(engine: Engine):
        return engine, engine.run("run", str(engine.write_spec(spec, name)), "--json", timeout=400)
    return job


def lora_spec(models: SimpleNamespace, packing: str = "on") -> dict:
    return ppo_spec(models, **{"method": {"name": "lora", "lora": {"rank": 4, "alpha": 8, "dropout": 0.0}},
                               "value_model": "policy", "train.iterations": 3, "train.checkpoint_every": 2,
                               "train.learning_rate": 0.03, "evaluation": {"task": "none"}, "sampling.top_k": 50,
                               "train.packing": packing})


BAD_INPUTS = {
    # case: (spec overrides, what the message and hint must say)
    "other-tokenizer": (lambda m: {"reward_model": str(m.other_reward)},
                        lambda m: [str(m.other_reward), str(m.policy), "different tokenizers", "kind: reward"]),
    "no-template": (lambda m: {"policy.path": str(m.no_template), "chat_template": "model"},
                    lambda m: [f"policy {m.no_template.name}", "no chat template", "chat_template: auto"]),
}


def killed_in_its_final_save(spec: dict):
    """A RunPool job: `run SPEC` killed while it writes its policy, its checkpoints left for a resume."""
    def job(engine: Engine):
        killed = engine.run("run", str(engine.write_spec(spec)), "--json", "--run-id", "crafted", timeout=400,
                            env=engine.killed_at("policy"))
        return engine, killed
    return job


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, models) -> RunPool:  # noqa: F811
    """The LoRA run and the bad inputs, started in the background while the first test runs."""
    pool = RunPool(tmp_path_factory.mktemp("ppo-runs"), workers=2)
    start_pooled(request, pool, models=models)
    yield pool
    pool.close()


def test_reward_rises_with_kl_held_and_a_cancelled_run_resumes_where_it_stopped(engine, models, runs):
    one_thread(engine)
    process = engine.popen("run", str(engine.write_spec(ppo_spec(models))), "--json", capture=False)
    try:
        run_dir = engine.first_run(timeout=120)
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


@pooled("lora", lambda f: start_run(lora_spec(f.models)))
def test_lora_policy_with_a_value_model_from_the_policy_saves_a_merged_model(runs, models):
    engine, result = runs.result("lora")
    assert result.returncode == 0, result.stderr[-3000:]
    events = engine.stdout_events(result.stdout)
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


@pooled("lora", lambda f: start_run(lora_spec(f.models)))
def test_packed_and_padded_forwards_give_the_same_iterations(runs, models, tmp_path):
    """The LoRA run packed every forward on prompt + answer (the policy's, the reference's, the value model's); the
    same run padded, in this process, gives the same first iteration (its answers, their rewards, the losses of its
    update) and samples the same answers from the policy that update made, at the same KL. (Later iterations part:
    the runs' weights differ in their last bits, which a high learning rate and the clipped objective amplify
    until an answer drawn near a boundary of the sampler comes out otherwise.)"""
    engine, result = runs.result("lora")
    assert result.returncode == 0, result.stderr[-3000:]
    packed_events = engine.stdout_events(result.stdout)
    padded = run_in_process(lora_spec(models, packing="off"), tmp_path)
    assert padded.error is None, padded.error
    said = {name: [e["message"] for e in events if e["type"] == "log"]
            for name, events in (("packed", packed_events), ("padded", padded.events))}
    assert ("Prompt + answer batches of the policy and the reference: packed, padding-free; of the value model: "
            "packed, padding-free.") in said["packed"]
    assert "Prompt + answer batches of the policy and the reference: padded; of the value model: padded." \
        in said["padded"]
    packed, padded = by_iteration(packed_events, "train"), by_iteration(padded.events, "train")
    assert [packed[i]["padding_efficiency"] for i in (1, 2, 3)] == [1.0] * 3
    assert all(0 < padded[i]["padding_efficiency"] < 1 for i in (1, 2, 3))
    for figure in ("reward_mean", "entropy", "policy_loss", "value_loss", "approx_kl"):
        assert packed[1][figure] == pytest.approx(padded[1][figure], rel=1e-3), figure
    assert packed[2]["reward_mean"] == pytest.approx(padded[2]["reward_mean"], rel=1e-4)  # the same answers
    assert packed[2]["kl"] == pytest.approx(padded[2]["kl"], rel=1e-3) and packed[2]["kl"] > 0


@pooled(lambda f, case: f"bad-{case}",
        lambda f, case: start_run(ppo_spec(f.models, **BAD_INPUTS[case][0](f.models))))
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_named(runs, models, case):
    _, result = runs.result(f"bad-{case}")
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    text = error["message"] + " " + error["hint"]
    assert error["hint"] and all(part in text for part in BAD_INPUTS[case][1](models)), text


def test_an_invalid_spec_is_refused_before_anything_runs(engine, models):
    invalid = engine.run("run", str(engine.write_spec(ppo_spec(models, **{"ppo.minibatches": 32}))))
    assert invalid.returncode == 2 and "ppo.minibatches" in invalid.stdout + invalid.stderr


class _RunsCode:
    """Unpickling this calls open(path, "w"): what a crafted checkpoint file could do instead of holding data."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return open, (str(self.path), "w")


@pooled("crafted", lambda f: killed_in_its_final_save(lora_spec(f.models)))
def test_a_checkpoint_that_would_run_code_is_refused(runs):
    import pickle

    engine, killed = runs.result("crafted")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoint = engine.workspace / "runs" / "crafted" / "checkpoints" / "checkpoint-2"
    marker = engine.workspace / "code-ran"
    import torch

    state = torch.load(checkpoint / "rng.pt", weights_only=True)  # what the engine wrote: plain data
    (checkpoint / "rng.pt").write_bytes(pickle.dumps({**state, "python": _RunsCode(marker)}))
    resumed = engine.run("resume", "crafted", "--json", timeout=400)
    assert resumed.returncode == 1, resumed.stderr[-2000:]
    finished = json.loads(resumed.stdout.splitlines()[-1])
    assert not marker.exists(), "unpickling the checkpoint ran code"
    error = finished["error"]
    assert error["type"] == "model_error" and "rng.pt" in error["message"] and "not loaded" in error["message"]
    assert "bug" not in error["hint"]
