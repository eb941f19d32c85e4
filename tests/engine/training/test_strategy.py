"""The strategies for several processes, through the real engine under torchrun on this machine's CPUs
(two processes over gloo): DeepSpeed ZeRO-2 and ZeRO-3, with optimizer offload, pretraining and
fine-tuning (full and LoRA) — trained, saved whole by rank 0 and loadable; FSDP, which the Trainer
runs on GPUs only, refused on CPUs before anything loads; and the settings each strategy becomes."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ResourceError
from engine.specs import parse_spec
from engine.training.loop import check_strategy
from tests.engine.conftest import RunPool, pooled, start_pooled, tiny_spec
from tests.engine.finetune_fixtures import base_model, finetune_spec  # noqa: F401 (base_model is a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.long]

deepspeed = pytest.importorskip("deepspeed", reason="DeepSpeed is part of the engine extra (Linux)")

# (kind, strategy, offload, method): ZeRO-2 and ZeRO-3 for both kinds, offload (DeepSpeed's CPU Adam, an op it
# compiles on first use) once each, LoRA under ZeRO-3 (its adapter's weights are partitioned too).
CASES = {"pretrain-zero2": ("pretrain", "deepspeed-zero2", False, None),
         "pretrain-zero3-offload": ("pretrain", "deepspeed-zero3", True, None),
         "finetune-zero2-offload": ("finetune", "deepspeed-zero2", True, "full"),
         "finetune-zero3-lora": ("finetune", "deepspeed-zero3", False, "lora")}


def case_spec(name: str, corpus_file: Path, base: Path) -> dict:
    kind, strategy, offload, method = CASES[name]
    resources = {"resources.gpus": 2, "resources.device": "cpu", "resources.strategy": strategy,
                 "resources.offload": offload}
    if kind == "pretrain":
        return tiny_spec(str(corpus_file), **{"train.max_steps": 6, "train.checkpoint_every": 6, "train.eval_every": 6,
                                              "train.sample_every": 6, **resources})
    return finetune_spec(base, **{"method.name": method, "train.learning_rate": 1e-4 if method == "full" else 1e-3,
                                  **resources})


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, corpus_file, base_model) -> RunPool:  # noqa: F811
    pool = RunPool(tmp_path_factory.mktemp("strategy-runs"), workers=2)
    start_pooled(request, pool, corpus=corpus_file, base=base_model)
    yield pool
    pool.close()


def run_case(name: str, corpus_file: Path, base: Path):
    spec = case_spec(name, corpus_file, base)
    return lambda engine: (engine, engine.run("run", str(engine.write_spec(spec)), "--json", timeout=600))


def loss_of(folder: Path, kind: str, base: Path) -> float:
    """The loss of the saved model on a fixed text: it loads on its own, with every weight in it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if kind == "adapter":
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(folder)
    else:
        model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("The function returns the next item. A parser reads a list of names.", return_tensors="pt")
    with torch.no_grad():
        return model(**ids, labels=ids["input_ids"]).loss.item()


@pooled(lambda f, name: name, lambda f, name: run_case(name, f.corpus, f.base))
@pytest.mark.parametrize("name", list(CASES))
def test_deepspeed_trains_and_saves_whole_models_on_cpus(runs, name, base_model):  # noqa: F811
    kind, strategy, offload, method = CASES[name]
    engine, result = runs.result(name, timeout=900)
    assert result.returncode == 0, (engine.only_run() / "engine.log").read_text()[-4000:]
    run_dir = engine.only_run()
    events = engine.events(run_dir)
    assert events[-1]["status"] == "completed"
    stage = "ZeRO-3" if strategy.endswith("3") else "ZeRO-2"
    said = " ".join(e["message"] for e in events if e["type"] == "log")
    assert f"2 processes in one {strategy} group over gloo" in said and f"DeepSpeed {stage}" in said, said
    # DeepSpeed trained it: its checkpoints hold one partition of the optimizer state per process.
    last = max((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    assert len(list(last.glob("global_step*/zero_pp_rank_*_optim_states.pt"))) == 2
    optimizer = next(e["message"] for e in events if e["type"] == "log" and e["message"].startswith("Optimizer:"))
    assert ("DeepSpeedCPUAdam" in optimizer) == offload, optimizer  # offload: DeepSpeed's own CPU Adam
    log = (run_dir / "engine.log").read_text()
    output = "adapter" if method == "lora" else "model"
    folder = run_dir / "output" / output
    # Rank 0 wrote the gathered weights (ZeRO-3 partitions them: a plain save writes empty tensors).
    writes = [line for line in log.splitlines() if " wrote " in line and line.rstrip().endswith(f"output/{output}")]
    assert len(writes) == 1 and "(rank 0)" in writes[0], writes
    assert loss_of(folder, output, base_model) < 20


def test_fsdp_on_cpus_is_refused_before_anything_loads():
    from engine.devices import Placement

    spec = parse_spec({"kind": "pretrain", "resources": {"gpus": 2, "strategy": "fsdp"}})
    with pytest.raises(ResourceError, match="plain DDP") as refused:
        check_strategy(spec, Placement(device="cpu", bf16=False, fp16=False))
    assert "deepspeed-zero3" in refused.value.hint
    cuda = Placement(device="cuda", bf16=True, fp16=False)
    check_strategy(spec, cuda)  # on GPUs FSDP shards as asked
    lora = parse_spec({"kind": "reward", "model": {"path": "m"}, "data": {"sources": ["p.jsonl"]},
                       "method": {"name": "lora"}, "resources": {"gpus": 2, "strategy": "fsdp"}})
    with pytest.raises(ResourceError, match="merges its LoRA adapter"):
        check_strategy(lora, cuda)


def test_the_resources_block_becomes_fsdp_or_deepspeed_settings():
    from engine.specs.base import Resources
    from engine.training.strategy import describe, trainer_arguments

    assert trainer_arguments(Resources()) == {} and trainer_arguments(Resources(gpus=4)) == {}
    fsdp = trainer_arguments(Resources(gpus=4, strategy="fsdp", offload=True))
    assert fsdp["fsdp"] is True and fsdp["fsdp_config"]["version"] == 2 and fsdp["fsdp_config"]["cpu_offload"]
    zero3 = trainer_arguments(Resources(gpus=8, nodes=2, strategy="deepspeed-zero3", offload=True))["deepspeed"]
    assert zero3["zero_optimization"]["stage"] == 3 and zero3["zero_optimization"]["offload_param"]["device"] == "cpu"
    zero2 = trainer_arguments(Resources(gpus=2, strategy="deepspeed-zero2"))["deepspeed"]
    assert zero2["zero_optimization"]["stage"] == 2 and "offload_optimizer" not in zero2["zero_optimization"]
    assert "16 processes" in describe(Resources(gpus=8, nodes=2, strategy="deepspeed-zero3"))
