"""docs/formats.md shows each data format's example record and what training sees of it: the text the
chat template writes, the trained tokens between ⟦ ⟧. This checks every example against the renderer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.finetune.formats import detect_format
from engine.finetune.preview import marked_text
from engine.finetune.records import _normalise
from engine.finetune.rendering import TurnMask, preview
from engine.specs.chat import CHAT_PRESETS
from tests.tiny_models import tiny_byte_bpe

DOC = Path(__file__).resolve().parents[3] / "docs" / "formats.md"
# An example: ```json (one record), then its options line ("Options: loss_on=all, turns=last"), then ```text.
EXAMPLE = re.compile(r"```json\n(?P<record>.*?)\n```\n(?:\nOptions: (?P<options>[^\n]*)\n)?\n?```text\n(?P<shown>.*?)\n```",
                     re.S)


def examples() -> list[tuple[dict, dict, str]]:
    found = []
    for match in EXAMPLE.finditer(DOC.read_text(encoding="utf-8")):
        options = dict(part.split("=") for part in (match["options"] or "").split(", ") if part)
        found.append((json.loads(match["record"]), options, match["shown"]))
    return found


def shown(record: dict, options: dict, tokenizer) -> str:
    """The record as the docs show it: chatml's text with the trained tokens between ⟦ ⟧ (no bos)."""
    format = detect_format(record, "example")
    normalised = _normalise(record, format, "example", None)
    template = None if format == "text" else CHAT_PRESETS["chatml"][0]
    mask = TurnMask(turns=options.get("turns", "all"), mask_system=options.get("mask_system") == "true")
    result = preview(normalised, tokenizer, template, options.get("loss_on", "responses"), 4096, mask)
    tokens = [t for t in result["tokens"] if t["text"] != tokenizer.bos_token]
    return marked_text(tokens, color=False).rstrip("\n")


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_byte_bpe([DOC.read_text(encoding="utf-8")], 500, max_length=4096)


def test_the_docs_show_an_example_of_every_format():
    formats = {detect_format(record, "doc") for record, _, _ in examples()}
    assert formats == {"alpaca", "sharegpt", "messages", "prompt_completion", "text"}
    assert any("tools" in record for record, _, _ in examples())


def test_every_example_in_the_docs_renders_as_shown(tokenizer):
    for record, options, text in examples():
        assert shown(record, options, tokenizer) == text, json.dumps(record)
