"""The evaluate job's benchmark backend (lm-evaluation-harness) through the real engine process: two
local tasks the test writes (a multiple-choice one and a generated-answer one, each a YAML beside its
data file) run on two models beside the prompt-variant backend, on the same loaded models; a registry
task offline fails with a message that says so before any model loads; bad task files are named."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, one_thread
from tests.tiny_models import chat_and_plain_models

QUESTIONS = [{"id": f"q{i}", "question": f"Is {i} even?", "choices": ["yes", "no"], "label": i % 2,
              "answer": "yes" if i % 2 == 0 else "no"} for i in range(6)]
CHOICE_TASK = """task: even_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: data/even.jsonl
test_split: test
output_type: multiple_choice
doc_to_text: "{{question}}"
doc_to_choice: "{{choices}}"
doc_to_target: label
metric_list:
  - metric: acc
"""
ANSWER_TASK = """task: even_answer
dataset_path: json
dataset_kwargs:
  data_files:
    test: data/even.jsonl
test_split: test
output_type: generate_until
doc_to_text: "{{question}} Answer:"
doc_to_target: "{{answer}}"
generation_kwargs:
  until: ["\\n"]
  max_gen_toks: 4
  do_sample: false
metric_list:
  - metric: exact_match
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    """A tiny llama saved with a chatml tokenizer and with the same tokenizer without a template; a
    folder of two local tasks (the YAMLs name their data file relative to themselves)."""
    root = tmp_path_factory.mktemp("harness-models")
    chat, plain, _ = chat_and_plain_models(root, [f"Is {i} even? yes no Answer: {i} apple tree" for i in range(200)])
    tasks = root / "tasks"
    (tasks / "data").mkdir(parents=True)
    (tasks / "data" / "even.jsonl").write_text("".join(json.dumps(q) + "\n" for q in QUESTIONS), encoding="utf-8")
    (tasks / "choice.yaml").write_text(CHOICE_TASK, encoding="utf-8")
    (tasks / "answer.yaml").write_text(ANSWER_TASK, encoding="utf-8")
    (tasks / "lost.yaml").write_text(CHOICE_TASK.replace("data/even.jsonl", "data/gone.jsonl"), encoding="utf-8")
    return SimpleNamespace(chat=chat, plain=plain, tasks=tasks)


def harness_spec(tiny: SimpleNamespace, tasks: list[str], **changes) -> dict:
    """Both backends: the answer task's prompt as a variant on the same data, and the harness tasks."""
    return {"kind": "evaluate", "name": "bench",
            "models": [{"path": str(tiny.chat), "label": "chat"}, {"path": str(tiny.plain), "label": "plain"}],
            "data": {"path": str(tiny.tasks / "data" / "even.jsonl"), "input_field": "question",
                     "expected_field": "answer"},
            "variants": [{"name": "asked", "template": "{{ question }} Answer:"}],
            "sampling": {"max_new_tokens": 4}, "scoring": {"metrics": ["exact_match"]},
            "harness": {"tasks": tasks}, "seed": 5, "resources": {"device": "cpu"}} | changes


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory) -> dict:
    """name -> (workspace, process): the local tasks, a registry task offline, a missing data file."""
    started = {}
    for name, tasks in (("local", ["choice.yaml", "answer.yaml"]), ("offline", ["choice.yaml", "arc_easy"]),
                        ("lost", ["lost.yaml"])):
        workspace = tmp_path_factory.mktemp(f"harness-{name}")
        engine = one_thread(Engine(workspace))
        # offline, and with a hub cache of its own: nothing cached elsewhere on the machine can answer
        engine.env.update(HF_HUB_OFFLINE="1", HF_HOME=str(workspace / "hf"))
        spec = harness_spec(tiny, [str(tiny.tasks / task) if task.endswith(".yaml") else task for task in tasks])
        started[name] = (engine, engine.popen("run", str(engine.write_spec(spec)), "--json"))
    yield started
    for _, process in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


def finished(runs: dict, name: str) -> tuple[int, list[dict], str]:
    engine, process = runs[name]
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, engine.stdout_events(stdout), stderr


