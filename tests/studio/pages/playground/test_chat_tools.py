"""The Chat tab's tools through a real `studio-engine serve` on a tiny chatml model: the Tools box is
checked as it is typed (a message naming the problem, nothing sent while it stands), its definitions
go with the turn (the model reads more tokens than without them), an answer that calls a tool is kept
and shown as its calls (name and arguments, not the markup), and the tool's result is sent back as a
tool turn that the server answers."""

from __future__ import annotations

import json

import pytest

from studio.client.engine import LocalEngine
from studio.client.serve_client import ServeClient
from studio.models.playground_session import read_tools
from studio.pages.playground.page import PlaygroundPage
from tests.studio.tracker_fixtures import FakeTracker
from tests.tiny_models import chat_and_plain_models

TOOLS = [{"name": "add", "parameters": {"type": "object", "properties": {"a": {"type": "number"}}}}]


@pytest.fixture(scope="module")
def chat_model(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat-tools")
    # The byte-level tokenizer learns the tools preamble, so that the prompt fits the tiny model's positions.
    preamble = ("You can call these tools. For each call, answer with <tool_call>{\"name\": ..., \"arguments\": ...}"
                "</tool_call>.\n<tools>\n" + json.dumps({"type": "function", "function": TOOLS[0]}) + "\n</tools>")
    chat, _, _ = chat_and_plain_models(root, [f"{preamble} hello {i}" for i in range(200)])
    return chat


@pytest.fixture
def chat(qtbot, workspace, store, chat_model):
    client = ServeClient(LocalEngine(workspace=workspace, env={"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}))
    page = PlaygroundPage(store, FakeTracker(store), workspace, serve=client)
    qtbot.addWidget(page)
    page.resize(1000, 760)
    page.show()
    page.compare.add_model(str(chat_model), label="tiny")
    page.session.models[0].sampling.max_new_tokens = 3
    page.tabs.setCurrentWidget(page.chat)
    page.chat.refresh_models()
    yield page.chat, page
    client.shutdown(wait_ms=5000)


def ask(qtbot, chat, text: str, role: str = "user"):
    """Send `text` and wait for the answer; the answer's figures (its CellOutput)."""
    (chat.send_result if role == "tool" else chat.send)(text)
    output = chat.output
    assert output is not None
    qtbot.waitUntil(lambda: chat.output is None and not chat.runner.running("chat"), timeout=120_000)
    assert output.status == "done", f"{output.error} {output.hint}"
    return output


def test_the_tools_box_names_its_problem_as_typed():
    assert read_tools("") == (None, "")
    assert read_tools('[{"name": "add"')[1].startswith("Tools: not valid JSON at line 1, column 16")
    assert read_tools('{"name": "add"}')[1] == "Tools: a single object, not a list."
    assert read_tools('[{"description": "x"}]')[1] == "Tools: tool 1 has no name."
    tools, problem = read_tools(json.dumps(TOOLS))
    assert problem == "" and tools == [{"type": "function", "function": TOOLS[0]}]


def test_tools_go_with_the_turn_calls_are_shown_and_a_result_is_answered(qtbot, chat):
    chat, page = chat
    without = ask(qtbot, chat, "hello").prompt_tokens

    chat.tools.setPlainText('[{"name": "add",')
    assert not chat.tools_problem.isHidden() and "not valid JSON at line 1" in chat.tools_problem.text()
    chat.send("hello")
    assert "Fix the Tools box" in page.message.text() and len(chat.session.chat.turns) == 2
    assert chat.input.toPlainText() == ""  # send(text) given: the box was not the source

    chat.tools.setPlainText(json.dumps(TOOLS))
    assert chat.tools_problem.isHidden() and chat.session.chat.tools == json.dumps(TOOLS)
    chat.new_chat()
    offered = ask(qtbot, chat, "hello").prompt_tokens
    assert offered > without + 10  # the template wrote the definitions before the conversation
    assert not chat.result_button.isEnabled()  # the tiny model's answer calls nothing

    # What the model answers is random: the answer is replaced by one that calls the tool, as
    # answer_turn keeps a finished answer.
    from studio.models.playground_session import answer_turn

    call = '<tool_call>{"name": "add", "arguments": {"a": 2}}</tool_call>'
    chat.session.chat.turns[-1] = answer_turn(call, "tiny", offered_tools=True)
    chat.draw()
    shown = chat.transcript.toPlainText()
    assert 'calls add({"a": 2})' in shown and "<tool_call>" not in shown
    assert chat.result_button.isEnabled()

    replied = ask(qtbot, chat, "5", role="tool")
    assert [t["role"] for t in chat.session.chat.turns] == ["user", "assistant", "tool", "assistant"]
    assert replied.messages[-2] == {"role": "assistant", "content": None,
                                    "tool_calls": [{"type": "function", "function": {"name": "add", "arguments": {"a": 2}}}]}
    assert replied.messages[-1] == {"role": "tool", "content": "5"} and replied.prompt_tokens > offered
    assert "Tool result" in chat.transcript.toPlainText()
