"""Logging integrations (`train.report_to`): TensorBoard event files in the run's `tensorboard/` folder,
Weights & Biases when it is installed and logged in.

The Trainer-based jobs hand the list to TrainingArguments (transformers' own callbacks do the logging,
on rank 0 only); PPO, our own loop, mirrors its `metric` events with `mirror_metrics`. Either way
`start_reporting` runs first, at the start of the job: it fails with a sentence naming the field
when a tracker cannot work, so a run never hangs on a login prompt halfway through.
"""

from __future__ import annotations

import importlib.util
import logging
import netrc
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from engine.errors import UserError
from engine.runner import JobContext

log = logging.getLogger(__name__)

TENSORBOARD_FOLDER = "tensorboard"
WANDB_PROJECT = "atelier"


class ReportingError(UserError):
    type = "reporting_error"


def tensorboard_dir(ctx: JobContext) -> Path:
    return ctx.run.path / TENSORBOARD_FOLDER


def wandb_logged_in() -> bool:
    """An API key in the environment or a ~/.netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    try:
        return netrc.netrc(os.environ.get("NETRC") or None).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def check_reporters(report_to: list[str]) -> None:
    """Raise ReportingError when a tracker in `report_to` cannot work on this machine."""
    if "tensorboard" in report_to and importlib.util.find_spec("tensorboard") is None:
        raise ReportingError(
            "train.report_to includes tensorboard, but the tensorboard package is not installed in the engine's "
            "Python.", "Install it (`pip install tensorboard`, or reinstall `atelier[engine]`), or remove "
                       "tensorboard from train.report_to.")
    if "wandb" not in report_to:
        return
    if importlib.util.find_spec("wandb") is None:
        raise ReportingError(
            "train.report_to includes wandb, but the wandb package is not installed in the engine's Python.",
            "Install it (`pip install wandb`) and run `wandb login` on the engine's machine, or remove wandb "
            "from train.report_to.")
    offline = os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun")
    if not offline and not wandb_logged_in():
        raise ReportingError(
            "train.report_to includes wandb, but W&B is not logged in on the engine's machine (no WANDB_API_KEY "
            "and no ~/.netrc entry).",
            "Run `wandb login` there (or set WANDB_API_KEY in the engine's environment), set WANDB_MODE=offline "
            "to log locally, or remove wandb from train.report_to.")


def start_reporting(ctx: JobContext) -> None:
    """Check the trackers of `train.report_to` and point them at the run directory (rank 0 only: the
    other processes of a launch report nothing, so they need neither a login nor a folder)."""
    report_to = ctx.spec.train.report_to
    if not report_to or not ctx.primary:
        return
    check_reporters(report_to)
    if "tensorboard" in report_to:
        tensorboard_dir(ctx).mkdir(parents=True, exist_ok=True)
        # transformers ≥ 5 reads the TensorBoard folder from this variable (TrainingArguments has no logging_dir).
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(ctx))
    if "wandb" in report_to:
        os.environ.setdefault("WANDB_PROJECT", WANDB_PROJECT)
        os.environ.setdefault("WANDB_DIR", str(ctx.run.path))
        # fd 1 carries the events: W&B must not wrap the console, and must never ask for a key.
        os.environ["WANDB_CONSOLE"] = "off"
        os.environ.setdefault("WANDB_SILENT", "true")
        os.environ.setdefault("WANDB_DISABLE_CODE", "true")


def trainer_reporting(ctx: JobContext) -> dict:
    """TrainingArguments for `train.report_to` (after start_reporting)."""
    report_to = list(ctx.spec.train.report_to) if ctx.primary else []
    return {"report_to": report_to or "none", "run_name": ctx.run.run_id}


def mirror_metrics(ctx: JobContext) -> None:
    """For jobs with their own loop (PPO): write every `metric` event to the trackers of
    `train.report_to` as `<split>/<name>` at the event's step; closed by the `finished` event."""
    report_to = ctx.spec.train.report_to
    if not report_to or not ctx.primary:
        return
    ctx.events.sinks.append(MetricsMirror(ctx, report_to))


class MetricsMirror:
    """An events sink; a tracker that fails is logged to engine.log and dropped, never the run."""

    def __init__(self, ctx: JobContext, report_to: list[str]):
        self.writers: list[tuple[str, Callable[[int, dict[str, float]], None], Callable[[], None]]] = []
        if "tensorboard" in report_to:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(log_dir=str(tensorboard_dir(ctx)))

            def add(step: int, values: dict[str, float]) -> None:
                for tag, value in values.items():
                    writer.add_scalar(tag, value, step)
            self.writers.append(("tensorboard", add, writer.close))
        if "wandb" in report_to:
            import wandb

            wandb_run = wandb.init(project=os.environ.get("WANDB_PROJECT", WANDB_PROJECT), name=ctx.run.run_id,
                                   id=ctx.run.run_id, resume="allow", dir=str(ctx.run.path),
                                   config=ctx.spec.model_dump(mode="json"))
            self.writers.append(("wandb", lambda step, values: wandb_run.log(values, step=step), wandb_run.finish))

    def __call__(self, event: dict) -> None:
        if event["type"] == "metric":
            values = {f"{event['split']}/{name}": value for name, value in event["values"].items()
                      if isinstance(value, (int, float)) and not isinstance(value, bool)}
            self._each(lambda add, _close: add(event["step"], values))
        elif event["type"] == "finished":
            self._each(lambda _add, close: close())

    def _each(self, call: Callable[[Callable, Callable], None]) -> None:
        for entry in list(self.writers):
            name, add, close = entry
            try:
                call(add, close)
            except Exception:  # a tracker's failure (disk full, network) must not stop training
                log.exception("report_to %s failed; it is turned off for the rest of this run", name)
                self.writers.remove(entry)
