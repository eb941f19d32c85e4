"""Fixtures of the fine-tuning tests: a tiny base model pretrained by the engine itself, and a short
LoRA spec on the built-in reverse task."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.conftest import Engine, one_thread, tiny_spec, with_overrides


@pytest.fixture(scope="session")
def base_model(tmp_path_factory, corpus_file) -> Path:
    """A tiny llama pretrained by the engine itself (the user's own pretraining run)."""
    engine = one_thread(Engine(tmp_path_factory.mktemp("base-ws")))
    spec = tiny_spec(str(corpus_file), **{"name": "base", "train.max_steps": 20, "train.checkpoint_every": 20,
                                          "train.eval_every": 20, "train.sample_every": 20,
                                          "model.hidden_size": 64, "model.heads": 2})
    result = engine.run("run", str(engine.write_spec(spec)), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    return engine.only_run() / "output" / "model"


def finetune_spec(base: Path, **overrides) -> dict:
    spec = {"kind": "finetune", "name": "ft", "model": {"path": str(base)},
            "data": {"sources": ["builtin:tasks"], "task": "reverse", "task_examples": 60, "chat_template": "chatml",
                     "max_length": 64, "eval_fraction": 0.1},
            "method": {"name": "lora", "lora": {"rank": 4, "alpha": 8}},
            "train": {"max_steps": 6, "batch_size": 8, "learning_rate": 1e-3, "warmup_steps": 1, "eval_every": 3,
                      "checkpoint_every": 3, "log_every": 2},
            "evaluation": {"generate_examples": 4, "max_new_tokens": 8},
            "resources": {"device": "cpu"}}
    return with_overrides(spec, overrides)
