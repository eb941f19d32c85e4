"""The evaluate job on rows that offer tools through the real engine process: the tools are written by
the chat template into what the model reads, rows expecting a call are scored by call (the calls made,
compared as JSON values) with a call_accuracy column over those rows alone, and a row expecting text
beside them keeps its text scores. The by-call scoring of one answer is checked without a process."""

from __future__ import annotations

import json

import pytest

from engine.finetune.tool_calls import calls_in, calls_match
from engine.jobs.evaluate import call_scores
from tests.engine.conftest import Engine, one_thread
from tests.tiny_models import chat_and_plain_models

TOOL = {"name": "add", "parameters": {"a": "number", "b": "number"}}
ROWS = [{"id": "call", "input": "What is 2 plus 3?", "tools": [TOOL], "expected": {"name": "add", "arguments": {"a": 2, "b": 3}}},
        {"id": "string", "input": "Add 1 and 1.", "tools": json.dumps([TOOL]),
         "expected": json.dumps({"name": "add", "arguments": {"a": 1, "b": 1}})},
        {"id": "text", "input": "cat red", "expected": "red cat"}]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("evaluate-tools")
    # The byte-level tokenizer learns the tools preamble's words, so that a prompt fits the tiny model.
    preamble = ("You can call these tools. For each call, answer with <tool_call>{\"name\": ..., \"arguments\": ...}"
                "</tool_call>.\n<tools>\n" + json.dumps({"type": "function", "function": TOOL}) + "\n</tools>")
    chat, _, _ = chat_and_plain_models(root, [f"{preamble} What is 2 plus 3? Add 1 and 1. cat red {i}"
                                              for i in range(200)])
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    engine = one_thread(Engine(tmp_path_factory.mktemp("evaluate-tools-workspace")))
    engine.env["HF_HUB_OFFLINE"] = "1"
    spec = {"kind": "evaluate", "name": "tools", "models": [{"path": str(chat), "label": "chat"}],
            "data": {"path": str(data)}, "sampling": {"max_new_tokens": 4},
            "scoring": {"metrics": ["exact_match", "contains"]}, "resources": {"device": "cpu"}}
    result = engine.run("run", str(engine.write_spec(spec)), "--json", timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    out = next((engine.workspace / "runs").iterdir()) / "output"
    return {"lines": [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()],
            "metrics": json.loads((out / "metrics.json").read_text())}


def test_rows_with_tools_are_read_by_the_model_with_their_tools_and_scored_by_call(run):
    lines = {line["id"]: line for line in run["lines"]}
    for name in ("call", "string"):
        line = lines[name]
        assert '"name": "add"' in line["model_input"] and "<tools>" in line["model_input"]
        assert line["expected_calls"] == [{"name": "add", "arguments": dict(zip("ab", (2, 3) if name == "call" else (1, 1)))}]
        assert line["expected"] == json.dumps(line["expected_calls"][0])
        made = calls_match(line["answer"], line["expected_calls"])
        assert line["scores"]["call_accuracy"] is made and line["scores"]["exact_match"] is made
        assert line["final_answer"] == "\n".join(json.dumps(c) for c in calls_in(line["answer"]))
    text = lines["text"]
    assert "<tools>" not in text["model_input"] and text["expected_calls"] is None
    assert text["scores"]["call_accuracy"] is None and text["expected"] == "red cat"
    row = run["metrics"]["table"][0]
    assert "call_accuracy" in run["metrics"]["columns"]
    assert row["call_accuracy"] == sum(lines[n]["scores"]["call_accuracy"] for n in ("call", "string")) / 2


def test_a_call_is_exact_whatever_its_spacing_key_order_or_wrapping():
    expected = [{"name": "add", "arguments": {"a": 2, "b": 3}}]
    answer = '<tool_call>{"arguments":{"b": 3,"a":2},  "name":"add"}</tool_call>'
    assert call_scores(answer, expected, ["exact_match"]) == {"call_accuracy": True, "exact_match": True}
    assert call_scores('{"name": "add", "arguments": {"a": 2, "b": 4}}', expected, ["contains"]) == {
        "call_accuracy": False}
    assert call_scores("5", None, ["exact_match"]) == {"call_accuracy": None}
