"""The Ollama Modelfile of an export: FROM the GGUF file, the chat template as Ollama's Go template,
the stop tokens and the sampling parameters.

Ollama templates are Go templates, chat templates Jinja; no library translates one into the other.
So the Jinja template is rendered (by transformers' apply_chat_template) on conversations of
placeholder words, and the text around each placeholder becomes the literal text of a Go template
over `.Messages`. The result is rendered back, by the same pieces, on a conversation of four turns
and compared with the Jinja rendering: a template the pieces do not reproduce (one that treats the
first turn or the last one differently, say) gets no TEMPLATE line, and Ollama falls back on the
chat template inside the GGUF file (it recognises the common ones). `template_note` says which.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.specs.export import OllamaSettings

SYSTEM, USER, ASSISTANT, AGAIN = "ATELIERSYSTEMTEXT", "ATELIERUSERTEXT", "ATELIERASSISTANTTEXT", "ATELIERAGAINTEXT"


@dataclass
class TemplatePieces:
    """The literal text of a chat template around each message, by role."""

    head: str  # once, before the first message
    system: tuple[str, str] | None  # before and after a system message; None: the template refuses one
    user: tuple[str, str]
    assistant: tuple[str, str]
    generation: str  # after the last message, where the answer starts

    def render(self, messages: list[dict]) -> str:
        parts = [self.head]
        for message in messages:
            before, after = getattr(self, message["role"])
            parts += [before, message["content"], after]
        return "".join(parts) + self.generation

    def go_template(self) -> str:
        branches = [f'{{{{ if eq .Role "user" }}}}{self.user[0]}{{{{ .Content }}}}{self.user[1]}',
                    f'{{{{ else if eq .Role "assistant" }}}}{self.assistant[0]}{{{{ .Content }}}}{self.assistant[1]}']
        if self.system is not None:
            branches.append(f'{{{{ else if eq .Role "system" }}}}{self.system[0]}{{{{ .Content }}}}{self.system[1]}')
        return f"{self.head}{{{{ range .Messages }}}}{''.join(branches)}{{{{ end }}}}{{{{ end }}}}{self.generation}"


def _render(tokenizer, template: str, messages: list[dict], generation: bool) -> str | None:
    try:
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=generation)
    except Exception:  # noqa: BLE001 - a template raises its own errors (no system role, roles must alternate)
        return None


def _around(text: str | None, prefix: str, word: str) -> tuple[str, str] | None:
    if text is None or not text.startswith(prefix) or text.count(word) != 1:
        return None
    before, after = text[len(prefix):].split(word)
    return before, after


def template_pieces(tokenizer, template: str) -> TemplatePieces | None:
    """The pieces of `template`, or None when it is not one of text around each message."""
    user, answer = {"role": "user", "content": USER}, {"role": "assistant", "content": ASSISTANT}
    asked = _render(tokenizer, template, [user], False)
    answered = _render(tokenizer, template, [user, answer], False)
    again = _render(tokenizer, template, [user, answer, {"role": "user", "content": AGAIN}], False)
    prompted = _render(tokenizer, template, [user], True)
    if None in (asked, answered, again, prompted) or not again.startswith(answered) or not prompted.startswith(asked):
        return None
    # A second user turn shows the text around a user message alone; what comes before the first
    # one besides that is written once, at the head (a bos token).
    user_piece = _around(again, answered, AGAIN)
    if user_piece is None or asked.count(USER) != 1 or not asked[:asked.index(USER)].endswith(user_piece[0]):
        return None
    head = asked[:asked.index(USER) - len(user_piece[0])]
    if _around(asked, head, USER) != user_piece:
        return None
    assistant_piece = _around(answered, asked, ASSISTANT)
    if assistant_piece is None:
        return None
    with_system = _render(tokenizer, template, [{"role": "system", "content": SYSTEM}, user], False)
    system_piece = None
    if with_system is not None and with_system.endswith(asked[len(head):]):
        system_piece = _around(with_system[:len(with_system) - len(asked) + len(head)], head, SYSTEM)
    pieces = TemplatePieces(head, system_piece, user_piece, assistant_piece, prompted[len(asked):])
    conversation = ([{"role": "system", "content": "Be brief."}] if system_piece else []) + [
        {"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there."},
        {"role": "user", "content": "What is two and two?"}]
    if pieces.render(conversation) != _render(tokenizer, template, conversation, True):
        return None
    bos = getattr(tokenizer, "bos_token", None)
    # llama.cpp puts the bos token in front itself (the file's add_bos_token); a template that writes
    # it too would give the model two.
    if bos and head.startswith(bos):
        pieces.head = head[len(bos):]
    return pieces


@dataclass
class Modelfile:
    text: str
    template_note: str  # what the report says of the template


def modelfile(gguf_name: str, tokenizer, template: str | None, stops: list[str], settings: OllamaSettings,
              context_length: int, source: str) -> Modelfile:
    """The Modelfile for the file `gguf_name` (beside it) of a model whose tokenizer is `tokenizer`,
    chat template `template` (None: a base model) and stop texts `stops`."""
    lines = [f"# Made by Atelier from {source}.", "# Create the model with: ollama create NAME -f Modelfile",
             f"FROM ./{gguf_name}"]
    if template is None:
        note = "none: the model continues the prompt text"
    else:
        pieces = template_pieces(tokenizer, template)
        if pieces is None:
            note = ("not written: the chat template does not reduce to text around each message, so Ollama uses "
                    "the template inside the GGUF file")
        else:
            lines.append(f'TEMPLATE """{pieces.go_template()}"""')
            note = "written from the chat template, and checked to render a four-turn conversation the same"
    if settings.system:
        lines.append(f'SYSTEM """{settings.system}"""')
    lines += [f'PARAMETER stop "{_quoted(stop)}"' for stop in stops if stop.strip()]
    lines += [f"PARAMETER temperature {settings.temperature:g}", f"PARAMETER top_p {settings.top_p:g}",
              f"PARAMETER top_k {settings.top_k}", f"PARAMETER repeat_penalty {settings.repeat_penalty:g}",
              f"PARAMETER num_ctx {settings.num_ctx or context_length}"]
    return Modelfile("\n".join(lines) + "\n", note)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
