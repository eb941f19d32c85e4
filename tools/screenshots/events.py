"""The demo run's events for screenshots and benchmarks: the recorded real run
(`resources/demo/events.jsonl`) when it exists, else a made-up stream with a falling loss, and
replays of either under another name, seed and speed (the Runs page's overlays, the live run)."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

from engine.protocol import PROTOCOL_VERSION, read_events
from engine.specs.pretrain import PretrainSpec

RECORDED_EVENTS = Path(__file__).resolve().parents[2] / "resources" / "demo" / "events.jsonl"


def synthetic_demo_events(name: str = "demo-tiny", steps: int = 2000, upto: int | None = None, seed: int = 0,
                          loss_floor: float = 2.05, start_time: float | None = None) -> list[dict]:
    """A made-up but realistic event stream of a small pretraining run (NOT from a real run).

    Loss falls from ~10 towards `loss_floor` with noise, the learning rate warms up then follows a
    cosine, eval runs every 200 steps, samples get less garbled as training goes on. `upto` stops
    the stream early without a `finished` event (a run still in progress).
    """
    rng = random.Random(seed)
    t0 = start_time or time.time() - 3600
    seconds_per_step = 0.45
    spec = PretrainSpec(name=name).model_dump(mode="json")
    spec["train"]["max_steps"] = steps
    events: list[dict] = []

    def emit(type_: str, t: float, **fields) -> None:
        events.append({"v": PROTOCOL_VERSION, "seq": len(events), "t": round(t, 3), "type": type_, **fields})

    emit("started", t0, run_id=name, spec=spec, host="workstation", pid=4242, engine_version="0.1.0",
         devices=[{"type": "cuda", "name": "NVIDIA RTX 4090", "memory_gib": 24}], resumed_from_step=None)
    emit("log", t0 + 0.5, level="info", message="Reading builtin:python-docs: 24,183 documents (1.31 MB)")
    emit("log", t0 + 1.0, level="info", message="Training a byte-bpe tokenizer with 8,192 tokens")
    emit("artifact", t0 + 6.0, kind="tokenizer", path=f"runs/{name}/output/tokenizer", meta={"vocab_size": 8192})
    emit("log", t0 + 6.5, level="info", message="Model: llama, 4 layers, hidden 256 — 4.2M parameters")
    emit("log", t0 + 7.0, level="debug", message="Packing 24,183 documents into 1,512 sequences of 256 tokens")
    samples = ["The the the of the the", "The function returns the the value of a", "The default value is None.",
               "The list of arguments is passed to the function.",
               "The object is returned if the value is not found in the mapping."]
    last = steps if upto is None else upto
    start = t0 + 8.0
    for step in range(10, last + 1, 10):
        t = start + step * seconds_per_step * (1 + 0.05 * rng.random())
        progress = min(step / 1500, 1.0)
        loss = loss_floor + 7.2 * math.exp(-step / 260) + 0.9 * math.exp(-step / 1400) + rng.gauss(0, 0.06)
        warmup = 100
        lr = 3e-4 * step / warmup if step < warmup else \
            3e-4 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        grad = 0.35 + 2.4 * math.exp(-step / 180) + abs(rng.gauss(0, 0.08))
        emit("metric", t, step=step, split="train",
             values={"loss": round(loss, 4), "lr": lr, "grad_norm": round(grad, 4),
                     "tokens_per_s": round(36000 + 1500 * progress + rng.gauss(0, 900), 1),
                     "memory_mb": round(3100 + 20 * rng.random(), 1)})
        eta = (steps - step) * seconds_per_step
        emit("progress", t, stage="train", done=step, total=steps, unit="step", eta_s=round(eta, 1))
        if step % 200 == 0:
            eval_loss = loss_floor + 0.12 + 7.2 * math.exp(-step / 260) + 0.95 * math.exp(-step / 1400)
            emit("metric", t + 1, step=step, split="eval",
                 values={"loss": round(eval_loss, 4), "perplexity": round(math.exp(eval_loss), 2)})
        if step % 400 == 0:
            emit("sample", t + 1.5, step=step, prompt="The ", text=samples[min(step // 400 - 1, len(samples) - 1)])
        if step % 500 == 0:
            emit("artifact", t + 2, kind="checkpoint", path=f"runs/{name}/checkpoints/checkpoint-{step}",
                 meta={"step": step})
            emit("log", t + 2, level="info", message=f"Saved checkpoint checkpoint-{step}")
        if step == 700:
            emit("log", t, level="warning", message="Gradient norm above 1.0 for 3 logs in a row; clipping at 1.0")
        if step % 50 == 0:
            emit("heartbeat", t)
    if upto is None:
        t = start + steps * seconds_per_step * 1.03
        emit("artifact", t, kind="model", path=f"runs/{name}/output/model", meta={"format": "safetensors"})
        emit("log", t, level="info", message="Training finished; model saved to output/model")
        emit("finished", t + 1, status="completed",
             summary={"final_loss": round(loss, 4), "steps": steps, "duration_s": round(t - t0, 1)})
    return events


def demo_events() -> tuple[list[dict], bool]:
    """(events of the demo run, whether they come from a recorded real run)."""
    if RECORDED_EVENTS.exists():
        events = list(read_events(RECORDED_EVENTS))
        if events:
            return events, True
    return synthetic_demo_events(), False


def replayed_events(events: list[dict], name: str, *, seed: int, loss_factor: float = 1.0, speed: float = 1.0,
                    start_time: float | None = None, upto_step: int | None = None) -> list[dict]:
    """A copy of a recorded run under another name, perturbed so that it does not hide the original.

    NOT a real run: losses are scaled by `loss_factor` with a little seeded noise, throughput and
    elapsed time by `speed`, and `upto_step` cuts the stream there (no `finished`: still running).
    The screenshots use it for the run to compare with and for the run in the jobs dock.
    """
    rng = random.Random(seed)
    t_first = events[0]["t"] if events else 0.0
    t0 = start_time if start_time is not None else t_first
    run_id = next((e.get("run_id") for e in events if e.get("type") == "started"), None)
    out: list[dict] = []
    for event in events:
        event = json.loads(json.dumps(event))  # a deep copy: the recording stays as it is
        if upto_step is not None:
            step = event.get("step", event.get("done") if event.get("stage") == "train" else None)
            if event.get("type") == "finished" or (isinstance(step, (int, float)) and step > upto_step):
                break
            if event.get("type") == "artifact" and event.get("kind") == "model":
                continue
        event["seq"] = len(out)
        event["t"] = round(t0 + (event["t"] - t_first) / speed, 3)
        kind = event.get("type")
        if kind == "started":
            event["run_id"] = name
            if isinstance(event.get("spec"), dict):
                event["spec"]["name"] = name
        elif kind == "metric":
            values = event.get("values") or {}
            for key in ("loss", "perplexity"):
                if isinstance(values.get(key), (int, float)):
                    noise = 1 + rng.gauss(0, 0.01)
                    values[key] = round(values[key] * (loss_factor if key == "loss" else loss_factor ** 5) * noise, 4)
            for key in ("tokens_per_s", "samples_per_s", "tflops"):
                if isinstance(values.get(key), (int, float)):
                    values[key] = round(values[key] * speed, 4)
        elif kind == "progress" and isinstance(event.get("eta_s"), (int, float)):
            event["eta_s"] = round(event["eta_s"] / speed, 1)
        elif kind == "artifact" and run_id and isinstance(event.get("path"), str):
            event["path"] = event["path"].replace(run_id, name)
        elif kind == "finished" and isinstance(event.get("summary"), dict):
            for key in ("train_loss", "eval_loss"):
                if isinstance(event["summary"].get(key), (int, float)):
                    event["summary"][key] = round(event["summary"][key] * loss_factor, 4)
        out.append(event)
    return out
