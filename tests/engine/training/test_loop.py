"""The training call every Trainer-based kind makes, through the real engine: a run killed after its
last step (its final checkpoint written, its output not yet in place) and resumed ends at exactly max_steps
with the final loss of a run that was never interrupted, and leaves no temporary folder behind — for
pretraining, fine-tuning and reward models. And crash consistency: a short run killed at chosen points
(inside a checkpoint's save, inside rotation, inside the final save) and at random moments — after
each, `list` and `show` tell the truth, and `resume` ends at exactly max_steps with the loss of a run
that was never interrupted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.engine.conftest import ROOT, Engine, RunPool, pooled, start_pooled, tiny_spec
from tests.engine.finetune_fixtures import base_model, finetune_spec  # noqa: F401 (base_model is a fixture)
from tests.engine.reward_fixtures import reward_spec, tiny  # noqa: F401 (tiny is a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.long]

KINDS = ["pretrain", "finetune", "reward"]


def specs(corpus_file, base_model, tiny) -> dict[str, dict]:  # noqa: F811
    return {
        "pretrain": tiny_spec(str(corpus_file), **{"train.max_steps": 12, "train.checkpoint_every": 6,
                                                   "train.eval_every": 6, "train.sample_every": 6}),
        "finetune": finetune_spec(base_model),
        "reward": reward_spec(tiny, **{"train.max_steps": 10, "train.checkpoint_every": 5}),
    }


OUTPUT = {"pretrain": "model", "finetune": "adapter", "reward": "reward_model"}


def killed_in_its_final_save(spec: dict):
    """A RunPool job: run `spec` so that its process is SIGKILLed inside the save of its final output (the
    folder written in full under its temporary name, not yet renamed), resume it, and run the same spec
    without interruption."""

    def job(engine: Engine):
        killed = engine.run("run", str(engine.write_spec(spec)), "--json", "--run-id", "killed", timeout=400,
                            env=engine.killed_at(OUTPUT[spec["kind"]]))
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
        show = json.loads(engine.run("show", "killed", "--json").stdout)
        resumed = engine.run("resume", "killed", "--json", timeout=400)
        reference = engine.run("run", str(engine.write_spec(spec, "reference.yaml")), "--json", "--run-id",
                               "reference", timeout=400)
        return engine, show, resumed, reference

    return job


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, corpus_file, base_model, tiny) -> RunPool:  # noqa: F811
    pool = RunPool(tmp_path_factory.mktemp("core-runs"))
    start_pooled(request, pool, specs=specs(corpus_file, base_model, tiny),
                 crash_spec=tiny_spec(str(corpus_file), **CRASH_SPEC), deadline=time.monotonic() + CRASH_BUDGET_S)
    yield pool
    pool.close()


def summary(result) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    finished = json.loads(result.stdout.splitlines()[-1])
    assert finished["status"] == "completed", finished
    return finished["summary"]


@pooled(lambda f, kind: kind, lambda f, kind: killed_in_its_final_save(f.specs[kind]))
@pytest.mark.parametrize("kind", KINDS)
def test_a_run_killed_after_its_last_step_resumes_to_exactly_max_steps(runs, kind):
    engine, show, resumed, reference = runs.result(kind)
    assert show["state"] == "failed"  # its process died without a finished event
    assert show["step"] == engine_max_steps(engine)
    got, expected = summary(resumed), summary(reference)
    assert got["step"] == expected["step"] == engine_max_steps(engine)
    run_dir = engine.workspace / "runs" / "killed"
    assert [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("checkpoint-")
            and int(p.name.split("-")[1]) > got["step"]] == []  # no step past the end
    losses = [key for key in expected if key.endswith("loss")]
    assert losses, expected
    for key in losses:
        assert got[key] == pytest.approx(expected[key], rel=1e-5), key
    leftovers = [p.name for p in (run_dir / "output").iterdir() if ".tmp-" in p.name]
    assert leftovers == []
    events = engine.events(run_dir)
    assert any(e["type"] == "log" and "reached its last step" in e["message"] for e in events)


def engine_max_steps(engine: Engine) -> int:
    import yaml

    return yaml.safe_load((engine.workspace / "spec.yaml").read_text())["train"]["max_steps"]


# Keeping one checkpoint: every save after the first rotates the one before it out, the riskiest case.
CRASH_SPEC = {"train.max_steps": 12, "train.checkpoint_every": 4, "train.keep_checkpoints": 1, "train.eval_every": 4,
              "train.sample_every": 1000, "train.log_every": 2}
CRASH_POINTS_NAMED = ["tokenizer", "checkpoint-weights:4", "checkpoint-state:4", "checkpoint-weights:8",
                      "checkpoint-state:8", "rotation", "checkpoint-state:12", "model"]
RANDOM_KILLS = 6  # runs SIGKILLed at a random moment, as long as the time budget lasts
CRASH_BUDGET_S = 300.0
CRASH_SEED = 19


def killed_and_resumed(spec: dict, point: str | None, delay: float | None, deadline: float):
    """A RunPool job: run `spec`, killed at crash point `point` or `delay` seconds after its start; then
    what `show` and `list` say, what is on disk, and the resume. None once the time budget is spent."""

    def job(engine: Engine):
        if time.monotonic() > deadline:
            return None
        run = ("run", str(engine.write_spec(spec)), "--json", "--run-id", "crashed")
        if point is not None:
            code = engine.run(*run, timeout=400, env=engine.killed_at(point)).returncode
        else:
            process = subprocess.Popen(engine.command(*run), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       env=engine.env, cwd=ROOT, start_new_session=True)
            try:
                process.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
            code = process.wait()
        run_dir = engine.workspace / "runs" / "crashed"
        show = engine.run("show", "crashed", "--json")
        listing = engine.run("list", "--json")
        on_disk = complete_checkpoints(run_dir) if run_dir.exists() else None
        events_before = engine.events(run_dir) if run_dir.exists() else []
        resumed = engine.run("resume", "crashed", "--json", timeout=400) if run_dir.exists() else None
        after = engine.run("show", "crashed", "--json")
        return dict(engine=engine, code=code, show=show, listing=listing, on_disk=on_disk, events_before=events_before,
                    resumed=resumed, after=after)

    return job


def complete_checkpoints(run_dir: Path) -> list[str]:
    """The checkpoints on disk written in full, judged file by file (not by the engine's own test)."""
    whole = []
    for folder in sorted((run_dir / "checkpoints").glob("checkpoint-*")):
        try:
            state = json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        files = ["model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth"]
        if state.get("global_step") == int(folder.name.split("-")[1]) and all(
                (folder / f).is_file() and (folder / f).stat().st_size for f in files):
            whole.append(str(folder))
    return whole


RANDOM_DELAYS = [random.Random(CRASH_SEED + n).uniform(0.5, 14.0) for n in range(RANDOM_KILLS)]
CRASH_CASES = {**{point: (point, None) for point in CRASH_POINTS_NAMED},
               **{f"random-{n}": (None, delay) for n, delay in enumerate(RANDOM_DELAYS)}}


def crash_runs(test):
    """`test` marked as reading the uninterrupted reference run and every crash case, started in this order."""
    marks = [pooled("reference", lambda f: lambda engine: engine.run(
        "run", str(engine.write_spec(f.crash_spec)), "--json", timeout=400))]
    marks += [pooled(name, lambda f, point=point, delay=delay: killed_and_resumed(f.crash_spec, point, delay,
                                                                                  f.deadline))
              for name, (point, delay) in CRASH_CASES.items()]
    for mark in reversed(marks):  # applied bottom-up: the first mark ends up on top
        test = mark(test)
    return test


@crash_runs
def test_killed_anywhere_list_and_show_tell_the_truth_and_resume_ends_where_an_uninterrupted_run_does(runs):
    expected = summary(runs.result("reference"))
    assert expected["step"] == 12
    cases = {name: runs.result(name) for name in CRASH_CASES}
    assert all(cases[point] is not None for point in CRASH_POINTS_NAMED), "the named crash points ran out of time"
    for name, case in cases.items():
        if case is None:  # the time budget ran out before this random kill
            continue
        finished = [e for e in case["events_before"] if e["type"] == "finished"]
        if name in CRASH_POINTS_NAMED:
            assert case["code"] == -signal.SIGKILL and not finished, (name, case["code"])
        if case["on_disk"] is None:  # killed before the run folder was made: no run, nothing to resume
            assert json.loads(case["listing"].stdout) == [] and case["show"].returncode == 1, name
            continue
        shown = json.loads(case["show"].stdout)
        listed = {r["run_id"]: r for r in json.loads(case["listing"].stdout)}
        truth = finished[-1]["status"] if finished else "failed"
        assert shown["state"] == listed["crashed"]["state"] == truth, (name, shown)
        assert shown["checkpoints"] == case["on_disk"], (name, shown["checkpoints"], case["on_disk"])
        if truth == "completed":  # killed after it had finished: nothing to resume
            assert "already completed" in case["resumed"].stderr, name
            continue
        got = summary(case["resumed"])
        assert got["step"] == 12, (name, got)
        for key in ("train_loss", "eval_loss"):
            assert got[key] == pytest.approx(expected[key], rel=1e-4), (name, key)
        run_dir = case["engine"].workspace / "runs" / "crashed"
        events = case["engine"].events(run_dir)
        assert [e["seq"] for e in events] == list(range(len(events))), name
        assert [e["status"] for e in events if e["type"] == "finished"][-1] == "completed"
        assert json.loads(case["after"].stdout)["checkpoints"] == [str(run_dir / "checkpoints" / "checkpoint-12")], name
        assert complete_checkpoints(run_dir) == [str(run_dir / "checkpoints" / "checkpoint-12")], name
        leftovers = [p.name for folder in ("checkpoints", "output", ".") for p in (run_dir / folder).iterdir()
                     if ".tmp-" in p.name or p.name.endswith(".deleting")]
        assert leftovers == [], (name, leftovers)
