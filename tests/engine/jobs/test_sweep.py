"""`kind: sweep` through the real `studio-engine` process: trials as ordinary runs in the engine's queue,
pruning, and the summary with the best trial's spec. The search methods' draws are checked in process."""

from __future__ import annotations

import json
import math

import pytest
import yaml

from engine.jobs.sweep import build_study, distributions
from engine.specs import SpecError, parse_spec
from tests.engine.conftest import Engine, one_thread, tiny_spec

LEARNING_RATES = [3e-3, 1e-2, 1e-6]  # the last learns nothing in 60 steps: pruned at its first report


def sweep_spec(corpus_file, **changes) -> dict:
    base = tiny_spec(str(corpus_file), **{"train.max_steps": 60, "train.eval_every": 10, "train.checkpoint_every": 60,
                                          "train.sample_every": 1000, "tokenizer.train.vocab_size": 300,
                                          "data.max_documents": 300})
    return {"kind": "sweep", "name": "lr", "base": base, "method": "grid",
            "parameters": {"train.learning_rate": {"values": LEARNING_RATES}},
            "objective": {"metric": "loss", "split": "eval", "goal": "minimize"},
            "pruning": {"enabled": True, "startup_trials": 1}, **changes}


@pytest.mark.slow
def test_a_grid_sweep_runs_each_trial_as_a_run_prunes_the_hopeless_one_resumes_and_writes_the_best_spec(
        engine: Engine, corpus_file):
    engine = one_thread(engine)
    # The base spec is a file beside the sweep's (not in the folder the engine is started from).
    specs = engine.workspace / "specs"
    specs.mkdir()
    spec = sweep_spec(corpus_file)
    (specs / "base.yaml").write_text(yaml.safe_dump(spec.pop("base")), encoding="utf-8")
    (specs / "sweep.yaml").write_text(yaml.safe_dump({**spec, "base": "base.yaml"}), encoding="utf-8")
    started = engine.run("run", str(specs / "sweep.yaml"), "--detach", "--run-id", "lr")
    assert started.returncode == 0, started.stderr
    sweep_dir = engine.workspace / "runs" / "lr"
    assert yaml.safe_load((sweep_dir / "spec.yaml").read_text())["base"]["kind"] == "pretrain"  # kept inline

    # Stopped once its first trial has ended; the second trial, queued or running, stops with it.
    engine.wait_for(sweep_dir, lambda e: e["type"] == "metric" and e.get("split") == "trial", timeout=300)
    engine.wait_for(sweep_dir, lambda e: e["type"] == "log" and e["message"].startswith("trial 1 queued"))
    assert engine.run("cancel", "lr").returncode == 0
    engine.wait_for(sweep_dir, lambda e: e["type"] == "finished", timeout=120)
    stopped = json.loads((sweep_dir / "output" / "sweep.json").read_text())["trials"]
    assert [t["state"] for t in stopped] == ["completed", "interrupted"]

    result = engine.run("resume", "lr", "--json", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    finished = engine.stdout_events(result.stdout)[-1]
    assert finished["status"] == "completed", finished
    summary = json.loads((sweep_dir / "output" / "sweep.json").read_text())
    trials = summary["trials"]
    # The ended trial is kept (same run, not run again); the interrupted one's values are tried again, and
    # the grid goes on in order. The pruner knows the restored trial: the hopeless rate is pruned.
    assert trials[0] == stopped[0]
    assert [(t["number"], t["values"]["train.learning_rate"], t["state"]) for t in trials] == [
        (0, LEARNING_RATES[0], "completed"), (1, LEARNING_RATES[1], "interrupted"),
        (2, LEARNING_RATES[1], "completed"), (3, LEARNING_RATES[2], "pruned")]
    assert finished["summary"]["trials"] == 3 and finished["summary"]["pruned"] == 1

    # Each trial is an ordinary run: listed, shown, its spec the base with the trial's values.
    listed = {r["run_id"]: r for r in json.loads(engine.run("list", "--json").stdout)}
    for trial in trials:
        run_spec = yaml.safe_load((engine.workspace / "runs" / trial["run_id"] / "spec.yaml").read_text())
        assert run_spec["kind"] == "pretrain" and run_spec["train"]["learning_rate"] == trial["values"][
            "train.learning_rate"]
    assert engine.run("show", trials[3]["run_id"]).returncode == 0
    pruned = listed[trials[3]["run_id"]]
    assert pruned["state"] == "cancelled" and pruned["step"] < 60  # stopped early, by the sweep
    assert listed[trials[1]["run_id"]]["state"] == "cancelled"
    assert listed[trials[0]["run_id"]]["state"] == "completed"

    best = min((trials[0], trials[2]), key=lambda t: t["value"])
    assert summary["best_run"] == best["run_id"] == finished["summary"]["best_run"]
    assert math.isclose(best["value"], listed[best["run_id"]]["last_metrics"]["eval"]["loss"])
    assert (sweep_dir / "output" / "best_spec.yaml").read_text() == \
        (engine.workspace / "runs" / best["run_id"] / "spec.yaml").read_text()
    # The best spec runs as it is.
    assert engine.run("validate", str(sweep_dir / "output" / "best_spec.yaml")).returncode == 0


def test_a_base_spec_file_that_is_not_there_is_named_with_where_it_was_looked_for(engine: Engine):
    spec = sweep_spec("corpus.jsonl")
    spec["base"] = "missing-base.yaml"
    result = engine.run("run", str(engine.write_spec(spec, "sweep.yaml")))
    assert result.returncode == 2, result.stderr
    assert "base: no spec file at missing-base.yaml" in result.stderr
    assert str(engine.workspace / "missing-base.yaml") in result.stderr and "Traceback" not in result.stderr
    assert engine.run_folders() == []


def test_a_parameter_the_base_spec_lacks_is_named_with_the_base_field():
    spec = sweep_spec("corpus.jsonl", parameters={"train.learning_rat": {"values": [1e-3]}})
    with pytest.raises(SpecError) as e:
        parse_spec(spec)
    assert "train.learning_rat" in str(e.value) and "unknown field" in str(e.value)


def test_a_search_needs_its_trial_count_and_a_grid_range_its_step():
    with pytest.raises(SpecError, match="trials"):
        parse_spec(sweep_spec("corpus.jsonl", method="random"))
    with pytest.raises(SpecError, match="step"):
        parse_spec(sweep_spec("corpus.jsonl", parameters={"train.warmup_steps": {"low": 0, "high": 10}}))
    grid = parse_spec(sweep_spec("corpus.jsonl", parameters={"train.warmup_steps": {"low": 0, "high": 10, "step": 5},
                                                             "train.schedule": {"values": ["cosine", "linear"]}}))
    assert grid.grid() == [{"train.warmup_steps": w, "train.schedule": s} for w in (0, 5, 10)
                           for s in ("cosine", "linear")]


@pytest.mark.parametrize("method", ["random", "bayes"])
def test_random_and_bayesian_searches_draw_within_the_ranges(method):
    spec = parse_spec(sweep_spec("corpus.jsonl", method=method, trials=12, parameters={
        "train.learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
        "train.warmup_steps": {"low": 0, "high": 20}}))
    study = build_study(spec)
    space = distributions(spec.parameters)
    seen = []
    for n in range(12):
        trial = study.ask(space)
        lr, warmup = trial.params["train.learning_rate"], trial.params["train.warmup_steps"]
        assert 1e-4 <= lr <= 1e-1 and isinstance(warmup, int) and 0 <= warmup <= 20
        study.tell(trial, abs(math.log10(lr) + 2))  # best near 1e-2
        seen.append(lr)
    assert len(set(seen)) == 12
