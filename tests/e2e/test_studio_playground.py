"""The Playground page through the real `studio-engine serve` process and a tiny model built here (no
download): two cells stream to completion while a bad model path fails in its own column, then a
long answer is stopped from its cell."""

from __future__ import annotations

import pytest

from tests.tiny_models import save_model, tiny_byte_bpe, tiny_llama

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A tiny llama (~40k parameters, long positions so an answer can run on) with a byte-level
    tokenizer trained on the spot that has a chatml template."""
    folder = tmp_path_factory.mktemp("playground-model") / "tiny"
    texts = [f"Reverse the order of the words. cat red sun {i} apple tree moon" for i in range(200)]
    tokenizer = tiny_byte_bpe(texts, vocab_size=300, max_length=2048)
    return save_model(folder, tiny_llama(tokenizer, max_positions=2048), tokenizer)


def test_cells_stream_a_bad_model_fails_alone_and_stop_cancels(qtbot, tmp_path, tiny_model, one_thread_engines):
    from studio.client.engine import LocalEngine
    from studio.client.serve_client import ServeClient
    from studio.pages.playground.page import PlaygroundPage
    from studio.models.store import Store

    workspace = tmp_path / "ws"
    store = Store(workspace / "store.db")
    serve = ServeClient(LocalEngine(workspace=workspace), serve_args=["--device", "cpu"])
    page = PlaygroundPage(store, None, workspace, serve=serve)
    qtbot.addWidget(page)
    page.resize(1200, 800)
    page.show()
    compare = page.compare
    tiny = compare.add_model(str(tiny_model), label="tiny")
    missing = compare.add_model(str(tmp_path / "no-such-model"), label="missing")
    compare.variants.add_variant("zero-shot", "instructed", "Reverse the order of the words.\n\n{{ input }}")
    compare.variables.set_value(0, "input", "cat red sun")
    editor = compare.grid.headers[tiny.id].editor
    editor.temperature.setValue(1.0)
    editor.top_k.setValue(0)
    editor.seed.setValue(7)
    editor.max_new_tokens.setValue(16)
    session = page.session
    streamed: dict[str, int] = {}
    page.runner.streamed.connect(lambda key, _text: streamed.__setitem__(key, streamed.get(key, 0) + 1))

    page.run_all()
    tiny_keys = [session.cell_key(v, tiny) for v in session.variants]
    missing_keys = [session.cell_key(v, missing) for v in session.variants]
    outputs = session.outputs
    qtbot.waitUntil(lambda: all(outputs[k].status in ("done", "error") for k in tiny_keys + missing_keys),
                    timeout=120_000)
    for key in tiny_keys:
        output, cell = outputs[key], compare.grid.cells[key]
        assert output.status == "done", (output.error, output.hint)
        assert 1 <= output.tokens <= 16 and output.seed == 7 and output.prompt_tokens > 0
        assert cell.text_view.toPlainText() == output.text and cell.status.text() in ("done · seed 7", "cut at the token limit · seed 7")
        assert streamed.get(key, 0) == output.tokens - (output.finish == "stop")  # one update per token
        assert "tokens · prompt" in cell.figures.text().replace("\u00a0", " ")
    for key in missing_keys:
        error = compare.grid.cells[key].error_label.text()
        assert outputs[key].status == "error" and "no-such-model" in error and "does not exist" in error
    assert "Server ready on cpu" in compare.server_label.text()

    # A long greedy answer of the model continuing the text, stopped from its cell.
    editor.temperature.setValue(0)
    editor.max_new_tokens.setValue(1500)
    editor.layout_choice.setCurrentIndex(editor.layout_choice.findData("none"))
    key = tiny_keys[0]
    compare.run_cell(session.variants[0], tiny)
    qtbot.waitUntil(lambda: outputs[key].tokens >= 1, timeout=60_000)
    compare.grid.cells[key].stop_button.click()
    qtbot.waitUntil(lambda: outputs[key].status == "cancelled", timeout=30_000)
    assert outputs[key].finish == "cancelled" and outputs[key].tokens < 1500
    assert compare.grid.cells[key].status.text().startswith("stopped · seed ")
    qtbot.waitUntil(lambda: not page.runner.any_running, timeout=10_000)
    page.shutdown()
    assert not serve.running
    store.close()
