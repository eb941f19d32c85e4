"""Prompt variants: a preset, a Jinja template filled from a data row, an optional system prompt; the
rendered prompt as text and as the model reads it (after its chat template); and the rule that
finds the final answer in what the model said.

Templates run in jinja2's sandbox with StrictUndefined: a template can read the row's fields but
not Python's internals, and a variable the row lacks is an error naming the variable, the variant
and the row, never an empty string that silently changes the prompt.

Presets (their templates use data.input_field and data.expected_field):
- zero-shot: `{{ input }}`;
- few-shot: k solved examples as `Input: …` / `Output: …` pairs, then `Input: {{ input }}` and
  `Output:`; the examples are picked per row with a seed (the same for every variant and model);
- chain-of-thought: the input, then "Let's think step by step" and a request to end with a line
  `Answer: …`; the final answer is the text after the last `Answer:` on its line (without a
  trailing full stop), or, when there is none, the last non-empty line.

Qt-free and import-light (jinja2 at module level); the chat-template step imports the engine's
generation helpers (and so transformers) only when given a tokenizer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from jinja2 import Template, TemplateSyntaxError, UndefinedError

from engine.errors import UserError
from engine.playground.sandbox import SANDBOX
from engine.specs.evaluate import PromptVariant

COT_INSTRUCTION = ("Let's think step by step. When you are done, write the final answer on its own line, "
                   "starting with \"Answer:\".")
COT_ANSWER = re.compile(r"(?i)\banswer\s*:[ \t]*([^\n]*)")
RESERVED = ("row", "examples")  # template variables of our own; a field with such a name is row['row']
_JINJA_WORDS = {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None"}
_UNDEFINED = re.compile(r"'([^']+)' is undefined")
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")

class TemplateError(UserError):
    type = "template_error"


@dataclass
class CompiledVariant:
    """A PromptVariant ready to render: its templates parsed, its answer rule compiled."""

    name: str
    preset: str
    template: str  # the Jinja source of the user message (the preset's when the variant gives none)
    system: str | None
    answer_pattern: re.Pattern | None  # the variant's own; None = the preset's rule
    regex: str | None  # the regex_match pattern of the variant
    examples_source: str | None
    examples_k: int
    field: str  # "variants[0]", for messages
    user_template: Template = field(repr=False)
    system_template: Template | None = field(repr=False, default=None)


@dataclass
class RenderedPrompt:
    """A prompt as text (the user message and system prompt) and, after `apply_chat_template`,
    as the model reads it."""

    text: str
    system: str | None = None
    examples: list[dict] = field(default_factory=list)  # the few-shot rows it shows
    model_input: str | None = None  # the token ids decoded: the chat template's markers and bos included
    token_ids: list[int] | None = None
    chat_template: str | None = None  # the Jinja chat template applied; None = the text as is
    tools: list[dict] | None = None  # tool definitions the chat template writes before the conversation

    @property
    def messages(self) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return [*system, {"role": "user", "content": self.text}]


def preset_template(preset: str, input_field: str = "input", expected_field: str = "expected") -> str:
    """The Jinja template of a preset, asking about `input_field` (few-shot examples also show
    `expected_field`)."""
    asked = _variable(input_field)
    if preset == "zero-shot":
        return f"{{{{ {asked} }}}}"
    if preset == "few-shot":
        return ("{% for example in examples %}"
                f"Input: {{{{ example[{input_field!r}] }}}}\nOutput: {{{{ example[{expected_field!r}] }}}}\n\n"
                f"{{% endfor %}}Input: {{{{ {asked} }}}}\nOutput:")
    if preset == "chain-of-thought":
        return f"{{{{ {asked} }}}}\n\n{COT_INSTRUCTION}"
    raise ValueError(f"unknown preset {preset!r}")


def compile_variant(variant: PromptVariant, index: int = 0, input_field: str = "input",
                    expected_field: str = "expected") -> CompiledVariant:
    source = variant.template if variant.template is not None else preset_template(
        variant.preset, input_field, expected_field)
    where = f"variants[{index}]"
    return CompiledVariant(
        name=variant.name, preset=variant.preset, template=source, system=variant.system,
        answer_pattern=re.compile(variant.answer_pattern) if variant.answer_pattern else None, regex=variant.regex,
        examples_source=variant.examples.source, examples_k=variant.examples.k, field=where,
        user_template=_compile(source, variant.name, f"{where}.template"),
        system_template=_compile(variant.system, variant.name, f"{where}.system") if variant.system else None)


def render(variant: CompiledVariant, row: dict, where: str, examples: list[dict] | None = None) -> RenderedPrompt:
    """The prompt `variant` makes of `row` (read at `where`, e.g. "data.jsonl, line 3"); `examples`
    are the few-shot rows to show. Raises TemplateError naming the variable, variant and row."""
    context = {**row, "row": row, "examples": list(examples or [])}
    text = _render(variant.user_template, context, variant, "template", row, where)
    system = None
    if variant.system_template is not None:
        system = _render(variant.system_template, context, variant, "system", row, where)
    return RenderedPrompt(text=text, system=system, examples=list(examples or []))


def pick_examples(pool: list[dict], k: int, seed: int, row_index: int, row_input: Any,
                  input_field: str = "input") -> list[dict]:
    """`k` examples of `pool` for row `row_index`, never one whose input is the row's own. Seeded by
    (seed, row): every variant and model asking this row sees the same examples."""
    candidates = [example for example in pool if example.get(input_field) != row_input]
    rng = random.Random(f"{seed}/{row_index}")
    return rng.sample(candidates, min(k, len(candidates)))


def extract_answer(text: str, preset: str, pattern: re.Pattern | str | None = None) -> str:
    """The final answer in a model's `text`, which the metrics compare: the last match of `pattern`
    (its first group, else the whole match), else the preset's rule (module docstring)."""
    if isinstance(pattern, str):
        pattern = re.compile(pattern)
    own = pattern is None and preset == "chain-of-thought"
    rule = COT_ANSWER if own else pattern
    if rule is not None:
        matches = list(rule.finditer(text))
        if matches:
            last = matches[-1]
            answer = ((last.group(1) if rule.groups else last.group(0)) or "").strip()
            return answer.rstrip(".").rstrip() if own else answer
    if preset == "chain-of-thought":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else ""
    return text.strip()


