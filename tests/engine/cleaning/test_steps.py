"""The per-document cleaning steps: decoding and repair, normalisation, language identification,
and the step table (order, enabled flags, pickling for worker processes)."""

from __future__ import annotations

import codecs
import pickle
import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cleaning.language import Language
from engine.cleaning.normalize import Normalize
from engine.cleaning.pipeline import build_steps
from engine.cleaning.repair import Repair, decode_bytes, looks_binary
from engine.cleaning.steps import StepResult
from engine.specs.clean import CleanSpec, LanguageStep, NormalizeStep, RepairStep

ENGLISH = ("The committee met on Tuesday to discuss the budget for the coming year. Most members agreed that "
           "the library should stay open longer in the evenings. Several of them argued that the money for new "
           "books had to be found before anything else was decided. The treasurer warned that the heating bill "
           "had doubled since the winter. After a long debate, they voted to raise the membership fee by a small "
           "amount. The next meeting will be held in the town hall at the end of the month.")
GERMAN = ("Der Ausschuss hat sich am Dienstag getroffen, um über den Haushalt des kommenden Jahres zu sprechen. "
          "Die meisten Mitglieder waren sich einig, dass die Bibliothek abends länger geöffnet bleiben soll.")

ALL_ON = CleanSpec(quality={"c4": {"enabled": True}}, language={"enabled": True})

# Text that exercises what the steps care about: line structure, bullets, accents, compatibility
# forms, controls and zero-width characters, PII-looking pieces.
_tricky_pieces = st.sampled_from([
    "\n", "\n\n\n", "\r\n", "\r", " ", "\t", "  \n", "• ", "- ", "* ", "...", "…", "#", "{", "e\u0301", "\u0301",
    "ﬁ", "Ａ", "²", "\u00a0", "\u200b", "\ufeff", "\x00", "\x85", "\u2028", "cafÃ©", "\ufffd", "lorem ipsum",
    "javascript", "the ", "and ", "of ", "word ", "Word. ", "a@b.co", "+44 20 7946 0958", "4111 1111 1111 1111",
    "192.168.1.1", "fe80::1", "password = 'hunter22'", "DE89 3704 0044 0532 0130 00"])
tricky_text = st.lists(st.one_of(_tricky_pieces, st.text(max_size=8)), max_size=40).map("".join)


# --- decoding ------------------------------------------------------------------------------------

def test_utf8_decodes_without_repairs():
    assert decode_bytes("héllo wörld".encode(), True) == ("héllo wörld", {})


def test_utf8_bom_is_dropped_and_counted():
    assert decode_bytes(codecs.BOM_UTF8 + "héllo".encode(), True) == ("héllo", {"repair.bom": 1})


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_is_read_by_its_byte_order_mark(encoding):
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    text, repairs = decode_bytes(bom + "Grüße aus Köln\nzweite Zeile".encode(encoding), detect_encoding=True)
    assert text == "Grüße aus Köln\nzweite Zeile" and repairs == {"repair.utf16": 1}


def test_utf16_bom_is_honoured_even_without_detection():
    text, repairs = decode_bytes("naïve".encode("utf-16"), detect_encoding=False)
    assert text == "naïve" and repairs == {"repair.utf16": 1}


def test_utf32_is_read_by_its_byte_order_mark():
    assert decode_bytes("日本語".encode("utf-32"), True) == ("日本語", {"repair.utf32": 1})


@pytest.mark.parametrize("text", ['{"text": "Café crème, naïve façade."}', "Año nuevo en España, señor.",
                                  "“Smart” quotes – and €5", "résumé"])
def test_legacy_western_bytes_are_detected_as_cp1252(text):
    decoded, repairs = decode_bytes(text.encode("cp1252"), detect_encoding=True)
    assert decoded == text and repairs == {"repair.encoding.cp1252": 1}


def test_a_latin1_line_among_english_prose_is_read_as_cp1252():
    # charset-normalizer alone ranks cp1250 first for this line (and cp775 for longer ones like it)
    line = ('{"text": "Have or error it data stream with record it the. By parser at on result data for default. '
            'Café crème, naïve façade."}')
    assert decode_bytes(line.encode("latin-1"), True) == (line, {"repair.encoding.cp1252": 1})


@pytest.mark.parametrize("text, encoding", [
    ("Съешь же ещё этих мягких французских булок, да выпей чаю.", "cp1251"),
    ("Příliš žluťoučký kůň úpěl ďábelské ódy. Když se večer vrátil domů, čekala na něj dobrá večeře.", "cp1250"),
    ("Zażółć gęślą jaźń, powiedział.", "cp1250"),
    ("Καλημέρα κόσμε, τι κάνεις;", "cp1253"),
])
def test_other_legacy_encodings_are_detected(text, encoding):
    decoded, repairs = decode_bytes(text.encode(encoding), detect_encoding=True)
    assert decoded == text and len(repairs) == 1 and next(iter(repairs)).startswith("repair.encoding.")


