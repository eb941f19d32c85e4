"""Render normalised records with a chat template into token ids and labels for causal-LM training.

Loss on responses only works with any chat template, without `{% generation %}` markers: the
conversation is rendered up to each assistant turn with the generation prompt and up to the end
of that turn; the difference is the turn's text (its answer and end-of-turn marker, so the model
learns to stop). The whole conversation is tokenized once, with character offsets, and the
tokens inside those spans are labelled; all others get -100. The ids trained on are therefore
exactly the tokenization of the rendered text, as `apply_chat_template(tokenize=True)` gives it.

Two adjustments keep training and generation consistent:
- a template that ends a turn with no marker (the `plain` preset) gets the eos token after each
  answer, so that generation stops;
- a bos token is put first when the tokenizer puts one before any text it encodes and the
  template did not write it (models pretrained here always saw one there).

A template for which the prefix property fails (the conversation rendered up to a turn is not the
start of the whole rendering, as with templates that rewrite earlier turns) gets loss on every
token for that record, flagged in `Rendered.fallback` and counted by `render_records`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.errors import DataError, TokenizerError
from engine.specs.chat import CHAT_PRESETS

IGNORE = -100  # the label PyTorch's cross-entropy skips


@dataclass
class Rendered:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss
    truncated: bool
    length_before: int  # tokens before truncation
    fallback: bool = False  # the template broke the prefix property: loss on every token


@dataclass
class RenderStats:
    """What `render_records` did, for the run's log and report."""

    records: int = 0  # records given
    kept: int = 0
    truncated: int = 0  # longer than max_length and cut to it
    dropped_too_long: int = 0  # longer than max_length and dropped (overflow: drop)
    dropped_no_answer: int = 0  # no trained token left (the answer was cut off by truncation)
    fallback: int = 0  # trained on every token: the template rewrites earlier turns
    longest: int = 0  # tokens in the longest record, before truncation


@dataclass(frozen=True)
class TurnMask:
    """Which turns of a conversation the loss leaves out, besides what loss_on says.

    turns "last" trains only the last assistant answer (the earlier ones are context); mask_system
    leaves the leading system turn(s) out when loss_on is "all" (with loss_on "responses" only the
    answers are trained anyway). A message with `"train": False` is never trained."""

    turns: str = "all"
    mask_system: bool = False


def turn_mask(data: Any) -> TurnMask:
    """The TurnMask of a spec's data block (its `turns` and `mask_system`)."""
    return TurnMask(turns=data.turns, mask_system=data.mask_system)


@dataclass
class _Layout:
    text: str
    spans: list[tuple[int, int]] = field(default_factory=list)  # character spans of every answer
    trained: list[bool] = field(default_factory=list)  # per answer: whether it is trained
    masked: list[tuple[int, int]] = field(default_factory=list)  # spans loss_on "all" leaves out
    train_all: bool = False
    fallback: bool = False


def template_choice(tokenizer: Any, choice: str) -> str:
    """`choice` as it applies to this tokenizer: "auto" is "model" when the tokenizer has a chat
    template of its own, else "chatml" (a base model learns that layout while it is fine-tuned)."""
    if choice != "auto":
        return choice
    return "model" if _own_template(tokenizer) else "chatml"


def _own_template(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):  # named templates: the default one is for chat
        template = template.get("default")
    return template or None


def chat_template(tokenizer: Any, choice: str) -> str:
    """The Jinja chat template for `choice`: "auto" (see `template_choice`), "model" (the tokenizer's
    own), "chatml" or "plain".

    Raises TokenizerError when "model" is asked of a tokenizer without a template. The text
    format needs no template: do not call this for it.
    """
    choice = template_choice(tokenizer, choice)
    if choice in CHAT_PRESETS:
        return CHAT_PRESETS[choice][0]
    if choice != "model":
        raise ValueError(f"unknown chat template choice {choice!r}")
    template = _own_template(tokenizer)
    if not template:
        raise TokenizerError(
            "The base model's tokenizer has no chat template, so conversations cannot be laid out the way "
            "the model expects.",
            "Set data.chat_template to auto, chatml or plain (auto and chatml use ChatML, its markers added as "
            "special tokens), or use an instruction-tuned base model that has a template.")
    return template


