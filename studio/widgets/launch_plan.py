"""How a run starts on the resources a spec asks for: one process, or several under the launcher the
engine uses (`engine.launch`: torchrun on one host, the deepspeed launcher over a hostfile), with
the engine's description of the strategy (`engine.training.strategy`). Shown on the wizards'
"Where to run" and Review steps."""

from __future__ import annotations

import html
import json
import shlex
from pathlib import Path
from types import SimpleNamespace

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QGroupBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

_DEVICES = {"auto": "the best device here (CUDA, then Apple MPS, then the CPU)", "cpu": "the CPU",
            "cuda": "a CUDA GPU", "mps": "Apple's GPU (MPS)"}


def resources_of(resources: dict) -> SimpleNamespace:
    """The `resources` dict of a spec's values as the attributes the engine's helpers read."""
    return SimpleNamespace(device=resources.get("device") or "auto", gpus=int(resources.get("gpus") or 1),
                           nodes=int(resources.get("nodes") or 1), hostfile=resources.get("hostfile"),
                           hosts=list(resources.get("hosts") or []), ssh_config=resources.get("ssh_config"),
                           strategy=resources.get("strategy") or "ddp", offload=bool(resources.get("offload")),
                           precision=resources.get("precision") or "auto")


def launch_plan(resources: dict, workspace: Path) -> tuple[str, str | None]:
    """How a run with these resources (the spec's `resources` as a dict) starts: a sentence (the
    engine's own description for several processes), and the launcher command when it takes several
    processes (None for one)."""
    from engine.training.strategy import describe
    from engine.launch import launcher_command

    r = resources_of(resources)
    if r.gpus * r.nodes == 1:
        return (f"One process on {_DEVICES.get(r.device, r.device)}. The distributed strategy applies to runs "
                "on several GPUs (raise GPUs per node).", None)
    sentence = describe(r)
    if r.hosts:
        sentence += (f" The nodes: {', '.join(r.hosts)} (the rendezvous on {r.hosts[0]}"
                     + (f"; ssh reads {r.ssh_config}" if r.ssh_config else "") + ").")
    try:
        argv = launcher_command(SimpleNamespace(resources=r), workspace, "RUN_ID", resume=False)
    except Exception as e:  # noqa: BLE001 - the launcher's own sentence (several nodes without a hostfile)
        return f"{sentence} It cannot start yet: {getattr(e, 'message', e)}", None
    if Path(argv[0]).name.startswith("python"):
        argv = ["python", *argv[1:]]  # this interpreter's path says less than its name
    return sentence + " The command:", shlex.join(argv)


class LaunchPlanBox(QGroupBox):
    """"How it runs": `launch_plan` of the resources, and the configuration the engine derives from
    them (FSDP settings, a DeepSpeed config) when given, in a box of its own that scrolls (`compact`:
    a short one, for the Review step). Public: `label`, `config_view`, `text()`,
    `set_resources(resources, workspace, config)`."""

    def __init__(self, compact: bool = False, parent: QWidget | None = None):
        super().__init__("How it runs", parent)
        self.label = QLabel("")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.RichText)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.config_view = QPlainTextEdit()
        self.config_view.setReadOnly(True)
        self.config_view.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.config_view.setMaximumHeight(100 if compact else 280)
        self.config_view.hide()
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addWidget(self.config_view)

    def set_resources(self, resources: dict, workspace: Path, config: dict | None = None,
                      slurm_engine=None) -> None:
        """`slurm_engine`: the chosen engine when it submits to Slurm (its `slurm` options, `workspace`,
        `python`): the box then shows the batch script the engine will submit."""
        if slurm_engine is not None:
            self._show_batch_script(resources, slurm_engine, config)
            return
        sentence, command = launch_plan(resources, workspace)
        parts = [html.escape(sentence)]
        if command:
            parts.append(f"<span style='font-family: monospace'>{html.escape(command)}</span>")
        if config:
            parts.append("The engine passes the trainer this configuration:")
        self.label.setText("<br>".join(parts))
        self.config_view.setPlainText(json.dumps(config, indent=2) if config else "")
        self.config_view.setVisible(bool(config))

    def _show_batch_script(self, resources: dict, engine, config: dict | None) -> None:
        from engine.slurm import batch_script
        from engine.training.strategy import describe

        r = resources_of(resources)
        workspace = Path(str(engine.workspace))
        script = batch_script(SimpleNamespace(resources=r), workspace / "runs" / "RUN_ID", workspace, "RUN_ID",
                              engine.slurm, python=engine.python)
        sentence = describe(r) if r.gpus * r.nodes > 1 else "One process on one node."
        self.label.setText(html.escape(f"Submitted to Slurm with sbatch on {engine.name}. {sentence} The batch script "
                                       "(slurm.sh in the run folder):"))
        self.config_view.setPlainText(script + (f"\n# The trainer's configuration:\n# {json.dumps(config)}\n"
                                                if config else ""))
        self.config_view.setVisible(True)

    def text(self) -> str:
        return self.label.text() + ("\n" + self.config_view.toPlainText() if self.config_view.isVisibleTo(self) else "")
