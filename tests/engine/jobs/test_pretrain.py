"""The pretraining job through the real `studio-engine` process.

The runs that are only read afterwards (the example spec, the other architectures) are started
ahead of their tests by a RunPool and train in the background while the tests that signal, kill
and follow a run drive theirs in the foreground."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.engine.conftest import Engine, RunPool, one_thread, pooled, start_pooled, tiny_spec

pytestmark = pytest.mark.slow

ARCHITECTURES = ["gpt2", "bert"]


@pytest.fixture
def engine(engine: Engine) -> Engine:
    # Tiny models on a small machine shared with the background runs: one torch thread each.
    return one_thread(engine)


def example_spec() -> dict:
    return tiny_spec("builtin:python-docs", **{
        "data.max_documents": 1500, "tokenizer.train.vocab_size": 512, "train.max_steps": 60,
        "train.checkpoint_every": 30, "train.eval_every": 30, "train.sample_every": 30})


def architecture_spec(corpus_file, architecture: str) -> dict:
    return tiny_spec(str(corpus_file), **{"model.architecture": architecture, "train.max_steps": 30,
                                          "tokenizer.train.algorithm": "wordpiece" if architecture == "bert"
                                          else "byte-bpe", "train.gradient_checkpointing": True})


def start_run(spec: dict):
    """A RunPool job: `run SPEC --json` in the job's workspace."""
    def job(engine: Engine):
        return engine, engine.run("run", str(engine.write_spec(spec)), "--json")
    return job


