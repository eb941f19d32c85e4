"""Which Python runs the local engine: the setting, the places to look, and what an answer means.

Qt-free (the first-run screen in `studio.pages.first_run.page` drives the checks through QProcess). The
engine is `python -m engine.cli` run by an interpreter that has torch, transformers and datasets.
The studio looks, in order, at:

1. the interpreter saved in the store (setting `engine.python`, chosen on the first-run screen);
2. `$ATELIER_ENGINE_PYTHON`;
3. the studio's own interpreter (checked in-process with `importlib.util.find_spec`, no import);
4. `.venv/bin/python` of the clone the studio runs from (what `make demo` sets up);
5. `~/atelier-venv/bin/python` (the venv that docs/install.md sets up for the engine).

The first that works is used. Another interpreter is checked by running
`PYTHON -m engine.cli doctor --json` (see `doctor_command`) and reading its answer with
`read_doctor_answer`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.protocol import PROTOCOL_VERSION

SETTING_KEY = "engine.python"
ENV_VAR = "ATELIER_ENGINE_PYTHON"
ENGINE_PACKAGES = ("torch", "transformers", "datasets")
CHECK_TIMEOUT_S = 60  # importing torch from a cold disk can take tens of seconds
REPO_ROOT = Path(__file__).resolve().parents[2]

# What the first-run screen tells a user to run. Atelier installs from a clone (it is not on a
# package index); the `engine` extra brings PyTorch, transformers, PEFT, TRL and datasets.
CLONE_COMMAND = "make demo"
VENV_COMMAND = 'python3 -m venv ~/atelier-venv && ~/atelier-venv/bin/pip install ".[engine]"'


@dataclass
class EngineCheck:
    """What checking one interpreter found. `ok`: it runs the engine; otherwise `reason` says why not."""

    python: str
    source: str  # "setting", "environment", "studio", "clone", "home venv", "chosen"
    ok: bool = False
    reason: str = ""
    engine_version: str | None = None
    schema_hash: str | None = None  # of the job specs it accepts (see studio.models.engine_schema)
    cuda: bool | None = None
    packages: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        """One line for the user: what was checked and what it found."""
        where = {"setting": "saved in the settings", "environment": f"from ${ENV_VAR}",
                 "studio": "the studio's own Python", "clone": "the clone's .venv",
                 "home venv": "~/atelier-venv", "chosen": "chosen by you"}.get(self.source, self.source)
        if self.ok:
            found = ", ".join(f"{name} {self.packages[name]}" for name in ENGINE_PACKAGES if self.packages.get(name))
            device = "" if self.cuda is None else (", CUDA available" if self.cuda else ", CPU only (no CUDA)")
            return f"{self.python} ({where}): engine {self.engine_version or '?'}, {found}{device}"
        return f"{self.python} ({where}): {self.reason}"


def studio_python_is_frozen() -> bool:
    """Whether the studio runs from a bundle (PyInstaller): its executable is then no Python."""
    return bool(getattr(sys, "frozen", False))


def install_command() -> str:
    """The one command that gives the studio an engine: into its own Python when it has one."""
    if studio_python_is_frozen():
        return VENV_COMMAND
    return f'"{sys.executable}" -m pip install ".[engine]"'


def candidates(saved: str | None, environ: dict[str, str] | None = None,
               home: Path | None = None, repo_root: Path = REPO_ROOT) -> list[tuple[str, str]]:
    """(python, source) to try, in order, without duplicates. Paths that do not exist are kept only
    when the user named them (setting, environment), so the screen can say they are missing."""
    environ = os.environ if environ is None else environ
    home = Path.home() if home is None else home
    found: list[tuple[str, str]] = []
    if saved:
        found.append((saved, "setting"))
    if environ.get(ENV_VAR):
        found.append((environ[ENV_VAR], "environment"))
    if not studio_python_is_frozen():
        found.append((sys.executable, "studio"))
    clone_python = repo_root / ".venv" / "bin" / "python"
    if (repo_root / "pyproject.toml").exists() and clone_python.exists():
        found.append((str(clone_python), "clone"))
    home_python = home / "atelier-venv" / "bin" / "python"
    if home_python.exists():
        found.append((str(home_python), "home venv"))
    unique: list[tuple[str, str]] = []
    seen: set[str] = set()
    for python, source in found:
        key = os.path.abspath(os.path.expanduser(python))
        if key not in seen:
            seen.add(key)
            unique.append((python, source))
    return unique


def is_studio_python(python: str) -> bool:
    return not studio_python_is_frozen() and os.path.abspath(os.path.expanduser(python)) == os.path.abspath(sys.executable)


def check_in_process(python: str, source: str) -> EngineCheck:
    """The studio's own interpreter: are the engine packages importable? (find_spec, no import)"""
    importlib.invalidate_caches()  # the user may have installed them since the last look
    missing = [name for name in ENGINE_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        return EngineCheck(python, source, reason=f"has the studio but not the engine: {', '.join(missing)} {verb} "
                                                  "not installed")
    from importlib.metadata import PackageNotFoundError, version

    packages = {}
    for name in ENGINE_PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = "installed"
    from engine import __version__
    from studio.models.engine_schema import own_schema

    return EngineCheck(python, source, ok=True, engine_version=__version__, schema_hash=own_schema().hash,
                       packages=packages)


def precheck(python: str, source: str) -> EngineCheck | None:
    """An answer without starting a process, when there is one: a path that is not there or not a
    program, or the studio's own interpreter. None: run `doctor_command` to know."""
    path = Path(os.path.expanduser(python))
    if not python.strip():
        return EngineCheck(python, source, reason="no interpreter given")
    if os.sep in python or python.startswith("~"):
        if not path.exists():
            return EngineCheck(python, source, reason="there is no file at this path")
        if path.is_dir():
            return EngineCheck(python, source, reason="this is a folder; choose the python program inside its bin/")
        if not os.access(path, os.X_OK):
            return EngineCheck(python, source, reason="this file is not a program (not executable)")
    if is_studio_python(python):
        return check_in_process(python, source)
    return None


def doctor_command(python: str) -> list[str]:
    """The argv that asks an interpreter to describe its engine."""
    return [os.path.expanduser(python), "-m", "engine.cli", "doctor", "--json"]


def read_doctor_answer(python: str, source: str, code: int, stdout: str, stderr: str) -> EngineCheck:
    """What `doctor_command` answered (exit code and outputs) means, as a sentence when it failed."""
    if code != 0:
        return EngineCheck(python, source, reason=_failure_reason(code, stderr))
    report = None
    for line in reversed([stdout.strip()] + stdout.strip().splitlines()):
        try:
            report = json.loads(line)
            break
        except json.JSONDecodeError:
            continue
    if not isinstance(report, dict):
        return EngineCheck(python, source, reason="its engine answered `doctor` with something that is not JSON")
    packages = report.get("packages") or {}
    missing = [name for name in ENGINE_PACKAGES if not packages.get(name)]
    check = EngineCheck(python, source, engine_version=report.get("engine_version"),
                        schema_hash=report.get("schema_hash"), cuda=bool((report.get("cuda") or {}).get("available")), packages=packages)
    protocol = report.get("protocol_version")
    if missing:
        check.reason = f"has the engine's light half only: {', '.join(missing)} not installed"
    elif protocol != PROTOCOL_VERSION:
        age = "older" if isinstance(protocol, int) and protocol < PROTOCOL_VERSION else "newer"
        check.reason = (f"its engine ({report.get('engine_version')}) speaks protocol v{protocol}, {age} than this "
                        f"studio's v{PROTOCOL_VERSION}; install the same Atelier version in both")
    else:
        check.ok = True
    return check


def _failure_reason(code: int, stderr: str) -> str:
    text = stderr.strip()
    if "No module named engine" in text or "No module named 'engine'" in text:
        return 'it is a Python without Atelier (no module named engine); install Atelier into it with ".[engine]"'
    if "has the studio but not the engine" in text:
        missing = text.split("not the engine:", 1)[1].split(" not installed", 1)[0].strip()
        missing = missing.removesuffix(" is").removesuffix(" are")
        return f"has the studio but not the engine: {missing} not installed"
    if code == -2:
        return f"it did not answer within {CHECK_TIMEOUT_S} s"
    if text.startswith("Could not start"):
        return "it could not be started: " + text.split(":", 1)[-1].strip().split(". Check")[0]
    last = text.splitlines()[-1] if text else ""
    return f"`engine.cli doctor` stopped with exit code {code}" + (f": {last[:200]}" if last else "")
