"""The messages of `studio-engine serve` (docs/protocol.md, "serve"): requests read from stdin, one
JSON object a line, checked here; responses written to stdout by `MessageWriter`.

Every request has an `op` and an `id` chosen by the client; every response to it echoes the `id`.
Unknown fields are errors, as in job specs: a typo (`max_new_token`) must not fall back silently to
a default. Import-light (pydantic only): the studio builds its requests with these models.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated, Any, Literal, TextIO

from pydantic import Field, StrictInt, StrictStr, ValidationError, model_validator

from engine.protocol import encode, has_lone_surrogates
from engine.specs.base import StrictModel
from engine.specs.chat import PROMPT_TEMPLATE_CHOICES, PromptTemplateChoice
from engine.specs.generate import ModelSource

RequestId = Annotated[StrictStr | StrictInt, Field(description="Chosen by the client; echoed by every response.")]
CHAT_TEMPLATES = PROMPT_TEMPLATE_CHOICES
DOCS = "docs/protocol.md (serve) lists every request and field."


class RequestError(Exception):
    """A request the server cannot act on: `message` says what is wrong and where, `hint` what to do."""

    def __init__(self, message: str, hint: str = "", id: Any = None):
        super().__init__(message)
        self.message, self.hint, self.id = message, hint, id


class Message(StrictModel):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[dict[str, Any]] | None = Field(
        None, description="An assistant's calls, OpenAI's spelling: {type: function, function: {name, arguments}}.")
    tool_call_id: str | None = Field(None, description="A tool turn: the call it answers.")


class ServeSampling(StrictModel):
    """How tokens are drawn. The same seed, model, prompt and settings give the same text."""

    temperature: float = Field(0.8, ge=0.0, le=10.0, description="0 = greedy (always the likeliest token).")
    top_p: float = Field(0.95, gt=0.0, le=1.0)
    top_k: int = Field(50, ge=0, le=1_000_000, description="0 = no limit.")
    repetition_penalty: float = Field(1.0, ge=0.5, le=5.0)
    max_new_tokens: int = Field(256, ge=1, le=32768)
    seed: int | None = Field(None, ge=0, le=2**32 - 1,
                             description="Empty = a fresh seed, reported in `done` so the answer can be reproduced.")

    @property
    def do_sample(self) -> bool:
        return self.temperature > 0


class LoadRequest(StrictModel):
    op: Literal["load"]
    id: RequestId
    model: ModelSource


class GenerateRequest(StrictModel):
    op: Literal["generate"]
    id: RequestId
    model_id: str | None = Field(None, description="A loaded model (the `model_id` of `loaded`).")
    model: ModelSource | None = Field(None, description="A model to load first when it is not loaded yet.")
    prompt: str | None = None
    messages: list[Message] | None = Field(None, min_length=1)
    sampling: ServeSampling = Field(default_factory=ServeSampling)
    chat_template: PromptTemplateChoice = "auto"
    tools: list[dict[str, Any]] | None = Field(
        None, description="Tool definitions the chat template writes before the conversation (OpenAI's "
                          "{type: function, function: {name, description, parameters}}).")

    @model_validator(mode="after")
    def _one_of_each(self) -> GenerateRequest:
        if (self.model_id is None) == (self.model is None):
            raise ValueError("give exactly one of model_id (a loaded model) and model (a model to load)")
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of prompt (text) and messages (a conversation)")
        if self.messages is not None and self.messages[-1].role not in ("user", "tool"):
            raise ValueError(f"messages must end with the user's turn (or a tool's result), the one the model "
                             f"answers (the last is {self.messages[-1].role})")
        return self


class CancelRequest(StrictModel):
    op: Literal["cancel"]
    id: RequestId = Field(description="The id of the generation to stop.")


class UnloadRequest(StrictModel):
    op: Literal["unload"]
    id: RequestId
    model_id: str


class ModelsRequest(StrictModel):
    op: Literal["models"]
    id: RequestId


class ShutdownRequest(StrictModel):
    op: Literal["shutdown"]
    id: RequestId


Request = LoadRequest | GenerateRequest | CancelRequest | UnloadRequest | ModelsRequest | ShutdownRequest
REQUESTS: dict[str, type[StrictModel]] = {
    "load": LoadRequest, "generate": GenerateRequest, "cancel": CancelRequest, "unload": UnloadRequest,
    "models": ModelsRequest, "shutdown": ShutdownRequest,
}


MAX_REQUEST_BYTES = 16 << 20  # a request line longer than this is refused, never held in memory


def parse_request(line: bytes | str) -> Request | None:
    """The request on one line (None for a blank line); RequestError naming the field otherwise."""
    if len(line) > MAX_REQUEST_BYTES:
        raise RequestError(f"A request line is longer than {MAX_REQUEST_BYTES:,} bytes.",
                           "Send shorter prompts (or fewer messages). " + DOCS)
    try:
        text = line.decode("utf-8") if isinstance(line, bytes) else line
    except UnicodeDecodeError as e:
        raise RequestError(f"A request line is not UTF-8 text (byte {e.start}).", "Send requests as UTF-8 JSON.")
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RequestError(f"A request line is not JSON ({e.msg} at column {e.colno}): {text.strip()[:120]}",
                           "Send one JSON object per line. " + DOCS) from None
    except RecursionError:
        raise RequestError("A request line is nested too deeply to be a request.",
                           "Send one flat JSON object per line. " + DOCS) from None
    except ValueError as e:  # an integer of thousands of digits
        raise RequestError(f"A request line holds a value this server does not read ({e}).",
                           "Ids and numbers are at most a few digits long. " + DOCS) from None
    if not isinstance(data, dict):
        raise RequestError(f"A request must be a JSON object, not {type(data).__name__}.",
                           'Send {"op": ..., "id": ..., ...}. ' + DOCS)
    if "\\ud" in text.lower() and has_lone_surrogates(data):
        raise RequestError("A request holds a \\u escape of half a character (a lone surrogate), which is not text.",
                           "Escape characters outside the basic plane as surrogate pairs, or send them as UTF-8. " + DOCS)
    request_id = data.get("id")
    if not isinstance(request_id, (str, int)) or isinstance(request_id, bool):
        given = "no id" if request_id is None else f"the id {json.dumps(request_id)[:60]}"
        raise RequestError(f"The request has {given} (field id): {text.strip()[:120]}",
                           "Give every request an id, a string or an integer; the answers carry it.")
    op = data.get("op")
    if not isinstance(op, str) or op not in REQUESTS:
        what = "has no op" if op is None else f"has an unknown op {repr(op)[:60]}"
        raise RequestError(f"The request {what} (field op).", f"op is one of {', '.join(REQUESTS)}. " + DOCS,
                           request_id)
    try:
        return REQUESTS[op].model_validate(data)
    except ValidationError as e:
        raise RequestError(f"{op} request: {'; '.join(_describe(err, op) for err in e.errors())}.",
                           "Fix the field and send the request again. " + DOCS, request_id) from None


def _describe(error: dict, op: str) -> str:
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown field {where}"
    if error["type"] == "missing":
        return f"{where} is missing"
    given = f" (got {json.dumps(error['input'])[:60]})" if error["type"] != "value_error" else ""
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}{given}" if where else message


class MessageWriter:
    """Writes responses, one JSON object a line, from any thread; stops writing (and reports it
    through `closed`) when the reader went away."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._lock = threading.Lock()
        self.closed = threading.Event()

    def send(self, type: str, id: Any = None, **fields: Any) -> None:
        line = encode({"type": type, "id": id, **fields}) + "\n"
        with self._lock:
            if self.closed.is_set():
                return
            try:
                self._stream.write(line)
                self._stream.flush()
            except (BrokenPipeError, OSError, ValueError):
                self.closed.set()

    def error(self, error: RequestError | Exception, id: Any = None) -> None:
        message = getattr(error, "message", None) or str(error) or type(error).__name__
        self.send("error", getattr(error, "id", None) if id is None else id, message=message,
                  hint=getattr(error, "hint", ""))
