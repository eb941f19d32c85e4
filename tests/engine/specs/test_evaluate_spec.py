"""The evaluate spec's two backends: what may be given with what, and what a resolved spec keeps."""

from __future__ import annotations

import pytest
import yaml

from engine.specs import SpecError, parse_spec, spec_to_yaml

MODEL = [{"path": "runs/x"}]


def problems(data: dict) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_spec(data)
    return [str(p) for p in caught.value.problems]


def test_benchmark_tasks_alone_or_beside_prompt_variants():
    alone = parse_spec({"kind": "evaluate", "models": MODEL, "harness": {"tasks": ["arc_easy", "mine.yaml"]}})
    assert alone.data is None and alone.harness.tasks == ["arc_easy", "mine.yaml"]
    assert alone.harness.bootstrap_iters == 1000 and alone.harness.num_fewshot is None
    both = parse_spec({"kind": "evaluate", "models": MODEL, "data": {"path": "d.jsonl"},
                       "harness": {"tasks": ["arc_easy"], "limit": 50}})
    assert both.data.path == "d.jsonl" and both.harness.limit == 50


def test_a_resolved_spec_parses_again():
    for data in ({"kind": "evaluate", "models": MODEL, "harness": {"tasks": ["t.yaml"]}},
                 {"kind": "evaluate", "models": MODEL, "data": {"path": "d.jsonl"},
                  "variants": [{"name": "a"}, {"name": "b", "preset": "few-shot", "examples": {"k": 2}}]}):
        spec = parse_spec(data)
        assert parse_spec(yaml.safe_load(spec_to_yaml(spec))) == spec


def test_nothing_to_evaluate_and_settings_without_their_backend_are_refused():
    assert problems({"kind": "evaluate", "models": MODEL}) == [
        "(top level): nothing to evaluate: give data (examples for prompt variants), harness.tasks (benchmark "
        "tasks), or both"]
    assert problems({"kind": "evaluate", "models": MODEL, "harness": {"tasks": ["t.yaml"]},
                     "variants": [{"name": "asked"}]}) == [
        "(top level): variants is only used with data (the examples the prompt variants ask); add data or remove "
        "variants"]
    assert problems({"kind": "evaluate", "models": MODEL, "harness": {"tasks": ["t.yaml"]},
                     "scoring": {"metrics": ["bleu"]}})[0].startswith("(top level): scoring is only used with data")


def test_task_lists_name_each_task_once_and_none_empty():
    assert problems({"kind": "evaluate", "models": MODEL, "harness": {"tasks": ["arc_easy", "arc_easy"]}}) == [
        "harness.tasks: the task 'arc_easy' is listed twice; list each task once"]
    assert problems({"kind": "evaluate", "models": MODEL, "harness": {"tasks": [" "]}})[0].startswith(
        "harness.tasks: a task is empty")
    assert problems({"kind": "evaluate", "models": MODEL, "harness": {"tasks": []}})[0].startswith("harness.tasks:")


def test_local_task_files_are_told_from_registry_names():
    from engine.specs.evaluate import is_local_task

    assert is_local_task("tasks/capitals.yaml") and is_local_task("capitals.yml") and is_local_task("./x/y")
    assert not is_local_task("arc_easy") and not is_local_task("mmlu_college_biology")
