"""The merge job through the real engine process: an adapter folded in, the last checkpoints of a run
averaged (LoRA checkpoints by their updates, whole ones weight by weight), linear, SLERP and TIES
merges; every result loads in transformers and, where the method has one answer, holds exactly the
weights it should. Bad input is named with what to do."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine
from tests.tiny_models import random_lora_adapter, save_model, tiny_byte_bpe, tiny_gpt2, tiny_llama

Q_PROJ = "model.layers.0.self_attn.q_proj.weight"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    """Three llamas of one shape (different seeds), three LoRA adapters of the first, and a GPT-2."""
    root = tmp_path_factory.mktemp("merge-models")
    tokenizer = tiny_byte_bpe([f"merge these models {i} please" for i in range(100)], vocab_size=300)
    models = [save_model(root / f"llama-{seed}", tiny_llama(tokenizer, seed=seed), tokenizer) for seed in (0, 1, 2)]
    adapters = []
    for seed in (10, 11, 12):
        import torch

        torch.manual_seed(seed)
        adapters.append(random_lora_adapter(tiny_llama(tokenizer, seed=None), models[0], root / f"adapter-{seed}"))
    gpt2 = save_model(root / "gpt2", tiny_gpt2(tokenizer), tokenizer)
    return SimpleNamespace(root=root, models=models, adapters=adapters, gpt2=gpt2, tokenizer=tokenizer)


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    found = {}
    for file in sorted(Path(folder).glob("*.safetensors")):
        found.update(load_file(file))
    return found


def lora_update(adapter: Path, layer: str = "model.layers.0.self_attn.q_proj"):
    """scaling · B·A of `adapter` on `layer` (random_lora_adapter: rank 2, alpha 4)."""
    saved = weights(adapter)
    a, b = (saved[f"base_model.model.{layer}.lora_{x}.weight"] for x in "AB")
    return 2.0 * b @ a


def run_merge(engine: Engine, spec: dict) -> tuple[dict, Path]:
    result = engine.run("run", str(engine.write_spec({"name": "m", **spec, "kind": "merge"})), "--json", timeout=300)
    events = engine.stdout_events(result.stdout)
    assert events and events[-1]["type"] == "finished", (result.stdout[-2000:], result.stderr[-3000:])
    return events[-1], Path(events[-1]["summary"].get("output", engine.workspace / "none"))


def loads_and_answers(folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = AutoTokenizer.from_pretrained(folder)("merge these", return_tensors="pt").input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert out.shape[1] == ids.shape[1] + 3


def fake_run(workspace: Path, run_id: str, checkpoints: dict[int, Path]) -> None:
    """A training run as the engine leaves one: spec.yaml and complete checkpoints (copies of folders)."""
    run = workspace / "runs" / run_id
    (run / "checkpoints").mkdir(parents=True)
    (run / "spec.yaml").write_text("kind: finetune\nname: tuned\n")
    for step, source in checkpoints.items():
        target = run / "checkpoints" / f"checkpoint-{step}"
        shutil.copytree(source, target)
        (target / "trainer_state.json").write_text("{}")


def test_an_adapter_folds_into_its_base(engine, tiny):
    finished, merged = run_merge(engine, {"method": "fold",
                                          "models": [{"path": str(tiny.models[0]), "adapter": str(tiny.adapters[0])}]})

    assert finished["status"] == "completed", finished
    assert finished["summary"]["library"] == "PEFT"
    expected = weights(tiny.models[0])[Q_PROJ] + lora_update(tiny.adapters[0])
    assert (weights(merged)[Q_PROJ] - expected).abs().max() < 1e-5
    assert "fold" in (merged / "README.md").read_text(encoding="utf-8")
    loads_and_answers(merged)


def test_the_last_lora_checkpoints_of_a_run_average_their_updates(engine, tiny):
    fake_run(engine.workspace, "tuned-1", {100: tiny.adapters[0], 200: tiny.adapters[1], 300: tiny.adapters[2]})

    finished, merged = run_merge(engine, {"method": "average", "checkpoints": {"run": "tuned-1", "last": 2}})

    assert finished["status"] == "completed", finished
    assert finished["summary"]["models"] == ["tuned-1@checkpoint-200", "tuned-1@checkpoint-300"]
    mean = (lora_update(tiny.adapters[1]) + lora_update(tiny.adapters[2])) / 2
    assert (weights(merged)[Q_PROJ] - (weights(tiny.models[0])[Q_PROJ] + mean)).abs().max() < 1e-5
    loads_and_answers(merged)


def test_whole_checkpoints_average_weight_by_weight_with_mergekit(engine, tiny):
    fake_run(engine.workspace, "pretrained-1", {10: tiny.models[0], 20: tiny.models[1], 30: tiny.models[2]})

    finished, merged = run_merge(engine, {"method": "average", "checkpoints": {"run": "pretrained-1", "last": 3}})

    assert finished["status"] == "completed", finished
    assert finished["summary"]["library"] == "mergekit"
    expected = sum(weights(m)[Q_PROJ] for m in tiny.models) / 3
    assert (weights(merged)[Q_PROJ] - expected).abs().max() < 1e-6
    loads_and_answers(merged)


def test_linear_slerp_and_ties_merges_load_in_transformers(engine, tiny):
    a, b, c = (str(m) for m in tiny.models)
    finished, merged = run_merge(engine, {"method": "linear", "models": [{"path": a, "weight": 1}, {"path": b, "weight": 3}]})
    assert finished["status"] == "completed", finished
    expected = 0.25 * weights(a)[Q_PROJ] + 0.75 * weights(b)[Q_PROJ]
    assert (weights(merged)[Q_PROJ] - expected).abs().max() < 1e-6

    for spec in ({"method": "slerp", "t": 0.3, "models": [{"path": a}, {"path": b}]},
                 {"method": "ties", "base_model": {"path": a}, "density": 0.5,
                  "models": [{"path": b}, {"path": str(tiny.models[0]), "adapter": str(tiny.adapters[0])}]}):
        finished, merged = run_merge(engine, spec)
        assert finished["status"] == "completed", (spec["method"], finished)
        got = weights(merged)[Q_PROJ]
        assert not got.equal(weights(a)[Q_PROJ]) and not got.equal(weights(b)[Q_PROJ])
        loads_and_answers(merged)


def test_bad_input_is_named_with_what_to_do(engine, tiny):
    one = engine.run("validate", str(engine.write_spec({"kind": "merge", "method": "linear",
                                                       "models": [{"path": str(tiny.models[0])}]})))
    assert one.returncode == 2 and "models" in one.stderr and "two or more models" in one.stderr

    finished, _ = run_merge(engine, {"method": "linear", "models": [{"path": str(tiny.models[0])},
                                                                    {"path": str(tiny.gpt2)}]})
    assert finished["status"] == "failed"
    assert "mergekit could not merge" in finished["error"]["message"]
    assert "one architecture" in finished["error"]["hint"]

    fake_run(engine.workspace, "short-1", {5: tiny.models[0]})
    finished, _ = run_merge(engine, {"method": "average", "checkpoints": {"run": "short-1"}})
    assert finished["status"] == "failed"
    assert "1 complete checkpoint" in finished["error"]["message"] and "checkpoints.run" in finished["error"]["message"]

    finished, _ = run_merge(engine, {"method": "fold", "models": [{"path": str(tiny.models[1])}]})
    assert finished["status"] == "failed" and "models[0].path" in finished["error"]["message"]
