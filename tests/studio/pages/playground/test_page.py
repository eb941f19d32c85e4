"""The Playground page with a stand-in serve client (no model, no torch): answers stream token by token
into their cells, Stop and Esc cancel, two picked answers are compared or sent to labeling, sessions
come back as they were saved, the batch evaluation's spec is written from the grid and its results
are shown. The real ServeClient is driven by a stand-in `serve` process speaking the protocol."""

from __future__ import annotations

import csv
import json
import sys
import textwrap

import pytest
import yaml
from PySide6.QtCore import QObject, Qt, Signal

from engine.labeling.store import LabelStore
from studio.client.serve_client import Generation, ServeClient
from studio.pages.playground.page import PlaygroundPage
from studio.models.playground_models import find_playground_models
from tests.studio.tracker_fixtures import FakeTracker


class FakeServe(QObject):
    """Records the generate requests; the test plays the server's answers into the handles."""

    state_changed = Signal(str)
    server_error = Signal(str)

    def __init__(self):
        super().__init__()
        self.requests: list[dict] = []
        self.handles: list[Generation] = []
        self.cancelled: list[str] = []
        self.info = {}

    def generate(self, **request) -> Generation:
        handle = Generation(self, f"g{len(self.handles) + 1}")
        self.requests.append(request)
        self.handles.append(handle)
        return handle

    def cancel(self, request_id: str) -> None:
        self.cancelled.append(request_id)

    @staticmethod
    def answer(handle: Generation, *tokens: str, finish: str = "stop", seed: int = 7) -> None:
        handle._receive({"type": "started", "prompt_tokens": 12, "seed": seed})
        for i, text in enumerate(tokens):
            handle._receive({"type": "token", "index": i, "text": text})
        if finish:
            handle._receive({"type": "done", "text": "".join(tokens), "tokens": len(tokens) + (finish == "stop"),
                             "prompt_tokens": 12, "finish": finish, "seed": seed, "ttft_s": 0.05,
                             "tokens_per_s": 40.0, "total_s": 0.3})


@pytest.fixture
def serve():
    return FakeServe()


@pytest.fixture
def page(qtbot, workspace, store, serve):
    page = PlaygroundPage(store, FakeTracker(store), workspace, serve=serve)
    qtbot.addWidget(page)
    page.resize(1000, 760)
    page.show()
    qtbot.waitExposed(page)
    return page


def grid_with(page, models=("a", "b"), variants=(), row="cat red sun"):
    compare = page.compare
    for name in models:
        compare.add_model(f"/models/{name}", label=name)
    for preset, name, template, system in variants:
        compare.variants.add_variant(preset, name, template, system)
    compare.variables.set_value(0, "input", row)
    return compare


def cell(page, variant_index=0, model_index=0):
    session = page.session
    key = session.cell_key(session.variants[variant_index], session.models[model_index])
    return key, page.compare.grid.cells[key]


def test_empty_workspace_says_how_to_get_a_model(page):
    compare = page.compare
    assert compare.stack.currentWidget() is compare.empty
    assert "Pretrain page" in compare.empty.text() and "hub id" in compare.empty.text()
    page.run_all()
    assert "Add a model first" in page.message.text()


