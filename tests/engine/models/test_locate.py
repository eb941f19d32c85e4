"""engine/models: every form of model reference (folder, checkpoint, adapter and its base, run id,
run folder, run output, hub id) for each role, model entries with adapters, the tokenizer loader,
and errors that name the spec's field and say what to do."""

import json
from pathlib import Path

import pytest

from engine.errors import ModelError
from engine.models import RUN_OUTPUTS, load_tokenizer, locate_model, model_label, resolve_choice
from engine.specs.generate import ModelSource
from engine.specs.rlhf import PolicyModel


def model_folder(folder: Path, weights: str = "model.safetensors") -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / weights).write_bytes(b"")
    return folder


def adapter_folder(folder: Path, base: str | None) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    return folder


def run_folder(workspace: Path, run_id: str, state: str = "completed") -> Path:
    folder = workspace / "runs" / run_id
    (folder / "output").mkdir(parents=True)
    (folder / "spec.yaml").write_text("kind: finetune\n")
    (folder / "status.json").write_text(json.dumps({"state": state, "pid": 4242, "host": "elsewhere"}))
    return folder


@pytest.fixture
def workspace(tmp_path) -> Path:
    """pre-1 (a pretraining run: output/model and a checkpoint), ft-1 (a LoRA run: output/adapter on
    pre-1's model), rw-1 (a reward run: output/reward_model)."""
    pre = run_folder(tmp_path, "pre-1")
    model_folder(pre / "output" / "model")
    model_folder(pre / "checkpoints" / "checkpoint-20", weights="pytorch_model.bin")
    adapter_folder(run_folder(tmp_path, "ft-1") / "output" / "adapter", str(pre / "output" / "model"))
    model_folder(run_folder(tmp_path, "rw-1") / "output" / "reward_model")
    return tmp_path


def test_every_reference_form_is_found_and_labelled(workspace):
    pre = workspace / "runs" / "pre-1"
    cases = {
        "pre-1": ("model", pre / "output" / "model", "pre-1"),  # a run id
        str(pre): ("model", pre / "output" / "model", "pre-1"),  # a run folder
        str(pre / "output"): ("model", pre / "output" / "model", "pre-1"),  # its output folder
        str(pre / "checkpoints" / "checkpoint-20"): ("model", pre / "checkpoints" / "checkpoint-20",
                                                     "pre-1@checkpoint-20"),
        "ft-1": ("adapter", workspace / "runs" / "ft-1" / "output" / "adapter", "ft-1"),
        "owner/name": ("hub", "owner/name", "owner/name"),
    }
    for reference, (kind, path, label) in cases.items():
        found = locate_model(reference, workspace, "models[0].path")
        assert (found.kind, found.path, found.label) == (kind, str(path), label), reference
    adapter = locate_model("ft-1", workspace, "models[0].path")
    assert adapter.base == adapter.trained_on == adapter.require_base() == str(pre / "output" / "model")


def test_a_model_folder_outside_runs_is_named_past_generic_folder_names(tmp_path):
    folder = model_folder(tmp_path / "tiny-llama" / "output" / "merged")
    assert locate_model(str(folder), None, "model.path").label == "tiny-llama"
    assert model_label("owner/name", "owner/name") == "owner/name"


def test_a_run_resolves_its_outputs_in_one_order_for_each_role(tmp_path):
    run = run_folder(tmp_path, "all")
    for name in RUN_OUTPUTS:
        if name == "adapter":
            adapter_folder(run / "output" / name, None)
        else:
            model_folder(run / "output" / name)
    assert RUN_OUTPUTS == ("reward_model", "merged", "model", "policy", "adapter")
    picked = {role: Path(locate_model("all", tmp_path, "x", role).path).name for role in ("model", "base", "reward")}
    assert picked == {"model": "merged", "base": "merged", "reward": "reward_model"}
    for name in ("merged", "model"):
        for folder in (run / "output" / name).iterdir():
            folder.unlink()
        (run / "output" / name).rmdir()
    picked = {role: Path(locate_model("all", tmp_path, "x", role).path).name for role in ("model", "base")}
    assert picked == {"model": "policy", "base": "policy"}


def test_a_reward_model_is_found_in_a_reward_run(workspace):
    found = locate_model("rw-1", workspace, "reward_model", "reward")
    assert (found.kind, found.path) == ("model", str(workspace / "runs" / "rw-1" / "output" / "reward_model"))
    assert locate_model("owner/reward", workspace, "reward_model", "reward").kind == "hub"


# -- errors ------------------------------------------------------------------------------------------

def message_of(reference: str, workspace: Path | None, field: str = "models[0].path", role: str = "model"):
    with pytest.raises(ModelError) as raised:
        locate_model(reference, workspace, field, role)
    return raised.value


def test_a_path_that_does_not_exist_names_the_field(tmp_path):
    error = message_of(str(tmp_path / "absent"), tmp_path)
    assert error.message == f"The model {tmp_path / 'absent'} (models[0].path) does not exist."
    assert "run id" in error.hint and "owner/name" in error.hint
    error = message_of("absent", tmp_path, "reward_model", "reward")
    assert error.message == "The reward model absent (reward_model) does not exist." and "reward run" in error.hint


