"""The spec of `kind: clean`: read a corpus, repair and normalise it, filter it, redact personal
information, remove exact and near duplicates, and write the cleaned dataset with a report.

The per-document steps run in the order of `order`; the two deduplication steps always run last,
on what the others left (a duplicate is judged on the text that would be written).
Quality thresholds default to the published values: Gopher (Rae et al. 2021, Appendix A), C4
(Raffel et al. 2020) and FineWeb (Penedo et al. 2024). A rule set to empty is switched off.

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.specs.base import ADVANCED, StrictModel, TxtDocuments, run_name, seed_field, txt_documents_field

DOCUMENT_STEPS = ("repair", "normalize", "quality", "language", "pii")
PII_KINDS = ("email", "phone", "ip", "credit_card", "iban", "secret")


class CleanInput(StrictModel):
    sources: list[str] = Field(
        ["builtin:python-docs"], min_length=1, title="Sources",
        description="What to clean: `builtin:python-docs`, files, globs or folders of .txt .jsonl .json .csv "
                    ".parquet, a dataset saved with `save_to_disk`, or a hub dataset id (`hub:owner/name`).")
    text_field: str = Field("text", min_length=1, title="Text field",
                            description="Column or JSON key holding the text (ignored for .txt files).")
    txt_documents: TxtDocuments = txt_documents_field()
    id_field: str | None = Field(
        None, title="Id field", json_schema_extra=ADVANCED,
        description="Column or JSON key to keep as each document's id. Empty = where it came from "
                    "(`file.jsonl:12` for line 12, `file.parquet:#3` for row 3, the file name for .txt).")
    on_bad_record: Literal["skip", "stop"] = Field(
        "skip", title="Broken records",
        description="A JSONL line that is not JSON, a record without the text field, a binary file: skip it and "
                    "list the line numbers in the report, or stop the run at the first one.")
    max_documents: int | None = Field(None, ge=1, title="Maximum documents", json_schema_extra=ADVANCED,
                                      description="Stop after this many documents (in reading order); empty = all.")


class RepairStep(StrictModel):
    enabled: bool = Field(True, title="Repair text",
                          description="Fix what went wrong before the text reached you; each repair is counted.")
    detect_encoding: bool = Field(
        True, title="Detect encodings",
        description="Read UTF-16 (by its byte-order mark) and legacy encodings (detected with charset-normalizer) "
                    "instead of failing; off = invalid UTF-8 bytes become U+FFFD.")
    fix_mojibake: bool = Field(True, title="Fix mojibake",
                               description="Undo double-decoded text (`cafÃ©` → `café`) with ftfy.")


class NormalizeStep(StrictModel):
    enabled: bool = Field(True, title="Normalise text", description="Unicode form, whitespace and control characters.")
    unicode: Literal["nfc", "nfkc", "none"] = Field(
        "nfc", title="Unicode form",
        description="nfc composes accents (é as one character); nfkc also folds compatibility forms "
                    "(ﬁ → fi, full-width → ASCII, ² → 2); none keeps the text as it is.")
    whitespace: bool = Field(True, title="Tidy whitespace",
                             description="Strip trailing spaces, turn \\r\\n into \\n, keep at most one blank line in a row.")
    control_characters: bool = Field(True, title="Remove control characters",
                                     description="Drop C0/C1 control and zero-width characters (tabs and newlines stay).")


class GopherQuality(StrictModel):
    enabled: bool = Field(True, title="Gopher quality rules",
                          description="Document-level heuristics of DeepMind's Gopher (MassiveText).")
    min_words: int | None = Field(50, ge=0, title="Minimum words", description="Fewer words: removed.")
    max_words: int | None = Field(100_000, ge=1, title="Maximum words", description="More words: removed.")
    min_mean_word_length: float | None = Field(3.0, ge=0, title="Minimum mean word length", json_schema_extra=ADVANCED,
                                               description="Shorter average word (in characters): removed.")
    max_mean_word_length: float | None = Field(10.0, ge=0, title="Maximum mean word length", json_schema_extra=ADVANCED,
                                               description="Longer average word: removed.")
    max_symbol_word_ratio: float | None = Field(0.1, ge=0, title="Maximum symbol-to-word ratio",
                                                json_schema_extra=ADVANCED,
                                                description="`#` and `...`/`…` per word above this: removed.")
    max_bullet_lines_fraction: float | None = Field(0.9, ge=0, le=1, title="Maximum bullet lines",
                                                    json_schema_extra=ADVANCED,
                                                    description="Share of lines starting with a bullet above this: removed.")
    max_ellipsis_lines_fraction: float | None = Field(0.3, ge=0, le=1, title="Maximum ellipsis lines",
                                                      json_schema_extra=ADVANCED,
                                                      description="Share of lines ending in `...`/`…` above this: removed.")
    min_alpha_words_fraction: float | None = Field(0.8, ge=0, le=1, title="Minimum alphabetic words",
                                                   json_schema_extra=ADVANCED,
                                                   description="Share of words with a letter below this: removed.")
    min_stop_words: int | None = Field(2, ge=0, title="Minimum stop words", json_schema_extra=ADVANCED,
                                       description="Fewer of the, be, to, of, and, that, have, with: removed "
                                                   "(English-specific; empty it for other languages).")


class GopherRepetition(StrictModel):
    enabled: bool = Field(True, title="Gopher repetition rules",
                          description="Remove documents that repeat lines, paragraphs or n-grams (Gopher).")
    max_duplicate_line_fraction: float | None = Field(0.3, ge=0, le=1, title="Duplicate lines",
                                                      description="Share of lines that repeat an earlier line.")
    max_duplicate_paragraph_fraction: float | None = Field(0.3, ge=0, le=1, title="Duplicate paragraphs",
                                                           description="Share of paragraphs that repeat an earlier one.")
    max_duplicate_line_chars_fraction: float | None = Field(0.2, ge=0, le=1, title="Characters in duplicate lines",
                                                            json_schema_extra=ADVANCED,
                                                            description="Share of characters in repeated lines.")
    max_duplicate_paragraph_chars_fraction: float | None = Field(
        0.2, ge=0, le=1, title="Characters in duplicate paragraphs", json_schema_extra=ADVANCED,
        description="Share of characters in repeated paragraphs.")
    top_ngram_max_fraction: dict[int, float] = Field(
        {2: 0.2, 3: 0.18, 4: 0.16}, title="Top n-gram fraction", json_schema_extra=ADVANCED,
        description="n → limit: share of characters covered by the most frequent word n-gram.")
    duplicate_ngram_max_fraction: dict[int, float] = Field(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}, title="Duplicate n-gram fraction",
        json_schema_extra=ADVANCED,
        description="n → limit: share of characters inside word n-grams that occur more than once.")


class C4Quality(StrictModel):
    enabled: bool = Field(False, title="C4 rules",
                          description="C4's line filter and document rules (off by default: it rewrites documents "
                                      "line by line, which suits web pages, not books or code).")
    min_words_per_line: int | None = Field(3, ge=0, title="Minimum words per line",
                                           description="Drop lines with fewer words.")
    require_terminal_punctuation: bool = Field(True, title="Lines end in punctuation",
                                               description="Drop lines that do not end in . ! ? or a quote.")
    min_sentences: int | None = Field(5, ge=0, title="Minimum sentences",
                                      description="Fewer sentences (after dropping lines): removed.")
    remove_javascript_lines: bool = Field(True, title="Drop JavaScript lines", json_schema_extra=ADVANCED,
                                          description="Drop lines mentioning `javascript` (cookie/JS warnings).")
    remove_policy_lines: bool = Field(True, title="Drop policy lines", json_schema_extra=ADVANCED,
                                      description="Drop lines mentioning terms of use, privacy policy, cookies.")
    remove_lorem_ipsum: bool = Field(True, title="Remove lorem ipsum", json_schema_extra=ADVANCED,
                                     description="Remove documents containing `lorem ipsum`.")
    remove_curly_brackets: bool = Field(True, title="Remove code-like documents", json_schema_extra=ADVANCED,
                                        description="Remove documents containing `{` (C4's code filter).")


class FineWebQuality(StrictModel):
    enabled: bool = Field(True, title="FineWeb rules", description="Line-structure rules of HF FineWeb.")
    min_line_punctuation_fraction: float | None = Field(
        0.12, ge=0, le=1, title="Lines ending in punctuation",
        description="Share of lines ending in . ! ? or a quote below this: removed.")
    max_short_line_fraction: float | None = Field(
        0.67, ge=0, le=1, title="Short lines", json_schema_extra=ADVANCED,
        description="Share of lines shorter than `short_line_length` characters above this: removed.")
    short_line_length: int = Field(30, ge=1, title="Short line length", json_schema_extra=ADVANCED,
                                   description="A line with fewer characters counts as short.")
    max_duplicate_line_chars_fraction: float | None = Field(
        0.01, ge=0, le=1, title="Characters in duplicate lines", json_schema_extra=ADVANCED,
        description="Share of characters in lines that repeat an earlier line above this: removed.")
    max_newline_ratio: float | None = Field(0.3, ge=0, title="Newlines per word", json_schema_extra=ADVANCED,
                                            description="Newlines per word above this (list-like text): removed.")


class QualityStep(StrictModel):
    enabled: bool = Field(True, title="Quality filters",
                          description="Remove garbled, too short, repetitive or list-like documents.")
    gopher: GopherQuality = Field(default_factory=GopherQuality, title="Gopher quality")
    repetition: GopherRepetition = Field(default_factory=GopherRepetition, title="Gopher repetition")
    c4: C4Quality = Field(default_factory=C4Quality, title="C4")
    fineweb: FineWebQuality = Field(default_factory=FineWebQuality, title="FineWeb")


class LanguageStep(StrictModel):
    enabled: bool = Field(False, title="Language identification",
                          description="Keep only documents in the listed languages (py3langid, runs offline).")
    keep: list[str] = Field(["en"], min_length=1, title="Languages kept",
                            description="ISO 639-1 codes, e.g. en, de, fr, zh.")
    min_confidence: float = Field(0.65, ge=0, le=1, title="Minimum confidence",
                                  description="Documents whose language is less certain than this are removed.")


class PiiTokens(StrictModel):
    email: str = Field("<EMAIL>", title="Email replacement")
    phone: str = Field("<PHONE>", title="Phone replacement")
    ip: str = Field("<IP_ADDRESS>", title="IP address replacement")
    credit_card: str = Field("<CREDIT_CARD>", title="Card number replacement")
    iban: str = Field("<IBAN>", title="IBAN replacement")
    secret: str = Field("<SECRET>", title="Secret replacement")


class PiiStep(StrictModel):
    enabled: bool = Field(True, title="Redact personal information",
                          description="Replace personal data and secrets by placeholder tokens; counts go to the report.")
    redact: list[Literal["email", "phone", "ip", "credit_card", "iban", "secret"]] = Field(
        list(PII_KINDS), title="What to redact",
        description="email, phone (international or with separators), ip (IPv4 and IPv6), credit_card "
                    "(Luhn-checked), iban (checksum-checked), secret (API keys, tokens, private keys).")
    tokens: PiiTokens = Field(default_factory=PiiTokens, title="Replacement tokens", json_schema_extra=ADVANCED)


class ExactDedupStep(StrictModel):
    enabled: bool = Field(True, title="Remove exact duplicates",
                          description="Keep the first of documents whose text is the same.")
    ignore_case_and_spacing: bool = Field(
        True, title="Ignore case and spacing",
        description="Compare texts lowercased with whitespace collapsed, so `A  b` and `a b` are the same.")


class NearDedupStep(StrictModel):
    enabled: bool = Field(True, title="Remove near duplicates",
                          description="Keep the first of documents that are almost the same text.")
    method: Literal["minhash", "simhash"] = Field(
        "minhash", title="Method",
        description="minhash: MinHash LSH over word n-grams (Jaccard similarity); simhash: 64-bit SimHash "
                    "fingerprints (Hamming distance), cheaper, for near-exact copies.")
    ngram: int = Field(5, ge=1, le=50, title="N-gram size", description="Words per shingle.")
    threshold: float = Field(0.8, gt=0, lt=1, title="Similarity threshold",
                             description="MinHash: documents with estimated Jaccard similarity at or above this are "
                                         "near duplicates.")
    permutations: int = Field(128, ge=16, le=1024, title="Permutations", json_schema_extra=ADVANCED,
                              description="MinHash signature length: more is more accurate and slower.")
    bands: int | None = Field(None, ge=1, title="Bands", json_schema_extra=ADVANCED,
                              description="LSH bands; empty (with rows) = chosen from the threshold.")
    rows: int | None = Field(None, ge=1, title="Rows per band", json_schema_extra=ADVANCED,
                             description="LSH rows per band; bands × rows ≤ permutations.")
    max_hamming: int = Field(3, ge=0, le=16, title="SimHash distance", json_schema_extra=ADVANCED,
                             description="SimHash: fingerprints within this many differing bits are near duplicates.")

    @model_validator(mode="after")
    def _bands_rows(self) -> NearDedupStep:
        if (self.bands is None) != (self.rows is None):
            raise ValueError("near_dedup.bands and near_dedup.rows go together: set both, or leave both empty")
        if self.bands is not None and self.bands * self.rows > self.permutations:
            raise ValueError(f"near_dedup.bands × rows ({self.bands} × {self.rows} = {self.bands * self.rows}) "
                             f"exceeds permutations ({self.permutations}); lower them or raise permutations")
        return self


class CleanOutput(StrictModel):
    format: Literal["parquet", "jsonl"] = Field(
        "parquet", title="Format",
        description="How the cleaned dataset is written (columns text, id, source); both feed the tokenizer "
                    "and pretraining wizards.")
    removed_examples: int = Field(20, ge=0, le=10_000, title="Removed examples per rule",
                                  description="Documents kept in removed/ for each rule, to read what it removed.")
    clusters_in_report: int = Field(50, ge=0, le=10_000, title="Duplicate clusters in the report",
                                    json_schema_extra=ADVANCED,
                                    description="The largest near-duplicate clusters listed with their members.")


class PreviewSpec(StrictModel):
    sample_documents: int = Field(1000, ge=10, le=100_000, title="Dry-run sample",
                                  description="Documents drawn at random for the dry run that shows what each step removes.")


class CleanSpec(StrictModel):
    kind: Literal["clean"] = Field("clean", title="Kind",
                                   description="Clean a corpus: repair, normalise, filter, redact, deduplicate.")
    name: str = run_name("clean")
    input: CleanInput = Field(default_factory=CleanInput, title="Input")
    repair: RepairStep = Field(default_factory=RepairStep, title="Repair")
    normalize: NormalizeStep = Field(default_factory=NormalizeStep, title="Normalise")
    quality: QualityStep = Field(default_factory=QualityStep, title="Quality")
    language: LanguageStep = Field(default_factory=LanguageStep, title="Language")
    pii: PiiStep = Field(default_factory=PiiStep, title="Personal information")
    exact_dedup: ExactDedupStep = Field(default_factory=ExactDedupStep, title="Exact duplicates")
    near_dedup: NearDedupStep = Field(default_factory=NearDedupStep, title="Near duplicates")
    output: CleanOutput = Field(default_factory=CleanOutput, title="Output")
    preview: PreviewSpec = Field(default_factory=PreviewSpec, title="Dry run", json_schema_extra=ADVANCED)
    order: list[Literal["repair", "normalize", "quality", "language", "pii"]] = Field(
        list(DOCUMENT_STEPS), title="Step order", json_schema_extra=ADVANCED,
        description="Order of the per-document steps (each at most once; a step left out does not run). "
                    "Exact, then near, deduplication always run last.")
    workers: int = Field(0, ge=0, le=512, title="Worker processes", json_schema_extra=ADVANCED,
                         description="Processes running the per-document steps; 0 = one per CPU core.")
    shards: int = Field(
        1, ge=1, le=1024, title="Shards", json_schema_extra=ADVANCED,
        description="Split the corpus into this many shards (every shard-th batch of `batch_documents`), each "
                    "cleaned by a process of its own, then deduplicate across all of them in one final stage "
                    "over their MinHash/SimHash signatures: the same documents are kept as with 1. Each shard is "
                    "one process, so with more than 1 leave `workers` at 0.")
    batch_documents: int = Field(1000, ge=1, le=1_000_000, title="Batch size", json_schema_extra=ADVANCED,
                                 description="Documents handed to a worker at a time; bounds the memory in flight.")
    seed: int = seed_field("Seed of the dry-run sample and the MinHash permutations.")

    @model_validator(mode="after")
    def _order_once(self) -> CleanSpec:
        repeated = sorted({step for step in self.order if self.order.count(step) > 1})
        if repeated:
            raise ValueError(f"order lists {', '.join(repeated)} more than once; name each step at most once")
        if self.shards > 1 and self.workers > 1:
            raise ValueError(f"workers ({self.workers}) and shards ({self.shards}) both split the work into processes; "
                             "with shards each shard is one process: leave workers at 0, or set shards to 1")
        return self

    def document_steps(self) -> list[str]:
        """The per-document steps that run, in order."""
        return [name for name in self.order if getattr(self, name).enabled]
