"""A fine-tuning run's preview and results as plain data, for the Fine-tune page's views (no Qt here).

`FinetunePreview.from_json` reads `studio-engine preview SPEC --json` of a finetune spec (the data
format, records rendered through the chat template with their trained tokens, the base model's
structure, the memory of every method); `find_base_models` lists the models earlier runs of the
workspace wrote; `TaskScores` holds the task metrics before and after training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from studio.widgets.monitor_panels import metric_title

# The generation metrics the fine-tuning job measures on held-out records, titled as the charts title them.
TASK_METRICS: tuple[tuple[str, str], ...] = tuple((name, metric_title(name)) for name in ("exact_match", "bleu", "rouge_l"))


def _int(value: Any, default: int = 0) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class RenderedToken:
    text: str
    id: int | None
    trained: bool


@dataclass(frozen=True)
class RenderedRecord:
    """One record as training sees it: the chat-template text and its tokens, the trained ones marked."""

    text: str
    tokens: tuple[RenderedToken, ...]
    length: int  # tokens before truncation
    truncated: bool
    messages: tuple[dict, ...] = ()
    reference: str | None = None

    @property
    def trained_count(self) -> int:
        return sum(1 for t in self.tokens if t.trained)

    @classmethod
    def from_json(cls, data: dict) -> RenderedRecord:
        tokens = tuple(RenderedToken(str(t.get("text", "")), t.get("id") if isinstance(t.get("id"), int) else None,
                                     bool(t.get("trained"))) for t in data.get("tokens") or [] if isinstance(t, dict))
        messages = tuple(m for m in data.get("messages") or [] if isinstance(m, dict))
        reference = data.get("reference")
        return cls(str(data.get("text", "")), tokens, _int(data.get("length"), len(tokens)),
                   bool(data.get("truncated")), messages, reference if isinstance(reference, str) else None)


@dataclass(frozen=True)
class BaseModelInfo:
    path: str
    architecture: str
    parameters: int
    chat_template: str
    linear_modules: tuple[str, ...]
    default_targets: tuple[str, ...]


@dataclass(frozen=True)
class MethodMemory:
    """The preview's estimate for one method on this model, batch and length."""

    name: str
    gb: float | None
    fits: bool
    needs_cuda: bool = False
    trainable: int | None = None
    note: str = ""


@dataclass(frozen=True)
class FinetunePreview:
    format: str
    format_detected: bool
    fields: tuple[str, ...]
    train_records: int
    eval_records: int
    measured: int  # records whose length was measured for `too_long`
    too_long: int
    overflow: str
    examples: tuple[RenderedRecord, ...]
    model: BaseModelInfo | None
    device: str
    available_gb: float | None
    methods: dict[str, MethodMemory] = field(default_factory=dict)
    # How the run will batch and compute its loss ("packed, padding-free; …"), and why not packed; empty
    # from an engine that does not say.
    training_path: str = ""
    why_padded: str = ""

    @classmethod
    def from_json(cls, data: dict) -> FinetunePreview:
        """Read the engine's answer, tolerating missing parts (an older or newer engine)."""
        records = data.get("records") or {}
        model = data.get("model")
        info = None
        if isinstance(model, dict):
            linear = tuple(str(m) for m in model.get("linear_modules") or [])
            info = BaseModelInfo(str(model.get("path", "")), str(model.get("architecture") or "?"),
                                 _int(model.get("parameters")), str(model.get("chat_template") or ""), linear,
                                 tuple(str(m) for m in model.get("default_targets") or linear))
        memory = data.get("memory") or {}
        training = data.get("training") if isinstance(data.get("training"), dict) else {}
        methods = {}
        for name, m in (memory.get("methods") or {}).items():
            if isinstance(m, dict):
                trainable = m.get("trainable")
                methods[name] = MethodMemory(name, _float(m.get("gb")), bool(m.get("fits", True)),
                                             bool(m.get("needs_cuda")),
                                             trainable if isinstance(trainable, int) else None,
                                             str(m.get("note") or ""))
        train, held_out = _int(records.get("train")), _int(records.get("eval"))
        return cls(
            format=str(data.get("format") or "?"), format_detected=bool(data.get("format_detected")),
            fields=tuple(str(f) for f in data.get("fields") or []), train_records=train, eval_records=held_out,
            measured=_int(data.get("measured"), train + held_out), too_long=_int(data.get("too_long")),
            overflow=str(data.get("overflow") or "truncate"),
            examples=tuple(RenderedRecord.from_json(e) for e in data.get("examples") or [] if isinstance(e, dict)),
            model=info, device=str(memory.get("device") or "?"), available_gb=_float(memory.get("available_gb")),
            methods=methods, training_path=str(training.get("text") or ""),
            why_padded=str(training.get("why_padded") or "") if not training.get("packed") else "")

    def format_sentence(self) -> str:
        """"alpaca, detected from the fields instruction, input, output" (or "chosen")."""
        if not self.format_detected:
            return f"{self.format} (chosen)"
        fields = f" from the fields {', '.join(self.fields)}" if self.fields else ""
        return f"{self.format}, detected{fields}"

    def records_sentence(self) -> str:
        total = self.train_records + self.eval_records
        text = (f"{total:,} records: {self.train_records:,} to train on, {self.eval_records:,} held out "
                "for evaluation.")
        if self.too_long:
            measured = f" of the {self.measured:,} measured" if self.measured and self.measured < total else ""
            what = "cut to the maximum length" if self.overflow == "truncate" else "dropped"
            text += f" {self.too_long:,}{measured} are too long and will be {what}."
        else:
            text += " None is longer than the maximum length."
        return text


