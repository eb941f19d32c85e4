"""`python -m tools.screenshots DIR`: every page rendered offscreen to PNGs, in both themes, with a demo run.

The demo run replays `resources/demo/events.jsonl` (recorded from a real run) when it exists; only
when it is missing does it fall back to `synthetic_demo_events`, a made-up stream with a falling
loss, so the screenshots never depend on a GPU or a training run. The Data page shows a real clean
run and a real dry run: the engine cleans the embedded corpus with resources/specs/clean.yaml while
the screenshots are prepared (a few seconds). The Fine-tune page shows a recorded real engine
preview and a recorded real LoRA run (`resources/demo/finetune-*`). Everything goes into a
temporary workspace: the user's own workspace and store are never touched.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QEventLoop
from PySide6.QtWidgets import QApplication

from engine.protocol import PROTOCOL_VERSION, read_events
from tools.screenshots.events import (
    RECORDED_EVENTS, demo_events, replayed_events,
)

# A laptop's screen and a large one: every page must be usable on the first and use the second.
SIZES = ((1280, 800), (1920, 1080))


@dataclass
class Rendered:
    written: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what did not fit, shot by shot


def build_demo_workspace(workspace: Path, store) -> dict[str, str]:
    """Fill `store` with the demo run, a run to compare it with and one still running.

    The demo run is the recorded one as it is; the other two are perturbed replays of it, named
    `replay-…` so that nobody mistakes them for real runs.
    """
    events, recorded = demo_events()
    started = next((e for e in events if e.get("type") == "started"), {})
    spec = started.get("spec") or {}
    name = spec.get("name") or "demo"
    last_step = max([e.get("step", 0) for e in events if e.get("type") == "metric"] or [0])
    runs = {
        "demo": started.get("run_id") or f"{name}-20261123-095134-d13f",
        "compare": "replay-slower-lr-20261122-181000-c3d4",
        "running": "replay-live-20261123-114000-e5f6",
    }
    first_t = events[0]["t"] if events else time.time()
    streams = {
        "demo": events,
        "compare": replayed_events(events, "replay-slower-lr", seed=1, loss_factor=1.06, speed=0.9,
                                   start_time=first_t - 86400),
        "running": replayed_events(events, "replay-live", seed=2, loss_factor=0.98, speed=1.1,
                                   start_time=time.time() - 150, upto_step=int(last_step * 0.6) or None),
    }
    for key, run_id in runs.items():
        run_dir = workspace / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        first = streams[key][0]
        store.add_run(run_id, kind="pretrain", name=(first.get("spec") or {}).get("name", key),
                      run_dir=str(run_dir), created=first.get("t"))
        store.add_events(run_id, streams[key])
    tokenizer_run = build_demo_tokenizer_run(workspace, store)
    if tokenizer_run:
        runs["tokenizer"] = tokenizer_run
    return runs


DEMO_TOKENIZER_TEXTS = [
    "def read_config(path):\n    \"\"\"Return the settings stored in the file at path.\"\"\"\n    with open(path) as f:\n"
    "        return json.load(f)\n",
    "The function returns the default value when the key is missing from the mapping.",
    "Raise ValueError if the argument is negative; otherwise return its square root.",
    "for item in items:\n\tif item.name == name:\n\t\treturn item\n",
] * 50


def build_demo_tokenizer_run(workspace: Path, store) -> str | None:
    """A finished tokenizer run for the screenshots: a small byte-level BPE trained here in
    milliseconds with `tokenizers` on a few made-up lines (NOT a real run's output), a character-level
    tokenizer to compare it with, and a report.json computed from the two on the same lines."""
    try:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    except ImportError:
        return None
    run_id = "demo-tokenizer-20261123-101500-a1b2"
    run_dir = workspace / "runs" / run_id
    folders = {"demo-tokenizer": run_dir / "output" / "tokenizer",
               "chars-only": workspace / "saved" / "chars-only"}
    tokenizers = {}
    for name, vocab in (("demo-tokenizer", 700), ("chars-only", 300)):
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|bos|>", "<|eos|>", "<|pad|>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
        tokenizer.train_from_iterator(DEMO_TOKENIZER_TEXTS, trainer)
        folders[name].mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(folders[name] / "tokenizer.json"))
        tokenizers[name] = tokenizer
    texts = sorted(set(DEMO_TOKENIZER_TEXTS))
    n_chars = sum(len(t) for t in texts)
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    n_words = sum(len(t.split()) for t in texts)
    rows = []
    for name, tokenizer in tokenizers.items():
        ids = [i for t in texts for i in tokenizer.encode(t).ids]
        vocab = tokenizer.get_vocab()
        longest = sorted((tokenizer.decode([i]) for i in vocab.values() if i > 2), key=lambda t: (-len(t), t))[:6]
        rows.append({"name": name, "vocab_size": tokenizer.get_vocab_size(), "tokens": len(ids),
                     "bytes_per_token": n_bytes / len(ids), "chars_per_token": n_chars / len(ids),
                     "tokens_per_word": len(ids) / n_words, "unk_rate": 0.0,
                     "vocab_used": len(set(ids)) / tokenizer.get_vocab_size(), "longest_tokens": longest})
    (run_dir / "output" / "report.json").write_text(json.dumps(
        {"sample": {"documents": len(texts), "characters": n_chars, "bytes": n_bytes, "words": n_words},
         "tokenizers": rows}, indent=2), encoding="utf-8")
    spec = {"kind": "tokenizer", "name": "demo-tokenizer",
            "tokenizer": {"algorithm": "byte-bpe", "vocab_size": 700},
            "report": {"compare_with": [str(folders["chars-only"])]}}
    (run_dir / "spec.yaml").write_text(json.dumps(spec), encoding="utf-8")  # JSON is YAML
    t0 = time.time() - 900
    events = [
        {"v": PROTOCOL_VERSION, "seq": 0, "t": t0, "type": "started", "run_id": run_id, "spec": spec,
         "host": "workstation", "pid": 4243, "engine_version": "0.1.0", "devices": [], "resumed_from_step": None},
        {"v": PROTOCOL_VERSION, "seq": 1, "t": t0 + 1, "type": "log", "level": "info",
         "message": "Trained a byte-bpe tokenizer of 700 tokens."},
        {"v": PROTOCOL_VERSION, "seq": 2, "t": t0 + 2, "type": "artifact", "kind": "tokenizer",
         "path": "output/tokenizer", "meta": {"vocab_size": 700}},
        {"v": PROTOCOL_VERSION, "seq": 3, "t": t0 + 3, "type": "finished", "status": "completed",
         "summary": {"vocab_size": 700}},
    ]
    store.add_run(run_id, kind="tokenizer", name="demo-tokenizer", run_dir=str(run_dir), created=t0)
    store.add_events(run_id, events)
    return run_id


CLEAN_SPEC = Path(__file__).resolve().parents[2] / "resources" / "specs" / "clean.yaml"


def build_demo_clean_run(workspace: Path, store) -> dict | None:
    """A real clean run and a real dry run for the Data page's screenshots: the engine cleans the
    embedded corpus (the standard library's docstrings, with real near-duplicates) with the example
    spec, in a child process, in a few seconds. Returns {"run_id", "dry_run"}, or None (and the Data
    page is shown without them) when the engine cannot run here."""
    import subprocess
    import sys

    from engine.protocol import read_events

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONIOENCODING": "utf-8"}
    engine = [sys.executable, "-m", "engine.cli", "--workspace", str(workspace)]
    try:
        preview = subprocess.run([*engine, "preview", str(CLEAN_SPEC), "--json"], capture_output=True, text=True,
                                 timeout=300, env=env)
        run = subprocess.run([*engine, "run", str(CLEAN_SPEC), "--json"], capture_output=True, text=True,
                             timeout=600, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if preview.returncode != 0 or run.returncode != 0:
        return None
    events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    started = next((e for e in events if e.get("type") == "started"), None)
    if started is None:
        return None
    run_id = started["run_id"]
    run_dir = workspace / "runs" / run_id
    events = list(read_events(run_dir / "events.jsonl"))
    store.add_run(run_id, kind="clean", name=(started.get("spec") or {}).get("name", "clean"), run_dir=str(run_dir),
                  created=events[0]["t"])
    store.add_events(run_id, events)
    return {"run_id": run_id, "dry_run": json.loads(preview.stdout.strip().splitlines()[-1])}


def _telling_cluster(report: dict) -> int:
    """The row of a near-duplicate cluster whose differences show well: a few changed words in a
    text of some length (the largest clusters are often identical one-liners)."""
    from studio.widgets.text_diff import word_diff

    best, best_score = 0, -1.0
    for i, cluster in enumerate(report.get("clusters") or []):
        kept = (cluster.get("kept") or {}).get("text") or ""
        for member in cluster.get("members") or []:
            if member.get("step") != "near_dedup" or not 150 <= len(kept) <= 900:
                continue
            changes = word_diff(kept, member.get("text") or "").changes
            score = (1 <= changes <= 4) + min(len(kept), 600) / 600
            if score > best_score:
                best, best_score = i, score
    return best


def shoot_data_page(window, shot, clean: dict | None) -> None:
    """The Data page: the wizard's steps with a real dry run, then a real run's report and a cluster."""
    page = window.page("data")
    page.show_wizard()
    page.go_to_step(0)
    shot("data")
    if clean is None:
        return
    import yaml

    page.set_spec_data(yaml.safe_load(CLEAN_SPEC.read_text(encoding="utf-8")))  # the spec the dry run ran
    page.apply_dry_run(clean["dry_run"])
    page.go_to_step(1)
    shot("data-steps")
    page.go_to_step(2)
    modified = next((d for d in page.dry_result.documents if d.fate == "modified" and
                     any(k.startswith("pii.") for k in d.changes) and len(d.text) < 700), None)
    if modified is not None:
        page.dry_run.select_document(modified.id)
    shot("data-dry-run")
    page.show_run(clean["run_id"])
    report = page.run_view.report_view
    report.tabs.setCurrentIndex(0)
    shot("data-report")
    report.tabs.setCurrentIndex(2)
    shot("data-lengths")
    report.tabs.setCurrentIndex(3)
    report.open_cluster(_telling_cluster(report.report))
    shot("data-cluster")
    report.tabs.setCurrentIndex(0)
    page.show_wizard()
    page.reset()


FINETUNE_PREVIEW = RECORDED_EVENTS.parent / "finetune-preview.json"
FINETUNE_EVENTS = RECORDED_EVENTS.parent / "finetune-events.jsonl"


def relocated_events(events: list[dict], run_dir: Path) -> list[dict]:
    """A recorded run's events with the paths of its run folder moved to `run_dir` (the recording
    names the folder it was made in); nothing else changes."""
    started = next((e for e in events if e.get("type") == "started"), {})
    old = f"/runs/{started.get('run_id')}"

    def moved(path: str) -> str:
        return str(run_dir) + path.split(old, 1)[1] if old in path else path

    out = []
    for event in events:
        event = json.loads(json.dumps(event))
        if isinstance(event.get("path"), str):
            event["path"] = moved(event["path"])
        if isinstance(event.get("summary"), dict):
            event["summary"] = {k: moved(v) if isinstance(v, str) else v for k, v in event["summary"].items()}
        out.append(event)
    return out


def shoot_finetune_page(window, shot, workspace: Path, store, demo_run: str) -> None:
    """The Fine-tune page: the wizard with a recorded real preview (`resources/demo/finetune-preview.json`:
    the engine's answer for the demo's pretrained model and the built-in tasks), then a recorded
    real LoRA run (`finetune-events.jsonl`). Without the recordings, the wizard is shown empty."""
    page = window.page("finetune")
    page.show_wizard()
    page.go_to_step(0)
    if not FINETUNE_PREVIEW.exists():
        shot("finetune")
        return
    recorded = json.loads(FINETUNE_PREVIEW.read_text(encoding="utf-8"))
    preview, spec = recorded["preview"], recorded["spec"]
    # The recording names the model folder it previewed; here it is the demo run's (same model).
    model = str(workspace / "runs" / demo_run / "output" / "model")
    preview["model"]["path"] = model
    # The replayed demo run left no weights here; a config.json stands for its model folder so that
    # the picker lists it, as it lists a real run's (nothing loads it: the preview is recorded).
    Path(model).mkdir(parents=True, exist_ok=True)
    (Path(model) / "config.json").write_text(json.dumps({"model_type": preview["model"]["architecture"]}),
                                             encoding="utf-8")
    page.set_spec_data({**spec, "model": {"path": model}})
    page.apply_preview(preview)
    shot("finetune")
    page.go_to_step(1)
    page.record_view.show_record(1)
    shot("finetune-data")
    page.go_to_step(2)
    shot("finetune-method")
    page.go_to_step(len(page.STEPS) - 1)
    shot("finetune-review")
    if FINETUNE_EVENTS.exists():
        events = list(read_events(FINETUNE_EVENTS))
        started = next((e for e in events if e.get("type") == "started"), {})
        run_id = started.get("run_id") or "demo-lora"
        run_dir = workspace / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        if store.get_run(run_id) is None:
            store.add_run(run_id, kind="finetune", name=(started.get("spec") or {}).get("name", "demo-lora"),
                          run_dir=str(run_dir), created=events[0]["t"])
            store.add_events(run_id, relocated_events(events, run_dir))
        page.show_run(run_id)
        shot("finetune-run")
    page.show_wizard()
    page.reset()
    page.cancel_preview()  # the reset settings would be previewed by the engine: not for the screenshots


def _settle(app: QApplication, rounds: int = 6) -> None:
    for _ in range(rounds):
        app.processEvents(QEventLoop.AllEvents, 50)


def render_all(out_dir: Path | str, sizes: tuple[tuple[int, int], ...] = SIZES,
               themes: tuple[str, ...] = ("light", "dark")) -> Rendered:
    """Render every page in each theme and size to `out_dir` (the first size at its top, the others
    in a folder named WIDTHxHEIGHT), checking at each shot that everything fits
    (`tools.screenshots.layout`); returns the files written and what did not fit."""
    from studio import theme
    from studio.app import application
    from studio.main_window import PAGE_KEYS, MainWindow, default_store, default_tracker
    from tools.screenshots.engines import shoot_engines
    from tools.screenshots.first_run import shoot_first_run
    from tools.screenshots.label import build_demo_label_queues, shoot_label_page
    from tools.screenshots.layout import layout_problems
    from tools.screenshots.playground import build_demo_playground, shoot_playground_page
    from tools.screenshots.rlhf import build_demo_rlhf_chain, shoot_rlhf_page
    from tools.screenshots.ship import shoot_ship_dialogs

    app = application()
    rendered = Rendered()
    with tempfile.TemporaryDirectory(prefix="atelier-screens-") as tmp:
        ws = Path(tmp) / "workspace"
        ws.mkdir()
        store = default_store(ws)
        runs = build_demo_workspace(ws, store)
        clean = build_demo_clean_run(ws, store)
        build_demo_label_queues(ws)
        playground = build_demo_playground(ws, store)
        chain = build_demo_rlhf_chain(ws, store)
        for size, name in ((size, name) for size in sizes for name in themes):
            out = Path(out_dir) if size == sizes[0] else Path(out_dir) / f"{size[0]}x{size[1]}"
            out.mkdir(parents=True, exist_ok=True)
            theme.apply(app, name)
            tracker = default_tracker(store, ws)
            window = MainWindow(ws, store=store, tracker=tracker, reattach=False)
            window.resize(*size)
            window.show()
            _settle(app)

            def shot(label: str) -> None:
                _settle(app)
                path = out / f"{label}-{name}.png"
                window.grab().save(str(path))
                rendered.written.append(path)
                if name == themes[0]:  # a theme changes colours, not sizes: one check per page and size
                    rendered.problems += [f"{label} at {size[0]}×{size[1]}: {problem}"
                                          for problem in layout_problems(window)]

            for key in PAGE_KEYS:
                window.show_page(key)
                if key == "data":
                    shoot_data_page(window, shot, clean)
                    continue
                if key == "pretrain":
                    page = window.page("pretrain")
                    page.go_to_step(0)
                    shot("pretrain")
                    if runs.get("tokenizer"):
                        page.go_to_step(1)
                        page.use_tokenizer(str(ws / "runs" / runs["tokenizer"] / "output" / "tokenizer"))
                        _settle(app)
                        page.steps.currentWidget().ensureWidgetVisible(page.token_view, 0, 0)
                        shot("pretrain-tokenizer")
                        page.use_tokenizer(None)
                    page.go_to_step(2)
                    page.apply_preset("small (~10M)")
                    shot("pretrain-model")
                    page.go_to_step(5)
                    shot("pretrain-review")
                    page.reset()
                    continue
                if key == "finetune":
                    shoot_finetune_page(window, shot, ws, store, runs["demo"])
                    continue
                if key == "label":
                    shoot_label_page(window, shot, ws, runs.get("demo"))
                    continue
                if key == "playground":
                    shoot_playground_page(window, shot, playground)
                    continue
                if key == "rlhf":
                    shoot_rlhf_page(window, shot, chain, lambda: _settle(app, 1))
                    continue
                if key == "tokenizer":
                    page = window.page("tokenizer")
                    page.show_wizard()
                    page.go_to_step(0)
                    shot("tokenizer")
                    page.go_to_step(1)
                    shot("tokenizer-settings")
                    if runs.get("tokenizer"):
                        page.show_run(runs["tokenizer"])
                        shot("tokenizer-results")
                        page.show_wizard()
                    page.reset()
                    continue
                shot(key)
            shoot_first_run(window, shot)
            rendered.written.append(shoot_engines(window, lambda: _settle(app), out, name))
            window.open_run(runs["demo"])
            monitor = window.monitor_page.monitor
            shot("monitor")
            monitor.add_overlay(runs["compare"])
            shot("monitor-compare")
            monitor.clear_overlays()
            monitor.tabs.setCurrentWidget(monitor.samples_view)
            shot("monitor-samples")
            monitor.tabs.setCurrentWidget(monitor.charts_page)
            window.open_run(playground["eval"])
            shot("evaluation")
            monitor.add_overlay(playground["eval-earlier"])
            shot("evaluation-compare")
            monitor.clear_overlays()
            rendered.written += shoot_ship_dialogs(window, lambda: _settle(app), out, name, runs["demo"])
            window.close()
            window.deleteLater()
            QCoreApplication.sendPostedEvents(None, 0)
            _settle(app)
        store.close()
    return rendered
