"""Preference data in every shape that `studio-engine labels import` reads is accepted by every preference
kind: reward, DPO and KTO, through `studio-engine preview`, which names the
format it detected in each file and lays out each file's pairs (or judged answers) as the job trains on them.

Pairs give KTO a good and a bad answer each; judged answers give reward and DPO a pair wherever a prompt has
a good and a bad answer (each file here has one such prompt)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.labeling.records import IMPORT_FORMATS
from engine.labeling.unpaired import UNPAIRED_FORMATS
from tests.engine.conftest import ONE_THREAD, Engine

SYSTEM = {"role": "system", "content": "Answer in one word."}


def _user(text: str) -> dict:
    return {"role": "user", "content": text}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# name: (file name, its records, the format `labels import` detects, the question, the good and the bad answer)
SHAPES = {
    "trl": ("trl.jsonl", [{"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Lyon."}],
            "trl", "Capital of France?", "Paris.", "Lyon."),
    "trl-chat": ("trl_chat.jsonl", [{"prompt": [SYSTEM, _user("Capital of Italy?")], "chosen": [_assistant("Rome.")],
                                     "rejected": [_assistant("Milan.")]}],
                 "trl-chat", "Capital of Italy?", "Rome.", "Milan."),
    "trl-chat, implicit prompt": (
        "trl_implicit.jsonl", [{"chosen": [_user("Capital of Spain?"), _assistant("Madrid.")],
                                "rejected": [_user("Capital of Spain?"), _assistant("Seville.")]}],
        "trl-chat", "Capital of Spain?", "Madrid.", "Seville."),
    "hh": ("hh.jsonl", [{"chosen": "\n\nHuman: Name a fruit.\n\nAssistant: Apple.\n\nHuman: Another?\n\nAssistant: Pear.",
                         "rejected": "\n\nHuman: Name a fruit.\n\nAssistant: Apple.\n\nHuman: Another?\n\nAssistant: Car."}],
           "hh", "Another?", "Pear.", "Car."),
    "llamafactory alpaca": (
        "lf_alpaca.json", [{"instruction": "Add the numbers.", "input": "2 + 3", "chosen": "5", "rejected": "6",
                            "system": "Be exact.", "history": [["Hi", "Hello."]]}],
        "llamafactory", "2 + 3", "5", "6"),
    "llamafactory sharegpt": (
        "lf_sharegpt.json", [{"conversations": [{"from": "human", "value": "Colour of the sky?"}],
                              "chosen": {"from": "gpt", "value": "Blue."}, "rejected": {"from": "gpt", "value": "Red."}}],
        "llamafactory", "Colour of the sky?", "Blue.", "Red."),
    "trl-unpaired": ("unpaired.jsonl", [{"prompt": "Capital of Peru?", "completion": "Lima.", "label": True},
                                        {"prompt": "Capital of Peru?", "completion": "Cusco.", "label": False}],
                     "trl-unpaired", "Capital of Peru?", "Lima.", "Cusco."),
    "trl-unpaired, messages": (
        "unpaired_chat.jsonl", [{"prompt": [SYSTEM, _user("Capital of Chile?")], "completion": [_assistant(answer)],
                                 "label": good} for answer, good in (("Santiago.", True), ("Valparaíso.", False))],
        "trl-unpaired", "Capital of Chile?", "Santiago.", "Valparaíso."),
    "llamafactory-kto alpaca": (
        "kto_alpaca.json", [{"instruction": "Add the numbers.", "input": "4 + 4", "output": answer, "kto_tag": good}
                            for answer, good in (("8", True), ("9", False))],
        "llamafactory-kto", "4 + 4", "8", "9"),
    "llamafactory-kto sharegpt": (
        "kto_sharegpt.json", [{"conversations": [{"from": "human", "value": "Opposite of hot?"},
                                                 {"from": "gpt", "value": answer}], "kto_tag": good}
                              for answer, good in (("Cold.", True), ("Warm.", False))],
        "llamafactory-kto", "Opposite of hot?", "Cold.", "Warm."),
}
# The kinds, each as the changes it makes to the spec below. DPO's ORPO and SimPO losses read and lay out
# their pairs as DPO does (loss_type changes the trainer only), so one DPO preview stands for them.
KINDS = {"reward": {"kind": "reward", "method": {"name": "full"}}, "dpo": {"kind": "dpo"}, "kto": {"kind": "kto"}}


def _write(path: Path, records: list[dict]) -> Path:
    if path.suffix == ".json":  # LLaMA-Factory's files are JSON arrays
        path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def previews(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """Every shape's file, and `studio-engine preview --json` of one spec per kind reading all of them (the
    previews run side by side)."""
    from tests.engine.policy_fixtures import tiny_policy

    root = tmp_path_factory.mktemp("shapes")
    engine = Engine(root / "ws")
    engine.workspace.mkdir()
    engine.env.update(ONE_THREAD)
    files = {name: _write(root / shape[0], shape[1]) for name, shape in SHAPES.items()}
    model = tiny_policy(root / "models").chat
    processes = {}
    for kind, changes in KINDS.items():
        spec = {"name": "shapes", "model": {"path": str(model)},
                "data": {"sources": [str(f) for f in files.values()], "eval_fraction": 0.0, "max_length": 128},
                "resources": {"device": "cpu"}, **changes}
        path = engine.write_spec(spec, f"{kind.replace(' ', '-')}.yaml")
        processes[kind] = engine.popen("preview", str(path), "--json", "--sample", "100")
    results = {}
    for kind, process in processes.items():
        try:
            stdout, stderr = process.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        results[kind] = (process.returncode, stdout, stderr)
    yield SimpleNamespace(files=files, results=results)


def test_the_shapes_are_every_shape_labels_import_reads(tmp_path):
    from engine.labeling.formats import import_preferences
    from engine.labeling.store import LabelStore

    assert {shape[2] for shape in SHAPES.values()} == set(IMPORT_FORMATS) | set(UNPAIRED_FORMATS)
    store = LabelStore(tmp_path / "store.db")
    for name, (file_name, records, fmt, *_) in SHAPES.items():
        report = import_preferences(store, name, _write(tmp_path / file_name, records), create_mode="auto")
        assert (report.format, report.added, report.malformed) == (fmt, len(records), []), name


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("shape", list(SHAPES))
def test_every_preference_kind_previews_every_shape_with_its_format_and_a_rendered_pair(previews, shape, kind):
    code, stdout, stderr = previews.results[kind]
    assert code == 0, stderr[-3000:]
    preview = json.loads(stdout)
    file_name, _, fmt, question, good, bad = SHAPES[shape]
    assert preview["formats"][str(previews.files[shape])] == fmt
    examples = [e for e in preview["examples"] if e["where"].startswith(file_name)]
    if kind == "kto":
        verdicts = {e["verdict"]: e for e in examples}
        assert set(verdicts) == {"good", "bad"}, examples
        for verdict, answer in (("good", good), ("bad", bad)):
            shown = verdicts[verdict]
            assert question in shown["prompt"]["text"] and shown["completion"]["text"].startswith(answer)
        return
    [pair] = examples
    assert question in pair["prompt"]["text"], pair
    assert pair["chosen"]["text"].startswith(good) and pair["rejected"]["text"].startswith(bad), pair
    assert answer_not_in_prompt(pair["prompt"]["text"], good, bad)


def answer_not_in_prompt(prompt: str, good: str, bad: str) -> bool:
    """The answers are laid out after the prompt, not inside it (the prompt ends before the answer's turn)."""
    return not prompt.rstrip().endswith((good, bad))
