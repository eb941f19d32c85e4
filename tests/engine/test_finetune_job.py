"""The finetune job through the real engine process: every method on a tiny pretrained model, the
saved adapter and merged model, generation metrics, the preview, several processes over gloo, the
QLoRA guards, and bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.engine.conftest import Engine, tiny_spec


@pytest.fixture(scope="session")
def base_model(tmp_path_factory, corpus_file) -> Path:
    """A tiny llama pretrained by the engine itself (the user's own pretraining run)."""
    engine = Engine(tmp_path_factory.mktemp("base-ws"))
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
    for dotted, value in overrides.items():
        node = spec
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return spec


def run_ok(engine: Engine, spec: dict) -> tuple[Path, list[dict]]:
    result = engine.run("run", str(engine.write_spec(spec)), "--json", timeout=400)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["status"] == "completed", events[-1]
    return engine.only_run(), events


def failure(engine: Engine, spec: dict) -> dict:
    result = engine.run("run", str(engine.write_spec(spec)), "--json", timeout=300)
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    assert error["message"] and error["hint"]
    return error


def test_lora_writes_an_adapter_and_a_merged_model_with_metrics_before_and_after(engine, base_model):
    run_dir, events = run_ok(engine, finetune_spec(base_model, **{"output.merge": True}))
    evals = [e for e in events if e["type"] == "metric" and e["split"] == "eval" and "exact_match" in e["values"]]
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 6  # the baseline, then the end
    assert {"exact_match", "bleu", "rouge_l"} <= set(evals[-1]["values"])
    assert any(e["type"] == "metric" and e["split"] == "eval" and "loss" in e["values"] for e in events)
    samples = [e for e in events if e["type"] == "sample"]
    assert samples[0]["step"] == 0 and "(expected: " in samples[0]["text"]
    summary = events[-1]["summary"]
    assert "exact_match_before" in summary and "exact_match_after" in summary

    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = run_dir / "output" / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base = AutoModelForCausalLM.from_pretrained(base_model)
    base.resize_token_embeddings(len(tokenizer))
    assert PeftModel.from_pretrained(base, adapter) is not None
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "output" / "merged")
    assert merged.config.vocab_size >= len(tokenizer)
    card = (adapter / "README.md").read_text()
    assert "exact_match_after" in card and "kind: finetune" in card


