"""Quality: the heuristic document filters of Gopher (Rae et al. 2021, App. A), C4 (Raffel et al.
2020) and FineWeb (Penedo et al. 2024), with the thresholds of the spec.

Our own code rather than datatrove's filters: those need NLTK tokenizer data downloaded at run time
and a heavy dependency stack, while this step must run offline and say which rule removed a
document and by how much. Definitions follow datatrove's implementations, with words split on
whitespace (as Gopher counts them) and punctuation stripped from their ends. Deviations, each
small: blank lines are not counted as lines by the line-based ratios (they are layout, and would
make every paragraph break a "short, unpunctuated, duplicate line"); a top n-gram only counts when
it occurs at least twice (a single occurrence is not repetition); comparisons are strict, as the
spec's field descriptions read ("above this: removed").

Sets run in FineWeb's order: repetition, Gopher, C4 (which rewrites the text line by line), FineWeb.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from itertools import accumulate, compress, filterfalse

from engine.cleaning.steps import StepResult
from engine.specs.clean import C4Quality, FineWebQuality, GopherQuality, GopherRepetition, QualityStep

STOP_WORDS = frozenset(("the", "be", "to", "of", "and", "that", "have", "with"))
_PUNCTUATION = string.punctuation + "“”‘’«»‹›„‚…–—·•¡¿、。，！？：；（）【】「」"
_BULLETS = ("•", "‣", "●", "○", "◦", "▪", "▫", "■", "□", "►", "▶", "➢", "⁃", "∙", "-", "*", "–", "—")
_TERMINAL = (".", "!", "?", '"', "'", "”", "’", "»", "。", "！", "？")
_POLICY = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
_HAS_LETTER = re.compile(r"[^\W\d_]")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_SENTENCE_END = re.compile(r"[.!?。！？]+[\"'”’»)\]]*(?=\s|$)")


def words_of(text: str) -> list[str]:
    """Whitespace-separated words with punctuation stripped from their ends; pure punctuation dropped."""
    return [word for word in (token.strip(_PUNCTUATION) for token in text.split()) if word]


def content_lines(text: str) -> list[str]:
    """Lines that hold something other than whitespace, without trailing whitespace."""
    return [line for line in (raw.rstrip() for raw in text.split("\n")) if line]


def duplicates(items: list[str]) -> tuple[int, int]:
    """How many items repeat an earlier one, and their characters."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def removed(field: str, figure: str, comparison: str, threshold: object) -> StepResult:
    rule = f"quality.{field}"
    return StepResult(None, rule, f"{figure}, {comparison} {threshold} ({rule})")