def add_marker_tokens(tokenizer: Any, choice: str) -> int:
    """Add the markers of the preset `choice` ("auto" as `template_choice` reads it; chatml's `<|im_start|>`, `<|im_end|>`) to `tokenizer`
    as special tokens where it lacks them; returns how many new ids were added.

    When the result is above 0 the model's embeddings must be resized to `len(tokenizer)`
    (`model.resize_token_embeddings(len(tokenizer))`), and trained (LoRA: `modules_to_save`), since
    the new rows start untrained. Set `tokenizer.chat_template` too before saving the tokenizer.
    """
    choice = template_choice(tokenizer, choice)
    markers = CHAT_PRESETS[choice][1] if choice in CHAT_PRESETS else []
    missing = [m for m in markers if m not in tokenizer.added_tokens_encoder]
    return tokenizer.add_tokens(missing, special_tokens=True) if missing else 0


def render(record: dict, tokenizer: Any, template: str | None, loss_on: str, max_length: int,
           overflow: str, mask: TurnMask = TurnMask()) -> Rendered | None:
    """Token ids and labels of one normalised record ({"messages"} or {"text"}).

    loss_on "responses" labels the assistant turns only (text records are always trained on
    whole); "all" labels every token; either leaves out what `mask` says. A record longer than
    max_length is cut to it (overflow "truncate") or gives None (overflow "drop").
    """
    return _fit(_render_whole(record, tokenizer, template, loss_on, mask), max_length, overflow)


def render_records(records: list[dict], tokenizer: Any, template: str | None, loss_on: str, max_length: int,
                   overflow: str, mask: TurnMask = TurnMask()) -> tuple[list[Rendered], RenderStats]:
    """`render` every record, dropping those left with nothing to learn, and count what happened."""
    stats = RenderStats(records=len(records))
    kept = []
    for record in records:
        whole = _render_whole(record, tokenizer, template, loss_on, mask)
        stats.longest = max(stats.longest, whole.length_before)
        rendered = _fit(whole, max_length, overflow)
        if rendered is None:
            stats.dropped_too_long += 1
            continue
        if all(label == IGNORE for label in rendered.labels):
            stats.dropped_no_answer += 1
            continue
        stats.truncated += rendered.truncated
        stats.fallback += rendered.fallback
        kept.append(rendered)
    stats.kept = len(kept)
    return kept, stats


def generation_prompt(record: dict, tokenizer: Any, template: str | None) -> str | None:
    """The conversation before its last assistant turn, ending with the generation prompt: what
    the model is given to produce the record's `reference`. None for text records.

    It is the start of the text training sees (with eos after earlier answers where the template
    has no end-of-turn marker). Tokenize it with `prompt_ids` to match how training encoded it.
    """
    if "messages" not in record:
        return None
    layout = _layout(record, tokenizer, template)
    if not layout.fallback:
        return layout.text[:layout.spans[-1][0]]
    messages = record["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return _apply(tokenizer, template, messages[:last], True, record) if last else ""


def prompt_ids(record: dict, tokenizer: Any, template: str | None) -> list[int] | None:
    """The token ids of `generation_prompt`, encoded as training encodes; None for text records."""
    prompt = generation_prompt(record, tokenizer, template)
    if prompt is None:
        return None
    return _bos(tokenizer, prompt) + tokenizer(prompt, add_special_tokens=False)["input_ids"]


def text_ids(text: str, tokenizer: Any) -> list[int]:
    """The token ids of plain text (no chat template) as training encodes it: bos first when the
    tokenizer starts every text with one, and no eos, so that generation continues the text."""
    return _bos(tokenizer, text) + tokenizer(text, add_special_tokens=False)["input_ids"]


def stop_token_ids(tokenizer: Any, template: str | None) -> list[int]:
    """Ids that end an answer: eos, and the template's end-of-turn marker when it is one token
    (chatml's `<|im_end|>`). Pass them to `generate(eos_token_id=...)`."""
    stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    if template is None:
        return stops
    probe = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]}
    try:
        prefix = _apply(tokenizer, template, probe["messages"][:1], True, probe)
        turn = _apply(tokenizer, template, probe["messages"], False, probe)[len(prefix):]
    except DataError:
        return stops
    marker = turn[turn.rfind("y") + 1:].strip()
    ids = tokenizer(marker, add_special_tokens=False)["input_ids"] if marker else []
    if len(ids) == 1 and ids[0] not in stops:
        stops.append(ids[0])
    return stops


