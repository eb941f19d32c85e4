"""The quality rules: each one removes a document that breaks it (naming the spec field and the
figure), and is off when its threshold is empty or its set disabled; C4 drops lines."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.cleaning.quality import NGrams, Quality
from engine.specs.clean import QualityStep

PARAGRAPH = ("The committee met on Tuesday to discuss the budget for the coming year. Most members agreed that "
             "the library should stay open longer in the evenings. Several of them argued that the money for new "
             "books had to be found before anything else was decided. The treasurer warned that the heating bill "
             "had doubled since the winter. After a long debate, they voted to raise the membership fee by a "
             "small amount. The next meeting will be held in the town hall at the end of the month.")

# Every threshold of a set switched off, so a test can turn on exactly one rule.
OFF = {
    "gopher": {"min_words": None, "max_words": None, "min_mean_word_length": None, "max_mean_word_length": None,
               "max_symbol_word_ratio": None, "max_bullet_lines_fraction": None, "max_ellipsis_lines_fraction": None,
               "min_alpha_words_fraction": None, "min_stop_words": None},
    "repetition": {"max_duplicate_line_fraction": None, "max_duplicate_paragraph_fraction": None,
                   "max_duplicate_line_chars_fraction": None, "max_duplicate_paragraph_chars_fraction": None,
                   "top_ngram_max_fraction": {}, "duplicate_ngram_max_fraction": {}},
    "c4": {"min_words_per_line": None, "require_terminal_punctuation": False, "min_sentences": None,
           "remove_javascript_lines": False, "remove_policy_lines": False, "remove_lorem_ipsum": False,
           "remove_curly_brackets": False},
    "fineweb": {"min_line_punctuation_fraction": None, "max_short_line_fraction": None,
                "max_duplicate_line_chars_fraction": None, "max_newline_ratio": None},
}


def only(rule_set: str, **fields) -> Quality:
    """A quality step with one set enabled and, in it, only the given fields."""
    sets = {name: {"enabled": False} for name in OFF}
    sets[rule_set] = {**OFF[rule_set], "enabled": True, **fields}
    return Quality(QualityStep(**sets))


def lines(*items: str) -> str:
    return "\n".join(items)


NUMBERS = " ".join(str(n) for n in range(100, 160)) + " and the end of the list of the numbers."
# (set, field, value that trips, document, text the reason must contain)
RULES = [
    ("gopher", "min_words", 50, "Too short to keep.", "4 words, fewer than 50"),
    ("gopher", "max_words", 40, PARAGRAPH, "words, more than 40"),
    ("gopher", "min_mean_word_length", 3.0, "I am a ox, so I go to it as we do in my den. " * 6, "below 3.0"),
    ("gopher", "max_mean_word_length", 10.0, "internationalization counterrevolutionaries " * 30, "above 10.0"),
    ("gopher", "max_symbol_word_ratio", 0.1, "#python #code #news " * 5 + PARAGRAPH, "'#' per word, above 0.1"),
    ("gopher", "max_bullet_lines_fraction", 0.9,
     lines(*(f"{bullet} item number {n} of the list" for n, bullet in enumerate("•‣●-*•-*•-"))),
     "1 of lines start with a bullet, above 0.9"),
    ("gopher", "max_ellipsis_lines_fraction", 0.3, lines("And then it was...", "She said that…", PARAGRAPH),
     "0.667 of lines end in an ellipsis, above 0.3"),
    ("gopher", "min_alpha_words_fraction", 0.8, NUMBERS, "of words have a letter, below 0.8"),
    ("gopher", "min_stop_words", 2, "Cats sleep all day. Dogs bark at night. Birds sing in spring.",
     "0 stop words"),
    ("repetition", "max_duplicate_paragraph_fraction", 0.3, "Buy now.\n\nBuy now.\n\nSome other words.",
     "1 of 3 paragraphs repeat an earlier one, above 0.3"),
    ("repetition", "max_duplicate_paragraph_chars_fraction", 0.2, f"{PARAGRAPH}\n\n{PARAGRAPH}",
     "of characters in repeated paragraphs, above 0.2"),
    ("repetition", "max_duplicate_line_fraction", 0.3, lines("Click here.", "Click here.", "Welcome home."),
     "1 of 3 lines repeat an earlier one, above 0.3"),
    ("repetition", "max_duplicate_line_chars_fraction", 0.2, lines(PARAGRAPH, PARAGRAPH),
     "of characters in repeated lines, above 0.2"),
    ("repetition", "top_ngram_max_fraction", {2: 0.2}, "the cat, the cat, the cat sat on a mat with the cat.",
     "the most frequent 2-gram ('the cat' ×4)"),
    ("repetition", "duplicate_ngram_max_fraction", {5: 0.15}, "a b c d e f g a b c d e",
     "in repeated 5-grams, above 0.15"),
    ("fineweb", "min_line_punctuation_fraction", 0.12, lines(*(f"menu entry number {n} here" for n in range(10))),
     "0 of lines end in punctuation, below 0.12"),
    ("fineweb", "max_short_line_fraction", 0.67, lines("Home.", "About us.", "Contact.", PARAGRAPH),
     "0.75 of lines shorter than 30 characters, above 0.67"),
    ("fineweb", "max_duplicate_line_chars_fraction", 0.01, lines(PARAGRAPH, "Read more below.", "Read more below."),
     "of characters in repeated lines, above 0.01"),
    ("fineweb", "max_newline_ratio", 0.3, lines(*(f"Step {n} done." for n in range(20))),
     "newlines per word, above 0.3"),
]


@pytest.mark.parametrize("rule_set, field, value, document, figure", RULES, ids=[f"{r[0]}.{r[1]}" for r in RULES])
def test_each_rule_removes_a_document_that_breaks_it(rule_set, field, value, document, figure):
    result = only(rule_set, **{field: value})(document)
    path = f"quality.{rule_set}.{field}"
    assert result.text is None and result.rule == path
    assert figure in result.reason and path in result.reason


@pytest.mark.parametrize("rule_set, field, value, document, figure", RULES, ids=[f"{r[0]}.{r[1]}" for r in RULES])
def test_each_rule_is_off_when_its_threshold_is_empty_or_its_set_disabled(rule_set, field, value, document, figure):
    assert only(rule_set)(document).text == document  # OFF: this field empty like the others
    disabled = QualityStep(**{name: {"enabled": False} for name in OFF if name != rule_set},
                           **{rule_set: {"enabled": False, field: value}})
    assert Quality(disabled)(document).text == document


def test_a_normal_english_paragraph_passes_every_default_rule():
    assert Quality(QualityStep())(PARAGRAPH).text == PARAGRAPH
    assert Quality(QualityStep(c4={"enabled": True}))(PARAGRAPH).text == PARAGRAPH


def test_paragraph_breaks_do_not_count_as_short_or_repeated_lines():
    text = "\n\n".join([PARAGRAPH] * 1 + [PARAGRAPH.replace("committee", f"board {n}") for n in range(4)])
    assert Quality(QualityStep(repetition={"enabled": False}))(text).text == text


def test_a_top_ngram_must_repeat_to_count():
    assert only("repetition", top_ngram_max_fraction={2: 0.2})("Yes indeed.").text == "Yes indeed."


def test_duplicate_ngrams_count_each_repeated_word_once():
    # "a b c d e" repeats once: 5 letters of a 25-character text, however many 5-grams overlap it.
    result = only("repetition", duplicate_ngram_max_fraction={5: 0.1})("a b c d e f g h a b c d e")
    assert result.reason.startswith("0.2 of characters in repeated 5-grams, above 0.1")


def published_duplicate_ngram_chars(words: list[str], n: int) -> int:
    """datatrove's find_all_duplicate, as written there: every position, jumping past a repeat."""
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    seen, chars, i = set(), 0, 0
    while i < len(grams):
        if grams[i] in seen:
            chars += sum(map(len, grams[i]))
            i += n
        else:
            seen.add(grams[i])
            i += 1
    return chars


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from(["a", "bb", "c", "dddd"]), max_size=60), n=st.integers(1, 10))
def test_duplicate_ngram_characters_follow_the_published_definition(words, n):
    assert (NGrams(words).duplicate_chars(n) or 0) == published_duplicate_ngram_chars(words, n)


