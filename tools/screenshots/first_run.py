"""Screenshots of the first-run screen (called by `tools.screenshots.pages.render_all`).

SCRIPTED: the checks shown are made up (a pipx install of the studio without the engine, and an
`$ATELIER_ENGINE_PYTHON` that points nowhere), so the picture does not depend on the machine that
renders it; the page, its texts and its layout are the real ones.
"""

from __future__ import annotations

from studio.models.engine_setup import EngineCheck

PIPX_PYTHON = "/home/you/.local/pipx/venvs/atelier/bin/python"
ENGINE_PYTHON = "/home/you/atelier-venv/bin/python"
CHECKS = [
    EngineCheck("/opt/envs/old/bin/python", "environment", reason="there is no file at this path"),
    EngineCheck(PIPX_PYTHON, "studio",
                reason="has the studio but not the engine: torch, transformers, datasets are not installed"),
]
READY = EngineCheck(ENGINE_PYTHON, "chosen", ok=True, engine_version="0.1.0", cuda=True,
                    packages={"torch": "2.5.1", "transformers": "4.57.1", "datasets": "4.4.1"})


def shoot_first_run(window, shot) -> None:
    page = window.show_first_run(CHECKS)
    page.command_field.setText(f'"{PIPX_PYTHON}" -m pip install ".[engine]"')
    page.command_field.setCursorPosition(0)
    shot("first-run")
    page.python_field.setText(ENGINE_PYTHON)
    page.set_engine(READY)
    # What `MainWindow.use_engine` shows; not called here, so the windows of the later shots keep their engine.
    window.statusBar().showMessage(f"Workspace {window.workspace}  ·  engine: local ({ENGINE_PYTHON})")
    shot("first-run-ready")
