"""`train.report_to`: TensorBoard event files from a Trainer job (pretrain) and from our own loop (PPO),
through the real engine process; W&B refused with a sentence when it cannot work."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from engine.errors import UserError
from engine.specs import SpecError, parse_spec
from engine.training.reporting import check_reporters
from tests.engine.conftest import Engine, one_thread, tiny_spec
from tests.engine.ppo_fixtures import models, ppo_spec  # noqa: F401 (models is a fixture)


def scalar_tags(run_dir: Path) -> dict[str, list[int]]:
    """Every scalar tag in the run's tensorboard/ folder, with the steps it was written at."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = run_dir / "tensorboard"
    assert folder.is_dir() and list(folder.rglob("events.out.tfevents.*")), f"no event files in {folder}"
    tags: dict[str, list[int]] = {}
    for events_file in folder.rglob("events.out.tfevents.*"):
        accumulator = EventAccumulator(str(events_file))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            tags.setdefault(tag, []).extend(e.step for e in accumulator.Scalars(tag))
    return tags


def run_to_completion(engine: Engine, spec: dict) -> Path:
    result = engine.run("run", str(engine.write_spec(spec)), "--json", timeout=300)
    run_dir = engine.only_run()
    finished = [e for e in engine.events(run_dir) if e["type"] == "finished"]
    assert result.returncode == 0 and finished and finished[-1]["status"] == "completed", (
        result.stderr[-3000:], finished)
    return run_dir


def test_report_to_defaults_to_events_only_and_names_an_unknown_tracker():
    spec = parse_spec(tiny_spec("corpus.jsonl"))
    assert spec.train.report_to == []
    with pytest.raises(SpecError) as caught:
        parse_spec(tiny_spec("corpus.jsonl", **{"train.report_to": ["mlflow"]}))
    assert [p.field for p in caught.value.problems] == ["train.report_to.0"]


def test_pretrain_writes_trainer_scalars_to_the_run_tensorboard_folder(engine, corpus_file):
    one_thread(engine)
    spec = tiny_spec(str(corpus_file), **{"train.max_steps": 10, "train.log_every": 5, "train.eval_every": 10,
                                          "train.checkpoint_every": 10, "train.sample_every": 10,
                                          "train.report_to": ["tensorboard"]})
    tags = scalar_tags(run_to_completion(engine, spec))
    assert sorted(tags["train/loss"]) == [5, 10]
    assert {"train/learning_rate", "train/grad_norm", "eval/loss"} <= set(tags)


def test_ppo_writes_its_metric_events_to_the_run_tensorboard_folder(engine, models):  # noqa: F811
    one_thread(engine)
    spec = ppo_spec(models, **{"train.iterations": 2, "train.eval_every": 2, "train.checkpoint_every": 2,
                               "train.sample_every": 2, "train.rollout_batch_size": 4,
                               "evaluation.examples": 4, "train.report_to": ["tensorboard"]})
    run_dir = run_to_completion(engine, spec)
    tags = scalar_tags(run_dir)
    metrics = [e for e in engine.events(run_dir) if e["type"] == "metric"]
    train_names = {name for e in metrics if e["split"] == "train" for name in e["values"]}
    assert {f"train/{name}" for name in train_names} <= set(tags)
    assert sorted(tags["train/reward_mean"]) == [1, 2]
    assert sorted(tags["eval/reward_mean"]) == [0, 2]  # before training, and after the last iteration


def test_wandb_without_the_package_is_refused_naming_the_field(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(UserError) as caught:
        check_reporters(["wandb"])
    assert "train.report_to" in caught.value.message and "pip install wandb" in caught.value.hint


def test_wandb_without_a_login_is_refused_unless_offline(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: object() if name == "wandb" else real(name, *a))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    (tmp_path / "netrc").write_text("machine example.org login x password y\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    with pytest.raises(UserError) as caught:
        check_reporters(["wandb"])
    assert "not logged in" in caught.value.message and "wandb login" in caught.value.hint
    (tmp_path / "netrc").write_text("machine api.wandb.ai login user password key\n")
    check_reporters(["wandb"])  # a ~/.netrc entry is a login
    (tmp_path / "netrc").write_text("")
    monkeypatch.setenv("WANDB_MODE", "offline")
    check_reporters(["wandb"])


def test_a_wandb_run_without_login_fails_at_the_start_with_the_hint(engine, corpus_file, tmp_path):
    engine.env.update({"WANDB_MODE": "", "WANDB_API_KEY": "", "NETRC": str(tmp_path / "none")})
    spec = tiny_spec(str(corpus_file), **{"train.report_to": ["wandb"]})
    result = engine.run("run", str(engine.write_spec(spec)), "--json", timeout=120)
    assert result.returncode == 1
    finished = [json.loads(line) for line in result.stdout.splitlines() if '"finished"' in line][-1]
    assert finished["error"]["type"] == "reporting_error"
    assert "train.report_to" in finished["error"]["message"]
    assert not [e for e in engine.events(engine.only_run()) if e["type"] == "metric"]  # refused before training
