"""The finetune job through the real engine process: every method on a tiny pretrained model, the
saved adapter and merged model, generation metrics, the preview, several processes over gloo, the
QLoRA guards, and bad input.

Each run is mostly interpreter and torch start-up, so the module's runs are started ahead of their
tests by a RunPool, a few side by side; each test waits for its own run and checks it as before."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from tests.engine.conftest import Engine, RunPool, one_thread, selected_tests, tiny_spec, with_overrides


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


def start_run(spec: dict):
    """A RunPool job: `run SPEC --json` in the job's workspace."""
    def job(engine: Engine):
        return engine, engine.run("run", str(engine.write_spec(spec)), "--json", timeout=400)
    return job


def run_ok(engine: Engine, result) -> tuple[Path, list[dict]]:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["status"] == "completed", events[-1]
    return engine.only_run(), events


def failure(engine: Engine, result) -> dict:
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    assert error["message"] and error["hint"]
    return error


METHODS = ["full", "adalora", "prefix", "prompt", "ptuning", "dora"]
BAD_INPUTS = ["unknown-format", "no-weights", "no-chat-template", "missing-field"]


def method_overrides(method: str) -> dict:
    overrides = {"method.name": method, "evaluation.generate_examples": 2, "evaluation.before_training": False,
                 "train.max_steps": 2, "train.eval_every": 2, "train.checkpoint_every": 2, "train.log_every": 1}
    if method == "dora":
        overrides.update({"method.name": "lora", "method.lora.use_dora": True, "method.lora.use_rslora": True})
    if method == "adalora":
        overrides.update({"method.adalora.initial_rank": 4, "method.adalora.target_rank": 2})
    return overrides


def preview_job(base: Path, pretty: bool):
    def job(engine: Engine):
        data = engine.workspace / "alpaca.jsonl"
        data.write_text("\n".join(json.dumps({"instruction": f"Say {i}.", "input": "", "output": f"{i}"})
                                  for i in range(30)) + "\n")
        spec = engine.write_spec(finetune_spec(base, **{"data.sources": [str(data)]}))
        return engine.run("preview", str(spec)) if pretty else engine.run("preview", str(spec), "--json")
    return job


def write_odd_model(base: Path, engine: Engine) -> None:
    """A model whose layer widths bitsandbytes cannot pack, with the base's tokenizer."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    odd = engine.workspace / "odd"
    config = LlamaConfig(vocab_size=400, hidden_size=48, intermediate_size=80, num_hidden_layers=1,
                         num_attention_heads=2)
    AutoModelForCausalLM.from_config(config).save_pretrained(odd)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (base / name).exists():
            shutil.copy(base / name, odd / name)


def qlora_on_the_odd_model(engine: Engine):
    return start_run(finetune_spec(engine.workspace / "odd", **{"method.name": "qlora"}))(engine)


def bad_input_job(base: Path, case: str):
    def job(engine: Engine):
        spec = finetune_spec(base)
        if case == "unknown-format":
            data = engine.workspace / "odd.jsonl"
            data.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n")
            spec["data"]["sources"] = [str(data)]
        elif case == "missing-field":
            data = engine.workspace / "alpaca.jsonl"
            data.write_text(json.dumps({"instruction": "x", "output": "y"}) + "\n" + json.dumps({"instruction": "x"})
                            + "\n")
            spec["data"]["sources"] = [str(data)]
            spec["data"]["format"] = "alpaca"
        elif case == "no-weights":
            folder = engine.workspace / "empty-model"
            folder.mkdir()
            shutil.copy(base / "config.json", folder / "config.json")
            spec["model"]["path"] = str(folder)
        else:
            spec["data"]["chat_template"] = "model"
        return engine, engine.run("run", str(engine.write_spec(spec)), "--json", timeout=300)
    return job


def plain_text_job(base: Path):
    def job(engine: Engine):
        data = engine.workspace / "notes.jsonl"
        data.write_text("\n".join(json.dumps({"text": f"Note {i}: the parser returns the next token."})
                                  for i in range(40)))
        return start_run(finetune_spec(base, **{"data.sources": [str(data)], "data.chat_template": "model"}))(engine)
    return job


def planned_runs(base: Path) -> list[tuple]:
    """(test, key, job[, prepare]) in the order of the tests below."""
    planned = [("test_lora_writes_an_adapter_and_a_merged_model_with_metrics_before_and_after", "lora",
                start_run(finetune_spec(base, **{"output.merge": True})))]
    planned += [(f"test_every_method_trains[{m}]", m, start_run(finetune_spec(base, **method_overrides(m))))
                for m in METHODS]
    planned += [("test_preview_shows_format_rendering_and_memory", "preview-json", preview_job(base, False)),
                ("test_preview_shows_format_rendering_and_memory", "preview-text", preview_job(base, True)),
                ("test_two_processes_over_gloo_write_one_event_stream", "gloo",
                 start_run(finetune_spec(base, **{"resources.gpus": 2}))),
                ("test_qlora_refuses_layers_bitsandbytes_cannot_pack", "qlora-odd",
                 qlora_on_the_odd_model, lambda engine: write_odd_model(base, engine))]
    if importlib.util.find_spec("bitsandbytes") is not None:
        planned.append(("test_qlora_on_the_cpu_trains_its_adapters", "qlora-cpu",
                        start_run(finetune_spec(base, **{"method.name": "qlora",
                                                         "method.quantization.compute_dtype": "fp32"}))))
    planned += [(f"test_bad_input_is_named[{case}]", f"bad-{case}", bad_input_job(base, case)) for case in BAD_INPUTS]
    planned.append(("test_plain_text_continues_pretraining_without_a_chat_template", "plain-text",
                    plain_text_job(base)))
    return planned


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, base_model) -> RunPool:
    """The runs of this module's selected tests, started in the background as soon as the base exists."""
    pool = RunPool(tmp_path_factory.mktemp("finetune-runs"))
    wanted = selected_tests(request)
    for test, key, *job in planned_runs(base_model):
        if test in wanted:
            pool.submit(key, *job)
    yield pool
    pool.close()


