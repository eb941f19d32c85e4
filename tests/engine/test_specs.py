import json

import pytest
import yaml

from engine.specs import PretrainSpec, SpecError, json_schema, load_spec, parse_spec

EXAMPLE = """\
kind: pretrain
name: docs-tiny
data:
  sources: ["builtin:python-docs"]
  text_field: text
  eval_fraction: 0.05
tokenizer:
  train: {algorithm: byte-bpe, vocab_size: 2048}
model: {architecture: llama, hidden_size: 128, layers: 4, heads: 4, context_length: 256}
train:
  max_steps: 200
  batch_size: 16
  learning_rate: 3.0e-4
  warmup_steps: 20
  schedule: cosine
  checkpoint_every: 50
  eval_every: 50
  sample_every: 50
  sample_prompts: ["Return the "]
resources: {device: auto}
seed: 0
"""


def test_the_issue_example_validates(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(EXAMPLE)
    spec = load_spec(path)
    assert isinstance(spec, PretrainSpec)
    assert spec.tokenizer.train.vocab_size == 2048 and spec.train.sample_prompts == ["Return the "]


def test_every_problem_is_reported_with_field_and_line(tmp_path):
    bad = (EXAMPLE.replace("batch_size: 16", "batch_sise: 16")
                  .replace("vocab_size: 2048", "vocab_size: 10")
                  .replace("schedule: cosine", "schedule: cosin"))
    path = tmp_path / "bad.yaml"
    path.write_text(bad)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    problems = {p.field: p for p in info.value.problems}
    assert set(problems) == {"train.batch_sise", "tokenizer.train.vocab_size", "train.schedule"}
    assert "unknown field" in problems["train.batch_sise"].message
    assert problems["train.batch_sise"].line == bad.splitlines().index("  batch_sise: 16") + 1
    assert "256" in problems["tokenizer.train.vocab_size"].message


def test_cross_field_rules_and_unknown_kind():
    with pytest.raises(SpecError, match="heads"):
        parse_spec({"kind": "pretrain", "model": {"hidden_size": 100, "heads": 3}})
    with pytest.raises(SpecError, match="mlm needs architecture: bert"):
        parse_spec({"kind": "pretrain", "model": {"objective": "mlm"}})
    with pytest.raises(SpecError) as info:
        parse_spec({"kind": "pretrian"})
    assert info.value.problems[0].field == "kind" and "pretrain" in info.value.problems[0].message
    with pytest.raises(SpecError, match="either `train` or `path`"):
        parse_spec({"kind": "pretrain", "tokenizer": {"path": "x", "train": {}}})


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("kind: pretrain\nmodel: {hidden_size: 128\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems[0].line is not None and "YAML" in info.value.problems[0].message


def test_schema_documents_every_field():
    schema = json_schema("pretrain")
    json.dumps(schema)
    defs = schema["$defs"]
    for model in defs.values():
        for name, prop in model.get("properties", {}).items():
            assert prop.get("title"), name
            assert prop.get("description"), name
    assert defs["PretrainTraining"]["properties"]["batch_size"]["minimum"] == 1
    assert defs["PretrainTraining"]["properties"]["weight_decay"].get("advanced") is True


def test_defaults_round_trip_through_yaml():
    spec = parse_spec({"kind": "pretrain"})
    again = parse_spec(yaml.safe_load(yaml.safe_dump(spec.model_dump(mode="json"))))
    assert again == spec


def test_spec_reference_in_docs_is_current():
    from pathlib import Path

    from engine.schema_docs import render
    docs = Path(__file__).resolve().parents[2] / "docs" / "specs.md"
    assert docs.read_text(encoding="utf-8") == render(), "run: python -m engine.schema_docs > docs/specs.md"
