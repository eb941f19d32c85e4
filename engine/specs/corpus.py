"""The corpus section shared by the pretrain and tokenizer specs (`data:`).

Imported by the GUI: pydantic only.
"""

from __future__ import annotations

from pydantic import Field

from engine.specs.base import ADVANCED, StrictModel, TxtDocuments, txt_documents_field


class DataSpec(StrictModel):
    sources: list[str] = Field(
        ["builtin:python-docs"], min_length=1, title="Sources",
        description="Where the text comes from: `builtin:python-docs` (docstrings of this Python's standard "
                    "library), files, globs or folders of .txt .jsonl .json .csv .parquet, a dataset saved with "
                    "`save_to_disk`, or a Hugging Face hub dataset id (`hub:owner/name` or `owner/name`).")
    text_field: str = Field("text", min_length=1, title="Text field",
                            description="Column or JSON key holding the text (ignored for .txt files).")
    txt_documents: TxtDocuments = txt_documents_field()
    eval_fraction: float = Field(0.05, ge=0.0, le=0.5, title="Evaluation fraction",
                                 description="Share of documents held out to measure eval loss and perplexity.")
    max_documents: int | None = Field(None, ge=1, title="Maximum documents", json_schema_extra=ADVANCED,
                                      description="Use at most this many documents (after shuffling); empty = all.")
