"""The evaluate job through the real engine process: four prompt variants (zero-shot, a custom template
with a system prompt, few-shot, chain-of-thought) × two models (with and without a chat template) on
a small JSONL file, every metric, the outputs and events; a template naming a field the rows lack;
and `studio-engine preview` of the rendered prompts. The three engine processes start together (each
is mostly interpreter and torch start-up); checks that need no process are in
test_playground_templates.py and test_playground_metrics.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, one_thread
from tests.tiny_models import chat_and_plain_models

ROWS = [{"id": "r1", "input": "cat red sun", "expected": "sun red cat", "pattern": "(?s).*"},
        {"id": "r2", "input": "moon tree", "expected": "tree moon"},
        {"input": "apple cat", "expected": "cat apple"},
        {"id": 4, "input": "red sun moon", "expected": "moon sun red"}]
METRICS = ["exact_match", "contains", "regex_match", "bleu", "rouge_l"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    """A tiny llama (~40k parameters) saved twice: with a byte-level tokenizer that has a chatml
    template, and with the same tokenizer without one; and the evaluation data."""
    root = tmp_path_factory.mktemp("evaluate-models")
    texts = [f"Reverse the words. cat red sun {i} apple tree moon Input: Output: Answer:" for i in range(200)]
    chat, plain, tokenizer = chat_and_plain_models(root, texts)
    data = root / "data.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in ROWS), encoding="utf-8")
    return SimpleNamespace(chat=chat, plain=plain, data=data, tokenizer=tokenizer)


def evaluate_spec(tiny: SimpleNamespace, **changes) -> dict:
    spec = {"kind": "evaluate", "name": "eval",
            "models": [{"path": str(tiny.chat), "label": "chat"}, {"path": str(tiny.plain)}],
            "data": {"path": str(tiny.data), "regex_field": "pattern"},
            "variants": [{"name": "plain"},
                         {"name": "instructed", "system": "Reverse the words.", "template": "Reverse: {{ input }}"},
                         {"name": "shots", "preset": "few-shot", "examples": {"k": 2}},
                         {"name": "steps", "preset": "chain-of-thought", "regex": r"^\w+( \w+)*$"}],
            "sampling": {"max_new_tokens": 4, "batch_size": 2},
            "scoring": {"metrics": METRICS}, "seed": 3, "resources": {"device": "cpu"}}
    return spec | changes


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory) -> dict:
    """name -> (engine, process): a good run, a run whose template names a missing field, a preview."""
    started = {}
    bad = evaluate_spec(tiny, variants=[{"name": "topical", "template": "{{ input }} ({{ topic }})"}])
    for name, spec, verb in (("good", evaluate_spec(tiny), ["run", "--json"]), ("bad", bad, ["run", "--json"]),
                             ("preview", evaluate_spec(tiny), ["preview"])):
        workspace = tmp_path_factory.mktemp(f"evaluate-{name}")
        engine = one_thread(Engine(workspace))
        engine.env["HF_HUB_OFFLINE"] = "1"
        path = engine.write_spec(spec)
        started[name] = (engine, engine.popen(verb[0], str(path), *verb[1:]))
    yield started
    for _, process in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def finished(runs: dict, name: str) -> tuple[int, str, str]:
    process = runs[name][1]
    stdout, stderr = process.communicate(timeout=240)
    return process.returncode, stdout, stderr


def test_variants_times_models_are_answered_scored_and_tabled(runs, tiny):
    from engine.playground.metrics import aggregate, score, stderrs
    from engine.playground.templates import extract_answer

    code, stdout, stderr = finished(runs, "good")
    assert code == 0, (stdout[-2000:], stderr[-3000:])
    events = runs["good"][0].stdout_events(stdout)
    assert events[-1]["status"] == "completed", events[-1]
    out = Path(events[-1]["summary"]["output"])

    lines = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 4 * 4 * 2
    assert [(line["model"], line["variant"]) for line in lines[::4]] == [
        (model, variant) for model in ("chat", "plain") for variant in ("plain", "instructed", "shots", "steps")]
    assert [line["id"] for line in lines[:4]] == ["r1", "r2", "data.jsonl:3", "4"]
    presets = {"plain": "zero-shot", "instructed": "zero-shot", "shots": "few-shot", "steps": "chain-of-thought"}
    for line in lines:
        row = ROWS[[line["id"] for line in lines[:4]].index(line["id"])]
        assert line["expected"] == row["expected"] and line["seed"] is None  # greedy
        assert line["final_answer"] == extract_answer(line["answer"], presets[line["variant"]])
        pattern = row.get("pattern") or (r"^\w+( \w+)*$" if line["variant"] == "steps" else None)
        assert line["scores"] == score(line["final_answer"], row["expected"], METRICS, pattern)
        assert 1 <= line["tokens"] <= 4 and line["finish"] in ("stop", "length") and line["latency_s"] > 0
        assert line["prompt_tokens"] == len(tiny.tokenizer(line["model_input"], add_special_tokens=False)["input_ids"])
        if line["model"] == "chat":
            assert line["model_input"].endswith(
                f"<|im_start|>user\n{line['prompt']}<|im_end|>\n<|im_start|>assistant\n")
        else:
            assert "<|im_start|>" not in line["model_input"] and line["model_input"].endswith(line["prompt"])
    by = {(line["model"], line["variant"], line["id"]): line for line in lines}
    assert by["plain", "instructed", "r1"]["model_input"].endswith("Reverse the words.\n\nReverse: cat red sun")
    assert "<|im_start|>system\nReverse the words.<|im_end|>" in by["chat", "instructed", "r1"]["model_input"]
    shots = by["chat", "shots", "r1"]["prompt"]
    assert shots.count("Input: ") == 3 and shots.endswith("Input: cat red sun\nOutput:")
    assert "Output: sun red cat" not in shots  # the row's own answer is never an example
    assert by["plain", "shots", "r1"]["prompt"] == shots  # the same examples for every model
    assert by["chat", "steps", "r2"]["prompt"].endswith("Let's think step by step. When you are done, write the "
                                                        "final answer on its own line, starting with \"Answer:\".")
    assert by["chat", "plain", "r1"]["scores"]["regex_match"] is True  # the row's own pattern
    assert by["chat", "plain", "r2"]["scores"]["regex_match"] is None  # no pattern for it

    with open(out / "metrics.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["variant", "model", "examples", *METRICS, "latency_s", "tokens", "prompt_tokens",
                              "stopped"]
    assert len(table) == 8 and {(r["model"], r["variant"]) for r in table} == {k[:2] for k in by}
    record = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    metric_events = [e for e in events if e["type"] == "metric"]
    assert len(metric_events) == 8 and all(e["split"] == "eval" and e["step"] == 0 for e in metric_events)
    for row, event, csv_row in zip(record["table"], metric_events, table):
        cell = [line for line in lines if (line["model"], line["variant"]) == (row["model"], row["variant"])]
        expected = aggregate([c["scores"] for c in cell], [c["final_answer"] for c in cell],
                             [c["expected"] for c in cell], METRICS)
        assert {k: row[k] for k in METRICS} == expected and row["examples"] == 4
        assert row["latency_s"] == pytest.approx(sum(c["latency_s"] for c in cell) / 4, abs=1e-4)
        assert row["tokens"] == pytest.approx(sum(c["tokens"] for c in cell) / 4, abs=0.01)
        assert (event["variant"], event["model"]) == (row["variant"], row["model"])
        assert event["values"] == {k: v for k, v in row.items() if k not in ("variant", "model", "examples", "stderr")}
        assert event["stderr"] == row["stderr"] == stderrs([c["scores"] for c in cell], METRICS)
        assert row["stderr"]["bleu"] is None and row["stderr"]["rouge_l"] is not None
        assert csv_row["variant"] == row["variant"] and float(csv_row["rouge_l"]) == row["rouge_l"]
    regex_cells = {(r["model"], r["variant"]): r["regex_match"] for r in record["table"]}
    assert regex_cells["chat", "plain"] == 1.0  # only r1 has a pattern, and it matches anything

    progress = [e for e in events if e["type"] == "progress" and e["stage"] == "evaluate"]
    assert progress[-1]["done"] == progress[-1]["total"] == 32 and progress[-1]["unit"] == "answers"
    assert progress[-1]["eta_s"] == 0 and (progress[-1]["variant"], progress[-1]["model"]) == ("steps", "plain")
    assert {(e["model"], e["variant"]) for e in progress} == {k[:2] for k in by}  # one at the end of each cell
    first_cell = next(e for e in events if e["type"] == "metric")
    assert first_cell["seq"] < next(e["seq"] for e in progress if e["variant"] == "steps")  # sent as each cell ends
    assert len([e for e in events if e["type"] == "sample"]) == 8
    artifacts = {e["kind"]: e for e in events if e["type"] == "artifact"}
    assert artifacts["dataset"]["path"] == str(out / "results.jsonl") and artifacts["dataset"]["meta"]["lines"] == 32
    assert artifacts["report"]["meta"]["table"] == record["table"]
    assert len((out / "results.csv").read_text(encoding="utf-8").splitlines()) >= 33
    summary = events[-1]["summary"]
    assert summary["examples"] == 4 and summary["answers"] == 32 and summary["models"] == ["chat", "plain"]
    assert summary["variants"] == ["plain", "instructed", "shots", "steps"]
    assert summary["best"]["metric"] == "exact_match"
    assert summary["best"]["value"] == max(row["exact_match"] for row in record["table"])


def test_a_template_naming_a_missing_field_fails_before_any_model_loads(runs, tiny):
    code, stdout, stderr = finished(runs, "bad")
    assert code == 1, (stdout[-2000:], stderr[-2000:])
    events = [json.loads(line) for line in stdout.splitlines()]
    error = events[-1]["error"]
    assert error["type"] == "template_error"
    assert error["message"].startswith(f"{tiny.data}, line 1: the template of variant 'topical' (variants[0].template) "
                                       f"uses the variable 'topic'")
    assert "'input', 'expected', 'pattern'" in error["message"] and "every row" in error["hint"]
    assert not any(e["type"] == "log" and e["message"].startswith("Loading") for e in events)


def test_preview_prints_each_variants_prompt_as_each_model_reads_it(runs):
    code, stdout, stderr = finished(runs, "preview")
    assert code == 0, (stdout[-2000:], stderr[-2000:])
    assert stdout.startswith("4 examples in the data; the prompts of the first 1:")
    assert "== r1 (" in stdout and "== r2" not in stdout
    for name, preset in (("plain", "zero-shot"), ("instructed", "zero-shot"), ("shots", "few-shot"),
                         ("steps", "chain-of-thought")):
        assert f"-- variant {name} ({preset})" in stdout
    assert "chat reads (chat template, " in stdout and "plain reads (no chat template, " in stdout
    assert "<|im_start|>user\n      cat red sun<|im_end|>" in stdout
    assert "   system:\n      Reverse the words." in stdout