def _fraction(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if x else "0"


class Quality:
    """Removes documents that fail a Gopher, repetition, C4 or FineWeb rule; C4 may also drop lines."""

    def __init__(self, spec: QualityStep):
        self.gopher = spec.gopher if spec.gopher.enabled else None
        self.repetition = spec.repetition if spec.repetition.enabled else None
        self.c4 = spec.c4 if spec.c4.enabled else None
        self.fineweb = spec.fineweb if spec.fineweb.enabled else None

    def __call__(self, text: str) -> StepResult:
        words = words_of(text)
        if self.repetition is not None and (result := repetition_check(self.repetition, text, words)):
            return result
        if self.gopher is not None and (result := gopher_check(self.gopher, text, words)):
            return result
        changes: dict[str, int] = {}
        if self.c4 is not None:
            result = c4_lines(self.c4, text)
            if result.text is None:
                return result
            if result.text != text:
                text, words, changes = result.text, words_of(result.text), result.changes
        if self.fineweb is not None and (result := fineweb_check(self.fineweb, text, words)):
            return result
        return StepResult(text, changes=changes)


def gopher_check(g: GopherQuality, text: str, words: list[str]) -> StepResult | None:
    n = len(words)
    if g.min_words is not None and n < g.min_words:
        return removed("gopher.min_words", f"{n} words", "fewer than", g.min_words)
    if g.max_words is not None and n > g.max_words:
        return removed("gopher.max_words", f"{n} words", "more than", g.max_words)
    if n == 0:
        return None
    mean = sum(map(len, words)) / n
    if g.min_mean_word_length is not None and mean < g.min_mean_word_length:
        return removed("gopher.min_mean_word_length", f"mean word length {mean:.2f}", "below", g.min_mean_word_length)
    if g.max_mean_word_length is not None and mean > g.max_mean_word_length:
        return removed("gopher.max_mean_word_length", f"mean word length {mean:.2f}", "above", g.max_mean_word_length)
    if g.max_symbol_word_ratio is not None:
        for symbol, count in (("'#'", text.count("#")), ("ellipses", text.count("...") + text.count("…"))):
            if count / n > g.max_symbol_word_ratio:
                return removed("gopher.max_symbol_word_ratio", f"{_fraction(count / n)} {symbol} per word",
                               "above", g.max_symbol_word_ratio)
    lines = [line.strip() for line in content_lines(text)]
    if lines and g.max_bullet_lines_fraction is not None:
        share = sum(line.startswith(_BULLETS) for line in lines) / len(lines)
        if share > g.max_bullet_lines_fraction:
            return removed("gopher.max_bullet_lines_fraction", f"{_fraction(share)} of lines start with a bullet",
                           "above", g.max_bullet_lines_fraction)
    if lines and g.max_ellipsis_lines_fraction is not None:
        share = sum(line.endswith(("...", "…")) for line in lines) / len(lines)
        if share > g.max_ellipsis_lines_fraction:
            return removed("gopher.max_ellipsis_lines_fraction", f"{_fraction(share)} of lines end in an ellipsis",
                           "above", g.max_ellipsis_lines_fraction)
    if g.min_alpha_words_fraction is not None:
        letterless = [word for word in filterfalse(str.isalpha, words) if not _HAS_LETTER.search(word)]
        share = (n - len(letterless)) / n
        if share < g.min_alpha_words_fraction:
            return removed("gopher.min_alpha_words_fraction", f"{_fraction(share)} of words have a letter",
                           "below", g.min_alpha_words_fraction)
    if g.min_stop_words:
        found = 0
        for word in words:
            if len(word) <= 4 and word.lower() in STOP_WORDS:
                found += 1
                if found >= g.min_stop_words:
                    break
        else:
            return removed("gopher.min_stop_words", f"{found} stop words (the, be, to, of, and, that, have, with)",
                           "fewer than", g.min_stop_words)
    return None


def repetition_check(r: GopherRepetition, text: str, words: list[str]) -> StepResult | None:
    size = len(text)
    if not size:
        return None
    paragraphs = _PARAGRAPH_BREAK.split(text.strip())
    count, chars = duplicates(paragraphs)
    if r.max_duplicate_paragraph_fraction is not None and count / len(paragraphs) > r.max_duplicate_paragraph_fraction:
        return removed("repetition.max_duplicate_paragraph_fraction",
                       f"{count} of {len(paragraphs)} paragraphs repeat an earlier one", "above",
                       r.max_duplicate_paragraph_fraction)
    if r.max_duplicate_paragraph_chars_fraction is not None and chars / size > r.max_duplicate_paragraph_chars_fraction:
        return removed("repetition.max_duplicate_paragraph_chars_fraction",
                       f"{_fraction(chars / size)} of characters in repeated paragraphs", "above",
                       r.max_duplicate_paragraph_chars_fraction)
    lines = content_lines(text)
    count, chars = duplicates(lines)
    if lines and r.max_duplicate_line_fraction is not None and count / len(lines) > r.max_duplicate_line_fraction:
        return removed("repetition.max_duplicate_line_fraction", f"{count} of {len(lines)} lines repeat an earlier one",
                       "above", r.max_duplicate_line_fraction)
    if r.max_duplicate_line_chars_fraction is not None and chars / size > r.max_duplicate_line_chars_fraction:
        return removed("repetition.max_duplicate_line_chars_fraction",
                       f"{_fraction(chars / size)} of characters in repeated lines", "above",
                       r.max_duplicate_line_chars_fraction)
    grams = NGrams(words)
    for n, limit in sorted(r.top_ngram_max_fraction.items()):
        if n < 1 or len(words) < n:
            continue
        keys = grams.keys(n)
        key, times = Counter(keys).most_common(1)[0]
        start = keys.index(key)
        share = (grams.chars(start, n) + n - 1) * times / size
        if times > 1 and share > limit:
            return StepResult(None, "quality.repetition.top_ngram_max_fraction",
                              f"the most frequent {n}-gram ('{' '.join(words[start:start + n])}' ×{times}) covers "
                              f"{_fraction(share)} of characters, above {limit} "
                              f"(quality.repetition.top_ngram_max_fraction[{n}])")
    for n, limit in sorted(r.duplicate_ngram_max_fraction.items()):
        if n < 1:
            continue
        chars = grams.duplicate_chars(n)
        if chars is None:  # no n-gram repeats, so no longer one does either
            break
        if chars / size > limit:
            return StepResult(None, "quality.repetition.duplicate_ngram_max_fraction",
                              f"{_fraction(chars / size)} of characters in repeated {n}-grams, above {limit} "
                              f"(quality.repetition.duplicate_ngram_max_fraction[{n}])")
    return None


class NGrams:
    """The word n-grams of a document (tuples of words), with the characters they cover."""

    def __init__(self, words: list[str]):
        self.words = words
        self.offsets = list(accumulate(map(len, words), initial=0))

    def keys(self, n: int) -> list[tuple[str, ...]]:
        return list(zip(*(self.words[i:] for i in range(n))))

    def chars(self, start: int, n: int) -> int:
        """Characters of the words of n-gram `start`, spaces excluded."""
        return self.offsets[start + n] - self.offsets[start]

    def duplicate_chars(self, n: int) -> int | None:
        """Characters (spaces excluded) in n-grams that repeat an earlier one, counting each word
        once: after a repeat the scan jumps past it, as Gopher's definition does. None when nothing
        repeats."""
        keys = self.keys(n)
        counts = Counter(keys)
        if len(counts) == len(keys):
            return None
        # Only n-grams that occur twice or more can count: walking just their positions gives the
        # same result as walking every position.
        repeated = {key for key, times in counts.items() if times > 1}
        seen: set[tuple[str, ...]] = set()
        chars = resume = 0
        for i in compress(range(len(keys)), map(repeated.__contains__, keys)):
            if i < resume:
                continue
            if keys[i] in seen:
                chars += self.chars(i, n)
                resume = i + n
            else:
                seen.add(keys[i])
        return chars


def c4_lines(c: C4Quality, text: str) -> StepResult:
    """C4's line filter: keeps lines with enough words that end in terminal punctuation and mention
    neither JavaScript nor policies; removes the document for lorem ipsum, `{` or too few sentences."""
    kept: list[str] = []
    sentences = dropped = 0
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        lower = line.lower()
        if c.require_terminal_punctuation and (not line.endswith(_TERMINAL) or line.endswith("...")):
            dropped += 1
        elif c.min_words_per_line is not None and len(line.split()) < c.min_words_per_line:
            dropped += 1
        elif c.remove_lorem_ipsum and "lorem ipsum" in lower:
            return StepResult(None, "quality.c4.remove_lorem_ipsum",
                              f"line {number} contains 'lorem ipsum' (quality.c4.remove_lorem_ipsum)")
        elif c.remove_javascript_lines and "javascript" in lower:
            dropped += 1
        elif c.remove_curly_brackets and "{" in line:
            return StepResult(None, "quality.c4.remove_curly_brackets",
                              f"line {number} contains '{{' (quality.c4.remove_curly_brackets)")
        elif c.remove_policy_lines and any(phrase in lower for phrase in _POLICY):
            dropped += 1
        else:
            sentences += max(1, len(_SENTENCE_END.findall(line)))
            kept.append(line)
    if c.min_sentences is not None and sentences < c.min_sentences:
        return removed("c4.min_sentences", f"{sentences} sentences left after dropping {dropped} lines",
                       "fewer than", c.min_sentences)
    if not kept:
        return StepResult(None, "quality.c4.lines_dropped",
                          f"all {dropped} lines dropped by the C4 line rules (quality.c4)")
    return StepResult("\n".join(kept), changes={"quality.c4.lines_dropped": dropped} if dropped else {})


def fineweb_check(f: FineWebQuality, text: str, words: list[str]) -> StepResult | None:
    lines = content_lines(text)
    if not lines:
        return None
    if f.min_line_punctuation_fraction is not None:
        share = sum(line.endswith(_TERMINAL) for line in lines) / len(lines)
        if share < f.min_line_punctuation_fraction:
            return removed("fineweb.min_line_punctuation_fraction", f"{_fraction(share)} of lines end in punctuation",
                           "below", f.min_line_punctuation_fraction)
    if f.max_short_line_fraction is not None:
        share = sum(len(line) < f.short_line_length for line in lines) / len(lines)
        if share > f.max_short_line_fraction:
            return removed("fineweb.max_short_line_fraction",
                           f"{_fraction(share)} of lines shorter than {f.short_line_length} characters",
                           "above", f.max_short_line_fraction)
    if f.max_duplicate_line_chars_fraction is not None:
        chars = duplicates(lines)[1]
        share = chars / max(1, len(text) - text.count("\n"))
        if share > f.max_duplicate_line_chars_fraction:
            return removed("fineweb.max_duplicate_line_chars_fraction",
                           f"{_fraction(share)} of characters in repeated lines", "above",
                           f.max_duplicate_line_chars_fraction)
    if f.max_newline_ratio is not None:
        ratio = text.count("\n") / max(1, len(words))
        if ratio > f.max_newline_ratio:
            return removed("fineweb.max_newline_ratio", f"{_fraction(ratio)} newlines per word", "above",
                           f.max_newline_ratio)
    return None
