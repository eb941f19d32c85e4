"""Normalise: control characters, Unicode form and whitespace, in that order, so that a second pass
changes nothing (the step is idempotent for every combination of options).

Why this order: removing a control or zero-width character can bring a letter next to its
combining accent, which the Unicode form then composes, so controls go first; NFKC can turn a
no-break space at the end of a line into a plain trailing space, so whitespace goes last. No
NFC/NFKC mapping produces a control character or a newline, and the whitespace edits only delete
characters next to a newline (which never composes), so neither undoes an earlier sub-step.
"""

from __future__ import annotations

import re
import unicodedata

from engine.cleaning.steps import StepResult
from engine.specs.clean import NormalizeStep

# Zero-width space, word joiner, stray BOMs. ZWJ and ZWNJ (U+200D, U+200C) stay: they build emoji
# sequences and shape Persian and Indic words.
_ZERO_WIDTH = (0x200B, 0x2060, 0xFEFF)
# C0 and C1 controls except tab, newline and carriage return (line endings are whitespace's job),
# plus the zero-width characters that hide inside words.
_CONTROL_TABLE = {cp: None for cp in (*range(0x20), 0x7F, *range(0x80, 0xA0), *_ZERO_WIDTH) if cp not in (9, 10, 13)}
_TRAILING_SPACE = re.compile(r"[^\S\n]+$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")


def tidy_whitespace(text: str) -> str:
    """\\r\\n and \\r become \\n, trailing whitespace goes, at most one blank line in a row, no blank
    lines at either end. Leading indentation and inner spaces stay (code keeps its shape)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _TRAILING_SPACE.sub("", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip("\n")


class Normalize:
    """Removes control characters, applies NFC/NFKC and tidies whitespace; removes documents left
    empty (rule `normalize.empty`)."""

    def __init__(self, spec: NormalizeStep):
        self.form = None if spec.unicode == "none" else spec.unicode.upper()
        self.whitespace = spec.whitespace
        self.control_characters = spec.control_characters

    def __call__(self, text: str) -> StepResult:
        changes: dict[str, int] = {}
        if self.control_characters:
            kept = text.translate(_CONTROL_TABLE)
            if len(kept) != len(text):
                changes["normalize.control_characters"] = len(text) - len(kept)
                text = kept
        if self.form is not None and not unicodedata.is_normalized(self.form, text):
            text = unicodedata.normalize(self.form, text)
            changes["normalize.unicode"] = 1
        if self.whitespace:
            tidy = tidy_whitespace(text)
            if tidy != text:
                changes["normalize.whitespace"] = 1
                text = tidy
        if not text.strip():
            return StepResult(None, "normalize.empty", "empty or only whitespace after normalisation", changes)
        return StepResult(text, changes=changes)
