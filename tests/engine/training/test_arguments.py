"""The one builder of training arguments: every Trainer-based kind gets its `train:` and `resources:`
blocks the same way, its config class accepts them, and the strategy for several processes is
applied for pretraining as for the others."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.devices import Placement
from engine.kinds import KINDS
from engine.specs import parse_spec
from engine.training.arguments import optimizer_name, training_arguments

REQUIRED = {"finetune": {"model": {"path": "m"}, "data": {"sources": ["d.jsonl"]}},
            "reward": {"model": {"path": "m"}, "data": {"sources": ["d.jsonl"]}},
            "dpo": {"model": {"path": "m"}, "data": {"sources": ["d.jsonl"]}},
            "kto": {"model": {"path": "m"}, "data": {"sources": ["d.jsonl"]}},
            "grpo": {"model": {"path": "m"}}}
CONFIGS = {"pretrain": ("transformers", "TrainingArguments"), "finetune": ("transformers", "TrainingArguments"),
           "reward": ("trl", "RewardConfig"), "dpo": ("trl", "DPOConfig"), "kto": ("trl", "KTOConfig"),
           "grpo": ("trl", "GRPOConfig")}
CPU = Placement(device="cpu", bf16=False, fp16=False)


def context(kind: str, tmp_path: Path, **spec) -> SimpleNamespace:
    data = {"kind": kind, **REQUIRED.get(kind, {}), **spec}
    run = SimpleNamespace(checkpoints_dir=tmp_path / "checkpoints", run_id="r", path=tmp_path)
    return SimpleNamespace(spec=parse_spec(data), run=run, primary=True)


def test_every_kind_that_trains_in_steps_builds_its_arguments_here():
    assert {name for name, kind in KINDS.items() if kind.trains} == set(CONFIGS)


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_each_kind_s_config_class_accepts_the_arguments(kind, tmp_path):
    import importlib

    module, name = CONFIGS[kind]
    ctx = context(kind, tmp_path, train={"max_steps": 7, "batch_size": 2, "gradient_accumulation": 3,
                                         "learning_rate": 0.01, "schedule": "constant", "checkpoint_every": 5,
                                         "keep_checkpoints": 4, "max_grad_norm": 0.5, "weight_decay": 0.1})
    # GRPO's answers per prompt must divide its batches (its job makes them so); the rest is shared.
    arguments = training_arguments(ctx, CPU, has_eval=True, **({"num_generations": 2} if kind == "grpo" else {}))
    config = getattr(importlib.import_module(module), name)(**arguments)
    assert (config.max_steps, config.per_device_train_batch_size, config.gradient_accumulation_steps) == (7, 2, 3)
    assert (config.learning_rate, config.lr_scheduler_type.value) == (0.01, "constant_with_warmup")
    # keep_checkpoints is kept by engine/training/checkpoints.py, not by the Trainer's rotation.
    assert (config.save_steps, config.save_total_limit, config.max_grad_norm, config.weight_decay) == (5, None, 0.5, 0.1)
    assert config.output_dir == str(tmp_path / "checkpoints") and not config.bf16 and config.use_cpu
    assert config.report_to == [] or config.report_to == "none"


def test_pretraining_honours_the_strategy_for_several_processes(tmp_path):
    zero3 = context("pretrain", tmp_path, resources={"gpus": 2, "strategy": "deepspeed-zero3", "offload": True})
    deepspeed = training_arguments(zero3, CPU, has_eval=False)["deepspeed"]
    assert deepspeed["zero_optimization"]["stage"] == 3
    assert deepspeed["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    fsdp = context("pretrain", tmp_path, resources={"gpus": 2, "strategy": "fsdp"})
    assert training_arguments(fsdp, CPU, has_eval=False)["fsdp_config"]["version"] == 2
    one = context("pretrain", tmp_path, resources={"gpus": 1, "strategy": "deepspeed-zero2"})
    assert "deepspeed" not in training_arguments(one, CPU, has_eval=False)  # one process: nothing to shard


def test_a_kind_s_own_settings_override_the_shared_ones(tmp_path):
    ctx = context("finetune", tmp_path)
    assert training_arguments(ctx, CPU, has_eval=False, remove_unused_columns=False)["remove_unused_columns"] is False
    assert training_arguments(ctx, CPU, has_eval=False)["eval_strategy"] == "no"


def test_the_optimizer_is_fused_adamw_unless_qlora_runs_on_cuda(tmp_path):
    cuda = Placement(device="cuda", bf16=True, fp16=False)
    qlora = context("finetune", tmp_path, method={"name": "qlora"})
    assert optimizer_name(qlora, cuda) == "paged_adamw_8bit"
    assert optimizer_name(qlora, CPU) == "adamw_torch_fused"
    assert optimizer_name(context("reward", tmp_path), cuda) == "adamw_torch_fused"
    assert optimizer_name(context("dpo", tmp_path, train={"optimizer": "adamw"}), cuda) == "adamw_torch"
