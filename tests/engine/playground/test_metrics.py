"""The answer metrics on small strings, against values computed by hand."""

from __future__ import annotations

import math

import pytest

from engine.playground.metrics import (
    aggregate,
    contains,
    corpus_bleu,
    exact_match,
    normalize,
    regex_match,
    rouge_l,
    score,
    sentence_bleu,
)


def test_normalisation_strips_squeezes_whitespace_and_folds_case_unless_asked_not_to():
    assert normalize("  Sun \t RED\ncat ") == "sun red cat"
    assert normalize("  Sun \t RED\ncat ", case_sensitive=True) == "Sun RED cat"
    assert normalize("STRASSE") == normalize("straße")  # casefold, not lower


def test_exact_match_and_contains():
    assert exact_match(" Sun red  cat\n", "sun red cat")
    assert not exact_match("Sun red cat", "sun red cat", case_sensitive=True)
    assert not exact_match("sun red cat.", "sun red cat")  # punctuation counts
    assert contains("The answer is  SUN red cat, I think", "sun red cat")
    assert not contains("The answer is sun, red cat", "sun red cat")
    assert not contains("SUN RED CAT", "sun red cat", case_sensitive=True)


def test_regex_match_searches_the_answer_as_is():
    assert regex_match("answer: 42", r"\d+") is True
    assert regex_match("answer: 42", r"^\d+$") is False
    assert regex_match("YES", r"(?i)^yes$") is True
    assert regex_match("YES", None) is None


def test_bleu_on_a_small_sentence_equals_the_hand_computed_value():
    # hypothesis "the cat sat on mat", reference "the cat sat on the mat": n-gram precisions
    # 5/5, 3/4, 2/3, 1/2 (no zero count, so smoothing does not apply); brevity penalty e^(1 - 6/5).
    expected = 100 * math.exp(1 - 6 / 5) * (1 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25
    assert sentence_bleu("the cat sat on mat", "the cat sat on the mat") == pytest.approx(expected, abs=1e-6)
    assert expected == pytest.approx(57.893, abs=1e-3)
    assert sentence_bleu("the cat sat on the mat", "the cat sat on the mat") == pytest.approx(100)
    assert sentence_bleu("The Cat sat on the mat", "the cat sat on the mat") == pytest.approx(100)
    assert sentence_bleu("The Cat sat on the mat", "the cat sat on the mat", case_sensitive=True) < 100


def test_corpus_bleu_pools_the_counts_of_all_answers():
    # "a dog" adds 2/2 unigrams and 1/1 bigram to the first pair's 5/5, 3/4, 2/3, 1/2; the pooled
    # lengths are 7 (answers) and 8 (references).
    answers, references = ["the cat sat on mat", "a dog"], ["the cat sat on the mat", "a dog"]
    precisions = [7 / 7, 4 / 5, 2 / 3, 1 / 2]
    brevity = math.exp(1 - 8 / 7)
    expected = 100 * brevity * math.prod(precisions) ** 0.25
    assert corpus_bleu(answers, references) == pytest.approx(expected, abs=1e-6)


def test_rouge_l_is_the_f1_of_the_longest_common_subsequence():
    # LCS("the cat sat on mat", "the cat sat on the mat") = 5 words: P = 5/5, R = 5/6, F1 = 10/11.
    assert rouge_l("the cat sat on mat", "the cat sat on the mat") == pytest.approx(10 / 11)
    # Word order: the longest common subsequence of "mat on sat cat the" and the reference is 2 words
    # ("cat the"): P = 2/5, R = 2/6.
    precision, recall = 2 / 5, 2 / 6
    assert rouge_l("mat on sat cat the", "the cat sat on the mat") == pytest.approx(
        2 * precision * recall / (precision + recall))
    # Unicode words count (rouge-score's own tokenizer would drop "très" and "ça").
    assert rouge_l("Ça va très bien", "ça va bien") == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert rouge_l("", "the cat") == 0.0


def test_score_and_aggregate_a_cell():
    metrics = ["exact_match", "contains", "regex_match", "bleu", "rouge_l"]
    first = score("sun red cat", "sun red cat", metrics, r"^\w+( \w+)*$")
    second = score("the cat sat on mat", "the cat sat on the mat", metrics, None)
    assert first == {"exact_match": True, "contains": True, "regex_match": True, "bleu": 100.0, "rouge_l": 1.0}
    assert second["exact_match"] is False and second["contains"] is False and second["regex_match"] is None
    assert second["bleu"] == pytest.approx(57.893, abs=1e-3) and second["rouge_l"] == pytest.approx(0.9091, abs=1e-4)

    cell = aggregate([first, second], ["sun red cat", "the cat sat on mat"], ["sun red cat", "the cat sat on the mat"],
                     metrics)
    assert cell["exact_match"] == 0.5 and cell["contains"] == 0.5
    assert cell["regex_match"] == 1.0  # over the one answer that had a pattern
    assert cell["rouge_l"] == pytest.approx((1 + 10 / 11) / 2, abs=1e-4)
    assert cell["bleu"] == pytest.approx(corpus_bleu(["sun red cat", "the cat sat on mat"],
                                                     ["sun red cat", "the cat sat on the mat"]), abs=1e-4)
    assert aggregate([second], ["x"], ["y"], ["regex_match"]) == {"regex_match": None}
    with pytest.raises(ValueError, match="unknown metric"):
        score("a", "a", ["accuracy"])


def test_standard_errors_of_a_cells_means_match_the_sample_formula_and_bleu_has_none():
    from engine.playground.metrics import stderrs

    scores = [{"exact_match": True, "rouge_l": 0.5, "bleu": 10.0}, {"exact_match": False, "rouge_l": 1.0, "bleu": 0.0},
              {"exact_match": True, "rouge_l": 0.0, "bleu": 5.0}, {"exact_match": True, "rouge_l": None, "bleu": 1.0}]
    errors = stderrs(scores, ["exact_match", "rouge_l", "bleu"])
    # exact_match: 1,0,1,1 -> mean 0.75, sample variance 0.25, over 4 examples
    assert errors["exact_match"] == pytest.approx(math.sqrt(0.25 / 4), abs=1e-4)
    # rouge_l: 0.5, 1.0, 0.0 (None left out) -> variance 0.25 over 3 examples
    assert errors["rouge_l"] == pytest.approx(math.sqrt(0.25 / 3), abs=1e-4)
    assert errors["bleu"] is None
    assert stderrs([{"exact_match": True}], ["exact_match"]) == {"exact_match": None}
