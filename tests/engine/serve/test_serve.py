"""`studio-engine serve` through the real process: JSON-line requests on its stdin, answers read from its
stdout as they come. One server for the module (each start loads torch), with a memory budget that
holds one tiny model but not two, so loading a second one unloads the first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.protocol import PROTOCOL_VERSION
from tests.engine.conftest import ROOT
from tests.tiny_models import random_lora_adapter, save_model, tiny_byte_bpe, tiny_llama

GIB = 2**30
ANSWERS = {"load": "loaded", "generate": "done", "unload": "unloaded", "models": "models", "shutdown": "shutdown"}
LONG = 1500  # max_new_tokens of an answer that is still streaming when the test acts on it


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> SimpleNamespace:
    """A tiny llama (~40k parameters; long positions, so an answer can run on) with a byte-level
    tokenizer that has a chatml template, and a LoRA adapter for it."""
    root = tmp_path_factory.mktemp("serve-models")
    texts = [f"Reverse the order of the words. cat red sun {i} apple tree moon" for i in range(200)]
    tokenizer = tiny_byte_bpe(texts, vocab_size=300, max_length=2048)
    built = tiny_llama(tokenizer, max_positions=2048)
    base = save_model(root / "base", built, tokenizer)
    weights = sum(p.numel() * p.element_size() for p in built.parameters())
    adapter = random_lora_adapter(tiny_llama(tokenizer, max_positions=2048), base, root / "adapter")
    return SimpleNamespace(base=base, adapter=adapter, tokenizer=tokenizer, weights=weights)


class ServeProcess:
    """One `studio-engine serve` process, and every line it wrote, with the time each arrived."""

    def __init__(self, workspace: Path, *args: str):
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        self.stderr_path = workspace / "serve.err"
        with open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "--workspace", str(workspace), "serve", *args],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=ROOT, env=env, start_new_session=True)
        self.lines: list[bytes] = []
        self.messages: list[dict] = []
        self.arrived: list[float] = []
        self._new = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._new:
                self.lines.append(line)
                try:
                    self.messages.append(json.loads(line))
                except json.JSONDecodeError:
                    self.messages.append({"type": "not-json", "line": line.decode(errors="replace")})
                self.arrived.append(time.perf_counter())
                self._new.notify_all()
        with self._new:
            self._new.notify_all()

    def send(self, line: dict | str) -> None:
        self.process.stdin.write(((line if isinstance(line, str) else json.dumps(line)) + "\n").encode())
        self.process.stdin.flush()

    def wait(self, predicate, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        with self._new:
            while True:
                found = next((m for m in self.messages if predicate(m)), None)
                if found is not None:
                    return found
                if time.monotonic() > deadline or self.process.poll() is not None and not self._reading():
                    raise AssertionError(f"no such message; last ones: {self.messages[-5:]}; "
                                         f"stderr: {self.stderr_path.read_text()[-3000:]}")
                self._new.wait(0.2)

    def _reading(self) -> bool:
        return not self.process.stdout.closed and self.process.poll() is None

    def answer(self, id, types=("done", "error")) -> dict:
        """The first message of `types` for the request `id` (by default: what ends a generation)."""
        return self.wait(lambda m: m.get("id") == id and m["type"] in types)

    def request(self, id, **fields) -> dict:
        """Sends a request and returns the message that ends it (an `error`, or the answer its op gets)."""
        self.send({"id": id, **fields})
        return self.answer(id, ("error", ANSWERS.get(fields["op"], "error")))

    def of(self, id) -> list[dict]:
        with self._new:
            return [m for m in self.messages if m.get("id") == id]

    def position(self, message: dict) -> int:
        with self._new:
            return next(i for i, m in enumerate(self.messages) if m is message)

    def close(self) -> int:
        if self.process.poll() is None:
            try:
                self.send({"op": "shutdown", "id": "bye"})
                return self.process.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
        return self.process.wait()


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory):
    workspace = tmp_path_factory.mktemp("serve-ws")
    budget = 1.5 * tiny.weights / GIB  # one tiny model fits, two do not
    serve = ServeProcess(workspace, "--device", "cpu", "--memory-budget-gib", f"{budget:.10f}")
    yield serve
    serve.close()


def load_base(server, tiny, id="load-base") -> str:
    loaded = server.request(id, op="load", model={"path": str(tiny.base)})
    assert loaded["type"] == "loaded", loaded
    return loaded["model_id"]


def generate(server, id, model_id, prompt="Reverse the order", **sampling) -> dict:
    server.send({"op": "generate", "id": id, "model_id": model_id, "prompt": prompt, "chat_template": "none",
                 "sampling": {"temperature": 0, **sampling}})
    return server.answer(id)


def test_tokens_stream_one_by_one_before_done(server, tiny):
    ready = server.wait(lambda m: m["type"] == "ready")
    assert ready["v"] == PROTOCOL_VERSION and ready["device"] == "cpu" and "generate" in ready["ops"]
    loaded = server.request("load-1", op="load", model={"path": str(tiny.base)})
    assert loaded["type"] == "loaded" and loaded["model_id"] == "base" and loaded["chat_template"] is True
    assert loaded["memory_bytes"] >= tiny.weights and loaded["adapter"] is None

    done = generate(server, "g1", "base", max_new_tokens=24)
    messages = server.of("g1")
    assert messages[0]["type"] == "started" and messages[-1] is done
    tokens = [m for m in messages if m["type"] == "token"]
    assert [t["index"] for t in tokens] == list(range(len(tokens))) and len(tokens) >= 1
    assert done["tokens"] == len(tokens) + (done["finish"] == "stop") and done["finish"] in ("stop", "length")
    # The token texts add up to the answer; bytes that never formed a character come last, in done only.
    streamed = "".join(t["text"] for t in tokens)
    assert done["text"].startswith(streamed) and set(done["text"][len(streamed):]) <= {"\ufffd"}
    assert done["prompt_tokens"] > 0 and done["ttft_s"] > 0 and done["model_id"] == "base"
    assert done["tokens_per_s"] is None or done["tokens_per_s"] > 0

    # The generate job's greedy decoding of the same prompt gives the same answer.
    reference = direct_answers(tiny, "Reverse the order", [None], max_new_tokens=24)[0]
    assert (done["text"].strip(), done["tokens"], done["finish"]) == reference


def direct_answers(tiny, prompt: str, seeds: list[int | None], **sampling) -> list[tuple[str, int, str]]:
    import torch

    from engine.finetune.rendering import text_ids
    from engine.generate.models import load, stop_ids
    from engine.generate.sampling import generate as sample
    from engine.models import resolve_choice
    from engine.specs.generate import ModelSource, Sampling

    model, tokenizer = load(resolve_choice(ModelSource(path=str(tiny.base)), None, "model"), "cpu", torch.float32,
                            lambda *_: None)
    settings = Sampling(do_sample=seeds[0] is not None, **sampling)
    answers = sample(model, tokenizer, [text_ids(prompt, tokenizer)] * len(seeds), seeds, settings,
                     stop_ids(model, tokenizer, None))
    return [(a.text, a.tokens, a.finish) for a in answers]


def test_cancel_stops_a_streaming_generation(server, tiny):
    model_id = load_base(server, tiny)
    server.send({"op": "generate", "id": "long", "model_id": model_id, "prompt": "cat red sun",
                 "chat_template": "none", "sampling": {"temperature": 0, "max_new_tokens": LONG}})
    server.wait(lambda m: m.get("id") == "long" and m["type"] == "token")
    assert not any(m["type"] == "done" for m in server.of("long")), "the answer came whole, not streamed"
    server.send({"op": "cancel", "id": "long"})
    done = server.answer("long")
    assert done["type"] == "done" and done["finish"] == "cancelled", done
    assert 1 <= done["tokens"] < LONG
    assert len([m for m in server.of("long") if m["type"] == "token"]) <= done["tokens"]

    server.send({"op": "cancel", "id": "long"})
    again = server.answer("long", types=("error",))
    assert "No generation" in again["message"] and "finished already" in again["message"]


def test_bad_requests_get_an_error_and_the_server_keeps_serving(server, tiny, tmp_path):
    absent = tmp_path / "absent-model"
    error = server.request("bad-path", op="load", model={"path": str(absent)})
    assert error["type"] == "error" and str(absent) in error["message"] and "(model.path)" in error["message"]
    assert "does not exist" in error["message"] and error["hint"]

    server.send("{this is not json")
    error = server.wait(lambda m: m["type"] == "error" and m["id"] is None)
    assert "not JSON" in error["message"]
    error = server.request("x", op="fly")
    assert error["type"] == "error" and "'fly'" in error["message"] and "(field op)" in error["message"]
    error = generate(server, "unknown-model", "no-such-model")
    assert error["type"] == "error" and "'no-such-model'" in error["message"] and "Load it" in error["hint"]
    error = server.request("bad-sampling", op="generate", model_id="base", prompt="hi",
                           sampling={"temperature": -1, "max_new_token": 5})
    assert error["type"] == "error" and "sampling.temperature" in error["message"]
    assert "unknown field sampling.max_new_token" in error["message"]
    error = server.request("both", op="generate", model_id="base", prompt="hi", messages=[{"role": "user",
                                                                                          "content": "hi"}])
    assert error["type"] == "error" and "exactly one of prompt" in error["message"]

    model_id = load_base(server, tiny, "reload")
    done = server.request("chat", op="generate", model_id=model_id, sampling={"max_new_tokens": 4, "seed": 1},
                          messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert done["type"] == "done" and 1 <= done["tokens"] <= 4


TOOL_TURNS = [{"role": "user", "content": "Weather in Oslo?"},
              {"role": "assistant", "tool_calls": [{"type": "function", "function": {
                  "name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
              {"role": "tool", "content": "snow"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def test_a_tool_conversation_is_answered_and_bad_tool_turns_are_named(server, tiny):
    model_id = load_base(server, tiny, "load-tools")
    done = server.request("tools", op="generate", model_id=model_id, chat_template="chatml", tools=TOOLS,
                          messages=TOOL_TURNS, sampling={"max_new_tokens": 3, "seed": 1})
    assert done["type"] == "done" and 1 <= done["tokens"] <= 3, done
    unnamed = [TOOL_TURNS[0], {"role": "assistant", "tool_calls": [{"type": "function", "function": {}}]}, TOOL_TURNS[2]]
    error = server.request("unnamed", op="generate", model_id=model_id, chat_template="chatml", messages=unnamed)
    assert error["type"] == "error" and "request 'unnamed', turn 2 of 'messages': call 1 has no function name" in \
        error["message"], error
    error = server.request("no-template", op="generate", model_id=model_id, chat_template="none", tools=TOOLS,
                           messages=TOOL_TURNS)
    assert error["type"] == "error" and "offers tools, which only a chat template can write" in error["message"]


def test_hostile_request_lines_get_an_error_and_the_server_stays_up(server):
    hostile = {
        "huge-id": '{"op": "models", "id": ' + "9" * 5000 + "}",
        "huge-number": '{"op": "generate", "id": "n", "model_id": "base", "prompt": "hi", "sampling": {"seed": '
                       + "7" * 6000 + "}}",
        "deep": '{"op": "models", "id": "deep", "x": ' + "[" * 200000 + "]" * 200000 + "}",
        "deep-id": '{"op": "models", "id": ' + "[" * 200000 + "]" * 200000 + "}",
        "not-utf8": b'{"op": "models", "id": "\xff\xfe"}',
        "too-long": '{"op": "models", "id": "long", "pad": "' + "x" * (17 << 20) + '"}',
    }
    errors_before = len([m for m in server.messages if m["type"] == "error"])
    for name, line in hostile.items():
        server.process.stdin.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
        server.process.stdin.flush()
        answer = server.request(f"after-{name}", op="models")
        assert answer["type"] == "models", (name, answer)
    assert server.process.poll() is None
    errors = [m for m in server.messages if m["type"] == "error"][errors_before:]
    assert len(errors) == len(hostile), errors
    assert all(e["message"] and e["hint"] and "bug" not in e["hint"] for e in errors), errors
    assert any("nested too deeply" in e["message"] for e in errors)
    assert any("longer than" in e["message"] for e in errors)


def test_two_generations_take_turns_and_both_finish(server, tiny):
    model_id = load_base(server, tiny)
    server.send({"op": "generate", "id": "A", "model_id": model_id, "prompt": "cat red sun",
                 "chat_template": "none", "sampling": {"temperature": 0, "max_new_tokens": 300}})
    server.send({"op": "generate", "id": "B", "model_id": model_id, "prompt": "apple tree",
                 "chat_template": "none", "sampling": {"temperature": 0, "max_new_tokens": 8}})
    a, b = server.answer("A"), server.answer("B")
    assert a["type"] == b["type"] == "done" and a["finish"] == "length" and b["tokens"] >= 1
    # B did not wait for A's 300 tokens: it ended while A was still streaming.
    assert server.position(b) < server.position(a)
    a_tokens = [server.position(m) for m in server.of("A") if m["type"] == "token"]
    assert a_tokens[0] < server.position(b) < a_tokens[-1]


def test_seeded_sampling_reproduces_alone_concurrently_and_as_the_generate_job(server, tiny):
    model_id = load_base(server, tiny)
    settings = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "max_new_tokens": 16}

    def ask(id, **extra):
        server.send({"op": "generate", "id": id, "model_id": model_id, "prompt": "cat red sun",
                     "chat_template": "none", "sampling": {**settings, **extra}})

    ask("s1", seed=123)
    ask("s2", seed=123)  # at the same time as s1
    ask("s3", seed=124)
    first, second, other = server.answer("s1"), server.answer("s2"), server.answer("s3")
    assert first["text"] == second["text"] and first["seed"] == 123 and first["text"] != other["text"]
    ask("fresh")
    fresh = server.answer("fresh")
    ask("replay", seed=fresh["seed"])
    assert server.answer("replay")["text"] == fresh["text"]

    reference = direct_answers(tiny, "cat red sun", [123, 124], **settings)
    assert [(d["text"].strip(), d["tokens"], d["finish"]) for d in (first, other)] == reference


def test_least_recently_used_model_is_unloaded_to_stay_within_the_budget(server, tiny):
    base_id = load_base(server, tiny)
    tuned = server.request("load-tuned", op="load", model={"path": str(tiny.base), "adapter": str(tiny.adapter),
                                                          "label": "tuned"})
    assert tuned["type"] == "loaded" and tuned["model_id"] == "tuned" and tuned["adapter"] == str(tiny.adapter)
    evicted = server.wait(lambda m: m.get("id") == "load-tuned" and m["type"] == "unloaded")
    assert evicted == {"type": "unloaded", "id": "load-tuned", "model_id": base_id, "reason": "evicted"}
    listed = server.request("list", op="models")
    assert [m["model_id"] for m in listed["models"]] == ["tuned"]
    assert listed["memory_used_gib"] <= listed["memory_budget_gib"]
    error = generate(server, "gone", base_id)
    assert error["type"] == "error" and "load" in error["hint"].lower()

    # A model that is generating is never unloaded: a load that needs its room is refused.
    server.send({"op": "generate", "id": "busy", "model_id": "tuned", "prompt": "cat", "chat_template": "none",
                 "sampling": {"temperature": 0, "max_new_tokens": LONG}})
    server.wait(lambda m: m.get("id") == "busy" and m["type"] == "token")
    refused = server.request("load-while-busy", op="load", model={"path": str(tiny.base)})
    assert refused["type"] == "error" and "tuned" in refused["message"] and "--memory-budget-gib" in refused["hint"]
    server.send({"op": "cancel", "id": "busy"})
    assert server.answer("busy")["finish"] == "cancelled"

    assert server.request("unload", op="unload", model_id="tuned")["reason"] == "requested"
    assert server.request("empty", op="models")["models"] == []
    # A generate request may name the model to load instead of a loaded model_id.
    server.send({"op": "generate", "id": "auto", "model": {"path": str(tiny.base)}, "prompt": "cat",
                 "sampling": {"max_new_tokens": 3, "seed": 5}})
    done = server.answer("auto")
    assert done["type"] == "done" and server.answer("auto", types=("loaded",))["model_id"] == done["model_id"]


def test_text_deltas_never_split_a_character(tiny):
    from engine.serve.generation import TextDeltas

    text = "héllo wörld → 日本語 ✓ done"
    ids = tiny.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > len(text.split())  # the characters outside the training text take several tokens each
    decoder = TextDeltas(tiny.tokenizer, tiny.tokenizer("Reverse", add_special_tokens=False)["input_ids"])
    deltas = [decoder.add(token) for token in ids] + [decoder.flush()]
    assert "".join(deltas) == text and not any("\ufffd" in d for d in deltas)
    assert "" in deltas  # some tokens completed no character and were held back


def test_shutdown_ends_the_server_and_stdout_held_only_protocol_lines(server):
    assert server.request("stop", op="shutdown")["type"] == "shutdown"
    assert server.process.wait(timeout=30) == 0
    assert server.lines and all(isinstance(json.loads(line), dict) and "type" in json.loads(line)
                                for line in server.lines)