def test_a_file_where_a_folder_is_expected(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    error = message_of(str(tmp_path / "model.safetensors"), None, "model.path")
    assert "(model.path) is a file; a model is a folder" in error.message and "model.path" in error.hint


def test_config_json_without_weights_lists_what_the_folder_holds(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    (tmp_path / "half" / "notes.txt").write_text("")
    error = message_of(str(tmp_path / "half"), None)
    assert "has a config.json but no weights (it holds: config.json, notes.txt)" in error.message
    assert "save_pretrained" in error.hint


def test_an_adapter_whose_base_is_missing_or_unnamed(tmp_path):
    gone = adapter_folder(tmp_path / "gone-base", str(tmp_path / "gone"))
    found = locate_model(str(gone), None, "policy.path")
    assert found.kind == "adapter" and found.base is None
    with pytest.raises(ModelError, match="was trained on .*gone, which is not on this machine") as raised:
        found.require_base()
    assert "policy.path" in raised.value.hint and "policy.adapter" in raised.value.hint
    unnamed = adapter_folder(tmp_path / "unnamed", None)
    with pytest.raises(ModelError, match="does not say which model it was trained on"):
        locate_model(str(unnamed), None, "model.path").require_base()
    assert locate_model(str(adapter_folder(tmp_path / "hub-base", "owner/base")), None, "x").base == "owner/base"


def test_a_run_without_output_yet_says_so_and_its_state(tmp_path):
    run_folder(tmp_path, "busy", state="running")
    error = message_of("busy", tmp_path, "model.path", "base")
    assert error.message.startswith("The run busy (model.path) has no model yet: none of output/merged, "
                                    "output/model, output/policy is in")
    assert error.message.endswith("(the run is running).")
    assert "Wait for the run to complete" in error.hint
    (tmp_path / "empty").mkdir()
    error = message_of(str(tmp_path / "empty"), None)
    assert "(models[0].path) holds no model: no config.json" in error.message and "adapter folder" in error.hint


def test_roles_that_need_a_whole_model_refuse_adapters(workspace):
    error = message_of("ft-1", workspace, "model.path", "base")
    assert "holds a PEFT adapter, not a whole model" in error.message
    assert str(workspace / "runs" / "pre-1" / "output" / "model") in error.hint and "output.merge" in error.hint
    error = message_of("ft-1", workspace, "reward_model", "reward")
    assert "holds a LoRA adapter, not a whole reward model" in error.message and "reward_model" in error.hint


# -- model entries ------------------------------------------------------------------------------------

def test_model_entries_with_adapters_are_resolved_and_labelled(workspace):
    base = str(workspace / "runs" / "pre-1" / "output" / "model")
    adapter = str(workspace / "runs" / "ft-1" / "output" / "adapter")
    choice = resolve_choice(PolicyModel(path="ft-1"), workspace, "model")
    assert (choice.base, choice.adapter, choice.adapter_field, choice.label) == (base, adapter, "model.path", "ft-1")
    choice = resolve_choice(PolicyModel(path="pre-1", adapter="ft-1"), workspace, "policy")
    assert (choice.base, choice.adapter, choice.adapter_field, choice.label) == (base, adapter, "policy.adapter",
                                                                                 "pre-1 + ft-1")
    assert choice.description == f"{base} + adapter {adapter}"
    assert choice.tokenizer_source == (base, "policy.path")  # the adapter saved no tokenizer
    (Path(adapter) / "tokenizer.json").write_text("{}")
    assert choice.tokenizer_source == (adapter, "policy.adapter")
    choice = resolve_choice(ModelSource(path="pre-1", label="mine"), workspace, "models[1]", 1)
    assert (choice.label, choice.index, choice.adapter_field) == ("mine", 1, None)


def test_model_entries_that_mix_up_models_and_adapters(workspace):
    with pytest.raises(ModelError, match=r"\(model\.adapter\) is not a PEFT adapter") as raised:
        resolve_choice(PolicyModel(path="pre-1", adapter="pre-1"), workspace, "model")
    assert "model.path" in raised.value.hint
    with pytest.raises(ModelError, match=r"\(model\.path\) is itself a PEFT adapter, and model\.adapter names"):
        resolve_choice(PolicyModel(path="ft-1", adapter="ft-1"), workspace, "model")
    with pytest.raises(ModelError, match=r"absent \(model\.path\) does not exist"):
        resolve_choice(PolicyModel(path="absent"), workspace, "model")


def test_the_tokenizer_loader_names_the_field_and_sets_a_pad_token(tmp_path):
    from tests.tiny_models import tiny_byte_bpe

    tokenizer = tiny_byte_bpe(["a few words to learn from"] * 4, vocab_size=300)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = load_tokenizer(str(tmp_path / "tok"), "model.path")
    assert loaded.pad_token == loaded.eos_token is not None
    (tmp_path / "none").mkdir()
    with pytest.raises(ModelError) as raised:
        load_tokenizer(str(tmp_path / "none"), "policy.path", label="the policy")
    assert raised.value.message.startswith("Could not load the tokenizer of the policy (policy.path): ")
    assert "tokenizer.json" in raised.value.hint


def test_the_locator_imports_nothing_heavy(heavy_imports):
    assert heavy_imports("engine.models") == []