def test_local_tasks_score_each_model_with_standard_errors_beside_the_prompt_variants(runs, tiny):
    code, events, stderr = finished(runs, "local")
    assert code == 0 and events[-1]["status"] == "completed", (events[-1:], stderr[-3000:])
    out = Path(events[-1]["summary"]["output"])
    record = json.loads((out / "harness.json").read_text(encoding="utf-8"))
    assert [(t["name"], Path(t["local"]).name) for t in record["tasks"]] == [("even_choice", "choice.yaml"),
                                                                           ("even_answer", "answer.yaml")]
    samples = [json.loads(line) for line in (out / "harness_samples.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(samples) == 2 * 2 * len(QUESTIONS)

    scores = {(row["model"], row["task"]): row for row in record["scores"]}
    assert set(scores) == {(m, t) for m in ("chat", "plain") for t in ("even_choice", "even_answer")}
    for (model, task), row in scores.items():
        mine = [s for s in samples if (s["model"], s["task"]) == (model, task)]
        metric = "acc" if task == "even_choice" else "exact_match"
        per_example = [s["scores"][metric] for s in mine]
        mean = sum(per_example) / len(per_example)
        assert row["values"] == {metric: pytest.approx(mean)} and row["examples"] == len(QUESTIONS)
        spread = math.sqrt(sum((x - mean) ** 2 for x in per_example) / (len(per_example) - 1) / len(per_example))
        assert row["stderr"] == {metric: pytest.approx(spread, abs=1e-6)}
        if task == "even_choice":  # the choice the model found likeliest, scored against the label
            assert [s["scores"]["acc"] for s in mine] == [float(s["response"] == s["target"]) for s in mine]
            assert {s["target"] for s in mine} == {0, 1}
    # The chat template the job gives a model is the one its benchmark prompts get.
    chat_prompts = [s["prompt"] for s in samples if s["model"] == "chat"]
    assert all(p.startswith("<|im_start|>user\n") and p.endswith("<|im_start|>assistant\n") for p in chat_prompts)
    assert not any("<|im_start|>" in s["prompt"] for s in samples if s["model"] == "plain")

    # The harness ran on the very models the prompt variant asked: the same prompt, greedy, gives the
    # same answer (up to the harness's stop at a new line).
    results = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    ours = {(r["model"], r["expected"], r["prompt"]): r["answer"] for r in results}
    for sample in (s for s in samples if s["task"] == "even_answer"):
        question = QUESTIONS[sample["doc_id"]]
        answer = ours[sample["model"], question["answer"], f"{question['question']} Answer:"]
        assert sample["response"].strip() == answer.split("\n")[0].strip(), sample

    metrics = [e for e in events if e["type"] == "metric"]
    benchmark = [e for e in metrics if "task" in e]
    assert [(e["model"], e["task"]) for e in benchmark] == [(m, t) for m in ("chat", "plain")
                                                            for t in ("even_choice", "even_answer")]
    for event in benchmark:
        row = scores[event["model"], event["task"]]
        assert (event["split"], event["step"]) == ("eval", 0)
        assert event["values"] == row["values"] and event["stderr"] == row["stderr"] and event["examples"] == 6
    cells = [e for e in metrics if "variant" in e]
    assert [(e["model"], e["variant"]) for e in cells] == [("chat", "asked"), ("plain", "asked")]
    for cell in cells:
        share = cell["values"]["exact_match"]
        assert cell["stderr"]["exact_match"] == pytest.approx(math.sqrt(share * (1 - share) * 6 / 5 / 6), abs=1e-4)
    progress = [e for e in events if e["type"] == "progress" and e["stage"] == "benchmark"]
    assert progress[-1]["done"] == progress[-1]["total"] == 4 and progress[-1]["unit"] == "tasks"
    artifact = next(e for e in events if e["type"] == "artifact" and e["path"].endswith("harness.json"))
    assert artifact["meta"]["scores"] == record["scores"]
    csv_lines = (out / "harness.csv").read_text(encoding="utf-8").splitlines()
    assert csv_lines[0] == "model,task,metric,value,stderr,examples" and len(csv_lines) == 5
    assert events[-1]["summary"]["benchmark"]["plain"]["even_choice"] == scores["plain", "even_choice"]["values"]


def test_a_registry_task_offline_fails_with_what_to_do_before_any_model_loads(runs):
    code, events, stderr = finished(runs, "offline")
    assert code == 1, (events[-1:], stderr[-3000:])
    error = events[-1]["error"]
    assert error["type"] == "data_error"
    assert error["message"].startswith("harness.tasks[1]: the task 'arc_easy' reads its data from the Hugging Face "
                                       "hub (allenai/ai2_arc), and this engine is offline (HF_HUB_OFFLINE=1)")
    assert "HF_HUB_OFFLINE unset" in error["hint"] and "local .yaml" in error["hint"]
    assert not any(e["type"] == "log" and e["message"].startswith("Loading") for e in events)


def test_a_task_file_whose_data_file_is_missing_is_named(runs, tiny):
    code, events, stderr = finished(runs, "lost")
    assert code == 1, (events[-1:], stderr[-3000:])
    error = events[-1]["error"]
    assert error["message"] == (f"harness.tasks[0]: the data file data/gone.jsonl of {tiny.tasks / 'lost.yaml'} "
                                f"(dataset_kwargs.data_files) does not exist (looked for "
                                f"{tiny.tasks / 'data' / 'gone.jsonl'}).")
    assert "relative paths start from the YAML's folder" in error["hint"]
