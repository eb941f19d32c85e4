"""The job specs an engine accepts, read from its own `studio-engine schema`: per kind, defaults, wizard
layouts, field problems, the engine's problem lines, and what differs from this studio's specs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.specs import spec_models
from studio.models.engine_schema import (
    UNKNOWN_FIELD,
    EngineSchema,
    own_schema,
    problems_from_engine,
    schema_differences,
)
from tests.studio.engine_fixtures import next_engine_entry


def engine_says(entry: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*entry, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def next_schema(tmp_path_factory) -> EngineSchema:
    out = engine_says(next_engine_entry(tmp_path_factory.mktemp("engine")), "schema")
    assert out.returncode == 0, out.stderr
    return EngineSchema(out.stdout)


def test_the_hash_is_the_one_the_engine_reports():
    out = engine_says([sys.executable, "-m", "engine.cli"], "schema", "--hash")
    assert out.stdout.strip() == own_schema().hash
    printed = engine_says([sys.executable, "-m", "engine.cli"], "schema").stdout
    assert EngineSchema(printed).hash == own_schema().hash  # print's newline is not part of it


def test_kinds_come_in_the_registry_order_and_a_kind_schema_carries_its_definitions():
    schema = own_schema()
    assert list(schema.kinds) == list(spec_models())
    reward = schema.kind_schema("reward")
    assert reward["properties"]["kind"]["const"] == "reward" and "PolicyModel" in reward["$defs"]
    with pytest.raises(KeyError, match="no job kind 'distill'"):
        schema.kind_schema("distill")


@pytest.mark.parametrize("kind, required", [
    ("reward", {"model": {"path": "?"}, "data": {"sources": ["?"]}}),
    ("dpo", {"model": {"path": "?"}, "data": {"sources": ["?"]}}),
    ("grpo", {"model": {"path": "?"}}),
    ("ppo", {"policy": {"path": "?"}, "reward_model": "?"}),
])
def test_defaults_are_the_specs_own_with_the_required_fields_blank(kind, required):
    expected = spec_models()[kind](**required).model_dump(mode="json")
    for key, value in required.items():
        if isinstance(value, dict):
            for inner, given in value.items():
                expected[key][inner] = [] if isinstance(given, list) else ""
        else:
            expected[key] = ""
    assert own_schema().defaults(kind) == expected


def test_a_spec_declares_its_wizard_layout_in_its_schema():
    layout = own_schema().wizard("ppo")
    assert layout.title == "Improve the policy with PPO"
    assert [step.name for step in layout.steps] == ["Models", "Prompts", "PPO"]
    assert layout.steps[0].fields == ("name", "policy", "reward_model", "value_model") and layout.steps[0].intro
    assert own_schema().wizard("pretrain") is None


def test_field_problems_name_their_field_as_the_engine_does():
    schema = own_schema()
    data = schema.defaults("reward")
    data["model"]["path"] = "sft"
    data["data"]["sources"] = ["queue:q"]
    assert schema.problems(data) == []
    data["train"]["max_steps"] = 0
    data["train"]["batch_size"] = "eight"
    data["train"]["center_rewards"] = -1.0  # optional (number or empty): why it is not a number that fits
    data["method"]["name"] = "qlora"
    data["seeds"] = 3
    del data["data"]["sources"]
    found = {p.field: p.message for p in schema.problems(data)}
    assert found == {
        "data.sources": "Field required",
        "method.name": "Input should be 'full' or 'lora'",
        "seeds": UNKNOWN_FIELD,
        "train.batch_size": "Input should be a valid integer",
        "train.center_rewards": "Input should be greater than or equal to 0.0",
        "train.max_steps": "Input should be greater than or equal to 1",
    }
    assert [str(p) for p in schema.problems({"kind": "distill"})] == [
        "kind: this engine has no job kind 'distill'; its kinds: " + ", ".join(schema.kinds)]


def test_the_problems_an_engine_printed_are_read_at_their_fields(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("kind: reward\nmodel: {path: sft}\ndata: {sources: [q]}\ntrain: {max_steps: 5}\n")
    out = engine_says(next_engine_entry(tmp_path), "validate", str(spec))
    assert out.returncode == 2
    assert [(p.field, p.line) for p in problems_from_engine(out.stderr)] == [("train.max_steps", 4)]
    assert "too few for a margin" in problems_from_engine(out.stderr)[0].message
    assert [str(p) for p in problems_from_engine("studio-engine: no spec file at x.yaml")] == [
        "(top level): studio-engine: no spec file at x.yaml"]


def test_what_differs_is_said_kind_by_kind_and_field_by_field(next_schema):
    assert schema_differences(own_schema(), own_schema()) == []
    said = schema_differences(own_schema(), next_schema, "the engine on gpu-lab")
    assert said == ["Kinds only the engine on gpu-lab runs: distill.",
                    "reward: added margin (number, default 0.5)."]
    back = schema_differences(next_schema, own_schema(), "the old engine")
    assert back == ["Kinds the old engine does not run: distill.", "reward: removed margin."]


def test_changed_types_and_defaults_are_named():
    import json

    union = json.loads(own_schema().text)
    train = union["$defs"]["RewardTraining"]["properties"]
    train["max_steps"]["default"] = 400
    train["batch_size"] = {"type": "string", "default": "16", "title": "Batch size"}
    said = schema_differences(own_schema(), EngineSchema(json.dumps(union)))
    assert said == ['reward: train.max_steps defaults to 400 (here 200); train.batch_size is string (here integer).']


def test_an_engines_message_names_fields_as_the_forms_show_them():
    from studio.models.engine_schema import error_text, in_controls

    schema = own_schema().kind_schema("finetune")
    hint = "Set data.chat_template to auto, chatml or plain, or lower train.batch_size (see runs/x.y, a.b)."
    assert in_controls(hint, schema, {"Data": ["data"]}) == (
        "Set “Chat template” on the Data step to auto, chatml or plain, or lower “Training ▸ Batch size` (see "
        "runs/x.y, a.b).").replace("`", "”")
    error = {"type": "out_of_memory", "message": "Out of memory.", "hint": "Lower train.batch_size."}
    assert error_text(error, "finetune") == "Out of memory.\nLower “Training ▸ Batch size”."
    assert error_text(error, "no-such-kind") == "Out of memory.\nLower train.batch_size."