def test_without_detection_invalid_bytes_become_replacement_characters_and_are_counted():
    text, repairs = decode_bytes("Café crème".encode("latin-1"), detect_encoding=False)
    assert text == "Caf\ufffd cr\ufffdme" and repairs == {"repair.invalid_utf8_bytes": 2}


def test_truncated_utf16_counts_the_dangling_byte():
    text, repairs = decode_bytes(codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00\xd8", True)
    assert text.startswith("ab") and repairs["repair.utf16"] == 1 and repairs["repair.invalid_utf16_bytes"] == 2


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300), detect=st.booleans())
def test_decode_bytes_never_fails_on_arbitrary_bytes(data, detect):
    text, repairs = decode_bytes(data, detect)
    assert isinstance(text, str) and all(isinstance(n, int) and n > 0 for n in repairs.values())


def test_binary_files_are_recognised():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    noise = random.Random(0).randbytes(4096)
    controls = bytes(random.Random(1).choice([1, 2, 3, 4, 5, 6, 65]) for _ in range(2000))
    assert looks_binary(png) and looks_binary(noise) and looks_binary(controls)


def test_text_files_are_not_binary():
    assert not looks_binary(b"")
    assert not looks_binary(ENGLISH.encode() + b"\n\tindented\r\n\x0cpage two\x1b[1mbold\x1b[0m")
    assert not looks_binary("日本語のテキスト".encode())
    assert not looks_binary("text with a BOM".encode("utf-16"))
    assert not looks_binary("Café".encode("cp1252"))


# --- repair --------------------------------------------------------------------------------------

@pytest.mark.parametrize("broken, fixed", [("cafÃ©", "café"), ("naÃ¯ve faÃ§ade", "naïve façade"),
                                           ("I â™¥ NY", "I ♥ NY")])
def test_mojibake_is_undone_and_counted(broken, fixed):
    result = Repair(RepairStep())(broken)
    assert result.text == fixed and result.changes == {"repair.mojibake": 1}


def test_repair_leaves_what_belongs_to_normalisation_alone():
    text = "“Curly” quotes, the ﬁ ligature, ＦＵＬＬ width, e\u0301, a\r\nb, x\x07, &amp;"
    assert Repair(RepairStep())(text) == StepResult(text)


def test_replacement_characters_are_counted_not_removed():
    result = Repair(RepairStep())("lost \ufffd\ufffd bytes")
    assert result.text == "lost \ufffd\ufffd bytes" and result.changes == {"repair.replacement_characters": 2}


def test_mojibake_repair_can_be_switched_off():
    assert Repair(RepairStep(fix_mojibake=False))("cafÃ©").text == "cafÃ©"


# --- normalisation -------------------------------------------------------------------------------

def test_whitespace_is_tidied_but_indentation_kept():
    text = "\n\n  \ndef f(x):  \r\n    return  x\t\r\n\r\n\r\n\r\n\r\nprint(f(1))   \n\n"
    result = Normalize(NormalizeStep())(text)
    assert result.text == "def f(x):\n    return  x\n\nprint(f(1))"
    assert result.changes == {"normalize.whitespace": 1}


def test_control_and_zero_width_characters_are_removed_and_counted():
    result = Normalize(NormalizeStep())("a\x00b\u200bc\ufeffd\x85e\tf\ng\x7f")
    assert result.text == "abcde\tf\ng" and result.changes == {"normalize.control_characters": 5}


@pytest.mark.parametrize("form, expected", [("nfc", "é ﬁ Ａ ²"), ("nfkc", "é fi A 2"), ("none", "e\u0301 ﬁ Ａ ²")])
def test_unicode_forms(form, expected):
    assert Normalize(NormalizeStep(unicode=form))("e\u0301 ﬁ Ａ ²").text == expected


def test_joiners_that_build_emoji_and_persian_words_stay():
    family, persian = "\U0001F468\u200d\U0001F469\u200d\U0001F467", "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert Normalize(NormalizeStep())(family + " " + persian).text == family + " " + persian


def test_removing_a_zero_width_space_lets_the_accent_compose():
    assert Normalize(NormalizeStep())("e\u200b\u0301").text == "é"


def test_nfkc_space_at_a_line_end_is_stripped_in_the_same_pass():
    result = Normalize(NormalizeStep(unicode="nfkc"))("word\u00a0\nnext")
    assert result.text == "word\nnext"


@pytest.mark.parametrize("text", ["", "   \n\t\n", "\u200b\x00", "\r\n\r\n"])
def test_documents_left_empty_are_removed(text):
    result = Normalize(NormalizeStep())(text)
    assert result.text is None and result.rule == "normalize.empty" and "whitespace" in result.reason


NORMALIZE_OPTIONS = [NormalizeStep(unicode=form, whitespace=ws, control_characters=cc)
                     for form in ("nfc", "nfkc", "none") for ws in (True, False) for cc in (True, False)]
