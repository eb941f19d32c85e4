"""One generation of `serve`: the prompt laid out for its model, transformers' `generate` run with a
streamer that sends each token's text as it comes, a stopping criterion that honours a cancel, and
turns taken with the other generations.

Fairness: each generation runs `generate` in its own worker thread, and the threads take turns,
one decoding step each, in the order they asked (`Turns`): two answers stream side by side and a
long one never holds back a short one for its whole length. With one generation alone, taking a
turn costs a lock. Steps are not batched together, which keeps each answer exactly what the same
seed gives alone (docs/protocol.md); batching would raise throughput with many users, which a
playground does not have.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

from engine.errors import DataError
from engine.finetune.formats import parse_turns
from engine.finetune.tool_calls import normalise_tools
from engine.generate.prompts import Prompt, prompt_token_ids
from engine.generate.sampling import SeededSampler
from engine.models import model_positions
from engine.serve.models import LoadedModel
from engine.serve.protocol import GenerateRequest, MessageWriter


@dataclass
class Generation:
    """A generate request from the moment it is read until its `done` (or `error`)."""

    request: GenerateRequest
    received: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)


class Turns:
    """Lets one generation run a decoding step at a time; the others wait in the order they asked."""

    def __init__(self):
        self._changed = threading.Condition()
        self._waiting: deque[object] = deque()
        self._holder: object | None = None

    def take(self, who: object) -> None:
        with self._changed:
            self._waiting.append(who)
            while self._holder is not None or self._waiting[0] is not who:
                self._changed.wait()
            self._waiting.popleft()
            self._holder = who

    def give_back(self, who: object) -> None:
        with self._changed:
            if self._holder is who:
                self._holder = None
                self._changed.notify_all()

    def pass_on(self, who: object) -> None:
        """Between two steps: let whoever waits go first, then queue again."""
        with self._changed:
            if not self._waiting:
                return
        self.give_back(who)
        self.take(who)


class TextDeltas:
    """Turns token ids into text deltas that never end inside a character: the text a token adds is
    held back while it decodes to an incomplete one (U+FFFD). Decoding starts a few prompt tokens
    back, so a tokenizer that drops a leading space at the start of a text decodes it right."""

    def __init__(self, tokenizer, prompt_ids: list[int]):
        self.tokenizer = tokenizer
        self.ids = list(prompt_ids[-5:])
        self.prefix = 0  # start of the window decoded for context
        self.read = len(self.ids)  # tokens whose text has been sent

    def add(self, token: int) -> str:
        self.ids.append(token)
        return self._delta(final=False)

    def flush(self) -> str:
        """What is left at the end (an incomplete character, as U+FFFD)."""
        return self._delta(final=True) if self.read < len(self.ids) else ""

    def _delta(self, final: bool) -> str:
        decode = self.tokenizer.decode
        before = decode(self.ids[self.prefix:self.read], skip_special_tokens=True)
        after = decode(self.ids[self.prefix:], skip_special_tokens=True)
        if (len(after) > len(before) and not after.endswith("\ufffd")) or final:
            self.prefix, self.read = self.read, len(self.ids)
            return after[len(before):]
        return ""


class CancelCriterion(StoppingCriteria):
    def __init__(self, cancelled: threading.Event):
        self.cancelled = cancelled

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        return torch.full((input_ids.shape[0],), self.cancelled.is_set(), dtype=torch.bool, device=input_ids.device)


class TokenStream(BaseStreamer):
    """Receives each new token from `generate` (after the prompt, which comes first): sends its text
    delta, notes the times, and passes the turn."""

    def __init__(self, generation: Generation, writer: MessageWriter, decoder: TextDeltas, stops: list[int],
                 turns: Turns):
        self.generation, self.writer, self.decoder, self.stops, self.turns = generation, writer, decoder, stops, turns
        self.prompt_seen = False
        self.tokens = 0
        self.text: list[str] = []
        self.stopped = False
        self.first: float | None = None
        self.last: float | None = None

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        for token in value.reshape(-1).tolist():
            self.last = time.perf_counter()
            self.first = self.first or self.last
            index, self.tokens = self.tokens, self.tokens + 1
            if token in self.stops:
                self.stopped = True
                continue
            if self.generation.cancelled.is_set():
                continue
            delta = self.decoder.add(token)
            self.text.append(delta)
            self.writer.send("token", self.generation.request.id, text=delta, index=index)
        self.turns.pass_on(self.generation)

    def end(self) -> None:
        self.text.append(self.decoder.flush())


def prompt_ids(request: GenerateRequest, loaded: LoadedModel, template: str | None) -> list[int]:
    """The prompt's token ids as the generate job lays them out (engine/generate/prompts.py)."""
    where = f"request {request.id!r}"
    if request.prompt is not None:
        messages = [{"role": "user", "content": request.prompt}]
    else:  # read as fine-tuning reads a conversation, tool turns included
        messages = parse_turns([m.model_dump(exclude_none=True) for m in request.messages], where, "messages",
                               sharegpt=False, tools=True)
    spoken = [m for m in messages if m["role"] != "system"]
    text = spoken[0]["content"] if len(spoken) == 1 else "\n\n".join(
        f"{m['role'].capitalize()}: {m['content']}" for m in spoken)
    prompt = Prompt(id=str(request.id), text=text, messages=messages, where=where,
                    tools=normalise_tools(request.tools, f"{where}, tools"))
    return prompt_token_ids(prompt, loaded.tokenizer, template)


