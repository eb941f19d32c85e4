"""Tool calling in the finetune job, through the real engine process: a tiny llama learns the built-in
tools task (exact calls before and after a short full fine-tune), and the preview of LLaMA-Factory
ShareGPT tool data shows the call trained and the tool definitions and results not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.engine.conftest import Engine, RunPool, pooled, start_pooled
from tests.tiny_models import save_model, tiny_byte_bpe, tiny_llama

pytestmark = pytest.mark.long

STEPS = 400


@pytest.fixture(scope="module")
def tool_model(tmp_path_factory) -> Path:
    """A randomly initialised llama whose byte-level BPE was trained on the tools task as chatml renders it."""
    from engine.specs.chat import CHAT_PRESETS
    from engine.tasks.tool_use import generate

    chatml = CHAT_PRESETS["chatml"][0]
    records = generate(400, seed=1)
    first = tiny_byte_bpe(["a"], 300)
    texts = [first.apply_chat_template(r["messages"], tools=r["tools"], chat_template=chatml, tokenize=False)
             for r in records]
    tokenizer = tiny_byte_bpe(texts, 600, max_length=512)
    model = tiny_llama(tokenizer, max_positions=512, hidden_size=64, intermediate_size=128, heads=4)
    return save_model(tmp_path_factory.mktemp("tool-model") / "base", model, tokenizer)


def tools_spec(base: Path, **data) -> dict:
    return {"kind": "finetune", "name": "tools", "model": {"path": str(base)},
            "data": {"sources": ["builtin:tasks"], "task": "tools", "task_examples": 420, "eval_fraction": 0.12,
                     "chat_template": "chatml", "max_length": 320, **data},
            "method": {"name": "full"},
            "train": {"max_steps": STEPS, "batch_size": 16, "learning_rate": 5e-3, "warmup_steps": 10,
                      "eval_every": STEPS, "checkpoint_every": STEPS, "log_every": 50},
            "evaluation": {"generate_examples": 50, "max_new_tokens": 40},
            "resources": {"device": "cpu"}}


def train_job(base: Path):
    def job(engine: Engine):
        return engine, engine.run("run", str(engine.write_spec(tools_spec(base))), "--json", timeout=840)
    return job


SHAREGPT = {"conversations": [{"from": "human", "value": "Weather in Oslo?"},
                              {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
                              {"from": "observation", "value": "{\"sky\": \"snow\"}"},
                              {"from": "gpt", "value": "It snows."}],
            "tools": json.dumps([{"name": "get_weather", "description": "The weather now in a city.",
                                  "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}])}


def preview_job(base: Path):
    def job(engine: Engine):
        data = engine.workspace / "tools.jsonl"
        data.write_text("\n".join(json.dumps(SHAREGPT) for _ in range(4)) + "\n")
        spec = tools_spec(base, sources=[str(data)], eval_fraction=0)
        return engine.run("preview", str(engine.write_spec(spec)), "--json")
    return job


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, tool_model) -> RunPool:
    pool = RunPool(tmp_path_factory.mktemp("tool-runs"))
    start_pooled(request, pool, base=tool_model)
    yield pool
    pool.close()


@pytest.mark.timeout(900)  # about a minute alone; several times that beside the suite's other runs
@pooled("train", lambda f: train_job(f.base))
def test_a_short_full_fine_tune_learns_to_call_the_right_tool_with_the_right_arguments(runs):
    engine, result = runs.result("train")
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["call_accuracy_before"] <= 0.05, summary
    assert summary["call_accuracy_after"] >= 0.8, summary
    assert summary["exact_match_after"] == summary["call_accuracy_after"]  # every record expects a call
    samples = [e for e in engine.events(engine.only_run()) if e["type"] == "sample" and e["step"] == STEPS]
    assert samples and all("<tool_call>" in s["text"] for s in samples), samples


@pooled("preview", lambda f: preview_job(f.base))
def test_the_preview_trains_the_call_and_the_answer_not_the_tools_or_their_result(runs):
    result = runs.result("preview")
    assert result.returncode == 0, result.stderr[-3000:]
    example = json.loads(result.stdout)["examples"][0]
    trained = "".join(t["text"] if t["trained"] else "\0" for t in example["tokens"])
    parts = [p for p in trained.split("\0") if p]
    assert parts == ['<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call><|im_end|>',
                     "It snows.<|im_end|>"], parts
    assert '"description": "The weather now in a city."' in example["text"]
    assert '<|im_start|>tool\n{"sky": "snow"}<|im_end|>' in example["text"]