_nfkc_sensitive = st.sampled_from(["\u00a0", "\u2000", "\u3000", "ﬁ", "Ａ", "²", "\u2024", "e\u0301", "\u0301",
                                   "\u200b", "\ufeff", "\x00", "\x85", "\r", "\n", " ", "\t", "\u2028", "Å", "ｶﾞ"])
nfkc_text = st.lists(st.one_of(_nfkc_sensitive, st.text(max_size=4)), max_size=30).map("".join)


@pytest.mark.parametrize("options", NORMALIZE_OPTIONS,
                         ids=lambda o: f"{o.unicode}-ws{o.whitespace:d}-cc{o.control_characters:d}")
@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(), nfkc_text))
def test_normalisation_is_idempotent(options, text):
    step = Normalize(options)
    once = step(text)
    if once.text is not None:
        twice = step(once.text)
        assert twice.text == once.text and twice.changes == {}


def test_normalisation_is_idempotent_around_every_character_nfkc_changes():
    changed = [chr(cp) for cp in range(0x110000)
               if not 0xD800 <= cp < 0xE000 and unicodedata.normalize("NFKC", chr(cp)) != chr(cp)]
    for separator in ("", " ", "\u00a0\n", "\u200b", "\n\n\n"):
        text = separator.join(changed)
        for options in NORMALIZE_OPTIONS:
            once = Normalize(options)(text).text
            assert Normalize(options)(once).text == once, options


# --- language ------------------------------------------------------------------------------------

def test_documents_in_kept_languages_stay():
    assert Language(LanguageStep(enabled=True, keep=["en"]))(ENGLISH).text == ENGLISH


def test_documents_in_other_languages_are_removed_with_the_detected_language():
    result = Language(LanguageStep(enabled=True, keep=["en", "fr"]))(GERMAN)
    assert result.text is None and result.rule == "language"
    assert result.reason.startswith("detected de (") and "keeping en, fr" in result.reason


def test_uncertain_documents_are_removed():
    result = Language(LanguageStep(enabled=True, keep=["en"], min_confidence=0.99))("ok then")
    assert result.text is None and result.rule == "language" and "language" in result.reason


def test_unknown_language_codes_fail_with_the_field_named():
    with pytest.raises(ValueError, match=r"language.keep: 'xx' is not a language"):
        Language(LanguageStep(enabled=True, keep=["en", "xx"]))


# --- the step table ------------------------------------------------------------------------------

def test_default_steps_run_in_spec_order():
    assert [name for name, _ in build_steps(CleanSpec())] == ["repair", "normalize", "quality", "pii"]


def test_order_and_enabled_flags_are_honoured():
    spec = CleanSpec(order=["pii", "language", "normalize"], language={"enabled": True}, normalize={"enabled": False})
    assert [name for name, _ in build_steps(spec)] == ["pii", "language"]
    assert build_steps(CleanSpec(order=[])) == []


def test_steps_survive_pickling_and_give_the_same_results():
    steps = build_steps(ALL_ON)
    copies = pickle.loads(pickle.dumps(steps))
    documents = [ENGLISH, GERMAN, "cafÃ© \x00 " + ENGLISH + " Mail me at a.b@example.com.", "short"]
    for (name, step), (copy_name, copy) in zip(steps, copies):
        assert name == copy_name
        assert [step(doc) for doc in documents] == [copy(doc) for doc in documents]


def test_an_enabled_step_that_changes_nothing_returns_the_same_text():
    for name, step in build_steps(ALL_ON):
        assert step(ENGLISH) == StepResult(ENGLISH), name


@pytest.mark.parametrize("spec", [CleanSpec(), ALL_ON], ids=["default", "all-on"])
@settings(max_examples=150, deadline=None)
@given(text=st.one_of(st.text(), tricky_text))
def test_no_step_fails_on_arbitrary_text(spec, text):
    for name, step in build_steps(spec):
        result = step(text)
        assert isinstance(result, StepResult), name
        if result.text is None:
            assert result.rule and result.reason, name
            break
        assert all(key.startswith(f"{name}.") and n > 0 for key, n in result.changes.items()), name
        text = result.text


ADVERSARIAL = {"digit groups": "1 " * 50_000, "colons": "a:" * 50_000, "hex colons": "ab:cd:" * 20_000,
               "no at sign": "a" * 100_000 + "@", "dots": "1." * 50_000, "keys": "password=" * 10_000,
               "unterminated key": "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 100_000, "capitals": "AB12 " * 20_000,
               "one repeated n-gram": "the cat sat " * 30_000, "short lines": "\n".join(["x y z."] * 20_000)}


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_steps_stay_fast_on_long_adversarial_text(name):
    import time

    for step_name, step in build_steps(ALL_ON):
        start = time.perf_counter()
        step(ADVERSARIAL[name])
        assert time.perf_counter() - start < 2.0, step_name  # linear work takes well under 0.3 s