def test_models_of_the_workspace_runs_are_offered(workspace):
    def folder(path, file="config.json", kind="pretrain"):
        path = workspace / "runs" / path
        path.mkdir(parents=True)
        (path / file).write_text("{}")
        run = workspace / "runs" / path.relative_to(workspace / "runs").parts[0]
        (run / "spec.yaml").write_text(f"kind: {kind}\nname: {run.name.split('-')[0]}\n")

    folder("pre-1/output/model")
    folder("sft-1/output/adapter", "adapter_config.json", kind="finetune")
    folder("ppo-1/output/policy", kind="ppo")
    folder("rm-1/output/reward_model", kind="reward")
    for step in (10, 20, 30):
        (workspace / "runs" / "pre-1" / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (workspace / "runs" / "pre-1" / "checkpoints" / f"checkpoint-{step}" / "config.json").write_text("{}")
    found = {f.label: f.detail for f in find_playground_models(workspace)}
    assert found == {"pre": "Pretrain · model", "sft (adapter)": "Fine-tune · adapter (on its base)",
                     "ppo": "PPO · policy", "pre@checkpoint-30": "Pretrain · checkpoint",
                     "pre@checkpoint-20": "Pretrain · checkpoint"}


def test_streaming_updates_a_cell_token_by_token(page, serve):
    compare = grid_with(page)
    compare.grid.headers[page.session.models[1].id].editor.temperature.setValue(0)
    page.run_all()
    assert len(serve.requests) == 2
    first, second = serve.requests
    assert first["messages"] == [{"role": "user", "content": "cat red sun"}]
    assert first["model"] == {"path": "/models/a", "adapter": None, "label": "a"}
    assert first["sampling"]["temperature"] == 0.8 and second["sampling"]["temperature"] == 0
    key, view = cell(page)
    handle = serve.handles[0]
    handle._receive({"type": "started", "prompt_tokens": 9, "seed": 3})
    shown = []
    for i, text in enumerate(["sun", " red", " cat"]):
        handle._receive({"type": "token", "index": i, "text": text})
        shown.append(view.text_view.toPlainText())
    assert shown == ["sun", "sun red", "sun red cat"]
    assert view.status.text() == "streaming…" and not view.stop_button.isHidden()
    assert view.figures.text().replace("\u00a0", " ").startswith("3 tokens · prompt 9")
    handle._receive({"type": "done", "text": "sun red cat", "tokens": 4, "prompt_tokens": 9, "finish": "stop",
                     "seed": 3, "ttft_s": 0.02, "tokens_per_s": 55.5, "total_s": 0.08})
    assert view.status.text() == "done · seed 3" and view.stop_button.isHidden()
    figures = view.figures.text().replace("\u00a0", " ").replace("\u2060", "")
    assert "55.5 tok/s" in figures and "TTFT 0.02 s" in figures and view.status.text() == "done · seed 3"
    assert page.session.outputs[key].seed == 3 and not page.runner.running(key)


def test_stop_cancels_one_answer_and_escape_stops_them_all(qtbot, page, serve):
    grid_with(page)
    page.run_all()
    _, view = cell(page)
    FakeServe.answer(serve.handles[0], "sun", finish="")
    view.stop_button.click()
    assert serve.cancelled == ["g1"]
    serve.handles[0]._receive({"type": "done", "text": "sun", "tokens": 1, "finish": "cancelled"})
    assert view.status.text() == "stopped · seed 7" and view.text_view.toPlainText() == "sun"
    page.run_all()
    assert serve.cancelled == ["g1", "g2"]  # asked again: the answer still running there stops
    serve.handles[1]._receive({"type": "done", "text": "late", "tokens": 1, "finish": "cancelled"})
    assert page.session.outputs[cell(page, 0, 1)[0]].status == "waiting"  # the old answer's end is not the new one's
    with qtbot.waitActive(page):
        page.activateWindow()
    qtbot.keyClick(page.compare.grid, Qt.Key_Escape)
    assert sorted(serve.cancelled[2:]) == ["g3", "g4"]


def test_ctrl_enter_runs_the_grid_from_the_template_editor(qtbot, page, serve):
    grid_with(page, models=("a",))
    with qtbot.waitActive(page):
        page.activateWindow()
    page.compare.variants.template.setFocus()
    qtbot.keyClick(page.compare.variants.template, Qt.Key_Return, Qt.ControlModifier)
    assert len(serve.requests) == 1 and page.compare.variants.template.toPlainText() == ""


def test_a_template_the_row_cannot_fill_fails_in_its_cell_without_a_request(page, serve):
    grid_with(page, models=("a",), variants=[("zero-shot", "asks", "Q: {{ question }}", "")])
    page.run_all()
    assert len(serve.requests) == 1  # the first variant only
    _, view = cell(page, variant_index=1)
    assert "'question'" in view.error_label.text() and view.status.text() == "error"
    page.session.variants[1].template = "Q: {{ question"
    page.run_all()
    assert "not valid" in view.error_label.text() and "Jinja syntax error on line 1" in view.error_label.text()


def test_failed_answer_shows_the_servers_message(page, serve):
    grid_with(page, models=("a",))
    page.run_all()
    serve.handles[0]._receive({"type": "error", "message": "The model /models/a (model.path) does not exist.",
                               "hint": "Give a run id."})
    _, view = cell(page)
    assert "does not exist" in view.error_label.text() and "Give a run id" in view.error_label.text()


def test_diff_of_two_picked_answers(page, serve):
    grid_with(page)
    page.run_all()
    FakeServe.answer(serve.handles[0], "sun red cat")
    FakeServe.answer(serve.handles[1], "sun cat red")
    compare = page.compare
    compare.diff_button.click()  # nothing ticked: it says what to do instead of doing nothing
    assert "Pick two answers first" in page.message.text() and compare.stack.currentWidget() is compare.grid
    compare.grid.cells[cell(page, 0, 0)[0]].pick.setChecked(True)
    compare.grid.cells[cell(page, 0, 1)[0]].pick.setChecked(True)
    assert "tick two answers first" not in compare.diff_button.toolTip()
    compare.diff_button.click()
    diff = compare.diff_view.diff
    assert diff.changes >= 1 and compare.diff_view.left_title.full_text() == "a / zero-shot"
    assert compare.stack.currentWidget() is compare._diff_page


def test_an_answer_is_checked_against_the_rows_expected_one(page, serve):
    compare = grid_with(page)
    compare.variables.set_value(0, "expected", "Sun red cat.")
    page.run_all()
    FakeServe.answer(serve.handles[0], "sun  red cat.")  # the same once normalised, as evaluate compares
    FakeServe.answer(serve.handles[1], "cat red sun")
    (_, right), (_, wrong) = cell(page, 0, 0), cell(page, 0, 1)
    assert right.status.text().endswith("✓ expected") and "Expected: Sun red cat." in right.status.toolTip()
    assert wrong.status.text().endswith("✗ not the expected")
    compare.variables.set_value(0, "expected", "")
    compare.grid.refresh(page.session)
    assert "expected" not in right.status.text()  # nothing to check against


def test_the_empty_grid_points_at_the_listed_models(qtbot, workspace, store, serve):
    model = workspace / "runs" / "pre-1" / "output" / "model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (workspace / "runs" / "pre-1" / "spec.yaml").write_text("kind: pretrain\nname: pre\n")
    page = PlaygroundPage(store, FakeTracker(store), workspace, serve=serve)
    qtbot.addWidget(page)
    assert "Your runs have 1 model in the box above" in page.compare.empty.text()
    assert "studio-engine demo" not in page.compare.empty.text()


def test_sessions_come_back_as_they_were_saved(qtbot, page, serve, store):
    compare = grid_with(page, variants=[("few-shot", "shots", "", "Be brief.")])
    compare.variables.add_row({"input": "moon tree", "expected": "tree moon"})
    header = compare.grid.headers[page.session.models[0].id]
    header.editor.seed.setValue(42)
    header.editor.max_new_tokens.setValue(64)
    compare.variables.table.setCurrentCell(0, 0)
    page.run_all()
    assert serve.requests[2]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert "Input: moon tree\nOutput: tree moon" in serve.requests[2]["messages"][1]["content"]
    FakeServe.answer(serve.handles[0], "sun red cat", seed=42)
    page.chat.send("hello")
    FakeServe.answer(serve.handles[-1], "hi there")
    with qtbot.waitActive(page):
        page.activateWindow()
    page.save_session("reverse")
    saved = page.session

    page.new_session()
    assert not page.session.models and page.sessions.combo.currentText() == "Unsaved session"
    assert page.open_session("reverse")
    again = page.session
    assert [m.label for m in again.models] == ["a", "b"] and again.models[0].sampling.seed == 42
    assert again.models[0].sampling.max_new_tokens == 64
    assert [(v.name, v.preset, v.system) for v in again.variants] == [(v.name, v.preset, v.system)
                                                                      for v in saved.variants]
    assert [r.values for r in again.rows] == [{"input": "cat red sun", "expected": ""},
                                              {"input": "moon tree", "expected": "tree moon"}]
    key, view = cell(page)
    assert view.text_view.toPlainText() == "sun red cat" and "seed 42" in view.status.text()
    assert again.outputs[key].status == "done"
    assert [t["content"] for t in again.chat.turns] == ["hello", "hi there"]
    assert "hi there" in page.chat.transcript.toPlainText()
    # Reopened with the page: the last session is the one shown.
    other = PlaygroundPage(store, None, page.workspace, serve=serve)
    qtbot.addWidget(other)
    assert other.session.name == "reverse" and len(other.compare.grid.cells) == 4


def test_send_to_labeling_writes_a_pair_item(page, serve, workspace):
    grid_with(page, variants=[("chain-of-thought", "cot", "", "")])
    page.run_all()
    for handle, text in zip(serve.handles, ["sun red cat", "cat", "Answer: a", "Answer: b"]):
        FakeServe.answer(handle, text)
    page.compare.grid.pick(cell(page, 0, 0)[0], cell(page, 1, 1)[0])
    assert not page.send_to_labeling("pairs", create=True)
    assert "different prompts" in page.message.text()
    page.compare.grid.pick(cell(page, 0, 0)[0], cell(page, 0, 1)[0])
    assert page.send_to_labeling("pairs", create=True)
    assert "Added the pair" in page.message.text()
    items = LabelStore(workspace / "store.db").items("pairs")
    assert len(items) == 1 and items[0].prompt == "cat red sun"
    assert [(c.text, c.model, c.seed) for c in items[0].candidates] == [("sun red cat", "a", 7), ("cat", "b", 7)]
    assert items[0].meta["source"] == "playground"
    assert page.send_to_labeling("pairs")
    assert "already in the queue" in page.message.text()


def test_batch_spec_is_written_from_the_grid_and_its_results_shown(page, workspace, tmp_path):
    grid_with(page, variants=[("few-shot", "shots", "", "You reverse words.")])
    data = tmp_path / "reverse.jsonl"
    data.write_text(json.dumps({"input": "cat red sun", "expected": "sun red cat"}) + "\n")
    batch = page.batch
    page.tabs.setCurrentWidget(batch)
    assert not batch.evaluate_button.isEnabled()
    batch.data_path.setText(str(data))
    batch.data_path.textEdited.emit(str(data))
    batch.limit.setValue(50)
    assert batch.evaluate_button.text() == "Evaluate 2 × 2" and batch.evaluate_button.isEnabled()
    path = batch.launch()
    spec = yaml.safe_load(path.read_text())
    assert spec["kind"] == "evaluate" and [m["label"] for m in spec["models"]] == ["a", "b"]
    assert spec["data"]["path"] == str(data) and spec["data"]["limit"] == 50
    assert [v["name"] for v in spec["variants"]] == ["zero-shot", "shots"]
    assert spec["variants"][1]["preset"] == "few-shot" and spec["variants"][1]["system"] == "You reverse words."
    assert spec["sampling"]["do_sample"] is False
    tracker = page.tracker
    assert tracker.launched == [path]

    run_id = "playground-eval-1"
    out = workspace / "runs" / run_id / "output"
    out.mkdir(parents=True)
    table = [{"variant": v, "model": m, "examples": 1, "exact_match": 1.0 if m == "a" else 0.0, "contains": 1.0,
              "bleu": 100.0, "rouge_l": 1.0, "latency_s": 0.1, "tokens": 4.0, "prompt_tokens": 9.0, "stopped": 1.0}
             for m in ("a", "b") for v in ("zero-shot", "shots")]
    columns = ["variant", "model", "examples", "exact_match", "contains", "bleu", "rouge_l", "latency_s", "tokens",
               "prompt_tokens", "stopped"]
    (out / "metrics.json").write_text(json.dumps({"columns": columns, "table": table, "metrics": columns[3:7]}))
    (out / "results.jsonl").write_text("".join(json.dumps(
        {"id": "r1", "variant": row["variant"], "model": row["model"], "expected": "sun red cat",
         "final_answer": "sun red cat", "answer": "sun red cat", "prompt": "cat red sun", "model_input": "cat red sun",
         "scores": {"exact_match": row["model"] == "a"}, "latency_s": 0.1, "tokens": 4, "finish": "stop"}) + "\n"
        for row in table))
    tracker.command.succeeded.emit({"run_id": run_id})
    assert page.session.batch.run_id == run_id
    tracker.run_events.emit(run_id, [{"type": "progress", "stage": "evaluate", "done": 2, "total": 4, "unit": "answers", "model": "a", "variant": "shots"}])
    assert batch.progress.value() == 2 and "2 of 4 answers" in batch.status.text()
    tracker.run_state_changed.emit(run_id, "completed")
    assert batch.metrics_table.rowCount() == 4 and batch.metrics_table.item(0, 3).text() == "100%"
    batch.metrics_table.selectRow(2)
    assert batch.results_table.rowCount() == 1 and batch.results_table.item(0, 3).text() == "✗"
    assert "sun red cat" in batch.detail.toPlainText()
    exported = batch.export_csv(tmp_path / "metrics.csv")
    rows = list(csv.DictReader(exported.open()))
    assert len(rows) == 4 and rows[0]["model"] == "a" and rows[0]["exact_match"] == "1.0"


def test_chat_sends_the_history_and_gives_a_failed_question_back(page, serve):
    grid_with(page, models=("a",))
    chat = page.chat
    page.tabs.setCurrentWidget(chat)
    chat.system.setText("Be brief.")
    chat.system.textEdited.emit("Be brief.")
    chat.send("hello")
    assert not chat.send_button.isEnabled() and chat.stop_button.isEnabled()
    FakeServe.answer(serve.handles[0], "hi", " there")
    assert chat.send_button.isEnabled()
    chat.send("and now?")
    assert serve.requests[1]["messages"] == [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi there"}, {"role": "user", "content": "and now?"}]
    serve.handles[1]._receive({"type": "error", "message": "The server stopped.", "hint": "Again."})
    assert chat.input.toPlainText() == "and now?" and len(page.session.chat.turns) == 2
    assert "The server stopped." in page.message.text()


def test_rendered_prompt_shows_the_models_chat_template(page, tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    folder = tmp_path / "chat-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|bos|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(["cat red sun user assistant"] * 20, trainer)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<|bos|>", "eos_token": "<|im_end|>"}))
    from engine.specs.chat import CHAT_PRESETS
    (folder / "chat_template.jinja").write_text(CHAT_PRESETS["chatml"][0])
    page.compare.add_model(str(folder), label="chatty")
    page.compare.variables.set_value(0, "input", "cat red sun")
    _, view = cell(page)
    view.prompt_button.click()
    prompt = page.compare.prompt_view
    assert prompt.template_view.toPlainText() == "{{ input }}"
    assert prompt.rendered_view.toPlainText() == "[user]\ncat red sun"
    assert prompt.reads_view.toPlainText() == "<|im_start|>user\ncat red sun<|im_end|>\n<|im_start|>assistant\n"
    assert "its own chat template" in prompt.note.text() and "tokens, counted here" in prompt.note.text()


