"""The dry run: the whole pipeline on a random sample, reporting each document's fate.

The sample is drawn by reservoir sampling from the first `SCAN_FACTOR × sample` documents, so a dry
run on a huge corpus reads a bounded prefix instead of the whole of it (the docs say so). It runs in
this process: starting worker processes would cost more than cleaning a thousand documents.
Duplicates are only found within the sample.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from engine.cleaning.pipeline import Pipeline, dedup_steps
from engine.cleaning.reader import CorpusReader, Document, Problems
from engine.cleaning.report import CleaningStats
from engine.errors import DataError
from engine.specs.clean import CleanSpec

SCAN_FACTOR = 50


def sample_documents(spec: CleanSpec, size: int, problems: Problems) -> tuple[list[Document], int]:
    """(the sample in reading order, documents read)."""
    rng = random.Random(spec.seed)
    reservoir: list[tuple[int, Document]] = []
    read = 0
    for read, document in enumerate(CorpusReader(spec.input, spec.repair, problems), start=1):
        if len(reservoir) < size:
            reservoir.append((read, document))
        else:
            slot = rng.randrange(read)
            if slot < size:
                reservoir[slot] = (read, document)
        if read >= SCAN_FACTOR * size:
            break
    reservoir.sort(key=lambda pair: pair[0])
    return [document for _, document in reservoir], read


def preview(spec: CleanSpec, workspace: Path | None = None, size: int | None = None) -> dict:
    """A dry run on a random sample of the input (the workspace is not needed: inputs are paths)."""
    started = time.monotonic()
    problems = Problems(stop=False)  # a dry run lists broken records instead of stopping at the first
    sample, read = sample_documents(spec, size or spec.preview.sample_documents, problems)
    if not sample:
        raise DataError(f"The input is empty: {', '.join(spec.input.sources)} holds no readable document"
                        + (f" ({problems.count} broken records)" if problems.count else "") + ".",
                        "Check input.sources and input.text_field.")
    stats = CleaningStats(spec.document_steps() + dedup_steps(spec))
    documents = []
    ids = {}
    for document, outcome in Pipeline(spec, workers=1).run(sample):
        stats.add(document, outcome)
        ids[outcome.seq] = document.id
        documents.append({
            "id": document.id, "source": document.source, "text": document.text, "final_text": outcome.text,
            "fate": outcome.fate, "step": outcome.step, "rule": outcome.rule, "reason": outcome.reason,
            "modified": outcome.modified, "changes": outcome.changes,
            "duplicate_of": ids.get(outcome.duplicate_of), "similarity": outcome.similarity})
    return {"sample": len(sample), "read": read, "seconds": round(time.monotonic() - started, 2),
            "steps": stats.step_rows(), "documents": documents,
            "problems": [f"{p['where']}: {p['problem']}" for p in problems.examples],
            "problem_count": problems.count}


def preview_text(result: dict) -> str:
    """The dry run for a terminal: per step, what it would remove, with an example reason."""
    lines = [f"Dry run on {result['sample']:,} documents (sampled from the first {result['read']:,}) "
             f"in {result['seconds']:.1f} s:"]
    for row in result["steps"]:
        lines.append(f"  {row['step']:<12} would remove {row['removed']:>5,}, modify {row['modified']:>5,}")
        for rule, info in list(row["rules"].items())[:5]:
            example = next(d for d in result["documents"] if d["rule"] == rule)
            lines.append(f"    {rule}: {info['removed']:,}  e.g. {example['id']}: {example['reason']}")
    kept = sum(1 for d in result["documents"] if d["fate"] != "removed")
    lines.append(f"  kept {kept:,} of {result['sample']:,}")
    if result["problem_count"]:
        lines.append(f"  {result['problem_count']:,} broken records, e.g. {result['problems'][0]}")
    return "\n".join(lines)
