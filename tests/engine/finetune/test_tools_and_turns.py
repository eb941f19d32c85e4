"""Tool-call conversations and the multi-turn loss options: reading LLaMA-Factory's and OpenAI's tool
spellings, rendering them through the templates' tools, which tokens are trained (calls yes; tool
definitions and results no; turns: last; mask_system; per-turn train: false / weight: 0), and
scoring answers by the calls they make."""

from __future__ import annotations

import json

import pytest

from engine.errors import DataError
from engine.finetune.formats import record_tools, to_messages
from engine.finetune.records import _normalise
from engine.finetune.rendering import IGNORE, TurnMask, chat_template, generation_prompt, render
from engine.finetune.tool_calls import calls_in, calls_match
from engine.specs.chat import CHAT_PRESETS
from tests.tiny_models import tiny_byte_bpe

CHATML = CHAT_PRESETS["chatml"][0]
WEATHER = {"name": "get_weather", "description": "Weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}
# The same conversation in LLaMA-Factory's ShareGPT spelling and in OpenAI's.
SHAREGPT = {"conversations": [{"from": "human", "value": "Weather in Oslo?"},
                              {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Oslo"}}'},
                              {"from": "observation", "value": '{"sky": "snow"}'},
                              {"from": "gpt", "value": "It snows."}],
            "system": "Be brief.", "tools": json.dumps([WEATHER])}
OPENAI = {"messages": [{"role": "system", "content": "Be brief."},
                       {"role": "user", "content": "Weather in Oslo?"},
                       {"role": "assistant", "content": None, "tool_calls": [
                           {"id": "c1", "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
                       {"role": "tool", "tool_call_id": "c1", "content": '{"sky": "snow"}'},
                       {"role": "assistant", "content": "It snows."}],
          "tools": [{"type": "function", "function": WEATHER}]}


@pytest.fixture(scope="module")
def tokenizer():
    texts = [CHATML, json.dumps(WEATHER), "Weather in Oslo? It snows. Be brief. Add 3 and 4. Hello there."] * 10
    return tiny_byte_bpe(texts, 400, max_length=512)


def normalised(record: dict, format: str) -> dict:
    return _normalise(record, format, "d.jsonl, line 1", None)


def trained_text(tokenizer, record: dict, loss_on: str = "responses", mask: TurnMask = TurnMask()) -> list[str]:
    """The runs of trained tokens, as text."""
    rendered = render(record, tokenizer, CHATML, loss_on, 512, "truncate", mask)
    runs, current = [], []
    for token_id, label in zip(rendered.input_ids, rendered.labels):
        if label != IGNORE:
            current.append(token_id)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    return runs + ([tokenizer.decode(current)] if current else [])


def test_llama_factory_and_openai_tool_conversations_read_the_same():
    sharegpt, openai = normalised(SHAREGPT, "sharegpt"), normalised(OPENAI, "messages")
    assert sharegpt["tools"] == openai["tools"] == [{"type": "function", "function": WEATHER}]
    strip = [{k: v for k, v in m.items() if k not in ("id", "tool_call_id")} for m in openai["messages"]]
    strip[2]["tool_calls"] = [{k: v for k, v in c.items() if k != "id"} for c in strip[2]["tool_calls"]]
    assert sharegpt["messages"] == strip
    assert sharegpt["messages"][2] == {"role": "assistant", "content": "", "tool_calls": [CALL]}
    assert openai["messages"][2]["tool_calls"][0]["id"] == "c1"  # templates that pair calls and results use it
    assert sharegpt["reference"] == "It snows." and "reference_calls" not in sharegpt


def test_a_last_turn_that_calls_is_scored_by_its_call():
    record = normalised({"messages": OPENAI["messages"][:3], "tools": OPENAI["tools"]}, "messages")
    assert record["reference_calls"] == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    assert calls_match('<tool_call>{"arguments": {"city":"Oslo"}, "name": "get_weather"}</tool_call>',
                       record["reference_calls"])
    assert not calls_match('<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo "}}</tool_call>',
                           record["reference_calls"])
    assert not calls_match("It snows in Oslo.", record["reference_calls"])
    assert calls_in('{"name": "add", "parameters": {"a": 3}} then {"name": "f", "arguments": "{\\"x\\": 1}"}') == [
        {"name": "add", "arguments": {"a": 3}}, {"name": "f", "arguments": {"x": 1}}]


def test_parallel_calls_and_legacy_openai_functions_are_read():
    record = {"conversations": [{"from": "human", "value": "Both?"},
                                {"from": "function_call", "value": json.dumps([{"name": "a", "arguments": {}},
                                                                               {"name": "b", "arguments": {"x": 1}}])},
                                {"from": "observation", "value": "1"}, {"from": "gpt", "value": "Done."}]}
    assert [c["function"]["name"] for c in to_messages(record, "sharegpt", "r")[1]["tool_calls"]] == ["a", "b"]
    legacy = {"messages": [{"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": None,
                            "function_call": {"name": "greet", "arguments": '{"who": "you"}'}},
                           {"role": "function", "name": "greet", "content": "hello"},
                           {"role": "assistant", "content": "hello"}],
              "functions": [{"name": "greet", "parameters": {}}]}
    messages = to_messages(legacy, "messages", "r")
    assert messages[1]["tool_calls"][0]["function"] == {"name": "greet", "arguments": {"who": "you"}}
    assert messages[2] == {"role": "tool", "content": "hello", "name": "greet"}
    assert record_tools(legacy, "messages", "r")[0]["function"]["name"] == "greet"


def test_a_user_turn_with_tool_calls_is_refused():
    record = {"messages": [{"role": "user", "content": "x", "tool_calls": [CALL]}, {"role": "assistant", "content": "y"}]}
    with pytest.raises(DataError, match=r"r, turn 1 of 'messages': a 'user' turn has tool calls"):
        to_messages(record, "messages", "r")


def test_the_call_and_the_answer_are_trained_not_the_tools_or_the_result(tokenizer):
    record = normalised(SHAREGPT, "sharegpt")
    assert trained_text(tokenizer, record) == [
        '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call><|im_end|>',
        "It snows.<|im_end|>"]
    rendered = tokenizer.apply_chat_template(record["messages"], tools=record["tools"], chat_template=CHATML,
                                             tokenize=False)
    assert rendered.startswith("<|im_start|>system\nBe brief.\n\nYou can call these tools.")
    assert '{"type": "function", "function": {"name": "get_weather"' in rendered
    assert generation_prompt(record, tokenizer, CHATML).endswith('{"sky": "snow"}<|im_end|>\n<|im_start|>assistant\n')


def test_the_llama3_preset_writes_tools_and_calls(tokenizer):
    record = normalised(OPENAI, "messages")
    text = tokenizer.apply_chat_template(record["messages"], tools=record["tools"],
                                         chat_template=CHAT_PRESETS["llama3"][0], tokenize=False)
    assert '"name": "get_weather"' in text.split("<|eot_id|>")[0]  # the tools, in the system turn
    assert '{"name": "get_weather", "parameters": {"city": "Oslo"}}<|eot_id|>' in text
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n{"sky": "snow"}<|eot_id|>' in text


def test_a_template_that_drops_tools_is_refused_with_the_record(tokenizer):
    record = normalised(SHAREGPT, "sharegpt")
    with pytest.raises(DataError, match=r"d.jsonl, line 1: the chat template does not write the tool call"):
        render(record, tokenizer, chat_template(tokenizer, "plain"), "responses", 512, "truncate")
    no_calls = normalised({**SHAREGPT, "conversations": [SHAREGPT["conversations"][0],
                                                         SHAREGPT["conversations"][3]]}, "sharegpt")
    with pytest.raises(DataError, match="does not write the tool definitions") as raised:
        render(no_calls, tokenizer, chat_template(tokenizer, "plain"), "responses", 512, "truncate")
    assert "data.chat_template to chatml" in raised.value.hint


MULTI = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Add 3 and 4."},
                      {"role": "assistant", "content": "7"}, {"role": "user", "content": "Hello there."},
                      {"role": "assistant", "content": "Hello."}]}


def test_turns_last_trains_only_the_last_answer(tokenizer):
    assert trained_text(tokenizer, MULTI) == ["7<|im_end|>", "Hello.<|im_end|>"]
    assert trained_text(tokenizer, MULTI, mask=TurnMask(turns="last")) == ["Hello.<|im_end|>"]


@pytest.mark.parametrize("flag", [{"train": False}, {"weight": 0}])
def test_a_turn_marked_not_to_train_stays_in_the_text_but_out_of_the_loss(tokenizer, flag):
    record = normalised({"messages": [*MULTI["messages"][:2], {**MULTI["messages"][2], **flag},
                                      *MULTI["messages"][3:]]}, "messages")
    assert record["messages"][2] == {"role": "assistant", "content": "7", "train": False}
    assert trained_text(tokenizer, record) == ["Hello.<|im_end|>"]
    assert "7<|im_end|>" in tokenizer.decode(render(record, tokenizer, CHATML, "responses", 512, "truncate").input_ids)


def test_mask_system_leaves_the_system_prompt_and_the_tools_out_of_loss_on_all(tokenizer):
    everything = trained_text(tokenizer, MULTI, "all")
    assert len(everything) == 1 and everything[0].startswith("<|bos|><|im_start|>system\nBe brief.")
    masked = trained_text(tokenizer, MULTI, "all", TurnMask(mask_system=True))
    assert masked == ["<|bos|>", "\n<|im_start|>user\nAdd 3 and 4.<|im_end|>\n<|im_start|>assistant\n7<|im_end|>\n"
                                 "<|im_start|>user\nHello there.<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n"]
    tools = trained_text(tokenizer, normalised(SHAREGPT, "sharegpt"), "all", TurnMask(mask_system=True))
    assert not any("get_weather\", \"description" in run for run in tools) and "<|im_start|>user" in tools[1]