def test_the_first_failing_rule_wins_in_fineweb_order():
    result = Quality(QualityStep())("Too short.")
    assert result.rule == "quality.gopher.min_words"
    result = Quality(QualityStep())(lines(PARAGRAPH, PARAGRAPH))
    assert result.rule.startswith("quality.repetition.")


# --- C4 ------------------------------------------------------------------------------------------

C4_PAGE = lines(
    "Home | News | Sport",                                              # no terminal punctuation
    PARAGRAPH,
    "Too few.",                                                         # under 3 words
    "Please enable JavaScript to view the comments.",                   # javascript
    "By using this site you agree to our Terms of Use.",                # policy
    "  Indented lines are stripped of their spaces as C4 does.  ",
)


def test_c4_drops_lines_and_counts_them():
    result = only("c4", require_terminal_punctuation=True, min_words_per_line=3, remove_javascript_lines=True,
                  remove_policy_lines=True)(C4_PAGE)
    assert result.text == lines(PARAGRAPH, "Indented lines are stripped of their spaces as C4 does.")
    assert result.changes == {"quality.c4.lines_dropped": 4}


@pytest.mark.parametrize("field, dropped", [("require_terminal_punctuation", "Home | News | Sport"),
                                            ("min_words_per_line", "Too few."),
                                            ("remove_javascript_lines", "Please enable JavaScript"),
                                            ("remove_policy_lines", "Terms of Use")])
