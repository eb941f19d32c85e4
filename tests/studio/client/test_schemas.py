"""The studio follows the schema of the engine it talks to, asked of the real engine process: an engine
of this version and one whose specs differ (a field and a kind more). Forms are rebuilt for it, its
field rules apply at once, its checks across fields come from its own `validate`, and the version
check says what differs."""

from __future__ import annotations

import sys

import pytest

from studio.client.engine import LocalEngine
from studio.client.remote_engine import schema_warning
from studio.client.run_tracker import RunTracker, Tracker
from studio.client.schemas import EngineSchemas
from studio.models.engine_schema import EngineSchema, own_schema
from studio.pages.rlhf.wizard import SchemaWizard, wizard_kinds
from tests.studio.engine_fixtures import next_engine_entry


@pytest.fixture
def next_engine(tmp_path, workspace):
    return LocalEngine(workspace=workspace, entry=next_engine_entry(tmp_path))


def asked(qtbot, schemas: EngineSchemas, engine: str = "local") -> EngineSchema:
    with qtbot.waitSignal(schemas.changed, timeout=60_000) as changed:
        schemas.refresh(engine)
    assert changed.args == [engine]
    return schemas.schema(engine)


def test_the_tracker_is_what_pages_are_typed_against(store, workspace):
    assert isinstance(RunTracker(store, LocalEngine(workspace=workspace)), Tracker)


def test_an_engine_of_this_version_answers_this_studios_schema(qtbot, store, workspace):
    schemas = EngineSchemas({"local": LocalEngine(python=sys.executable, workspace=workspace)}, store)
    schemas.refresh("local")
    qtbot.waitUntil(lambda: schemas.answered("local"), timeout=60_000)
    assert schemas.schema("local").hash == own_schema().hash and schemas.differences("local") == []
    assert store.cached_schema("local", own_schema().hash) is not None


def test_another_engines_schema_is_asked_once_and_kept_per_engine_and_hash(qtbot, store, next_engine):
    schemas = EngineSchemas({"local": next_engine}, store)
    assert schemas.schema("local").hash == own_schema().hash  # never asked: this studio's own
    theirs = asked(qtbot, schemas)
    assert "distill" in theirs.kinds and "margin" in theirs.kind_schema("reward")["properties"]
    assert schemas.differences("local") == ["Kinds only the engine 'local' runs: distill.",
                                            "reward: added margin (number, default 0.5)."]
    # A new session starts from what the engine said last, and its hash needs no question.
    again = EngineSchemas({}, store)
    assert again.schema("local").hash == theirs.hash
    again.refresh("local", theirs.hash)
    assert again.answered("local")


def test_the_wizard_builds_its_forms_from_the_engines_schema_and_the_engine_checks_across_fields(
        qtbot, store, workspace, next_engine):
    tracker = RunTracker(store, next_engine)
    wizard = SchemaWizard("reward", store, tracker, workspace)
    qtbot.addWidget(wizard)
    assert "margin" not in wizard.forms["Training"].fields  # this studio's schema until the engine answers
    qtbot.waitUntil(lambda: "margin" in wizard.forms["Training"].fields, timeout=60_000)
    assert wizard_kinds(tracker) == ["reward", "dpo", "kto", "grpo", "ppo", "distill"]
    distill = SchemaWizard("distill", store, tracker, workspace)  # a kind this studio has no code for
    qtbot.addWidget(distill)
    assert distill.TITLE == "Distil a model" and distill.STEPS == ("Teacher", "Where to run", "Review")
    assert "teacher" in distill.forms["Teacher"].fields and distill.spec_values()["teacher"] == ""
    assert [str(p) for p in distill.validate()] == ["teacher: String should have at least 1 character"]
    wizard.set_spec_data({"model": {"path": "sft"}, "data": {"sources": ["queue:q"]}})
    assert wizard.validate() == []
    values = wizard.spec_values()  # the engine's field rules, as a spec file could break them
    assert [str(p) for p in wizard.spec_problems({**values, "margin": -1.0})] == [
        "margin: Input should be greater than or equal to 0.0"]

    wizard.set_spec_data({"margin": 0.5, "train": {"max_steps": 5}})
    assert wizard.validate() == []  # no check of this studio knows the engine's rule across fields
    assert wizard.launch() is not None
    qtbot.waitUntil(lambda: bool(wizard.problems), timeout=60_000)  # the engine's `validate` refused it
    assert [p.field for p in wizard.problems] == ["train.max_steps"]
    assert "too few for a margin" in wizard.forms["Training"].fields["train.max_steps"].error.text()
    assert store.runs() == []  # nothing was started
    wizard.set_spec_data({"train": {"max_steps": 10}})
    assert wizard.validate() == []
    assert wizard.spec_values()["margin"] == 0.5


def test_the_version_check_says_what_differs(qtbot, store, next_engine):
    schemas = EngineSchemas({"local": next_engine}, store)
    theirs = asked(qtbot, schemas)
    said = schema_warning({"schema_hash": theirs.hash}, theirs, "gpu-lab")
    assert said.startswith(f"The engine on gpu-lab accepts other job specs than this studio (schema {theirs.hash[:12]}")
    assert "• Kinds only the engine on gpu-lab runs: distill." in said
    assert "• reward: added margin (number, default 0.5)." in said
    assert "does not report a schema hash" in schema_warning({}, theirs, "old-box")