@torch.no_grad()
def run_generation(generation: Generation, loaded: LoadedModel, writer: MessageWriter, turns: Turns,
                   log: Callable[[str, str], None]) -> dict[str, Any]:
    """Generate the answer, streaming it; returns the fields of the `done` message."""
    # Everything that touches the tokenizer happens during this generation's turns: a fast tokenizer
    # shared by threads must not encode in one while it decodes in another.
    turns.take(generation)
    try:
        return _generate(generation, loaded, writer, turns, log)
    finally:
        turns.give_back(generation)


def _generate(generation: Generation, loaded: LoadedModel, writer: MessageWriter, turns: Turns,
              log: Callable[[str, str], None]) -> dict[str, Any]:
    request, sampling = generation.request, generation.request.sampling
    template, stops = loaded.layout(request.chat_template, log)
    ids = prompt_ids(request, loaded, template)
    context = model_positions(loaded.model.config)
    if context and len(ids) >= context:
        raise DataError(f"The prompt is {len(ids)} tokens long; {loaded.model_id} reads at most {context} "
                        f"(prompt or messages).", "Shorten the prompt or the conversation.")
    seed = sampling.seed if sampling.seed is not None else secrets.randbelow(2**31)
    started = time.perf_counter()
    writer.send("started", request.id, model_id=loaded.model_id, prompt_tokens=len(ids), seed=seed,
                queued_s=round(started - generation.received, 4))
    stream = TokenStream(generation, writer, TextDeltas(loaded.tokenizer, ids), stops, turns)
    if not generation.cancelled.is_set():
        device = next(loaded.model.parameters()).device
        pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else (stops or [0])[0]
        loaded.model.generate(
            input_ids=torch.tensor([ids], device=device),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
            max_new_tokens=min(sampling.max_new_tokens, context - len(ids)) if context else sampling.max_new_tokens,
            do_sample=False, repetition_penalty=sampling.repetition_penalty, eos_token_id=stops or None,
            pad_token_id=pad, streamer=stream,
            logits_processor=LogitsProcessorList([SeededSampler([seed], sampling)] if sampling.do_sample else []),
            stopping_criteria=StoppingCriteriaList([CancelCriterion(generation.cancelled)]))
    finish = "cancelled" if generation.cancelled.is_set() else "stop" if stream.stopped else "length"
    decode_s = (stream.last - stream.first) if stream.first is not None else None
    return {"model_id": loaded.model_id, "text": "".join(stream.text), "tokens": stream.tokens,
            "prompt_tokens": len(ids), "finish": finish, "seed": seed,
            "queued_s": round(started - generation.received, 4),
            "ttft_s": None if stream.first is None else round(stream.first - generation.received, 4),
            "tokens_per_s": round((stream.tokens - 1) / decode_s, 2) if decode_s else None,
            "total_s": round(time.perf_counter() - generation.received, 4)}
