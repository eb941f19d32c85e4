"""The corpus preview reads a few documents of each source, and says so when a file is not text."""

from __future__ import annotations

import random

from studio.widgets.corpus_preview import source_preview


def test_a_binary_file_named_txt_warns_instead_of_showing_garbled_text(tmp_path):
    binary = tmp_path / "weights.txt"
    rng = random.Random(0)
    binary.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    undecodable = tmp_path / "utf16.txt"
    undecodable.write_bytes(bytes([0xC8, 0xE9]) * 2048)  # no UTF-8 at all, and no control characters
    assert source_preview(str(undecodable)).note.startswith("⚠ utf16.txt does not look like text")
    preview = source_preview(str(binary))
    assert preview.documents == []
    assert preview.note.startswith("⚠ weights.txt does not look like text") and "pick a text file" in preview.note


def test_text_in_another_encoding_or_with_tabs_is_still_text(tmp_path):
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Café crème à la carte.\tÜber naïve.\n\nSecond paragraph.".encode("latin-1"))
    preview = source_preview(str(latin))
    assert len(preview.documents) == 2 and not preview.note
