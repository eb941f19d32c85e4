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

from tests.engine.conftest import ROOT, Engine, RunPool, pooled, start_pooled
from tests.engine.finetune_fixtures import base_model, finetune_spec  # noqa: F401 (base_model is a fixture)


def python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a markdown text."""
    return [block.split("```", 1)[0] for block in markdown.split("```python\n")[1:]]


def start_run(spec: dict):
    """A RunPool job: `run SPEC --json` in the job's workspace."""
    def job(engine: Engine):
        return engine, engine.run("run", str(engine.write_spec(spec)), "--json", timeout=400)
    return job


def run_ok(engine: Engine, result) -> tuple[Path, list[dict]]:
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    events = engine.stdout_events(result.stdout)
    assert events[-1]["status"] == "completed", events[-1]
    return engine.only_run(), events


def failure(engine: Engine, result) -> dict:
    assert result.returncode == 1, (result.stdout[-2000:], result.stderr[-2000:])
    error = json.loads(result.stdout.splitlines()[-1])["error"]
    assert error["message"] and error["hint"]
    return error


METHODS = ["full", "adalora", "prefix", "prompt", "ptuning", "dora"]
BAD_INPUTS = ["unknown-format", "no-weights", "no-chat-template", "missing-field", "hostile-record", "preference-label",
              "images", "function-call", "max-length-rope", "max-length-learned", "rope-scaling-learned",
              "nothing-left"]
