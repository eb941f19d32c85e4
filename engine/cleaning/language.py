"""Language: keep documents written in the listed languages (py3langid, offline, bundled model)."""

from __future__ import annotations

from engine.cleaning.steps import StepResult
from engine.specs.clean import LanguageStep

# The first characters say what language a document is in as well as the whole would, and the
# classifier's cost grows with the length: 2,000 characters keep it well under a millisecond.
SAMPLE_CHARS = 2000

_identifier = None  # one model per process, loaded on first use (about 0.7 s)


def identifier():
    """py3langid's identifier over all its languages, with probabilities normalised to sum to 1."""
    global _identifier
    if _identifier is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return _identifier


def detect(text: str) -> tuple[str, float]:
    """The most likely language of `text` (ISO 639-1) and its probability."""
    language, confidence = identifier().classify(text[:SAMPLE_CHARS])
    return language, float(confidence)


class Language:
    """Removes documents whose language is not kept, or not certain enough (rule `language`)."""

    def __init__(self, spec: LanguageStep):
        self.keep = tuple(spec.keep)
        self.min_confidence = spec.min_confidence
        known = set(identifier().labels)
        unknown = [code for code in self.keep if code not in known]
        if unknown:
            raise ValueError(f"language.keep: {', '.join(map(repr, unknown))} is not a language py3langid knows; "
                             f"use ISO 639-1 codes, one of: {' '.join(sorted(known))}")

    def __call__(self, text: str) -> StepResult:
        language, confidence = detect(text)
        if language not in self.keep:
            return StepResult(None, "language", f"detected {language} ({confidence:.2f}), keeping "
                                                f"{', '.join(self.keep)} (language.keep)")
        if confidence < self.min_confidence:
            return StepResult(None, "language", f"detected {language} ({confidence:.2f}), less certain than "
                                                f"{self.min_confidence} (language.min_confidence)")
        return StepResult(text)
