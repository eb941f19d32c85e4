"""The generate job through the real engine process: candidates from a base model and the same model
with a LoRA adapter, seeds that reproduce a candidate on its own, prompts from .jsonl, .txt and a
saved dataset, and bad input named clearly. Engine runs are few (each one loads torch,
transformers and PEFT): the checks that need no process call the engine's functions directly."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.engine.conftest import Engine, with_overrides
from tests.tiny_models import random_lora_adapter, save_model, tiny_byte_bpe, tiny_llama


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    """A tiny llama (~40k parameters) with a byte-level tokenizer that has a chatml template; a LoRA
    adapter for it; and adapters made for other shapes (wider, deeper) that must not load on it."""
    root = tmp_path_factory.mktemp("generate-models")
    texts = [f"Reverse the order of the words. cat red sun {i} apple tree moon" for i in range(200)]
    tokenizer = tiny_byte_bpe(texts, vocab_size=300, max_length=256)
    base = save_model(root / "base", tiny_llama(tokenizer, max_positions=256), tokenizer)
    return SimpleNamespace(
        base=base, adapter=random_lora_adapter(tiny_llama(tokenizer, max_positions=256), base, root / "adapter"),
        wide_adapter=random_lora_adapter(tiny_llama(tokenizer, max_positions=256, hidden_size=48),
                                         root / "wide-base", root / "wide-adapter"),
        deep_adapter=random_lora_adapter(tiny_llama(tokenizer, max_positions=256, layers=3),
                                         root / "deep-base", root / "deep-adapter"))


def generate_spec(tiny: SimpleNamespace, **overrides) -> dict:
    spec = {"kind": "generate", "name": "gen",
            "models": [{"path": str(tiny.base)}, {"path": str(tiny.base), "adapter": str(tiny.adapter),
                                                  "label": "tuned"}],
            "prompts": {"sources": ["builtin:tasks"], "task": "reverse", "task_examples": 4},
            "candidates_per_model": 2, "sampling": {"max_new_tokens": 6}, "seed": 7, "resources": {"device": "cpu"}}
    return with_overrides(spec, overrides)


def run_ok(engine: Engine, spec: dict, name: str = "spec.yaml") -> tuple[Path, list[dict], list[dict]]:
    """(run folder, events, the lines of candidates.jsonl) of a completed run."""
    result = engine.run("run", str(engine.write_spec(spec, name)), "--json", timeout=300)
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-3000:])
    events = engine.stdout_events(result.stdout)
    assert events[-1]["status"] == "completed", events[-1]
    artifact = next(e for e in events if e["type"] == "artifact")
    lines = [json.loads(line) for line in Path(artifact["path"]).read_text(encoding="utf-8").splitlines()]
    return Path(artifact["path"]).parent.parent, events, lines


def test_two_models_answer_builtin_tasks_with_seeds_that_reproduce_each_candidate(engine, tiny):
    run_dir, events, lines = run_ok(engine, generate_spec(tiny))

    assert len(lines) == 4 and [line["id"] for line in lines] == [f"reverse-7:#{i}" for i in range(4)]
    first = lines[0]
    assert first["prompt"].startswith("Reverse the order of the words.\n\n")
    assert first["meta"]["source"] == "builtin:tasks" and first["meta"]["task"] == "reverse"
    assert first["meta"]["answer"] == " ".join(reversed(first["meta"]["input"].split()))
    for line in lines:
        assert [c["model"] for c in line["candidates"]] == ["base", "base", "tuned", "tuned"]
        for candidate in line["candidates"]:
            assert isinstance(candidate["text"], str)
            assert candidate["meta"]["finish"] in ("stop", "length") and 1 <= candidate["meta"]["tokens"] <= 6
            assert candidate["meta"]["correct"] in (True, False)
    seeds = [c["seed"] for line in lines for c in line["candidates"]]
    assert all(isinstance(s, int) for s in seeds) and len(set(seeds)) == len(seeds) == 16

    progress = [e for e in events if e["type"] == "progress" and e["stage"] == "generate"]
    assert progress[-1]["done"] == progress[-1]["total"] == 8 and progress[-1]["eta_s"] is not None
    assert [e["text"].split(":")[0] for e in events if e["type"] == "sample"] == ["base", "base", "tuned", "tuned"]
    artifact = next(e for e in events if e["type"] == "artifact")
    assert artifact["kind"] == "dataset" and artifact["meta"] == {
        "format": "labeling-batch", "prompts": 4, "candidates": 16, "models": ["base", "tuned"]}
    summary = events[-1]["summary"]
    assert summary["prompts"] == 4 and summary["candidates"] == 16
    assert set(summary["per_model"]) == {"base", "tuned"} and "accuracy" in summary["per_model"]["tuned"]
    record = json.loads((run_dir / "output" / "generation.json").read_text())
    assert record["models"][1]["adapter"] == str(tiny.adapter) and "<|im_start|>" in record["models"][0]["chat_template"]

    # A recorded seed reproduces its candidate alone, outside the batch it was drawn in.
    import torch

    from engine.generate.models import load, prompt_template, resolve_models, stop_ids
    from engine.generate.prompts import load_prompts, prompt_token_ids
    from engine.generate.sampling import candidate_seed, generate
    from engine.specs import parse_spec

    spec = parse_spec(generate_spec(tiny))
    prompts, _ = load_prompts(spec.prompts, spec.seed)
    quiet = lambda level, message: None  # noqa: E731
    for model_index, candidate in ((0, 0), (1, 3)):
        choice = resolve_models(spec.models, None)[model_index]
        model, tokenizer = load(choice, "cpu", torch.float32, quiet)
        template = prompt_template(tokenizer, "auto", choice.label, quiet)
        recorded = lines[2]["candidates"][candidate]
        assert recorded["seed"] == candidate_seed(7, model_index, 2, candidate % 2)
        [answer] = generate(model, tokenizer, [prompt_token_ids(prompts[2], tokenizer, template)], [recorded["seed"]],
                            spec.sampling, stop_ids(model, tokenizer, template))
        assert (answer.text, answer.tokens, answer.finish) == (
            recorded["text"], recorded["meta"]["tokens"], recorded["meta"]["finish"])


def test_prompts_from_jsonl_txt_and_a_saved_dataset(engine, tiny, tmp_path):
    import datasets

    records = tmp_path / "prompts.jsonl"
    records.write_text("\n".join(json.dumps(r) for r in [
        {"id": "q1", "prompt": "Name a colour."},
        {"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]},
        {"instruction": "Add the two numbers.", "input": "2 + 3", "output": "5"},
        {"prompt": [{"role": "user", "content": "One?"}, {"role": "assistant", "content": "Two."},
                    {"role": "user", "content": "Three?"}]},
        {"prompt": "   "},
    ]) + "\n", encoding="utf-8")
    lines = tmp_path / "prompts.txt"
    lines.write_text("First prompt\n\nSecond prompt\n", encoding="utf-8")
    saved = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": "Not this split."}]),
                          "test": datasets.Dataset.from_list([{"prompt": "From the dataset?"},
                                                              {"prompt": "Cut by the limit."}])}).save_to_disk(saved)
    spec = generate_spec(tiny, **{"models": [{"path": str(tiny.base)}], "prompts": {
        "sources": [str(records), str(lines), str(saved)], "split": "test", "limit": 7}})
    _, events, batch = run_ok(engine, spec)

    assert [line["id"] for line in batch] == ["q1", "prompts.jsonl:2", "prompts.jsonl:3", "prompts.jsonl:4",
                                              "prompts.txt:1", "prompts.txt:3", "saved:#0"]
    assert [line["prompt"] for line in batch] == ["Name a colour.", "Say hi.", "Add the two numbers.\n\n2 + 3",
                                                  "User: One?\n\nAssistant: Two.\n\nUser: Three?", "First prompt",
                                                  "Second prompt", "From the dataset?"]
    assert batch[1]["meta"]["reference"] == "Hi." and batch[2]["meta"]["reference"] == "5"
    assert [m["role"] for m in batch[3]["meta"]["messages"]] == ["user", "assistant", "user"]
    assert batch[4]["meta"]["source"] == str(lines) and batch[6]["meta"]["source"] == str(saved)
    assert all(len(line["candidates"]) == 2 and "correct" not in line["candidates"][0]["meta"] for line in batch)
    assert all(c["model"] == "base" for line in batch for c in line["candidates"])
    assert any(e["type"] == "log" and "1 blank prompt skipped" in e["message"] for e in events)


def test_bad_input_is_named(engine, tiny, tmp_path):
    """Every case starts its own engine at once; they fail before loading a model (adapters that do
    not fit their model are checked below, without an engine process each)."""
    no_prompt = tmp_path / "no-prompt.jsonl"
    no_prompt.write_text(json.dumps({"prompt": "fine"}) + "\n\n" + json.dumps({"question": "q", "answer": "a"}) + "\n")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n")
    one_model = [{"path": str(tiny.base)}]
    cases = {
        "missing-file": (generate_spec(tiny, **{"prompts.sources": [str(tmp_path / "absent.jsonl")]}),
                         [str(tmp_path / "absent.jsonl"), "does not exist"]),
        "no-prompt-field": (generate_spec(tiny, **{"prompts.sources": [str(no_prompt)], "models": one_model}),
                            [f"{no_prompt}, line 3", "'question', 'answer'", "prompts.field"]),
        "zero-prompts": (generate_spec(tiny, **{"prompts.sources": [str(blank)]}), ["No prompts", str(blank)]),
    }
    processes = {name: engine.popen("run", str(engine.write_spec(spec, f"{name}.yaml")), "--json")
                 for name, (spec, _) in cases.items()}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 1, (name, stdout[-2000:], stderr[-2000:])
        error = json.loads(stdout.splitlines()[-1])["error"]
        text = error["message"] + " " + error["hint"]
        assert error["hint"] and all(part in text for part in cases[name][1]), (name, text)

    invalid = engine.run("run", str(engine.write_spec(generate_spec(tiny, **{"prompts.task": "multiply"}), "task.yaml")))
    assert invalid.returncode == 2 and "prompts.task" in invalid.stdout + invalid.stderr
    assert "'reverse'" in invalid.stdout + invalid.stderr


@pytest.mark.parametrize("case", ["wider", "deeper"])
def test_an_adapter_made_for_another_model_is_refused(tiny, case):
    """A wider model's adapter fails in PEFT (size mismatch); a deeper one's would load without a word
    (PEFT drops the weights of layers the model lacks), so the engine checks that every weight found
    its place."""
    import torch

    from engine.errors import ModelError
    from engine.generate.models import load, resolve_models
    from engine.specs.generate import ModelSource

    adapter = tiny.wide_adapter if case == "wider" else tiny.deep_adapter
    [choice] = resolve_models([ModelSource(path=str(tiny.base), adapter=str(adapter))], None)
    with pytest.raises(ModelError) as info:
        load(choice, "cpu", torch.float32, lambda level, message: None)
    message = info.value.message
    assert f"The adapter {adapter} (models[0].adapter) does not fit the model {tiny.base}" in message
    assert ("size mismatch" in message) if case == "wider" else ("have no place in it" in message and "layers.2" in message)
    trained_on = adapter.parent / ("wide-base" if case == "wider" else "deep-base")
    assert f"the base model it was trained on ({trained_on})" in info.value.hint and "models[0].path" in info.value.hint


@pytest.mark.parametrize("case", ["unknown-builtin", "absent-field", "ends-with-the-answer", "dataset-split"])
def test_prompt_problems_name_the_source_and_what_to_do(tmp_path, case):
    from engine.errors import DataError
    from engine.generate.prompts import load_prompts
    from engine.specs.generate import PromptSource

    data = tmp_path / "prompts.jsonl"
    data.write_text(json.dumps({"prompt": "fine"}) + "\n" + json.dumps(
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Hi."}]}) + "\n")
    source = {"sources": [str(data)]}
    if case == "unknown-builtin":
        source, expected = {"sources": ["builtin:riddles"]}, ["builtin:riddles", "builtin:tasks"]
    elif case == "absent-field":
        source["field"], expected = "question", [f"{data}, line 1", "no field 'question' (prompts.field)", "'prompt'"]
    elif case == "ends-with-the-answer":
        expected = [f"{data}, line 2", "ends with system", "reference answer"]
    else:
        import datasets

        datasets.DatasetDict({"train": datasets.Dataset.from_list([{"prompt": "p"}])}).save_to_disk(tmp_path / "saved")
        source, expected = {"sources": [str(tmp_path / "saved")], "split": "test"}, ["no split 'test'", "train"]
    with pytest.raises(DataError) as info:
        load_prompts(PromptSource(**source), seed=0)
    text = info.value.message + " " + info.value.hint
    assert all(part in text for part in expected), text


def test_models_resolve_from_runs_checkpoints_adapters_and_hub_ids(tmp_path):
    from engine.errors import ModelError
    from engine.generate.models import resolve_models
    from engine.specs.generate import ModelSource

    runs = tmp_path / "runs"
    for folder in (runs / "pre-1" / "output" / "model", runs / "pre-1" / "checkpoints" / "checkpoint-20"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"")
    base = runs / "pre-1" / "output" / "model"
    adapter = runs / "ft-1" / "output" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (runs / "empty").mkdir()

    sources = [ModelSource(path="pre-1"), ModelSource(path=str(runs / "pre-1" / "checkpoints" / "checkpoint-20")),
               ModelSource(path="ft-1"), ModelSource(path="pre-1", adapter="ft-1"), ModelSource(path="pre-1"),
               ModelSource(path="owner/name", label="hub")]
    resolved = [(m.label, m.base, m.adapter) for m in resolve_models(sources, tmp_path)]
    assert resolved == [("pre-1", str(base), None),
                        ("pre-1@checkpoint-20", str(runs / "pre-1" / "checkpoints" / "checkpoint-20"), None),
                        ("ft-1", str(base), str(adapter)), ("pre-1 + ft-1", str(base), str(adapter)),
                        ("pre-1 #2", str(base), None), ("hub", "owner/name", None)]

    with pytest.raises(ModelError, match=r"\(models\[0\]\.path\) holds no model"):
        resolve_models([ModelSource(path="empty")], tmp_path)
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone")}))
    with pytest.raises(ModelError, match="was trained on .*gone, which is not on this machine"):
        resolve_models([ModelSource(path="ft-1")], tmp_path)


def test_tool_conversations_are_prompts_with_their_tools_and_the_expected_call(tmp_path):
    from engine.generate.prompts import load_prompts, prompt_token_ids
    from engine.specs.chat import CHAT_PRESETS
    from engine.specs.generate import PromptSource

    tools = json.dumps([{"name": "get_weather", "parameters": {"type": "object", "properties": {}}}])
    data = tmp_path / "tools.jsonl"
    data.write_text(json.dumps({"conversations": [
        {"from": "human", "value": "Weather in Oslo?"},
        {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'}],
        "tools": tools}) + "\n" + json.dumps({"conversations": [
            {"from": "human", "value": "Weather in Oslo?"},
            {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
            {"from": "observation", "value": "snow"}], "tools": tools}) + "\n")
    calls, answered = load_prompts(PromptSource(sources=[str(data)]), seed=0)[0]
    assert calls.meta["reference"] == '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    assert calls.tools[0]["function"]["name"] == "get_weather" and answered.messages[-1]["role"] == "tool"
    tokenizer = tiny_byte_bpe(["Weather in Oslo? get_weather snow"] * 5, 300)
    text = tokenizer.decode(prompt_token_ids(answered, tokenizer, CHAT_PRESETS["chatml"][0]))
    assert '<tools>\n{"type": "function", "function": {"name": "get_weather"' in text
    assert text.endswith("<|im_start|>tool\nsnow<|im_end|>\n<|im_start|>assistant\n")
