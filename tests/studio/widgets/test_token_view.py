"""The live token preview: chips with ids, visible whitespace, counts, comparing two tokenizers."""

from __future__ import annotations

import pytest

from studio.widgets.token_chips import encode_pieces, visible
from studio.widgets.token_view import MAX_PREVIEW_CHARS, TokenCompareView, TokenizerLoadError, TokenView, load_tokenizer
from studio.widgets.tokenizer_picker import TokenizerPicker, find_tokenizers
from tests.studio.tokenizer_fixtures import save_byte_bpe, save_wordpiece


@pytest.fixture
def bpe_folder(tmp_path):
    return save_byte_bpe(tmp_path / "bpe")


@pytest.fixture
def wordpiece_folder(tmp_path):
    return save_wordpiece(tmp_path / "wp")


def test_whitespace_is_made_visible():
    assert visible("a b\n\tc\x01") == "a·b⏎→c␁"


def test_pieces_cover_the_text_in_order_with_ids(bpe_folder):
    tokenizer = load_tokenizer(bpe_folder)
    text = "def greet(name):\n\treturn name  # hi"
    pieces = encode_pieces(tokenizer, text)
    assert "".join(p.text for p in pieces) == text
    assert [p.id for p in pieces if not p.gap] == tokenizer.encode(text, add_special_tokens=False).ids


def test_wordpiece_gaps_and_unknown_tokens_are_marked(wordpiece_folder):
    pieces = encode_pieces(load_tokenizer(wordpiece_folder), "greet -> 東")
    assert any(p.gap and p.text == " " for p in pieces)  # the spaces WordPiece drops
    assert any(p.unknown for p in pieces)


def test_a_folder_without_tokenizer_json_is_a_sentence(tmp_path):
    with pytest.raises(TokenizerLoadError, match="No tokenizer.json"):
        load_tokenizer(tmp_path)


def test_view_counts_tokens_and_updates_as_the_user_types(qtbot, bpe_folder):
    view = TokenView()
    qtbot.addWidget(view)
    assert view.set_tokenizer(str(bpe_folder))
    with qtbot.waitSignal(view.encoded, timeout=2000):  # debounced: not encoded on every keystroke
        view.editor.setPlainText("the quick brown fox")
    expected = len(load_tokenizer(bpe_folder).encode("the quick brown fox").ids)
    assert view.token_count == expected
    assert f"{expected} token" in view.stats_label.text() and "chars/token" in view.stats_label.text()
    assert view.chars_per_token == pytest.approx(19 / expected)
    view.show()
    view.resize(500, 300)
    assert view.chips.heightForWidth(500) > 0 and view.chips.piece_at(view.chips._rects[0][0].center().toPoint())


def test_long_text_is_capped(qtbot, bpe_folder):
    view = TokenView(str(bpe_folder), editable=False)
    qtbot.addWidget(view)
    view.set_text("the fox " * 5000, immediate=True)
    assert view.truncated and "first 10,000" in view.stats_label.text()
    assert sum(len(p.text) for p in view.pieces) == MAX_PREVIEW_CHARS


def test_a_bad_folder_shows_its_error_in_the_view(qtbot, tmp_path):
    view = TokenView()
    qtbot.addWidget(view)
    assert not view.set_tokenizer(str(tmp_path))
    assert "No tokenizer.json" in view.error and view.token_count == 0


def test_workspace_tokenizers_are_found_newest_first(tmp_path):
    ws = tmp_path / "ws"
    save_byte_bpe(ws / "runs" / "tok-1" / "output" / "tokenizer")
    save_byte_bpe(ws / "runs" / "pre-1" / "tokenizer")
    found = find_tokenizers(ws)
    assert {f.run_id: f.source for f in found} == {"tok-1": "tokenizer run", "pre-1": "pretraining run"}


def test_compare_view_shows_both_counts(qtbot, bpe_folder, wordpiece_folder, tmp_path):
    view = TokenCompareView(tmp_path)
    qtbot.addWidget(view)
    view.set_tokenizers(str(bpe_folder), str(wordpiece_folder))
    view.set_text("the quick brown fox jumps", immediate=True)
    a, b = view.left.token_count, view.right.token_count
    assert a > 0 and b > 0
    assert f"A: {a}" in view.summary_label.text() and f"B: {b}" in view.summary_label.text()
    assert view.left_picker.current_path() == str(bpe_folder)
    assert view.right_picker.current_path() == str(wordpiece_folder)


def test_picker_lists_runs_and_emits_added_folders(qtbot, tmp_path, bpe_folder):
    ws = tmp_path / "ws"
    save_byte_bpe(ws / "runs" / "tok-1" / "output" / "tokenizer")
    picker = TokenizerPicker(ws)
    qtbot.addWidget(picker)
    assert picker.combo.itemText(picker.combo.count() - 1) == "Choose folder…"
    assert picker.paths() == [str(ws / "runs" / "tok-1" / "output" / "tokenizer")]
    with qtbot.waitSignal(picker.chosen) as chosen:
        picker.add_path(bpe_folder)
    assert chosen.args == [str(bpe_folder)] and picker.current_path() == str(bpe_folder)


def test_view_follows_the_theme(qtbot, bpe_folder):
    from PySide6.QtWidgets import QApplication

    from studio import theme
    view = TokenView(str(bpe_folder))
    qtbot.addWidget(view)
    try:
        theme.apply(QApplication.instance(), "dark")
        view.grab()  # paints with the dark palette without errors
        assert theme.DARK.base in view.frame.styleSheet()
    finally:
        theme.apply(QApplication.instance(), "light")
