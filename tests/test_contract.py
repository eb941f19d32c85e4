"""The contract between the halves, as import-linter checks it (`[tool.importlinter]` in
pyproject.toml): the studio imports only the engine's contract modules and the named light helpers,
the engine never imports Qt, and the contract modules import no training stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_contract_between_studio_and_engine_is_kept():
    # In a process of its own: the checker's output and logging must not meet streams that earlier
    # tests of this session left behind (libraries keep handlers bound to closed capture streams).
    command = [sys.executable, "-c", "from importlinter.cli import lint_imports_command; lint_imports_command()",
               "--config", str(ROOT / "pyproject.toml"), "--no-cache"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def _cycles(graph) -> list[list[str]]:
    """The groups of modules that import each other round (Tarjan's strongly connected components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_imports_itself_round_a_cycle_counting_imports_inside_functions():
    import grimp  # import-linter's graph: every import statement of a module, at its top or inside a function

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for package in ("engine", "studio"):
        assert _cycles(grimp.build_graph(package, cache_dir=None)) == [], package