# The records of the data cases of bad_input_job: a record that fits, then the bad one (line 2).
GOOD = {"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]}
BAD_RECORDS = {
    "preference-label": json.dumps({**GOOD, "label": False}),
    "images": json.dumps({"messages": [{"role": "user", "content": "<image>What is this?"},
                                       {"role": "assistant", "content": "A cat."}], "images": ["cat.png"]}),
    "function-call": json.dumps({"conversations": [{"from": "human", "value": "Weather?"},
                                                   {"from": "function_call", "value": "weather()"},
                                                   {"from": "observation", "value": "sunny"},
                                                   {"from": "gpt", "value": "Sunny."}]}),
    "hostile-record": '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}",
}


def method_overrides(method: str) -> dict:
    overrides = {"method.name": method, "evaluation.generate_examples": 2, "evaluation.before_training": False,
                 "train.max_steps": 2, "train.eval_every": 2, "train.checkpoint_every": 2, "train.log_every": 1}
    if method == "dora":
        overrides.update({"method.name": "lora", "method.lora.use_dora": True, "method.lora.use_rslora": True})
    if method == "adalora":
        overrides.update({"method.adalora.initial_rank": 4, "method.adalora.target_rank": 2})
    return overrides


def preview_job(base: Path, pretty: bool, answer: str = "{i}", **overrides):
    def job(engine: Engine):
        data = engine.workspace / "alpaca.jsonl"
        data.write_text("\n".join(json.dumps({"instruction": f"Say {i}.", "input": "", "output": answer.format(i=i)})
                                  for i in range(30)) + "\n")
        spec = engine.write_spec(finetune_spec(base, **{"data.sources": [str(data)], "method.lora.rank": 8,
                                                        **overrides}))
        return engine.run("preview", str(spec)) if pretty else engine.run("preview", str(spec), "--json")
    return job


def write_gpt2(base: Path, engine: Engine) -> None:
    """A GPT-2 (learned positions: 128 of them) with the base's tokenizer, in the workspace's gpt2/."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GPT2Config

    tokenizer = AutoTokenizer.from_pretrained(base)
    config = GPT2Config(vocab_size=len(tokenizer) + 8, n_positions=128, n_embd=32, n_layer=1, n_head=2,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    AutoModelForCausalLM.from_config(config).save_pretrained(engine.workspace / "gpt2")
    tokenizer.save_pretrained(engine.workspace / "gpt2")


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
        elif case in BAD_RECORDS:
            data = engine.workspace / "data.jsonl"
            good = GOOD if case != "function-call" else {"conversations": [{"from": "human", "value": "Hi."},
                                                                           {"from": "gpt", "value": "Hi."}]}
            data.write_text(json.dumps(good) + "\n" + BAD_RECORDS[case] + "\n")
            spec["data"]["sources"] = [str(data)]
        elif case == "nothing-left":  # prompts longer than data.max_length (64): no answer survives the cut
            data = engine.workspace / "long-prompts.jsonl"
            data.write_text("".join(json.dumps({"instruction": " ".join(f"w{i * j}" for j in range(60)), "output": "ok"})
                                    + "\n" for i in range(20)))
            spec["data"]["sources"] = [str(data)]
        elif case == "max-length-rope":  # the base is a llama of 64 positions: 256 once scaled by 4
            spec["data"]["max_length"] = 512
            spec["model"]["rope_scaling"] = {"type": "linear", "factor": 4}
        elif case == "rope-scaling-learned":  # GPT-2 learns one embedding per position: nothing to scale
            spec["model"]["path"] = str(engine.workspace / "gpt2")
            spec["model"]["rope_scaling"] = {"type": "yarn", "factor": 2}
        elif case == "max-length-learned":  # records of hundreds of tokens: past the 128 positions of the GPT-2
            data = engine.workspace / "long.jsonl"
            data.write_text("".join(json.dumps({"instruction": "Count.", "output": " ".join(f"w{i * j}" for j in range(150))})
                                    + "\n" for i in range(20)))
            spec["data"]["sources"] = [str(data)]
            spec["model"]["path"] = str(engine.workspace / "gpt2")
            spec["data"]["max_length"] = 512
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


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, base_model) -> RunPool:
    """The runs of this module's selected tests, started in the background as soon as the base exists."""
    pool = RunPool(tmp_path_factory.mktemp("finetune-runs"))
    start_pooled(request, pool, base=base_model)
    yield pool
    pool.close()


@pooled("lora", lambda f: start_run(finetune_spec(f.base, **{"output.merge": True})))
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

    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = run_dir / "output" / "adapter"
    assert (adapter / "adapter_config.json").exists() and (adapter / "adapter_model.safetensors").exists()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base = AutoModelForCausalLM.from_pretrained(base_model)
    assert len(tokenizer) > base.get_input_embeddings().num_embeddings  # the run added chatml's markers
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "output" / "merged")
    assert merged.config.vocab_size >= len(tokenizer)
    card = (adapter / "README.md").read_text()
    assert "exact_match_after" in card and "kind: finetune" in card

    # Every way the card and the docs give to load the adapter loads it, and they give the same model.
    import torch

    docs = (ROOT / "docs" / "finetuning.md").read_text().split("## Outputs", 1)[1].split("\n## ", 1)[0]
    snippets = [code.replace("path/to/this/folder", str(adapter)) for code in python_blocks(card)]
    snippets += [code.replace("runs/RUN/output/adapter", str(adapter)).replace("runs/BASE/output/model", str(base_model))
                 for code in python_blocks(docs)]
    assert len(snippets) == 4 and sum("PeftModel.from_pretrained(base" in code for code in snippets) == 2
    ids = tokenizer("<|im_start|>user\nSay hi<|im_end|>", return_tensors="pt")["input_ids"]
    logits = []
    for code in snippets:
        names: dict = {}
        exec(code, names)  # noqa: S102 - the snippets users are told to run
        with torch.no_grad():
            logits.append(names["model"](input_ids=ids).logits)
    assert all(torch.allclose(logits[0], other) for other in logits[1:])


@pooled(lambda f, method: method, lambda f, method: start_run(finetune_spec(f.base, **method_overrides(method))))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains(runs, method):
    run_dir, events = run_ok(*runs.result(method))
    output = run_dir / "output" / ("model" if method == "full" else "adapter")
    assert (output / "README.md").exists()
    losses = [e["values"]["loss"] for e in events if e["type"] == "metric" and e["split"] == "train"]
    assert losses and all(loss == loss for loss in losses)  # trained, no NaN


