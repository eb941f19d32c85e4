"""Screenshots of the Playground page (called by `tools.screenshots.pages.render_all`).

The answers are SCRIPTED, not generated: a stand-in serve client plays canned answers (as a small
fine-tuned model and its pretrained base might answer a word-reversal task) into the grid and the
chat, token by token, with made-up timings; the batch results are a made-up evaluate run's
metrics.json and results.jsonl, scored with the engine's real metric code. No model runs while the
screenshots are taken. The two model folders hold real tokenizers (trained here in milliseconds),
one with a ChatML template, so the rendered-prompt view shows the real layout and token count.
"""

from __future__ import annotations

import importlib.util
import json
import random
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.protocol import PROTOCOL_VERSION
from engine.specs.chat import CHAT_PRESETS
from studio.client.serve_client import Generation

SFT_RUN, BASE_RUN, EVAL_RUN = ("reverse-sft-20261123-120000-a1b2", "python-docs-20261122-090000-c3d4",
                               "scripted-eval-20261123-130000-e5f6")
ROWS = [{"input": "water sun snow key", "expected": "key snow sun water"},
        {"input": "moon tree apple", "expected": "apple tree moon"}]
SYSTEM = "You reverse the order of words. Answer with the words only."
INSTRUCTED = "Reverse the order of the words.\n\n{{ input }}"
# (model, variant) → (answer, finished): the base model continues text, the fine-tuned one answers.
ANSWERS = {("reverse-sft", "plain"): ("key snow water sun", True),
           ("reverse-sft", "instructed"): ("key snow sun water", True),
           ("python-docs", "plain"): ("water sun snow key value of the mapping is returned if the key is", True),
           ("python-docs", "instructed"): ("The order of the words is the order in which the", False)}


class ScriptedServe(QObject):
    """A stand-in for the serve client: hands out real `Generation` handles and plays canned answers."""

    state_changed = Signal(str)
    server_error = Signal(str)

    def __init__(self):
        super().__init__()
        self.info = {"device": "cuda", "precision": "bf16"}
        self.handles: dict[str, Generation] = {}

    def generate(self, **request) -> Generation:
        handle = Generation(self, f"s{len(self.handles)}")
        handle.prompt_tokens = self._prompt_tokens(request)
        handle.seed = (request.get("sampling") or {}).get("seed")  # a column's own seed, as the server reports it
        self.handles[handle.id] = handle
        return handle

    @staticmethod
    def _prompt_tokens(request: dict) -> int:
        """What the server would count: the prompt as the model reads it, through its tokenizer."""
        from studio.models.playground_models import count_tokens, model_reads, read_layout

        model = request["model"]
        layout = read_layout(model["path"], model.get("adapter") or "", None, request.get("chat_template", "auto"))
        return count_tokens(model_reads(request["messages"], layout), layout) or 24

    def cancel(self, request_id: str) -> None:
        handle = self.handles[request_id]
        handle._finish({"text": handle.text, "tokens": handle.tokens, "finish": "cancelled"})

    @staticmethod
    def play(handle: Generation, text: str, finished: bool, rng: random.Random) -> None:
        words = text.split(" ")
        seed = handle.seed if handle.seed is not None else rng.randrange(10**6)
        handle._receive({"type": "started", "prompt_tokens": handle.prompt_tokens, "seed": seed})
        for i, word in enumerate(words):
            handle._receive({"type": "token", "index": i, "text": word if i == 0 else " " + word})
        if finished:
            handle._receive({"type": "done", "text": text, "tokens": len(words) + 1, "finish": "stop",
                             "prompt_tokens": handle.prompt_tokens, "seed": seed,
                             "ttft_s": round(rng.uniform(0.03, 0.09), 3), "tokens_per_s": round(rng.uniform(60, 95), 1),
                             "total_s": round(rng.uniform(0.1, 0.4), 3)})