def preview(record: dict, tokenizer: Any, template: str | None, loss_on: str, max_length: int,
            mask: TurnMask = TurnMask()) -> dict:
    """How one record renders, for display: {"text", "tokens": [{"text", "id", "trained"}],
    "length" (tokens before truncation), "truncated"}. "text" is what the tokens spell, bos
    included; tokens past max_length are left out of "tokens" (training never sees them)."""
    layout = _layout(record, tokenizer, template, mask, loss_on)
    ids, offsets = _encode(layout.text, tokenizer)
    labels = _labels(ids, offsets, layout, loss_on)
    tokens, seen = [], 0
    for token_id, offset, label in zip(ids, offsets, labels):
        if offset is None:  # the bos put first: not in the template's text
            piece = tokenizer.convert_ids_to_tokens(token_id)
        else:
            # Metaspace tokenizers give a lone "▁" the offsets of the character after it: each
            # character is shown once, with the first token that covers it.
            piece = layout.text[max(offset[0], seen):offset[1]]
            seen = max(seen, offset[1])
        tokens.append({"text": piece, "id": token_id, "trained": label != IGNORE})
    leading = "".join(t["text"] for t, o in zip(tokens, offsets) if o is None)
    return {"text": leading + layout.text, "tokens": tokens[:max_length], "length": len(ids),
            "truncated": len(ids) > max_length}


def _render_whole(record: dict, tokenizer: Any, template: str | None, loss_on: str, mask: TurnMask) -> Rendered:
    layout = _layout(record, tokenizer, template, mask, loss_on)
    ids, offsets = _encode(layout.text, tokenizer)
    return Rendered(ids, _labels(ids, offsets, layout, loss_on), truncated=False, length_before=len(ids),
                    fallback=layout.fallback and loss_on == "responses")


def _fit(rendered: Rendered, max_length: int, overflow: str) -> Rendered | None:
    if rendered.length_before <= max_length:
        return rendered
    if overflow == "drop":
        return None
    return Rendered(rendered.input_ids[:max_length], rendered.labels[:max_length], truncated=True,
                    length_before=rendered.length_before, fallback=rendered.fallback)


def _layout(record: dict, tokenizer: Any, template: str | None, mask: TurnMask = TurnMask(),
            loss_on: str = "responses") -> _Layout:
    """The text to tokenize, the character spans of the answers in it (and which are trained), and
    the spans loss_on "all" leaves out."""
    if "messages" not in record:
        text = record["text"]
        if _eos_is_one_token(tokenizer) and not text.endswith(tokenizer.eos_token):
            text += tokenizer.eos_token
        return _Layout(text, train_all=True)

    messages = record["messages"]
    full = _apply(tokenizer, template, messages, False, record)
    answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    spans: list[tuple[int, int, bool]] = []  # start, end, whether eos goes at the end
    for i in answers:
        message = messages[i]
        prefix = _apply(tokenizer, template, messages[:i], True, record) if i else ""
        upto = _apply(tokenizer, template, messages[:i + 1], False, record)
        if not (upto.startswith(prefix) and full.startswith(upto)):
            return _Layout(full, train_all=True, fallback=True)
        turn = upto[len(prefix):]
        _check_calls_written(message, turn, record)
        end = len(prefix) + len(turn.rstrip())  # the newline after a turn's marker belongs to the next turn
        content = (message.get("content") or "").strip()
        at = turn.rfind(content) if content and not message.get("tool_calls") else -1
        markerless = at >= 0 and not turn[at + len(content):].strip() and _eos_is_one_token(tokenizer)
        if markerless:
            end = len(prefix) + at + len(content)
        spans.append((len(prefix), end, markerless))
    _check_tools_written(record, full)
    trained = [messages[i].get("train", True) is not False and (mask.turns != "last" or i == answers[-1])
               for i in answers]

    masked = [(s, e) for (s, e, _), kept in zip(spans, trained) if not kept]
    if loss_on == "all":
        for i, message in enumerate(messages):
            leading_system = message["role"] == "system" and all(m["role"] == "system" for m in messages[:i])
            if message["role"] != "assistant" and (message.get("train") is False or
                                                   (mask.mask_system and leading_system)):
                span = _turn_span(tokenizer, template, messages, i, full, record)
                if span is None:
                    return _Layout(full, train_all=True, fallback=True)
                masked.append(span)

    # Put eos after each marker-less answer, shifting what follows.
    inserted = [end for _, end, markerless in spans if markerless]
    n = len(tokenizer.eos_token) if inserted else 0
    text = full
    for at in reversed(inserted):
        text = text[:at] + tokenizer.eos_token + text[at:]

    def shifted(start: int, end: int) -> tuple[int, int]:
        return start + n * sum(p <= start for p in inserted), end + n * sum(p <= end for p in inserted)

    return _Layout(text, [shifted(s, e) for s, e, _ in spans], trained, [shifted(s, e) for s, e in masked])


