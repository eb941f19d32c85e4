import json

import pytest
import yaml

from engine.specs import SpecError, json_schema, load_spec, parse_spec
from engine.specs.pretrain import PretrainSpec
from tests.engine.conftest import ROOT

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

    from engine.schema_docs import render
    docs = ROOT / "docs" / "specs.md"
    assert docs.read_text(encoding="utf-8") == render(), "run: python -m engine.schema_docs > docs/specs.md"


BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9) if previous else ', '.join(['lol'] * 9)}]\n"
    for previous, name in zip([None, *"abcdefgh"], "abcdefghi"))


def _limited_memory():
    """In the child, before it runs: 1 GiB of address space at most (an expansion would hit MemoryError)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def test_hostile_spec_files_get_a_message_not_a_traceback(engine):
    """`validate` and `run` on what is not a spec, or a spec that would expand without bound, through the
    real engine process with 1 GiB of memory: exit 2 and one located sentence, nothing started."""
    import random
    import subprocess

    assert len(BILLION_LAUGHS.encode()) < 400
    files = {
        "binary.yaml": (bytes(random.Random(0).randrange(256) for _ in range(400)), "not UTF-8"),
        "latin1.yaml": ("kind: pretrain\nname: caf\xe9\n".encode("latin-1"), "line 2, (top level): is not UTF-8"),
        "deep.yaml": (("a: " + "[" * 50000 + "]" * 50000 + "\n").encode(), "nested more than"),
        "deep-block.yaml": ("".join("  " * i + f"k{i}:\n" for i in range(300)).encode(), "nested more than"),
        "laughs.yaml": (BILLION_LAUGHS.encode(), "expands to more than"),
        "recursive.yaml": (b"a: &a [*a]\n", "inside itself"),
        "twice.yaml": (EXAMPLE.replace("seed: 0", "seed: 0\nkind: finetune").encode(), "kind: given twice (first on line 1)"),
        "nested-twice.yaml": (EXAMPLE.replace("  max_steps: 200", "  max_steps: 200\n  max_steps: 300").encode(),
                              "line 12, train.max_steps: given twice (first on line 11)"),
        "huge.yaml": (b"# " + b"x" * (2 << 20) + b"\n", "larger than"),
        "nul.yaml": (b"kind: pretrain\x00\n", "not valid YAML"),
    }
    (engine.workspace / "folder.yaml").mkdir()
    for name, (data, _) in files.items():
        (engine.workspace / name).write_bytes(data)
    expected = {**{name: said for name, (_, said) in files.items()}, "folder.yaml": "is a folder"}
    for name, said in expected.items():
        for verb in ("validate", "run"):
            result = subprocess.run(engine.command(verb, str(engine.workspace / name)), capture_output=True, text=True,
                                    timeout=120, env=engine.env, preexec_fn=_limited_memory)
            assert result.returncode == 2, (name, verb, result.stderr[-2000:])
            assert said in result.stderr and "Traceback" not in result.stderr, (name, verb, result.stderr[-2000:])
            assert len(result.stderr) < 2000
    assert not (engine.workspace / "runs").exists()


def test_yaml_anchors_within_bounds_and_merge_keys_still_work():
    from engine.specs import load_yaml

    data, _ = load_yaml("base: &b {max_steps: 3, batch_size: 2}\ntrain:\n  <<: *b\n  max_steps: 4\n")
    assert data["train"] == {"max_steps": 4, "batch_size": 2}
    with pytest.raises(SpecError, match="given twice"):
        load_yaml("train: {max_steps: 3, max_steps: 4}\n")