def test_each_c4_line_rule_drops_only_its_lines(field, dropped):
    step = only("c4", **{field: 3 if field == "min_words_per_line" else True})
    result = step(C4_PAGE)
    assert dropped not in result.text and result.changes == {"quality.c4.lines_dropped": 1}
    assert only("c4")(C4_PAGE).changes == {}


@pytest.mark.parametrize("field, document, reason", [
    ("remove_lorem_ipsum", lines(PARAGRAPH, "Lorem ipsum dolor sit amet."), "line 2 contains 'lorem ipsum'"),
    ("remove_curly_brackets", lines("Call it as f({x: 1}) to see.", PARAGRAPH), "line 1 contains '{'"),
    ("min_sentences", "One sentence here. And a second one.", "2 sentences left after dropping 0 lines, fewer than 5"),
])
def test_c4_document_rules(field, document, reason):
    result = only("c4", **{field: 5 if field == "min_sentences" else True})(document)
    path = f"quality.c4.{field}"
    assert result.text is None and result.rule == path and reason in result.reason and path in result.reason
    assert only("c4")(document).text == document


def test_c4_counts_sentences_after_dropping_lines():
    page = lines(PARAGRAPH, "menu", "more menu")
    assert only("c4", require_terminal_punctuation=True, min_sentences=6)(page).text == PARAGRAPH
    result = only("c4", require_terminal_punctuation=True, min_sentences=7)(page)
    assert result.reason.startswith("6 sentences left after dropping 2 lines, fewer than 7")


def test_c4_removes_a_document_with_no_line_left():
    result = only("c4", require_terminal_punctuation=True)("menu\nmore menu")
    assert result.text is None and result.rule == "quality.c4.lines_dropped"


def test_later_rules_judge_the_text_c4_left():
    page = lines(*(f"Menu entry {n}" for n in range(12)), PARAGRAPH)
    default = Quality(QualityStep())
    assert default(page).rule.startswith("quality.fineweb.")
    assert Quality(QualityStep(c4={"enabled": True}))(page).text == PARAGRAPH


@settings(max_examples=200, deadline=None)
@given(text=st.lists(st.one_of(st.sampled_from(["\n", "\n\n", "• ", "- ", "...", "…", "#", "{", " ", "the ",
                                                "lorem ipsum", "Word. ", "a"]), st.text(max_size=6)),
                     max_size=60).map("".join))
def test_quality_never_fails_on_arbitrary_text(text):
    for step in (Quality(QualityStep()), Quality(QualityStep(c4={"enabled": True})), only("repetition"),
                 only("gopher"), only("fineweb"), only("c4")):
        result = step(text)
        assert (result.text is None) == (result.rule is not None)