def hostile_corpus_run(corpus_file: Path):
    """A RunPool job: pretraining on the corpus with, on its line 3, a record nested 100,000 levels deep."""
    def job(engine: Engine):
        lines = corpus_file.read_text(encoding="utf-8").splitlines()[:20]
        lines.insert(2, '{"text": "x", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}")
        corpus = engine.workspace / "hostile.jsonl"
        corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return start_run(tiny_spec(str(corpus)))(engine)
    return job


def gloo_spec(corpus_file: Path) -> dict:
    return tiny_spec(str(corpus_file), **{"resources.gpus": 2, "train.max_steps": 10, "train.checkpoint_every": 10,
                                          "train.eval_every": 10, "train.sample_every": 10})


@pytest.fixture(scope="module", autouse=True)
def runs(request, tmp_path_factory, corpus_file) -> RunPool:
    """The example and architecture runs, one at a time in the background from the module's first test
    on (the foreground tests, first in the module, run an engine of their own beside it)."""
    pool = RunPool(tmp_path_factory.mktemp("pretrain-runs"), workers=1)
    start_pooled(request, pool, corpus=corpus_file)
    yield pool
    pool.close()


def _assert_gapless(events: list[dict]) -> None:
    assert [e["seq"] for e in events] == list(range(len(events)))


def _train_losses(events):
    return [(e["step"], e["values"]["loss"]) for e in events if e["type"] == "metric" and e["split"] == "train"]


def test_sigint_checkpoints_then_resume_continues_steps_and_curve(engine, corpus_file):
    spec = tiny_spec(str(corpus_file), **{"train.max_steps": 400, "train.checkpoint_every": 1000,
                                          "train.eval_every": 1000, "train.sample_every": 1000})
    process = engine.popen("run", str(engine.write_spec(spec)), "--json", capture=False)
    run_dir = None
    try:
        import time
        deadline = time.time() + 120
        while run_dir is None and time.time() < deadline:
            runs = list((engine.workspace / "runs").glob("*"))
            run_dir = runs[0] if runs else None
            time.sleep(0.1)
        engine.wait_for(run_dir, lambda e: e["type"] == "metric" and e["step"] >= 30)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    events = engine.events(run_dir)
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "cancelled"
    checkpoints = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert len(checkpoints) == 1  # written at the moment of the cancel, not at checkpoint_every
    stopped_at = int(checkpoints[0].split("-")[1])
    assert 30 <= stopped_at < 400

    result = engine.run("resume", run_dir.name, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    events = engine.events(run_dir)
    _assert_gapless(events)
    restarted = [e for e in events if e["type"] == "started"]
    assert restarted[-1]["resumed_from_step"] == stopped_at
    steps = [step for step, _ in _train_losses(events)]
    resumed_steps = [s for s in steps[len(steps) - len([e for e in events[events.index(restarted[-1]):]
                                                           if e["type"] == "metric" and e["split"] == "train"]):]]
    assert resumed_steps[0] > stopped_at and steps[-1] == 400
    assert events[-1]["status"] == "completed"
    losses = [loss for _, loss in _train_losses(events)]
    assert losses[-1] < losses[0] * 0.8


def test_kill_9_then_resume_loses_at_most_one_interval_and_matches_an_uninterrupted_run(engine, corpus_file):
    spec = tiny_spec(str(corpus_file), **{"train.max_steps": 100, "train.checkpoint_every": 20,
                                          "train.eval_every": 1000, "train.sample_every": 1000})
    result = engine.run("run", str(engine.write_spec(spec)), "--detach")
    assert result.returncode == 0, result.stderr
    started = json.loads(result.stdout)
    run_dir = engine.workspace / "runs" / started["run_id"]
    engine.wait_for(run_dir, lambda e: e["type"] == "artifact" and e["meta"].get("step", 0) >= 40)
    os.killpg(started["pid"], signal.SIGKILL)
    reached = max(e["step"] for e in engine.events(run_dir) if e["type"] == "metric")

    show = engine.run("show", run_dir.name, "--json")
    assert json.loads(show.stdout)["state"] == "failed"  # dead pid, no finished event
    # The uninterrupted reference run of the same spec trains beside the resume.
    reference = engine.popen("run", str(engine.write_spec(spec, "reference.yaml")), "--json", "--run-id", "reference",
                             capture=False)
    try:
        result = engine.run("resume", run_dir.name, "--json")
        assert result.returncode == 0, result.stderr[-3000:]
        events = engine.events(run_dir)
        _assert_gapless(events)
        resumed_from = [e for e in events if e["type"] == "started"][-1]["resumed_from_step"]
        assert reached - resumed_from <= 20 + 5  # one checkpoint interval (+ the interval between metric events)
        assert events[-1]["status"] == "completed"
        assert len(list((run_dir / "checkpoints").iterdir())) <= 3  # keep_checkpoints (default 3)

        # Exact resume: model, optimizer, schedule, RNG and data position all restored, so the resumed
        # run's losses are those of the same spec trained without interruption.
        assert reference.wait(timeout=240) == 0, (engine.workspace / "runs" / "reference" / "engine.log").read_text()
    finally:
        reference.kill()
    expected = dict(_train_losses(engine.events(engine.workspace / "runs" / "reference")))
    after_restart = events[events.index([e for e in events if e["type"] == "started"][-1]):]
    resumed = dict(_train_losses(after_restart))
    assert resumed and min(resumed) > resumed_from
    for step, loss in resumed.items():
        assert loss == pytest.approx(expected[step], rel=1e-4, abs=1e-4), step


def test_detached_run_can_be_followed_and_cancelled(engine, corpus_file):
    spec = tiny_spec(str(corpus_file), **{"train.max_steps": 5000, "train.checkpoint_every": 5000})
    result = engine.run("run", str(engine.write_spec(spec)), "--detach")
    run_id = json.loads(result.stdout)["run_id"]
    engine.wait_for(engine.workspace / "runs" / run_id, lambda e: e["type"] == "metric")
    follower = engine.popen("attach", run_id, "--from-seq", "3", "--follow", "--json")
    assert engine.run("cancel", run_id).returncode == 0
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, err
    followed = [json.loads(line) for line in out.splitlines()]
    assert followed[0]["seq"] == 3
    assert [e["seq"] for e in followed] == list(range(3, 3 + len(followed)))
    assert followed[-1]["type"] == "finished" and followed[-1]["status"] == "cancelled"
    listing = json.loads(engine.run("list", "--json").stdout)
    assert listing[0]["state"] == "cancelled" and listing[0]["checkpoints"]


@pooled("example", lambda f: start_run(example_spec()))
def test_example_spec_shortened_completes_with_falling_loss(runs):
    engine, result = runs.result("example")
    assert result.returncode == 0, result.stderr[-3000:]
    assert all(line.startswith("{") for line in result.stdout.splitlines())  # every stdout line is an event
    stdout_events = engine.stdout_events(result.stdout)
    run_dir = engine.only_run()
    events = engine.events(run_dir)
    assert stdout_events == events
    _assert_gapless(events)
    assert events[0]["type"] == "started" and events[-1]["type"] == "finished"
    assert events[-1]["status"] == "completed"
    losses = [loss for _, loss in _train_losses(events)]
    assert len(losses) >= 10 and losses[-1] < losses[0] - 0.5  # well below the uniform ln(vocab)
    eval_metrics = [e["values"] for e in events if e["type"] == "metric" and e["split"] == "eval"]
    assert eval_metrics and eval_metrics[-1]["perplexity"] > 1
    assert any(e["type"] == "sample" and e["prompt"] == "Return the " for e in events)
    assert any(e["type"] == "progress" and e["eta_s"] is not None for e in events)
    train_values = _train_losses(events) and [e for e in events if e["type"] == "metric"][0]["values"]
    assert {"lr", "grad_norm", "tokens_per_s", "memory_mb"} <= set(train_values)

    from transformers import AutoModelForCausalLM, AutoTokenizer
    model_dir = run_dir / "output" / "model"
    assert (model_dir / "model.safetensors").exists() and (model_dir / "README.md").exists()
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    out = model.generate(**tokenizer("Return the ", return_tensors="pt"), max_new_tokens=5, do_sample=False)
    assert out.shape[1] > 1
    assert "eval_loss" in (model_dir / "README.md").read_text()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["state"] == "completed" and status["last_seq"] == events[-1]["seq"]


@pooled(lambda f, architecture: architecture,
        lambda f, architecture: start_run(architecture_spec(f.corpus, architecture)))
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_other_architectures_train(runs, architecture):
    engine, result = runs.result(architecture)
    assert result.returncode == 0, result.stderr[-3000:]
    events = engine.events(engine.only_run())
    assert events[-1]["status"] == "completed"
    losses = [loss for _, loss in _train_losses(events)]
    assert losses[-1] < losses[0]
    if architecture == "bert":
        from transformers import AutoModelForMaskedLM
        AutoModelForMaskedLM.from_pretrained(engine.only_run() / "output" / "model")


@pooled("hostile", lambda f: hostile_corpus_run(f.corpus))
def test_a_record_no_reader_can_hold_stops_the_run_with_its_file_and_line(runs):
    engine, result = runs.result("hostile")
    assert result.returncode == 1, result.stdout[-2000:]
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    assert error["type"] == "data_error", error
    assert "hostile.jsonl, line 3: nested too deeply (more than 100 levels" in error["message"]
    assert "100 levels" in error["hint"]


@pooled("gloo", lambda f: start_run(gloo_spec(f.corpus)))
def test_torchrun_two_processes_over_gloo_pretrain_one_model(runs):
    engine, result = runs.result("gloo")
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-2000:])
    run_dir = engine.only_run()
    events = engine.events(run_dir)
    _assert_gapless(events)  # only rank 0 writes events
    assert sum(e["type"] == "started" for e in events) == 1 and events[-1]["status"] == "completed"
    assert (run_dir / "output" / "model" / "model.safetensors").exists()
    log = (run_dir / "engine.log").read_text()
    assert "rank 1 of 2" in log


