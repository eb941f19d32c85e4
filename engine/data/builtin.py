"""The embedded default corpus `builtin:python-docs`: docstrings of this Python's standard library.

The text is read with `ast` from the stdlib sources (modules are never imported: importing runs
code and some modules have side effects). It is real English prose with real near-duplicates
(`_pydecimal` repeats `decimal`'s docstrings), which the cleaning stages can show off.
Parsing the whole stdlib takes a few seconds, so the result is cached as JSONL.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Iterator

SOURCE_NAME = "builtin:python-docs"
MIN_CHARS = 40  # shorter docstrings ("Return self.") are noise, not prose
_FORMAT_VERSION = 2  # bump when the extraction rules change, to invalidate old caches

# Folders that are not part of the library proper: tests repeat docstrings of the code they test
# and are full of fixtures; site-packages is third-party code.
_SKIP_DIRS = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}


def default_cache_dir() -> Path:
    """`$ATELIER_CACHE`, else `~/.cache/atelier`."""
    env = os.environ.get("ATELIER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "atelier"


def python_docs_documents(cache_dir: Path | None = None) -> list[dict]:
    """Every stdlib docstring of at least MIN_CHARS characters, as {"text", "source"} dicts.

    `source` is "module.path:qualname" ("module.path" alone for a module docstring). The list is
    in a stable order (sorted files, then source order) and cached under `cache_dir`.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    cache = _cache_path(cache_dir or default_cache_dir(), stdlib)
    if cache.exists():
        try:
            with cache.open(encoding="utf-8") as f:
                return [json.loads(line) for line in f]
        except (OSError, ValueError):
            pass  # a damaged cache is rebuilt below
    documents = list(_stdlib_docstrings(stdlib))
    _write_atomically(cache, documents)
    return documents


def _cache_path(cache_dir: Path, stdlib: Path) -> Path:
    version = ".".join(map(str, sys.version_info[:3]))
    key = hashlib.sha256(f"{_FORMAT_VERSION}|{version}|{stdlib.resolve()}".encode()).hexdigest()[:12]
    return cache_dir / f"python-docs-{version}-{key}.jsonl"


def _write_atomically(path: Path, documents: list[dict]) -> None:
    # Two runs may build the cache at once: each writes its own temp file and the rename is atomic.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for doc in documents:
                f.write(json.dumps(doc, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache dir only costs the rebuild next time


def _module_files(stdlib: Path) -> Iterator[tuple[str, Path]]:
    for root, dirs, files in os.walk(stdlib):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        rel = Path(root).relative_to(stdlib)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            parts = list(rel.parts) + [name[:-3]]
            if parts[-1] == "__init__":
                parts.pop()
            if parts and all(p.isidentifier() for p in parts):
                yield ".".join(parts), Path(root) / name


def _stdlib_docstrings(stdlib: Path) -> Iterator[dict]:
    for module, path in _module_files(stdlib):
        try:
            tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError, OSError):
            continue  # e.g. lib2to3 fixtures in Python 2 syntax
        for qualname, node in _documented_nodes(tree):
            doc = ast.get_docstring(node, clean=False)
            if not doc:
                continue
            text = inspect.cleandoc(doc).strip()
            if len(text) >= MIN_CHARS:
                yield {"text": text, "source": f"{module}:{qualname}" if qualname else module}


def _documented_nodes(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """The module, then every class and function (nested ones too) with its dotted qualname."""
    yield "", tree

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, ast.AST]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                qualname = f"{prefix}{child.name}"
                yield qualname, child
                yield from walk(child, qualname + ".")
            elif not isinstance(child, (ast.expr, ast.Lambda)):
                # Definitions inside if/try blocks at the same level (platform variants).
                yield from walk(child, prefix)

    yield from walk(tree, "")