def _turn_span(tokenizer: Any, template: str | None, messages: list[dict], i: int, full: str,
               record: dict) -> tuple[int, int] | None:
    """The character span of message `i` (not an answer) in `full`, or None when the template
    rewrites earlier turns so that it cannot be told apart."""
    prefix = _apply(tokenizer, template, messages[:i], False, record) if i else ""
    upto = _apply(tokenizer, template, messages[:i + 1], False, record)
    if not (upto.startswith(prefix) and full.startswith(upto)):
        return None
    return len(prefix), len(upto.rstrip())


_NO_TOOLS_HINT = ("Set data.chat_template to chatml (a built-in template that writes tools), or use a model whose "
                  "own chat template supports tools (the llama3 preset a tokenizer run can set does too).")


def _check_calls_written(message: dict, turn: str, record: dict) -> None:
    """Refuse a template that drops an answer's tool calls: the model would learn to answer without them."""
    for call in message.get("tool_calls") or []:
        if call["function"]["name"] not in turn:
            raise DataError(f"{record.get('where', 'a record')}: the chat template does not write the tool call "
                            f"'{call['function']['name']}' of an assistant turn, so it cannot be learned.",
                            _NO_TOOLS_HINT)


def _check_tools_written(record: dict, full: str) -> None:
    """Refuse a template that drops the tool definitions or results: calls would be learned blind."""
    where = record.get("where", "a record")
    for tool in record.get("tools") or []:
        if tool["function"]["name"] not in full:
            raise DataError(f"{where}: the chat template does not write the tool definitions (the tool "
                            f"'{tool['function']['name']}' is missing from the rendered conversation).",
                            _NO_TOOLS_HINT)
    for message in record["messages"]:
        if message["role"] == "tool" and message["content"].strip() not in full:
            raise DataError(f"{where}: the chat template does not write the tool results (role 'tool').",
                            _NO_TOOLS_HINT)


def _encode(text: str, tokenizer: Any) -> tuple[list[int], list[tuple[int, int] | None]]:
    if not getattr(tokenizer, "is_fast", False):
        raise TokenizerError("The tokenizer has no fast (tokenizers) version, which fine-tuning needs to find "
                             "the answer tokens.",
                             "Use a model whose folder has a tokenizer.json.")
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    bos = _bos(tokenizer, text)
    return bos + list(encoded["input_ids"]), [None] * len(bos) + [tuple(o) for o in encoded["offset_mapping"]]


def _labels(ids: list[int], offsets: list[tuple[int, int] | None], layout: _Layout, loss_on: str) -> list[int]:
    if layout.train_all:
        return list(ids)
    if loss_on == "all":
        return [IGNORE if offset is not None and any(s <= offset[0] < e for s, e in layout.masked) else token_id
                for token_id, offset in zip(ids, offsets)]
    trained = [span for span, kept in zip(layout.spans, layout.trained) if kept]
    labels = []
    for token_id, offset in zip(ids, offsets):
        inside = offset is not None and offset[1] > offset[0] and any(s <= offset[0] < e for s, e in trained)
        labels.append(token_id if inside else IGNORE)
    return labels


def _bos(tokenizer: Any, text: str) -> list[int]:
    """[bos id] when the tokenizer starts every text with bos and `text` does not already."""
    bos = tokenizer.bos_token
    if bos is None or text.startswith(bos):
        return []
    with_specials = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    return [tokenizer.bos_token_id] if with_specials[:1] == [tokenizer.bos_token_id] != without[:1] else []


def _eos_is_one_token(tokenizer: Any) -> bool:
    eos = tokenizer.eos_token
    return bool(eos) and tokenizer(eos, add_special_tokens=False)["input_ids"] == [tokenizer.eos_token_id]


def _apply(tokenizer: Any, template: str | None, messages: list[dict], generation: bool, record: dict) -> str:
    try:
        return tokenizer.apply_chat_template(messages, tools=record.get("tools"), chat_template=template,
                                             tokenize=False, add_generation_prompt=generation)
    except Exception as e:  # noqa: BLE001 - templates raise their own errors (roles must alternate, …)
        where = record.get("where", "a record")
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{where}: the chat template cannot lay out this conversation: {message}",
                        "Check the order of the roles (most templates want user and assistant to alternate, "
                        "with at most one system message first), or set data.chat_template to chatml.") from None