def test_a_launch_splits_the_cores_between_its_processes_unless_told():
    from types import SimpleNamespace

    from engine.launch import launcher_env

    spec = SimpleNamespace(resources=SimpleNamespace(gpus=2))
    threads = int(launcher_env(spec, {})["OMP_NUM_THREADS"])
    assert threads == max(1, (os.cpu_count() or 1) // 2)
    assert launcher_env(spec, {"OMP_NUM_THREADS": "3"})["OMP_NUM_THREADS"] == "3"


def rope_scaled_spec(corpus_file) -> dict:
    return tiny_spec(str(corpus_file), **{"model.rope_scaling": {"type": "linear", "factor": 4},
                                          "train.max_steps": 10, "train.eval_every": 10, "train.checkpoint_every": 10,
                                          "train.sample_every": 10})


@pooled("rope-linear", lambda f: start_run(rope_scaled_spec(f.corpus)))
def test_a_rope_scaled_llama_trains_and_says_it_reads_four_times_its_context(runs):
    engine, result = runs.result("rope-linear")
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.loads((engine.only_run() / "output" / "model" / "config.json").read_text())
    assert config["max_position_embeddings"] == 4 * 64
    assert config["rope_parameters"]["rope_type"] == "linear" and config["rope_parameters"]["factor"] == 4.0


def test_rope_scaling_of_learned_positions_is_refused_with_its_field(engine, corpus_file):
    spec = tiny_spec(str(corpus_file), **{"model.architecture": "gpt2",
                                          "model.rope_scaling": {"type": "yarn", "factor": 2}})
    result = engine.run("validate", str(engine.write_spec(spec)))
    assert result.returncode == 2
    assert "model" in result.stdout + result.stderr
    assert "rope_scaling applies to rotary position embeddings" in result.stdout + result.stderr