@pytest.mark.parametrize("method", ["full", "adalora", "prefix", "prompt", "ptuning", "dora"])
def test_every_method_trains(engine, base_model, method):
    overrides = {"method.name": method, "evaluation.generate_examples": 2, "evaluation.before_training": False,
                 "train.max_steps": 2, "train.eval_every": 2, "train.checkpoint_every": 2, "train.log_every": 1}
    if method == "dora":
        overrides.update({"method.name": "lora", "method.lora.use_dora": True, "method.lora.use_rslora": True})
    if method == "adalora":
        overrides.update({"method.adalora.initial_rank": 4, "method.adalora.target_rank": 2})
    run_dir, events = run_ok(engine, finetune_spec(base_model, **overrides))
    output = run_dir / "output" / ("model" if method == "full" else "adapter")
    assert (output / "README.md").exists()
    losses = [e["values"]["loss"] for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert losses and all(loss == loss for loss in losses)  # trained, no NaN


def test_preview_shows_format_rendering_and_memory(engine, base_model, tmp_path):
    data = tmp_path / "alpaca.jsonl"
    data.write_text("\n".join(json.dumps({"instruction": f"Say {i}.", "input": "", "output": f"{i}"})
                              for i in range(30)) + "\n")
    spec = engine.write_spec(finetune_spec(base_model, **{"data.sources": [str(data)]}))
    result = engine.run("preview", str(spec), "--json")
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    assert preview["format"] == "alpaca" and preview["format_detected"]
    example = preview["examples"][0]
    trained = "".join(t["text"] for t in example["tokens"] if t["trained"])
    assert trained == example["reference"] + "<|im_end|>" and "Say" not in trained  # loss on the answer only
    assert preview["model"]["linear_modules"][:2] == ["q_proj", "k_proj"]
    methods = preview["memory"]["methods"]
    assert methods["full"]["gb"] > methods["lora"]["gb"] and methods["qlora"]["needs_cuda"]
    text = engine.run("preview", str(spec))
    assert "Memory on cpu" in text.stdout and "alpaca (detected)" in text.stdout


def test_two_processes_over_gloo_write_one_event_stream(engine, base_model):
    run_dir, _ = run_ok(engine, finetune_spec(base_model, **{"resources.gpus": 2}))
    events = engine.events(run_dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert sum(e["type"] == "started" for e in events) == 1 and sum(e["type"] == "finished" for e in events) == 1
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()
    assert any(e["type"] == "log" and "2 processes in one ddp group over gloo" in e["message"] for e in events)
    assert "rank 1 of 2" in (run_dir / "engine.log").read_text()  # the second process trained beside it


def test_qlora_refuses_layers_bitsandbytes_cannot_pack(engine, tmp_path, base_model):
    from transformers import AutoModelForCausalLM, LlamaConfig

    odd = tmp_path / "odd"
    config = LlamaConfig(vocab_size=400, hidden_size=48, intermediate_size=80, num_hidden_layers=1,
                         num_attention_heads=2)
    AutoModelForCausalLM.from_config(config).save_pretrained(odd)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base_model / name).exists():
            shutil.copy(base_model / name, odd / name)
    error = failure(engine, finetune_spec(odd, **{"method.name": "qlora"}))
    assert "multiple of 32" in error["message"] and "method.name: lora" in error["hint"]


def test_qlora_on_the_cpu_trains_its_adapters(engine, base_model):
    pytest.importorskip("bitsandbytes")
    run_dir, events = run_ok(engine, finetune_spec(base_model, **{"method.name": "qlora",
                                                                 "method.quantization.compute_dtype": "fp32"}))
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()
    assert any("No baseline measurement for QLoRA" in e.get("message", "") for e in events if e["type"] == "log")


@pytest.mark.parametrize("case", ["unknown-format", "no-weights", "no-chat-template", "missing-field"])
def test_bad_input_is_named(engine, base_model, tmp_path, case):
    spec = finetune_spec(base_model)
    if case == "unknown-format":
        data = tmp_path / "odd.jsonl"
        data.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
        spec["data"]["sources"] = [str(data)]
        expected = ("'question'", "'answer'")
    elif case == "missing-field":
        data = tmp_path / "alpaca.jsonl"
        data.write_text(json.dumps({"instruction": "x", "output": "y"}) + "\n" + json.dumps({"instruction": "x"}) + "\n")
        spec["data"]["sources"] = [str(data)]
        spec["data"]["format"] = "alpaca"
        expected = ("line 2", "output")
    elif case == "no-weights":
        folder = tmp_path / "empty-model"
        folder.mkdir()
        shutil.copy(base_model / "config.json", folder / "config.json")
        spec["model"]["path"] = str(folder)
        expected = ("no weights", "config.json")
    else:
        spec["data"]["chat_template"] = "model"
        expected = ("chat template", "")
    error = failure(engine, spec)
    text = error["message"] + " " + error["hint"]
    assert all(part in text for part in expected), text


def test_the_resources_block_becomes_fsdp_or_deepspeed_settings():
    from engine.distributed_config import describe, trainer_arguments
    from engine.spec_base import Resources

    assert trainer_arguments(Resources()) == {} and trainer_arguments(Resources(gpus=4)) == {}
    fsdp = trainer_arguments(Resources(gpus=4, strategy="fsdp", offload=True))
    assert fsdp["fsdp"] == "full_shard auto_wrap offload"
    zero3 = trainer_arguments(Resources(gpus=8, nodes=2, strategy="deepspeed-zero3", offload=True))["deepspeed"]
    assert zero3["zero_optimization"]["stage"] == 3 and zero3["zero_optimization"]["offload_param"]["device"] == "cpu"
    zero2 = trainer_arguments(Resources(gpus=2, strategy="deepspeed-zero2"))["deepspeed"]
    assert zero2["zero_optimization"]["stage"] == 2 and "offload_optimizer" not in zero2["zero_optimization"]
    assert "16 processes" in describe(Resources(gpus=8, nodes=2, strategy="deepspeed-zero3"))


@pytest.mark.skip(reason="needs CUDA: DeepSpeed ZeRO and FSDP shard over NCCL; the CPU test above runs DDP over gloo")
def test_deepspeed_zero3_on_two_gpus(engine, base_model):
    run_ok(engine, finetune_spec(base_model, **{"resources.gpus": 2, "resources.device": "cuda",
                                                "resources.strategy": "deepspeed-zero3"}))


def test_plain_text_continues_pretraining_without_a_chat_template(engine, base_model, tmp_path):
    data = tmp_path / "notes.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"Note {i}: the parser returns the next token."}) for i in range(40)))
    run_dir, events = run_ok(engine, finetune_spec(base_model, **{"data.sources": [str(data)],
                                                                 "data.chat_template": "model"}))
    assert any("format text (detected)" in e.get("message", "") for e in events if e["type"] == "log")
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()


def _has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="needs CUDA: QLoRA's real path is NF4 on a GPU with bf16 compute and "
                                             "the paged 8-bit optimiser; the CPU tests above cover the guards")
def test_qlora_on_cuda_with_paged_optimizer_and_a_baseline_free_run(engine, base_model):
    run_dir, events = run_ok(engine, finetune_spec(base_model, **{"method.name": "qlora", "resources.device": "cuda"}))
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()
    losses = [e["values"]["loss"] for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert losses[-1] < losses[0]
