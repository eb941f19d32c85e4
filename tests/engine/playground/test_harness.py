"""Local task files of the benchmark backend read as the harness reads them, with our paths; bad ones
named. (The runs themselves: tests/engine/jobs/test_evaluate_harness.py.)"""

from __future__ import annotations

import pytest

from engine.errors import DataError
from engine.playground.harness import local_task_config, sample_lines, scores_of

TASK = """task: capitals
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{country}}}}"
doc_to_target: "{{{{capital}}}}"
"""


def test_relative_data_files_are_taken_from_the_yaml_folder(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "capitals.jsonl").write_text('{"country": "France", "capital": "Paris"}\n')
    (tmp_path / "capitals.yaml").write_text(TASK.format(data="data/capitals.jsonl"))
    config = local_task_config(str(tmp_path / "capitals.yaml"), "harness.tasks[0]")
    assert config["task"] == "capitals"
    assert config["dataset_kwargs"]["data_files"] == {"test": str(tmp_path / "data" / "capitals.jsonl")}


@pytest.mark.parametrize("text, message", [
    (None, "harness.tasks[2]: the task file {yaml} does not exist."),
    ("task: [unclosed", "harness.tasks[2]: {yaml} is not a task file the harness can read"),
    ("group: mine\ntask: [a, b]\n", "harness.tasks[2]: {yaml} has a group; a local task file defines one task."),
    ("task: t\noutput_type: generate_until\n", "harness.tasks[2]: {yaml} names no dataset_path."),
    ("task: t\ndataset_path: json\n", "harness.tasks[2]: {yaml} reads `dataset_path: json` but names no file"),
    (TASK.format(data="nowhere.jsonl"), "harness.tasks[2]: the data file nowhere.jsonl of {yaml} "
                                        "(dataset_kwargs.data_files) does not exist"),
])
def test_bad_task_files_are_named_with_what_to_do(tmp_path, text, message):
    path = tmp_path / "task.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(DataError) as caught:
        local_task_config(str(path), "harness.tasks[2]")
    assert caught.value.message.startswith(message.format(yaml=path)), caught.value.message
    assert caught.value.hint


def test_results_become_scores_per_task_and_filter_and_samples_name_the_likeliest_choice():
    result = {"results": {"gsm": {"alias": "gsm", "exact_match,strict-match": 0.25,
                                  "exact_match_stderr,strict-match": 0.1, "exact_match,none": 0.5,
                                  "exact_match_stderr,none": "N/A"}},
              "n-samples": {"gsm": {"original": 10, "effective": 4}},
              "higher_is_better": {"gsm": {"exact_match": True}},
              "samples": {"gsm": [{"doc_id": 3, "target": 1, "arguments": [("Q?", " a"), ("Q?", " b")],
                                   "filtered_resps": [(-2.0, False), (-1.0, True)], "metrics": ["acc"],
                                   "acc": 1.0}]}}
    [score] = scores_of(result)
    assert score.task == "gsm" and score.examples == 4
    assert score.values == {"exact_match (strict-match)": 0.25, "exact_match": 0.5}
    assert score.stderr == {"exact_match (strict-match)": 0.1, "exact_match": None}
    assert sample_lines(result) == [{"task": "gsm", "doc_id": 3, "prompt": "Q?", "target": 1, "response": 1,
                                     "scores": {"acc": 1.0}}]


def test_the_shipped_example_task_reads_its_data_file_beside_it():
    from tests.engine.conftest import ROOT

    folder = ROOT / "resources" / "specs" / "harness-tasks"
    config = local_task_config(str(folder / "reverse-words.yaml"), "harness.tasks[0]")
    assert config["task"] == "reverse_words" and config["output_type"] == "generate_until"
    assert config["dataset_kwargs"]["data_files"] == {"test": str(folder / "reverse-words.jsonl")}