def test_lora_writes_an_adapter_and_a_merged_model_with_metrics_before_and_after(runs, base_model):
    run_dir, events = run_ok(*runs.result("lora"))
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


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains(runs, method):
    run_dir, events = run_ok(*runs.result(method))
    output = run_dir / "output" / ("model" if method == "full" else "adapter")
    assert (output / "README.md").exists()
    losses = [e["values"]["loss"] for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert losses and all(loss == loss for loss in losses)  # trained, no NaN


def test_preview_shows_format_rendering_and_memory(runs):
    result = runs.result("preview-json")
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    assert preview["format"] == "alpaca" and preview["format_detected"]
    example = preview["examples"][0]
    trained = "".join(t["text"] for t in example["tokens"] if t["trained"])
    assert trained == example["reference"] + "<|im_end|>" and "Say" not in trained  # loss on the answer only
    assert preview["model"]["linear_modules"][:2] == ["q_proj", "k_proj"]
    methods = preview["memory"]["methods"]
    assert methods["full"]["gb"] > methods["lora"]["gb"] and methods["qlora"]["needs_cuda"]
    text = runs.result("preview-text")
    assert text.returncode == 0, text.stderr
    assert "Memory on cpu" in text.stdout and "alpaca (detected)" in text.stdout


def test_two_processes_over_gloo_write_one_event_stream(runs):
    engine, result = runs.result("gloo")
    run_dir, _ = run_ok(engine, result)
    events = engine.events(run_dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert sum(e["type"] == "started" for e in events) == 1 and sum(e["type"] == "finished" for e in events) == 1
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()
    assert any(e["type"] == "log" and "2 processes in one ddp group over gloo" in e["message"] for e in events)
    assert "rank 1 of 2" in (run_dir / "engine.log").read_text()  # the second process trained beside it


def test_qlora_refuses_layers_bitsandbytes_cannot_pack(runs):
    error = failure(*runs.result("qlora-odd"))
    assert "multiple of 32" in error["message"] and "method.name: lora" in error["hint"]


def test_qlora_on_the_cpu_trains_its_adapters(runs):
    pytest.importorskip("bitsandbytes")
    run_dir, events = run_ok(*runs.result("qlora-cpu"))
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()
    assert any("No baseline measurement for QLoRA" in e.get("message", "") for e in events if e["type"] == "log")


# What each bad input's error must name (the inputs are made in bad_input_job).
BAD_INPUT_NAMES = {"unknown-format": ("'question'", "'answer'"), "missing-field": ("line 2", "output"),
                   "no-weights": ("no weights", "config.json"), "no-chat-template": ("chat template", "")}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_named(runs, case):
    error = failure(*runs.result(f"bad-{case}"))
    text = error["message"] + " " + error["hint"]
    assert all(part in text for part in BAD_INPUT_NAMES[case]), text


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
    spec = finetune_spec(base_model, **{"resources.gpus": 2, "resources.device": "cuda",
                                        "resources.strategy": "deepspeed-zero3"})
    run_ok(*start_run(spec)(engine))


def test_plain_text_continues_pretraining_without_a_chat_template(runs):
    run_dir, events = run_ok(*runs.result("plain-text"))
    assert any("format text (detected)" in e.get("message", "") for e in events if e["type"] == "log")
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()


def _has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


@pytest.mark.skipif(not _has_cuda(), reason="needs CUDA: QLoRA's real path is NF4 on a GPU with bf16 compute and "
                                             "the paged 8-bit optimiser; the CPU tests above cover the guards")
def test_qlora_on_cuda_with_paged_optimizer_and_a_baseline_free_run(engine, base_model):
    run_dir, events = run_ok(*start_run(finetune_spec(base_model, **{"method.name": "qlora",
                                                                     "resources.device": "cuda"}))(engine))
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()
    losses = [e["values"]["loss"] for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert losses[-1] < losses[0]