@pooled("preview-json", lambda f: preview_job(f.base, False))
@pooled("preview-text", lambda f: preview_job(f.base, True))
def test_preview_shows_format_rendering_and_memory(runs, base_model):
    result = runs.result("preview-json")
    assert result.returncode == 0, result.stderr
    preview = json.loads(result.stdout)
    assert preview["format"] == "alpaca" and preview["format_detected"]
    example = preview["examples"][0]
    trained = "".join(t["text"] for t in example["tokens"] if t["trained"])
    assert trained == example["reference"] + "<|im_end|>" and "Say" not in trained  # loss on the answer only
    assert preview["model"]["linear_modules"][:2] == ["q_proj", "k_proj"]
    methods = preview["memory"]["methods"]
    # On a model this small LoRA's activations (a dropout copy of every adapted layer's input) outweigh what
    # it saves on optimizer state, as bench/memory_estimate.py measures: trainable counts order the methods.
    assert methods["full"]["trainable"] > methods["lora"]["trainable"] > methods["prompt"]["trainable"]
    assert all(m["gb"] >= 0.09 for m in methods.values()) and methods["qlora"]["needs_cuda"]  # 100 MB of CPU runtime
    text = runs.result("preview-text")
    assert text.returncode == 0, text.stderr
    assert "Memory on cpu" in text.stdout and "alpaca (detected)" in text.stdout
    assert preview["training"]["packed"] and preview["training"]["loss"] == "chunked"
    assert ("Training path: packed where one row computes less than padded rows, batch by batch; chunked "
            "cross-entropy at trained positions; not compiled") in text.stdout  # auto, with SDPA's dense mask
    # The trained tokens are marked: the answer and its end-of-turn marker, not the prompt.
    assert f"⟦{example['reference']}<|im_end|>⟧" in text.stdout and "✂" not in text.stdout

    # LoRA's trainable parameters as PEFT counts them on the same model (rank 8, hidden 64, MLP 192).
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_model)
    assert (model.config.hidden_size, model.config.intermediate_size) == (64, 192)
    targets = preview["model"]["default_targets"]
    peft_count, _ = get_peft_model(model, LoraConfig(r=8, target_modules=targets)).get_nb_trainable_parameters()
    assert methods["lora"]["trainable"] == peft_count == 20_480


@pooled("preview-cut", lambda f: preview_job(f.base, True, answer="{i} " + "and then some more words " * 30,
                                              **{"data.max_length": 128}))
def test_the_text_preview_shows_a_record_as_training_sees_it_cut_at_max_length(runs):
    result = runs.result("preview-cut")
    assert result.returncode == 0, result.stderr
    assert "data.max_length (128) is more than the 64 positions the model reads: the run will refuse it" in result.stdout
    shown, cut = result.stdout.split("✂ data.max_length (128 tokens) ends here: ")
    record = shown.split("trained (between ⟦ ⟧):\n", 1)[1]
    assert record.count("⟦") == 1 and "⟧" in record and "<|im_end|>" not in record.split("⟦")[1]  # cut in the answer
    assert record.count("and then some more words") < 30
    assert cut.split(" more tokens, not trained")[0].isdigit()


@pooled("gloo", lambda f: start_run(finetune_spec(f.base, **{"resources.gpus": 2})))
def test_two_processes_over_gloo_write_one_event_stream_and_the_adapter_once(runs):
    engine, result = runs.result("gloo")
    run_dir, _ = run_ok(engine, result)
    events = engine.events(run_dir)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert sum(e["type"] == "started" for e in events) == 1 and sum(e["type"] == "finished" for e in events) == 1
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()
    assert any(e["type"] == "log" and "2 processes in one ddp group over gloo" in e["message"] for e in events)
    log = (run_dir / "engine.log").read_text()
    assert "rank 1 of 2" in log  # the second process trained beside it
    # Both processes log to engine.log; only rank 0 writes the run's outputs.
    writes = [line for line in log.splitlines() if " wrote " in line and line.rstrip().endswith("output/adapter")]
    assert len(writes) == 1 and "(rank 0)" in writes[0], writes


