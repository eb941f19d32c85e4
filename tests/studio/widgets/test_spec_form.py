"""The spec form is generated from the JSON schema and round-trips the spec."""

from __future__ import annotations

import copy

import pytest

from engine.specs import SpecError, json_schema, parse_spec
from engine.specs.pretrain import PretrainSpec
from studio.widgets.field_editors import (
    BoolEditor,
    EnumEditor,
    FloatEditor,
    IntEditor,
    StringEditor,
    StringListEditor,
)
from studio.widgets.spec_form import SpecForm


@pytest.fixture
def form(qtbot):
    widget = SpecForm(json_schema("pretrain"))
    qtbot.addWidget(widget)
    return widget


def test_defaults_round_trip_through_parse_spec(form):
    assert parse_spec(form.values()) == PretrainSpec()
    form.set_values(PretrainSpec().model_dump(mode="json"))
    assert parse_spec(form.values()) == PretrainSpec()


def test_widgets_follow_the_schema(form):
    fields = form.fields
    assert isinstance(fields["model.architecture"].editor, EnumEditor)
    assert isinstance(fields["train.max_steps"].editor, IntEditor)
    assert isinstance(fields["train.learning_rate"].editor, FloatEditor)
    assert isinstance(fields["model.tie_embeddings"].editor, BoolEditor)
    assert isinstance(fields["data.sources"].editor, StringListEditor)
    assert isinstance(fields["tokenizer.path"].editor, StringEditor)
    spin = fields["train.batch_size"].editor.spin
    assert (spin.minimum(), spin.maximum()) == (1, 65536)
    assert fields["train.batch_size"].label.text() == "Batch size"
    assert "Sequences per step" in fields["train.batch_size"].editor.toolTip()
    assert set(form.groups) >= {"data", "tokenizer", "tokenizer.train", "model", "train", "resources"}
    assert "kind" not in fields  # a constant is kept in the values, not shown


def test_optional_fields_can_be_empty(form):
    editor = form.editor("model.kv_heads")
    assert editor.value() is None
    editor.set_value(2)
    assert form.values()["model"]["kv_heads"] == 2
    editor.set_value(None)
    assert form.values()["model"]["kv_heads"] is None
    objective = form.editor("model.objective")
    assert objective.value() is None
    objective.set_value("clm")
    assert parse_spec(form.values()).model.objective == "clm"


def test_advanced_fields_sit_in_a_collapsed_section(form):
    row = form.fields["model.dropout"]
    sections = form.advanced_sections()
    assert sections and all(not s.expanded for s in sections)
    assert any(s.body.isAncestorOf(row.container) for s in sections)
    assert not any(s.body.isAncestorOf(form.fields["model.layers"].container) for s in sections)


def test_string_list_edits(form):
    editor = form.editor("data.sources")
    editor.add_item("corpus/notes.txt")
    assert form.values()["data"]["sources"] == ["builtin:python-docs", "corpus/notes.txt"]
    editor.set_value(["a.jsonl"])
    assert parse_spec(form.values()).data.sources == ["a.jsonl"]


def test_validation_errors_show_at_their_field(form):
    form.editor("data.sources").set_value([])
    form.editor("model.heads").set_value(3)
    with pytest.raises(SpecError) as caught:
        parse_spec(form.values())
    shown = form.show_problems(caught.value.problems)
    assert len(shown) == len(caught.value.problems) == 2
    assert not form.fields["data.sources"].error.isHidden()
    assert "at least 1" in form.fields["data.sources"].error.text()
    assert "must divide" in form.groups["model"].error_label.text()
    form.clear_problems()
    assert form.fields["data.sources"].error.isHidden()


def test_error_in_a_collapsed_advanced_field_opens_it(form):
    from engine.specs import SpecProblem

    form.show_problems([SpecProblem("model.dropout", "too high")])
    row = form.fields["model.dropout"]
    assert row.error.text() == "too high"
    assert any(s.expanded and s.body.isAncestorOf(row.container) for s in form.advanced_sections())


def test_an_advanced_sub_model_sits_in_the_collapsed_section_and_its_error_opens_it(form):
    from engine.specs import SpecProblem

    box = form.groups["model.rope_scaling"]
    sections = form.advanced_sections()
    assert any(s.body.isAncestorOf(box) for s in sections)
    assert all(not s.expanded for s in sections)
    assert parse_spec(form.values()).model.rope_scaling is None
    form.show_problems([SpecProblem("model.rope_scaling", "applies to llama only")])
    assert box.error_label.text() == "applies to llama only"
    assert any(s.expanded and s.body.isAncestorOf(box) for s in sections)


def test_a_new_schema_field_appears_without_gui_code(qtbot):
    schema = copy.deepcopy(json_schema("pretrain"))
    train = schema["$defs"]["PretrainTraining"]["properties"]
    train["label_smoothing"] = {"type": "number", "default": 0.1, "minimum": 0.0, "maximum": 0.5,
                                "title": "Label smoothing", "description": "Soften the targets."}
    train["optimizer"] = {"enum": ["adamw", "lion"], "type": "string", "default": "lion", "title": "Optimizer",
                          "advanced": True}
    form = SpecForm(schema)
    qtbot.addWidget(form)
    row = form.fields["train.label_smoothing"]
    assert isinstance(row.editor, FloatEditor)
    assert row.label.text() == "Label smoothing"
    assert row.editor.spin.maximum() == 0.5
    assert form.values()["train"]["label_smoothing"] == 0.1
    assert form.values()["train"]["optimizer"] == "lion"
    assert any(s.body.isAncestorOf(form.fields["train.optimizer"].container) for s in form.advanced_sections())


def test_form_for_some_fields_only(qtbot):
    form = SpecForm(json_schema("pretrain"), fields=["model"])
    qtbot.addWidget(form)
    assert set(form.values()) == {"model"}
    assert all(path.startswith("model.") for path in form.fields)


def test_optional_sub_model_is_a_checkable_group(form):
    box = form.groups["tokenizer.train"]
    assert box.isCheckable()
    form.set_values({"tokenizer": {"train": None, "path": "tok/"}})
    assert form.values()["tokenizer"] == {"path": "tok/", "train": None}
    assert parse_spec(form.values()).tokenizer.path == "tok/"


def test_changed_signal_fires_on_edit(form, qtbot):
    with qtbot.waitSignal(form.changed, timeout=1000):
        form.editor("train.max_steps").set_value(50)
