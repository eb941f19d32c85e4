"""engine/kinds.py is the one registry of job kinds: no other list of kinds exists in the code, and
every kind's docs page, recipe and preview are where the registry says."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from engine.kinds import KINDS

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("engine", "studio", "tools")
REGISTRY = ROOT / "engine" / "kinds.py"
# Three kind names in one literal is a list of kinds (two can be a pair a recipe names on purpose).
MOST_KINDS_IN_A_LITERAL = 2


def kind_names_in(node: ast.AST) -> set[str]:
    """The distinct kind names a dict (by its keys), list, tuple or set literal holds directly."""
    if isinstance(node, ast.Dict):
        values = [v.value if isinstance(v, ast.Constant) else None for v in node.values]
        if values and all(v in KINDS for v in values):
            return set()  # a translation onto kinds (another tool's stage names), not a list of them
        elements = [key for key in node.keys if key is not None]
    elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        elements = node.elts
    else:
        return set()
    return {e.value for e in elements if isinstance(e, ast.Constant) and e.value in KINDS}


def lists_of_kinds(source: str, path: str) -> list[str]:
    """Where `source` holds a literal with more than MOST_KINDS_IN_A_LITERAL kind names."""
    found = []
    for node in ast.walk(ast.parse(source, path)):
        names = kind_names_in(node)
        if len(names) > MOST_KINDS_IN_A_LITERAL:
            found.append(f"{path}:{node.lineno}: {', '.join(sorted(names))}")
    return found


def test_the_scan_finds_a_list_of_kinds_written_as_a_dict_a_tuple_or_a_set():
    assert lists_of_kinds('STEPS = {"reward": 1, "ppo": 2, "dpo": 3}', "x.py") == ["x.py:1: dpo, ppo, reward"]
    assert lists_of_kinds('for kind in ("finetune", "reward", "ppo"): pass', "x.py") == ["x.py:1: finetune, ppo, reward"]
    assert lists_of_kinds('KINDS = {"grpo", "dpo", "ppo", "dpo"}', "x.py") == ["x.py:1: dpo, grpo, ppo"]
    assert lists_of_kinds('PAIR = ("reward", "ppo"); OTHER = ["reward", "reward", "name"]', "x.py") == []
    assert lists_of_kinds('STAGES = {"rm": "reward", "dpo": "dpo", "ppo": "ppo", "kto": "kto"}', "x.py") == []


def test_no_list_of_kinds_outside_the_registry():
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path != REGISTRY:
                found += lists_of_kinds(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))
    assert found == [], "read the kinds from engine.kinds instead of listing them:\n" + "\n".join(found)


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_has_its_docs_page_recipe_and_preview(name):
    kind = KINDS[name]
    assert (ROOT / "docs" / kind.docs).is_file(), f"{name}: no docs/{kind.docs}"
    assert callable(getattr(importlib.import_module(kind.job), "run", None)), f"{name}: {kind.job} has no run(ctx)"
    if kind.preview is not None:
        module = importlib.import_module(kind.preview)
        assert callable(getattr(module, "preview", None)) and callable(getattr(module, "preview_text", None)), \
            f"{name}: {kind.preview} lacks preview() or preview_text()"
    assert kind.spec.model_fields["kind"].default == name
