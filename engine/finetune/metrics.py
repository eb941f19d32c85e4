"""Generation metrics against reference answers: exact match, BLEU (sacrebleu), ROUGE-L (rouge-score).

sacrebleu and rouge-score are imported when the metrics are computed: this module stays light.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")
_WORD = re.compile(r"\w+")


def exact_match(prediction: str, reference: str) -> bool:
    """Whether `prediction` says exactly `reference`, ignoring surrounding and repeated whitespace.

    Numbers compare by value, so "  8728", "8728." and "8,728" all match "8728".
    """
    prediction, reference = _squeeze(prediction), _squeeze(reference)
    if prediction == reference:
        return True
    left, right = _number(prediction), _number(reference)
    return left is not None and left == right


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """exact_match (share of exact answers, 0-1), bleu (sacrebleu corpus BLEU, 0-100) and rouge_l
    (mean ROUGE-L F1, 0-1) of `predictions` against `references`; {} when there are none.

    ROUGE-L splits words on Unicode word characters (rouge-score's default tokenizer keeps only
    a-z and 0-9, which scores any other script as empty).
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not predictions:
        return {}
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_WordTokenizer())
    rouge = [scorer.score(target=r, prediction=p)["rougeL"].fmeasure for p, r in zip(predictions, references)]
    return {
        "exact_match": sum(exact_match(p, r) for p, r in zip(predictions, references)) / len(predictions),
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score),
        "rouge_l": sum(rouge) / len(rouge),
    }


class _WordTokenizer:
    """rouge-score's tokenizer interface: lower-cased runs of Unicode word characters."""

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text.lower())


def _squeeze(text: str) -> str:
    return " ".join(text.split())


def _number(text: str) -> Decimal | None:
    text = text.rstrip(".,;:!?")
    if _THOUSANDS.fullmatch(text):
        text = text.replace(",", "")
    if not _NUMBER.fullmatch(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None
