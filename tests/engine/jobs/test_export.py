"""The export job through the real engine process: a llama with a LoRA adapter and a GPT-2 exported to
f16, q8_0 and q4_k_m, each file read back by transformers' GGUF reader and verified against its source
(the same greedy tokens and close logits for f16, perplexity within 1% for q8_0), the Modelfile, and
bad input named clearly. Shapes are ones every quantization takes whole (rows of 256)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, with_overrides
from tests.tiny_models import random_lora_adapter, save_model, tiny_byte_bpe, tiny_gpt2, tiny_llama

TEXTS = [f"The quick brown fox {i} jumps over the lazy dog number {i * 7}. Hello, world." for i in range(200)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    """A llama (hidden 256, two kv heads for four query heads) with a chatml template and a LoRA adapter
    that changes it, and a GPT-2 of the same width without a template."""
    root = tmp_path_factory.mktemp("export-models")
    tokenizer = tiny_byte_bpe(TEXTS, vocab_size=300, max_length=256)
    wide = {"hidden_size": 256, "intermediate_size": 512, "heads": 4, "kv_heads": 2}
    base = save_model(root / "llama", tiny_llama(tokenizer, **wide), tokenizer)
    adapter = random_lora_adapter(tiny_llama(tokenizer, **wide), base, root / "adapter")
    plain = tiny_byte_bpe(TEXTS, vocab_size=300, max_length=256, chat_template=False)
    gpt2 = save_model(root / "gpt2", tiny_gpt2(plain, hidden_size=256), plain)
    return SimpleNamespace(root=root, base=base, adapter=adapter, gpt2=gpt2)


def export_spec(model: dict, **overrides) -> dict:
    return with_overrides({"kind": "export", "name": "tiny", "model": model,
                           "verify": {"prompts": ["The quick brown fox", "Hello, world."], "max_new_tokens": 8}},
                          overrides)


def run_export(engine: Engine, spec: dict) -> tuple[list[dict], Path]:
    result = engine.run("run", str(engine.write_spec(spec)), "--json", timeout=400)
    events = engine.stdout_events(result.stdout)
    assert events and events[-1]["type"] == "finished", (result.stdout[-2000:], result.stderr[-3000:])
    return events, engine.only_run() / "output"


def checks_of(output: Path) -> dict[tuple[str, str], dict]:
    report = json.loads((output / "gguf" / "verification.json").read_text(encoding="utf-8"))
    return {(c["file"], c["check"]): c for c in report["checks"]}


def test_a_llama_with_its_adapter_folded_in_exports_three_precisions_that_answer_like_it(engine, tiny):
    events, output = run_export(engine, export_spec({"path": str(tiny.base), "adapter": str(tiny.adapter)}))

    assert events[-1]["status"] == "completed", events[-1]
    files = {q: output / "gguf" / f"tiny-{q}.gguf" for q in ("f16", "q8_0", "q4_k_m")}
    assert all(f.is_file() for f in files.values())
    assert files["q4_k_m"].stat().st_size < files["q8_0"].stat().st_size < files["f16"].stat().st_size
    assert (output / "merged" / "config.json").is_file()  # the adapter folded in first

    checks = checks_of(output)
    assert all(c["passed"] for c in checks.values()), [c for c in checks.values() if not c["passed"]]
    assert checks[("tiny-f16.gguf", "greedy")]["value"] == 2
    assert checks[("tiny-f16.gguf", "logits")]["value"] <= 0.05
    assert {f for f, check in checks if check == "perplexity"} == {f.name for f in files.values()}
    assert checks[("tiny-q8_0.gguf", "perplexity")]["limit"] == 0.01
    assert checks[("tiny-q4_k_m.gguf", "tokenizer")]["detail"].startswith("same token ids on all 3 texts")
    summary = events[-1]["summary"]
    assert summary["verified"] is True and summary["checks_passed"] == summary["checks"] == len(checks)
    assert abs(summary["q8_0_perplexity"] / summary["source_perplexity"] - 1) <= 0.01

    import gguf

    reader = gguf.GGUFReader(files["q4_k_m"])
    types = {t.name: t.tensor_type.name for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == "Q4_K" and types["blk.1.ffn_down.weight"] == "Q6_K"
    assert types["output.weight"] == "Q6_K" and types["blk.0.attn_norm.weight"] == "F32"
    template = reader.fields["tokenizer.chat_template"]
    assert "<|im_start|>" in bytes(template.parts[template.data[0]]).decode()

    modelfile = (output / "gguf" / "Modelfile").read_text(encoding="utf-8")
    assert "FROM ./tiny-q4_k_m.gguf" in modelfile
    assert '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "PARAMETER num_ctx 256" in modelfile
    assert "| tiny-q8_0.gguf | perplexity | passed |" in (output / "gguf" / "verification.md").read_text()
    artifacts = [e for e in events if e["type"] == "artifact"]
    assert [a["meta"].get("quantization") for a in artifacts if a["meta"].get("format") == "gguf"] == [
        "f16", "q8_0", "q4_k_m"]
    assert artifacts[-1]["kind"] == "report" and artifacts[-1]["meta"]["passed"] == len(checks)


def test_a_gpt2_exports_and_verifies_and_a_chat_preset_is_embedded(engine, tiny):
    events, output = run_export(engine, export_spec({"path": str(tiny.gpt2)}, chat_template="chatml",
                                                    quantizations=["f16", "q8_0"]))

    assert events[-1]["status"] == "completed", events[-1]
    checks = checks_of(output)
    assert all(c["passed"] for c in checks.values()), [c for c in checks.values() if not c["passed"]]
    assert checks[("tiny-f16.gguf", "loads")]["value"] == "GPT2LMHeadModel"
    assert checks[("tiny-f16.gguf", "chat template")]["value"] == "embedded"
    assert "FROM ./tiny-q8_0.gguf" in (output / "gguf" / "Modelfile").read_text(encoding="utf-8")


def test_a_file_that_answers_differently_fails_the_run_and_keeps_the_report(engine, tiny):
    """A tolerance no file can meet: the check fails, the run fails saying which, the files stay."""
    events, output = run_export(engine, export_spec({"path": str(tiny.base)}, quantizations=["q8_0"],
                                                    **{"verify.q8_0_tolerance": 1e-9, "ollama.enabled": False}))

    assert events[-1]["status"] == "failed"
    error = events[-1]["error"]
    assert error["type"] == "verification_failed"
    assert "tiny-q8_0.gguf, perplexity" in error["message"] and "verify.q8_0_tolerance" in error["hint"]
    assert (output / "gguf" / "tiny-q8_0.gguf").is_file() and not (output / "gguf" / "Modelfile").exists()
    assert "**FAILED**" in (output / "gguf" / "verification.md").read_text(encoding="utf-8")


def test_bad_input_is_named_with_what_to_do(engine, tiny, tmp_path):
    missing = engine.run("run", str(engine.write_spec(export_spec({"path": str(tmp_path / "nowhere")}))), "--json")
    error = json.loads(missing.stdout.splitlines()[-1])["error"]
    assert "model.path" in error["message"] and "does not exist" in error["message"]

    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (bert / "model.safetensors").write_bytes(b"")
    wrong = engine.run("run", str(engine.write_spec(export_spec({"path": str(bert)}))), "--json")
    error = json.loads(wrong.stdout.splitlines()[-1])["error"]
    assert "'bert' model" in error["message"] and "llama" in error["message"] and "convert_hf_to_gguf" in error["hint"]

    offline = engine.run("run", str(engine.write_spec(export_spec({"path": "nobody/no-such-model"}))), "--json")
    error = json.loads(offline.stdout.splitlines()[-1])["error"]
    assert "nobody/no-such-model (model.path)" in error["message"] and "HF_HUB_OFFLINE" in error["hint"]

    spec = export_spec({"path": str(tiny.base)}, quantizations=["f16"], **{"ollama.quantization": "q4_k_m"})
    invalid = engine.run("validate", str(engine.write_spec(spec)))
    assert invalid.returncode == 2 and "ollama.quantization" in invalid.stderr and "q4_k_m" in invalid.stderr


def test_the_k_quants_read_back_by_gguf_py_within_their_error():
    """Our Q4_K / Q5_K / Q6_K bytes, dequantized by gguf-py's reference code: the layout is right
    (a wrong one would give errors of the order of the weights) and more bits are closer."""
    import gguf
    import numpy as np

    from engine.export.kquants import quantize_rows

    rows = np.random.default_rng(0).normal(size=(8, 512)).astype(np.float32)
    rows[1] = 0.0
    errors = {}
    for name in ("Q4_K", "Q5_K", "Q6_K"):
        back = gguf.quants.dequantize(quantize_rows(rows, name), gguf.GGMLQuantizationType[name])
        errors[name] = float(np.sqrt(((back - rows) ** 2).mean()) / rows.std())
        assert not back[1].any()
    assert errors["Q6_K"] < errors["Q5_K"] < errors["Q4_K"] < 0.1


def test_q4_k_m_follows_llama_quantize_and_falls_back_for_short_rows():
    from gguf import GGMLQuantizationType as Q

    from engine.export.gguf_file import tensor_type

    layers = 8  # llama-quantize gives layers 0, 3, 6, 7 more bits (first and last eighth, every third between)
    chosen = [tensor_type(f"blk.{i}.ffn_down.weight", (4096, 4096), "q4_k_m", layers, True) for i in range(layers)]
    assert [i for i, t in enumerate(chosen) if t == Q.Q6_K] == [0, 3, 6, 7]
    assert tensor_type("token_embd.weight", (300, 256), "q4_k_m", layers, False) == Q.Q6_K  # tied: it is the output
    assert tensor_type("blk.0.attn_qkv.weight", (768, 256), "q4_k_m", layers, True) == Q.Q5_K
    assert tensor_type("blk.1.attn_q.weight", (96, 96), "q4_k_m", layers, True) == Q.Q5_0
    assert tensor_type("blk.1.attn_q.weight", (40, 40), "q8_0", layers, True) == Q.F16
    assert tensor_type("position_embd.weight", (1024, 256), "q8_0", layers, True) == Q.F16