@pooled("qlora-odd", lambda f: qlora_on_the_odd_model, prepare=lambda f: lambda engine: write_odd_model(f.base, engine))
def test_qlora_refuses_layers_bitsandbytes_cannot_pack(runs):
    error = failure(*runs.result("qlora-odd"))
    assert "multiple of 32" in error["message"] and "method.name: lora" in error["hint"]


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes is not installed")
@pooled("qlora-cpu", lambda f: start_run(finetune_spec(f.base, **{"method.name": "qlora",
                                                                "method.quantization.compute_dtype": "fp32"})))
def test_qlora_on_the_cpu_trains_its_adapters(runs):
    run_dir, events = run_ok(*runs.result("qlora-cpu"))
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()
    assert any("No baseline measurement for QLoRA" in e.get("message", "") for e in events if e["type"] == "log")


# What each bad input's error must name (the inputs are made in bad_input_job).
BAD_INPUT_NAMES = {
    "unknown-format": ("'question'", "'answer'"), "missing-field": ("line 2", "output"),
    "no-weights": ("no weights", "config.json"), "no-chat-template": ("chat template", ""),
    "hostile-record": ("data.jsonl, line 2: nested too deeply", "100 levels"),
    "preference-label": ("data.jsonl, line 2: field 'label' holds a preference label", "reward model or DPO"),
    "images": ("data.jsonl, line 2: field 'images'", "<image>", "text-only"),
    "function-call": ("data.jsonl, line 2, turn 2 of 'conversations': not valid JSON", "Write a call as"),
    "max-length-rope": ("data.max_length is 512 tokens, more than the 64 positions the base model",
                        "× model.rope_scaling.factor 4 = 256", "Raise model.rope_scaling.factor to at least 8.00"),
    "rope-scaling-learned": ("model.rope_scaling is set, but the base model", "has no rotary position embeddings",
                             "Remove model.rope_scaling"),
    "max-length-learned": ("data.max_length is 512 tokens, more than the 128 positions the base model",
                           "no row past them"),
    "nothing-left": ("No training record is left to learn from: of 18, 0 are longer than data.max_length (64 tokens, "
                     "data.overflow: truncate) and 18 have no answer left to learn once cut to it.", "shorter prompt"),
}


@pooled(lambda f, case: f"bad-{case}", lambda f, case: bad_input_job(f.base, case),
        prepare=lambda f, case: ((lambda engine: write_gpt2(f.base, engine))
                                 if case in ("max-length-learned", "rope-scaling-learned") else None))
@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_named(runs, case):
    error = failure(*runs.result(f"bad-{case}"))
    text = error["message"] + " " + error["hint"]
    assert error["type"] in ("data_error", "model_error", "tokenizer_error"), error
    assert all(part in text for part in BAD_INPUT_NAMES[case]), text
    assert "known:" not in text  # no list of roles that would let a tool turn through


@pooled("plain-text", lambda f: plain_text_job(f.base))
def test_plain_text_continues_pretraining_without_a_chat_template(runs):
    run_dir, events = run_ok(*runs.result("plain-text"))
    assert any("format text (detected)" in e.get("message", "") for e in events if e["type"] == "log")
    assert (run_dir / "output" / "adapter" / "adapter_model.safetensors").exists()


PACKING_RUN = {"method.lora.dropout": 0.0, "evaluation.generate_examples": 0, "evaluation.before_training": False,
               "train.max_steps": 3, "train.log_every": 1, "train.eval_every": 3, "train.checkpoint_every": 3}


def train_metrics(events: list[dict]) -> list[dict]:
    return [e["values"] for e in events if e["type"] == "metric" and e["split"] == "train"]