def apply_chat_template(prompt: RenderedPrompt, tokenizer: Any, template: str | None,
                        where: str = "") -> RenderedPrompt:
    """`prompt` with what the model reads: through the Jinja chat `template` up to the assistant's
    turn, or as plain text (system prompt first) when it is None — encoded exactly as the generate
    and fine-tuning jobs encode prompts."""
    from engine.generate.prompts import Prompt, prompt_token_ids

    record = Prompt(id=where, text=prompt.text, messages=prompt.messages, where=where, tools=prompt.tools)
    ids = prompt_token_ids(record, tokenizer, template)
    return replace(prompt, model_input=tokenizer.decode(ids, skip_special_tokens=False), token_ids=ids,
                   chat_template=template)


def render_prompt(variant: PromptVariant, row: dict, *, examples: list[dict] | None = None, tokenizer: Any = None,
                  chat_template: str = "auto", input_field: str = "input", expected_field: str = "expected",
                  where: str = "the row", model_label: str = "the model",
                  log: Callable[[str, str], None] | None = None) -> RenderedPrompt:
    """The prompt `variant` makes of `row` as text and, given the model's tokenizer, after the chat
    template `chat_template` picks for it (auto: the tokenizer's own when it has one). `examples`
    are the few-shot rows to show (see `pick_examples`)."""
    rendered = render(compile_variant(variant, 0, input_field, expected_field), row, where, examples)
    if tokenizer is None:
        return rendered
    from engine.generate.models import prompt_template

    template = prompt_template(tokenizer, chat_template, model_label, log or (lambda level, message: None))
    return apply_chat_template(rendered, tokenizer, template, where)


def _variable(name: str) -> str:
    """The Jinja expression of the row field `name`."""
    plain = name.isidentifier() and name not in _JINJA_WORDS and name not in RESERVED
    return name if plain else f"row[{name!r}]"


def _compile(source: str, variant: str, field_path: str) -> Template:
    try:
        return SANDBOX.from_string(source)
    except TemplateSyntaxError as e:
        raise TemplateError(f"The {field_path} of variant '{variant}' is not a valid Jinja template: line {e.lineno}: "
                            f"{e.message}.",
                            "Fix the template's syntax: {{ variable }}, {% for … %}…{% endfor %}.") from None


def _render(template: Template, context: dict, variant: CompiledVariant, part: str, row: dict, where: str) -> str:
    location = f"the {part} of variant '{variant.name}' ({variant.field}.{part})"
    fields = ", ".join(f"'{k}'" for k in row) or "no fields"
    try:
        return template.render(context)
    except UndefinedError as e:
        missing = _UNDEFINED.search(str(e)) or _NO_ATTRIBUTE.search(str(e))
        name = missing.group(1) if missing else str(e)
        raise TemplateError(f"{where}: {location} uses the variable '{name}', which this row does not have "
                            f"(it has {fields}).",
                            f"Add '{name}' to every row, or change the template to use the row's fields "
                            f"(data.input_field names the one the presets ask about).") from None
    except Exception as e:  # noqa: BLE001 - a template can raise any error of the code it runs (sandbox, types)
        raise TemplateError(f"{where}: {location} failed: {type(e).__name__}: {e}.",
                            "Fix the template; it may read the row's fields but not Python internals.") from None