STAND_IN_SERVE = textwrap.dedent('''
    import json, sys
    out = sys.stdout
    def send(**message):
        out.write(json.dumps(message) + "\\n"); out.flush()
    send(type="ready", id=None, v=1, device="cpu", precision="fp32")
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "generate":
            prompt = request["messages"][-1]["content"]
            if prompt == "die":
                print("Traceback: the stand-in fell over", file=sys.stderr, flush=True)
                sys.exit(3)
            send(type="started", id=request["id"], prompt_tokens=3, seed=1)
            # a token line written in two pieces: the client must buffer the partial line
            piece = json.dumps(dict(type="token", id=request["id"], index=0, text=prompt[::-1]))
            out.write(piece[:7]); out.flush()
            out.write(piece[7:] + "\\n"); out.flush()
            out.write("not json at all\\n"); out.flush()
            send(type="done", id=request["id"], text=prompt[::-1], tokens=2, finish="stop", seed=1)
''')


def test_serve_client_routes_answers_and_restarts_after_the_server_died(qtbot, tmp_path):
    from studio.client.engine import LocalEngine

    script = tmp_path / "stand_in_serve.py"
    script.write_text(STAND_IN_SERVE)
    client = ServeClient(LocalEngine(workspace=tmp_path / "ws", entry=[sys.executable, str(script)]))
    first = client.generate(model={"path": "m"}, messages=[{"role": "user", "content": "abc"}])
    second = client.generate(model={"path": "m"}, messages=[{"role": "user", "content": "xyz"}])
    tokens = []
    first.token.connect(tokens.append)
    with qtbot.waitSignals([first.done, second.done], timeout=20_000):
        pass
    assert tokens == ["cba"] and first.result["finish"] == "stop" and second.text == "zyx"
    assert client.state == "ready" and not client.generations

    dying = client.generate(model={"path": "m"}, messages=[{"role": "user", "content": "die"}])
    with qtbot.waitSignal(dying.failed, timeout=20_000) as failed:
        pass
    message, hint = failed.args
    assert "stopped (exit code 3)" in message and "fell over" in message and "next request" in hint
    assert client.state == "stopped"
    again = client.generate(model={"path": "m"}, messages=[{"role": "user", "content": "ok"}])
    with qtbot.waitSignal(again.done, timeout=20_000):
        pass
    assert again.text == "ko"
    bad = client.generate(model={"path": "m"}, prompt="hi", sampling={"temperature": -1})
    with qtbot.waitSignal(bad.failed, timeout=5_000) as refused:
        pass
    assert "sampling.temperature" in refused.args[0]
    client.shutdown(wait_ms=5000)