# ------------------------------------------------------------------------------ base models
@dataclass(frozen=True)
class FoundModel:
    """A model folder (config.json + weights) written by an earlier run of the workspace."""

    path: Path
    run_id: str
    name: str
    source: str  # "pretrained", "fine-tuned", "fine-tuned, merged"
    modified: float

    @property
    def label(self) -> str:
        return f"{self.name}  ({self.source})" if self.name and self.name != self.run_id else \
            f"{self.run_id}  ({self.source})"


_MODEL_FOLDERS = (("model", None), ("merged", "fine-tuned, merged"))


def _spec_head(run_dir: Path) -> dict:
    """kind and name from a run's spec.yaml (best effort)."""
    import yaml

    try:
        data = yaml.safe_load((run_dir / "spec.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def find_base_models(workspace: str | Path | None) -> list[FoundModel]:
    """Models written by earlier runs, newest first: a pretraining run's `output/model`, a full
    fine-tuning's `output/model` and a merged adapter's `output/merged`. A folder appears only once
    its run wrote it whole (the engine renames finished folders into place)."""
    if not workspace:
        return []
    runs = Path(workspace).expanduser() / "runs"
    found = []
    for folder, source in _MODEL_FOLDERS:
        for config in runs.glob(f"*/output/{folder}/config.json"):
            run_dir = config.parent.parent.parent
            try:
                modified = config.stat().st_mtime
            except OSError:
                continue
            head = _spec_head(run_dir)
            kind = head.get("kind")
            label = source or ("fine-tuned" if kind == "finetune" else "pretrained" if kind == "pretrain" else "model")
            found.append(FoundModel(config.parent, run_dir.name, str(head.get("name") or ""), label, modified))
    return sorted(found, key=lambda f: f.modified, reverse=True)


# ------------------------------------------------------------------------------ task scores
@dataclass
class TaskScores:
    """Generation metrics before training (eval at step 0) and the latest, per metric name; the
    eval loss first measured (at `eval_loss_step`: 0 is before training) and the latest."""

    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    eval_loss: tuple[float | None, float | None] = (None, None)  # first, last
    eval_loss_step: int | None = None  # the step of the first
    _last_loss_step: int | None = None

    def add_eval(self, step: int, values: dict) -> None:
        for name, _ in TASK_METRICS:
            value = _float(values.get(name))
            if value is None:
                continue
            if step == 0:
                self.before[name] = value
            else:
                self.after[name] = value
        loss = _float(values.get("loss"))
        if loss is not None:
            first, last = self.eval_loss
            if self.eval_loss_step is None or step <= self.eval_loss_step:
                first, self.eval_loss_step = loss, step
            if self._last_loss_step is None or step >= self._last_loss_step:
                last, self._last_loss_step = loss, step
            self.eval_loss = (first, last)

    def eval_loss_caption(self) -> str:
        """What the first eval loss is: before training (step 0), or the first evaluation's step."""
        if self.eval_loss_step in (None, 0):
            return "Eval loss"
        return f"Eval loss (first eval at step {self.eval_loss_step:,})"

    def add_summary(self, summary: dict) -> None:
        """The `finished` summary's `<metric>_before` / `<metric>_after` win over the live values."""
        for name, _ in TASK_METRICS:
            before, after = _float(summary.get(f"{name}_before")), _float(summary.get(f"{name}_after"))
            if before is not None:
                self.before[name] = before
            if after is not None:
                self.after[name] = after
        loss = _float(summary.get("eval_loss"))
        if loss is not None:
            self.eval_loss = (self.eval_loss[0] if self.eval_loss[0] is not None else loss, loss)


def format_score(name: str, value: float | None) -> str:
    """Exact match and ROUGE-L (0–1) as percentages, BLEU (0–100) as a number."""
    if value is None:
        return "—"
    if name in ("exact_match", "rouge_l"):
        return f"{value:.0%}" if value in (0.0, 1.0) else f"{value:.1%}"
    return f"{value:.1f}"
