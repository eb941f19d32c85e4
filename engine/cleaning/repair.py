"""Repair: decoding file bytes into text (used by the reader) and undoing mojibake in documents.

Every repair is counted under a `repair.*` key so the report can say what was fixed and how often.
"""

from __future__ import annotations

import codecs
import threading

import charset_normalizer
import ftfy

from engine.cleaning.steps import StepResult
from engine.specs.clean import RepairStep

_BOMS = (  # UTF-32 first: its little-endian BOM starts with UTF-16's
    (codecs.BOM_UTF32_LE, "utf-32-le", "repair.utf32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "repair.utf32"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "repair.utf16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "repair.utf16"),
)
_SNIFF_BYTES = 8192
_MAX_CONTROL_SHARE = 0.1
_TEXT_CONTROLS = frozenset(b"\t\n\r\f\b\x1b")  # form feeds, backspaces and ANSI escapes do occur in text

# Only ftfy's encoding repairs: quotes, ligatures, widths, line breaks, controls and Unicode forms
# belong to the normalise step, where the user chooses them.
_MOJIBAKE_ONLY = ftfy.TextFixerConfig(
    unescape_html=False, remove_terminal_escapes=False, fix_latin_ligatures=False, fix_character_width=False,
    uncurl_quotes=False, fix_line_breaks=False, remove_control_chars=False, normalization=None, explain=False)

# Counts the bytes a decoder replaces with U+FFFD (same output as errors="replace"). Per thread,
# since one handler is registered for the whole process.
_replaced = threading.local()


def _count_and_replace(error: UnicodeDecodeError) -> tuple[str, int]:
    _replaced.bytes = getattr(_replaced, "bytes", 0) + (error.end - error.start)
    return "\ufffd", error.end


codecs.register_error("atelier.count_replace", _count_and_replace)


def _decode_counting(data: bytes, encoding: str) -> tuple[str, int]:
    _replaced.bytes = 0
    text = data.decode(encoding, "atelier.count_replace")
    return text, _replaced.bytes


def decode_bytes(data: bytes, detect_encoding: bool) -> tuple[str, dict[str, int]]:
    """The text of `data` and the repairs its decoding needed (`repair.bom`, `repair.utf16`,
    `repair.encoding.cp1252`, `repair.invalid_utf8_bytes`...).

    UTF-8 with or without a BOM; UTF-16/32 by their BOM (a BOM declares the encoding, so it is
    honoured even without detection); otherwise, when `detect_encoding`, charset-normalizer's
    guess; failing that, UTF-8 with each invalid byte replaced by U+FFFD and counted.
    """
    repairs: dict[str, int] = {}
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
        repairs["repair.bom"] = 1
    else:
        for bom, encoding, key in _BOMS:
            if data.startswith(bom):
                text, replaced = _decode_counting(data[len(bom):], encoding)
                repairs[key] = 1
                if replaced:
                    repairs[f"repair.invalid_{key.split('.')[1]}_bytes"] = replaced
                return text, repairs
    try:
        return data.decode("utf-8"), repairs
    except UnicodeDecodeError:
        pass
    if detect_encoding:
        guess = _guess_encoding(data)
        if guess is not None and codecs.lookup(guess).name != "utf-8":
            text, replaced = _decode_counting(data, guess)
            repairs[f"repair.encoding.{guess}"] = 1
            if replaced:
                repairs[f"repair.invalid_{guess}_bytes"] = replaced
            return text, repairs
    text, replaced = _decode_counting(data, "utf-8")
    repairs["repair.invalid_utf8_bytes"] = replaced
    return text, repairs


def _guess_encoding(data: bytes) -> str | None:
    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    # On a line or a paragraph many single-byte code pages decode without any "chaos", and the one
    # charset-normalizer ranks first (by language coherence) is often wrong for Western text: cp775
    # or cp1250 for "Café crème". Windows-1252 is by far the commonest legacy encoding, so it wins
    # whenever it decodes as cleanly as the best guess.
    for match in matches:
        if match.chaos <= best.chaos and "cp1252" in match.could_be_from_charset:
            return "cp1252"
    return best.encoding


def looks_binary(data: bytes) -> bool:
    """Whether the first bytes of a file look like a binary format rather than text: NUL bytes
    (outside UTF-16/32 with a BOM), or more than a tenth control bytes. UTF-16 without a BOM
    counts as binary."""
    head = data[:_SNIFF_BYTES]
    if not head or head.startswith(tuple(bom for bom, _, _ in _BOMS)):
        return False
    if b"\x00" in head:
        return True
    controls = sum(1 for byte in head if (byte < 0x20 or byte == 0x7F) and byte not in _TEXT_CONTROLS)
    return controls > _MAX_CONTROL_SHARE * len(head)


class Repair:
    """Undoes mojibake (ftfy) and counts the U+FFFD replacement characters left in a document."""

    def __init__(self, spec: RepairStep):
        self.fix_mojibake = spec.fix_mojibake

    def __call__(self, text: str) -> StepResult:
        changes: dict[str, int] = {}
        if self.fix_mojibake and not text.isascii():  # mojibake needs non-ASCII characters
            fixed = ftfy.fix_text(text, _MOJIBAKE_ONLY)
            if fixed != text:
                changes["repair.mojibake"] = 1
                text = fixed
        # U+FFFD marks bytes lost before this step; nothing can bring them back, so they are
        # counted for the report and left in place.
        replacements = text.count("\ufffd")
        if replacements:
            changes["repair.replacement_characters"] = replacements
        return StepResult(text, changes=changes)
