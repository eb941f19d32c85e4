"""Answer metrics of the playground and the evaluate job: each compares a model's final answer (see
templates.extract_answer) with the expected one.

- exact_match: equal after normalisation; contains: the normalised expected text occurs in the
  normalised answer. Normalisation: surrounding whitespace stripped, every run of whitespace made
  one space, and letter case folded (str.casefold) unless case_sensitive.
- regex_match: `re.search(pattern, answer)` finds a match; the answer is not normalised (the
  pattern decides, e.g. `(?i)` to ignore case). None when the row and variant give no pattern.
- bleu: sacrebleu BLEU (0-100; its default 13a tokenisation, lowercased unless case_sensitive).
  Per example: sentence BLEU (exponential smoothing, sacrebleu's default); for a table cell:
  corpus BLEU over its examples, the standard figure (it is not the mean of the sentence scores).
- rouge_l: ROUGE-L F1 (0-1) from rouge-score, on runs of Unicode word characters (lowercased
  unless case_sensitive); a cell's figure is the mean over its examples.

exact_match, contains and regex_match are shares (0-1) in a cell. A cell's figures that are means
over its examples also get their standard error (`stderrs`), computed as lm-evaluation-harness
computes the standard error of its means, so the two backends' error bars read alike; corpus BLEU
has none. sacrebleu and rouge-score are imported when a BLEU or ROUGE-L figure is computed: this
module stays light.
"""

from __future__ import annotations

import re
from functools import lru_cache

METRIC_NAMES = ("exact_match", "contains", "regex_match", "bleu", "rouge_l")
_WORD = re.compile(r"\w+")


def normalize(text: str, case_sensitive: bool = False) -> str:
    squeezed = " ".join(text.split())
    return squeezed if case_sensitive else squeezed.casefold()


def exact_match(answer: str, expected: str, case_sensitive: bool = False) -> bool:
    return normalize(answer, case_sensitive) == normalize(expected, case_sensitive)


def contains(answer: str, expected: str, case_sensitive: bool = False) -> bool:
    return normalize(expected, case_sensitive) in normalize(answer, case_sensitive)


def regex_match(answer: str, pattern: str | re.Pattern | None) -> bool | None:
    return None if pattern is None else re.search(pattern, answer) is not None


def sentence_bleu(answer: str, expected: str, case_sensitive: bool = False) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_bleu(answer, [expected], lowercase=not case_sensitive).score)


def corpus_bleu(answers: list[str], expected: list[str], case_sensitive: bool = False) -> float:
    import sacrebleu

    return float(sacrebleu.corpus_bleu(answers, [expected], lowercase=not case_sensitive).score)


def rouge_l(answer: str, expected: str, case_sensitive: bool = False) -> float:
    return float(_rouge_scorer(case_sensitive).score(target=expected, prediction=answer)["rougeL"].fmeasure)


def score(answer: str, expected: str, metrics: list[str] | tuple[str, ...], pattern: str | re.Pattern | None = None,
          case_sensitive: bool = False) -> dict[str, bool | float | None]:
    """The figures of one answer, by metric name, in the order of `metrics`."""
    values: dict[str, bool | float | None] = {}
    for name in metrics:
        if name == "exact_match":
            values[name] = exact_match(answer, expected, case_sensitive)
        elif name == "contains":
            values[name] = contains(answer, expected, case_sensitive)
        elif name == "regex_match":
            values[name] = regex_match(answer, pattern)
        elif name == "bleu":
            values[name] = round(sentence_bleu(answer, expected, case_sensitive), 4)
        elif name == "rouge_l":
            values[name] = round(rouge_l(answer, expected, case_sensitive), 4)
        else:
            raise ValueError(f"unknown metric {name!r}")
    return values


def aggregate(scores: list[dict], answers: list[str], expected: list[str], metrics: list[str] | tuple[str, ...],
              case_sensitive: bool = False) -> dict[str, float | None]:
    """The figures of a table cell: shares for the yes/no metrics (regex_match over the examples that
    have a pattern; None when none has), corpus BLEU, mean ROUGE-L. None for an empty cell."""
    values: dict[str, float | None] = {}
    for name in metrics:
        if name == "bleu":
            values[name] = round(corpus_bleu(answers, expected, case_sensitive), 4) if answers else None
            continue
        given = [s[name] for s in scores if s.get(name) is not None]
        values[name] = round(sum(float(v) for v in given) / len(given), 4) if given else None
    return values


def stderrs(scores: list[dict], metrics: list[str] | tuple[str, ...]) -> dict[str, float | None]:
    """The standard error of each figure of a cell that is a mean over its examples (all but BLEU):
    the sample standard deviation (n - 1 in the denominator) over the square root of n. None for
    BLEU and for a figure with fewer than two examples."""
    errors: dict[str, float | None] = {}
    for name in metrics:
        given = [float(s[name]) for s in scores if s.get(name) is not None]
        if name == "bleu" or len(given) < 2:
            errors[name] = None
            continue
        mean = sum(given) / len(given)
        variance = sum((v - mean) ** 2 for v in given) / (len(given) - 1)
        errors[name] = round((variance / len(given)) ** 0.5, 4)
    return errors


class _WordTokenizer:
    """rouge-score's tokenizer interface. Its default tokenizer keeps only a-z and 0-9, which scores
    any other script (and accented words) as empty: we split on Unicode word characters instead."""

    def __init__(self, case_sensitive: bool):
        self.case_sensitive = case_sensitive

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text if self.case_sensitive else text.lower())


@lru_cache(maxsize=2)
def _rouge_scorer(case_sensitive: bool):
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer(case_sensitive))