def _model_folder(run_dir: Path, kind: str, name: str, chat: bool) -> None:
    """A model folder with a real tokenizer (and, for `chat`, a ChatML template); no weights: the
    answers are scripted and only the tokenizer files are read."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    folder = run_dir / "output" / "model"
    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|bos|>", "<|eos|>", "<|pad|>"] + (["<|im_start|>", "<|im_end|>"] if chat else [])
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    texts = [f"{r['input']} {r['expected']} Reverse the order of the words. user assistant system" for r in ROWS] * 30
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|bos|>", "eos_token": "<|eos|>",
                                                              "pad_token": "<|pad|>"}), encoding="utf-8")
    if chat:
        (folder / "chat_template.jinja").write_text(CHAT_PRESETS["chatml"][0], encoding="utf-8")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 256}), encoding="utf-8")
    (run_dir / "spec.yaml").write_text(json.dumps({"kind": kind, "name": name}), encoding="utf-8")  # JSON is YAML


def _evaluate_run(workspace: Path, store) -> tuple[str, str]:
    """A made-up evaluate run's outputs (answers invented, scores computed by the engine's metrics)."""
    from engine.playground.metrics import aggregate, score, stderrs
    from engine.tasks.generators import generate

    rng = random.Random(3)
    metrics = ["exact_match", "contains"]
    if importlib.util.find_spec("sacrebleu") and importlib.util.find_spec("rouge_score"):
        metrics += ["bleu", "rouge_l"]  # the engine's scorers: a studio-only install (the bundle) has neither
    run_dir = workspace / "runs" / EVAL_RUN
    out = run_dir / "output"
    out.mkdir(parents=True, exist_ok=True)
    records = generate("reverse", 20, seed=21)
    results, table = [], []
    for model, right in (("reverse-sft", 0.85), ("python-docs", 0.1)):
        for variant, bonus in (("plain", -0.15), ("instructed", 0.1)):
            lines = []
            for i, record in enumerate(records):
                expected = record["output"]
                words = expected.split()
                answer = expected if rng.random() < right + bonus else " ".join(words[:-1] + ["the"])
                scores = score(answer, expected, metrics)
                lines.append({"id": f"reverse-{i}", "where": f"reverse.jsonl, line {i + 1}", "variant": variant,
                              "model": model, "prompt": record["input"], "system": None,
                              "model_input": record["input"], "answer": answer, "final_answer": answer,
                              "expected": expected, "scores": scores, "latency_s": round(rng.uniform(0.08, 0.3), 4),
                              "tokens": len(words) + 1, "prompt_tokens": 12, "finish": "stop", "seed": None})
            values = aggregate([r["scores"] for r in lines], [r["final_answer"] for r in lines],
                               [r["expected"] for r in lines], metrics)
            table.append({"variant": variant, "model": model, "examples": len(lines), **values,
                          "latency_s": round(sum(r["latency_s"] for r in lines) / len(lines), 4),
                          "tokens": round(sum(r["tokens"] for r in lines) / len(lines), 2), "prompt_tokens": 12.0,
                          "stopped": 1.0})
            results += lines
    columns = ["variant", "model", "examples", *metrics, "latency_s", "tokens", "prompt_tokens", "stopped"]
    (out / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results), encoding="utf-8")
    (out / "metrics.json").write_text(json.dumps({"columns": columns, "table": table, "metrics": metrics}),
                                      encoding="utf-8")
    t0 = time.time() - 600
    spec = {"kind": "evaluate", "name": "scripted-eval"}
    (run_dir / "spec.yaml").write_text(json.dumps(spec), encoding="utf-8")
    store.add_run(EVAL_RUN, kind="evaluate", name="scripted-eval", run_dir=str(run_dir), created=t0)
    cells = _benchmark_cells(rng, {"reverse-sft": 0.0, "python-docs": -0.04}) + [
        {"type": "metric", "step": 0, "split": "eval", "variant": row["variant"], "model": row["model"],
         "values": {m: row[m] for m in metrics}, "stderr": stderrs(
             [r["scores"] for r in results if (r["model"], r["variant"]) == (row["model"], row["variant"])], metrics)}
        for row in table]
    store.add_events(EVAL_RUN, [
        {"v": PROTOCOL_VERSION, "seq": 0, "t": t0, "type": "started", "run_id": EVAL_RUN, "spec": spec},
        *({"v": PROTOCOL_VERSION, "seq": i + 1, "t": t0 + 20, **cell} for i, cell in enumerate(cells)),
        {"v": PROTOCOL_VERSION, "seq": len(cells) + 1, "t": t0 + 40, "type": "finished", "status": "completed",
         "summary": {}}])
    earlier = EVAL_RUN.replace("eval", "eval-earlier")
    store.add_run(earlier, kind="evaluate", name="scripted-eval-earlier", created=t0 - 3600)
    cells = _benchmark_cells(rng, {"reverse-sft": -0.05})
    store.add_events(earlier, [
        {"v": PROTOCOL_VERSION, "seq": 0, "t": t0 - 3600, "type": "started", "run_id": earlier, "spec": spec},
        *({"v": PROTOCOL_VERSION, "seq": i + 1, "t": t0 - 3500, **cell} for i, cell in enumerate(cells)),
        {"v": PROTOCOL_VERSION, "seq": len(cells) + 1, "t": t0 - 3400, "type": "finished", "status": "completed",
         "summary": {}}])
    return EVAL_RUN, earlier


def _benchmark_cells(rng: random.Random, models: dict[str, float]) -> list[dict]:
    """Made-up scores of two benchmark tasks (a local one and a registry one), with standard errors."""
    cells = []
    for model, shift in models.items():
        for task, metric, base, n in (("reverse_words", "exact_match", 0.62, 40), ("arc_easy", "acc", 0.31, 2376),
                                      ("arc_easy", "acc_norm", 0.29, 2376)):
            value = round(min(1.0, max(0.0, base + shift + rng.uniform(-0.02, 0.02))), 4)
            error = round((value * (1 - value) / (n - 1)) ** 0.5, 4)
            cell = next((c for c in cells if c["model"] == model and c["task"] == task), None)
            if cell is None:
                cell = {"type": "metric", "step": 0, "split": "eval", "task": task, "model": model, "examples": n,
                        "values": {}, "stderr": {}}
                cells.append(cell)
            cell["values"][metric], cell["stderr"][metric] = value, error
    return cells


def build_demo_playground(workspace: Path, store) -> dict:
    runs = Path(workspace) / "runs"
    _model_folder(runs / SFT_RUN, "finetune", "reverse-sft", chat=True)
    _model_folder(runs / BASE_RUN, "pretrain", "python-docs", chat=False)
    evaluation, earlier = _evaluate_run(Path(workspace), store)
    return {"sft": str(runs / SFT_RUN / "output" / "model"), "base": str(runs / BASE_RUN / "output" / "model"),
            "eval": evaluation, "eval-earlier": earlier, "data": str(Path(workspace) / "reverse.jsonl")}


def shoot_playground_page(window, shot, demo: dict) -> None:
    from studio.models.playground_session import Session

    page = window.page("playground")
    serve = ScriptedServe()
    page._serve = serve
    page._watch(serve)
    page._show(Session())
    compare = page.compare
    compare.refresh_models()
    sft = compare.add_model(demo["sft"], label="reverse-sft")
    base = compare.add_model(demo["base"], label="python-docs")
    sft.sampling.temperature, base.sampling.temperature = 0.7, 0.7
    sft.sampling.seed = 1234
    session = page.session
    session.variants[0].name = "plain"
    compare.variants.add_variant("zero-shot", "instructed", INSTRUCTED, SYSTEM)
    compare.variables.set_value(0, "input", ROWS[0]["input"])
    compare.variables.set_value(0, "expected", ROWS[0]["expected"])
    compare.variables.add_row(ROWS[1])
    compare.variables.table.setCurrentCell(0, 0)
    compare.set_session(session)
    serve.state_changed.emit("ready")
    compare.run_all()
    rng = random.Random(5)
    for key, handle in list(page.runner.handles.items()):
        model, variant = session.describe_key(key).split(" / ")
        ScriptedServe.play(handle, *ANSWERS[(model, variant)], rng)
    shot("playground")

    compare.grid.pick(session.cell_key(session.variants[0], sft), session.cell_key(session.variants[1], sft))
    compare.show_diff()
    shot("playground-diff")
    compare.show_prompt(session.cell_key(session.variants[1], sft))
    shot("playground-prompt")
    compare.show_grid()

    page.tabs.setCurrentWidget(page.chat)
    chat = page.chat
    chat.system.setText(SYSTEM)
    chat._system_edited(SYSTEM)
    for question, answer in (("Reverse: cat red sun", "sun red cat"),
                             ("Now the same with: moon tree apple", "apple tree moon")):
        chat.send(question)
        ScriptedServe.play(page.runner.handles["chat"], answer, True, rng)
    chat.send("And: water sun snow key")
    ScriptedServe.play(page.runner.handles["chat"], "key snow sun", False, rng)
    chat.draw()  # the transcript is redrawn on a timer; the shot must not wait for it
    shot("playground-chat")
    chat.stop()

    page.tabs.setCurrentWidget(page.batch)
    batch = page.batch
    batch.data_path.setText(demo["data"])
    batch.tasks.setText("resources/specs/harness-tasks/reverse-words.yaml, arc_easy")
    batch._edited()
    batch.refresh_runs()
    batch.show_results(demo["eval"])
    batch.metrics_table.selectRow(2)
    batch.results_table.selectRow(3)
    shot("playground-batch")
    page.tabs.setCurrentWidget(compare)
    page.runner.stop_all()