@pooled("packed", lambda f: start_run(finetune_spec(f.base, **{**PACKING_RUN, "train.packing": "on"})))
@pooled("padded", lambda f: start_run(finetune_spec(f.base, **{**PACKING_RUN, "train.packing": "off"})))
def test_packed_and_padded_runs_learn_the_same_and_report_their_padding(runs):
    packed_dir, packed = run_ok(*runs.result("packed"))
    _, padded = run_ok(*runs.result("padded"))
    logs = [e["message"] for e in packed if e["type"] == "log"]
    assert "Batches: packed, padding-free; chunked cross-entropy at trained positions; not compiled." in logs
    assert any(e.get("message", "").startswith("Batches: padded;") for e in padded)
    on, off = train_metrics(packed), train_metrics(padded)
    assert [m["loss"] for m in on] == pytest.approx([m["loss"] for m in off], rel=1e-3)  # same data, same steps
    assert all(m["padding_efficiency"] == 1.0 and m["trained_tokens_per_s"] > 0 for m in on)
    assert all(m["padding_efficiency"] < 1.0 for m in off)  # records of several lengths: padded rows
    assert all(m["trained_tokens_per_s"] < m["tokens_per_s"] for m in on + off)  # responses only


def packing_refused_job(base: Path, case: str):
    def job(engine: Engine):
        if case == "prefix":
            spec = finetune_spec(base, **{"method.name": "prefix", "train.packing": "on"})
        else:
            from tests.engine.conftest import tiny_spec
            text = engine.workspace / "corpus.txt"
            text.write_text("Return the next token of the corpus.\n" * 200)
            spec = tiny_spec(str(text), **{"train.packing": "on"})
        return engine, engine.run("run", str(engine.write_spec(spec)), "--json", timeout=300)
    return job


@pooled(lambda f, case: f"packing-{case}", lambda f, case: packing_refused_job(f.base, case))
@pytest.mark.parametrize("case", ["prefix", "pretrain"])
def test_packing_on_is_refused_where_it_cannot_apply(runs, case):
    engine, result = runs.result(f"packing-{case}")
    if case == "prefix":  # a spec error, before any run starts
        assert result.returncode == 2, result.stderr[-2000:]
        assert "train.packing: on cannot apply to method.name 'prefix'" in result.stdout + result.stderr
    else:
        error = failure(engine, result)
        assert "train.packing is on, but pretrain runs do not pack records" in error["message"]
        assert "auto or off" in error["hint"]


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


def long_records_job(base: Path, rope_scaling: dict | None):
    """Full fine-tuning for two steps on records of ~128 tokens, past the 64 positions of the base llama."""
    def job(engine: Engine):
        data = engine.workspace / "long-answers.jsonl"
        data.write_text("".join(json.dumps({"instruction": "Count.", "output": " ".join(f"w{i * j}" for j in range(60))})
                                + "\n" for i in range(16)))
        overrides = {**PACKING_RUN, "data.sources": [str(data)], "data.max_length": 128, "data.eval_fraction": 0.0,
                     "method.name": "full", "train.max_steps": 2}
        if rope_scaling is not None:
            overrides["model.rope_scaling"] = rope_scaling
        return start_run(finetune_spec(base, **overrides))(engine)
    return job


@pooled("rope-yarn", lambda f: long_records_job(f.base, {"type": "yarn", "factor": 2}))
@pooled("rope-none", lambda f: long_records_job(f.base, None))
def test_rope_scaling_stretches_the_positions_and_is_saved_with_the_model(runs):
    run_dir, events = run_ok(*runs.result("rope-yarn"))
    logs = [e for e in events if e["type"] == "log"]
    assert "RoPE scaling: yarn, factor 2." in [e["message"] for e in logs]
    assert not [e for e in logs if e["level"] == "warning" and "rope_scaling" in e["message"]]
    config = json.loads((run_dir / "output" / "model" / "config.json").read_text())
    assert config["max_position_embeddings"] == 128
    assert config["rope_parameters"]["rope_type"] == "yarn" and config["rope_parameters"]["factor"] == 2.0
    assert config["rope_parameters"]["original_max_position_embeddings"] == 64
    assert config["rope_parameters"]["rope_theta"] > 0  # the base's rotary base kept

    # Without scaling the run trains past the 64 trained positions, saying so and how to stretch them.
    _, plain = run_ok(*runs.result("rope-none"))
    warnings = [e["message"] for e in plain if e["type"] == "log" and e["level"] == "warning"]
    assert any("more than the 64 positions" in w and "Set model.rope_scaling" in w and "factor ≥ 2.00" in w
               for w in warnings), warnings
