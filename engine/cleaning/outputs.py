"""Where a cleaning run's results go: the cleaned dataset, every document's fate, removed examples.

- DatasetWriter: kept documents as Parquet (row groups written as they come) or JSONL, columns
  text, id, source; written under a temporary name and renamed when complete.
- FateLog: `fates.sqlite` in the run folder, one row per document (kept, modified or removed, by
  which step and rule, why, and which document it duplicates), so `studio-engine show RUN --doc ID`
  can answer for any document. SQLite because a lookup by id must not scan a file of millions of lines.
- RemovedExamples: the first `removed_examples` documents removed by each rule, in removed/<rule>.jsonl.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from engine.cleaning.pipeline import Outcome
from engine.cleaning.reader import Document

DATASET_FILE = {"parquet": "data-00000.parquet", "jsonl": "data-00000.jsonl"}


class DatasetWriter:
    ROW_GROUP = 5000

    def __init__(self, folder: Path, format: str):
        self.folder, self.format = folder, format
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / DATASET_FILE[format]
        self._rows: dict[str, list[str]] = {"text": [], "id": [], "source": []}
        self._parquet = None
        self._jsonl = self.path.open("w", encoding="utf-8") if format == "jsonl" else None

    def add(self, document: Document, text: str) -> None:
        if self._jsonl is not None:
            self._jsonl.write(json.dumps({"text": text, "id": document.id, "source": document.source},
                                         ensure_ascii=False) + "\n")
            return
        self._rows["text"].append(text)
        self._rows["id"].append(document.id)
        self._rows["source"].append(document.source)
        if len(self._rows["text"]) >= self.ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({k: pa.array(v, type=pa.string()) for k, v in self._rows.items()})
        if self._parquet is None:
            self._parquet = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._parquet.write_table(table)
        self._rows = {"text": [], "id": [], "source": []}

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            return
        if self._rows["text"] or self._parquet is None:  # an empty result is still a valid, empty file
            self._flush()
        self._parquet.close()


class FateLog:
    SCHEMA = """
    CREATE TABLE IF NOT EXISTS fates (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL, source TEXT, fate TEXT NOT NULL, step TEXT, rule TEXT,
        reason TEXT, modified TEXT, changes TEXT, duplicate_of INTEGER, similarity REAL, chars_in INTEGER,
        chars_out INTEGER, removed_text TEXT);
    """

    def __init__(self, path: Path):
        path.unlink(missing_ok=True)  # a resumed clean run starts again from the first document
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(self.SCHEMA)
        self._rows: list[tuple] = []

    def add(self, document: Document, outcome: Outcome) -> None:
        self._rows.append((
            outcome.seq, document.id, document.source, outcome.fate, outcome.step, outcome.rule, outcome.reason,
            ",".join(outcome.modified) or None, json.dumps(outcome.changes) if outcome.changes else None,
            outcome.duplicate_of, outcome.similarity, len(document.text),
            None if outcome.text is None else len(outcome.text),
            document.text if outcome.text is None else None))
        if len(self._rows) >= 2000:
            self.flush()

    def flush(self) -> None:
        self.db.executemany("INSERT INTO fates VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", self._rows)
        self.db.commit()
        self._rows = []

    def close(self) -> None:
        self.flush()
        self.db.execute("CREATE INDEX IF NOT EXISTS fates_id ON fates(id)")
        self.db.execute("CREATE INDEX IF NOT EXISTS fates_duplicate_of ON fates(duplicate_of)")
        self.db.commit()
        self.db.close()


def lookup_fates(path: Path, doc_id: str) -> list[dict]:
    """Every document with this id (ids from file:line are unique; a user's id_field may repeat)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        rows = db.execute("""SELECT f.*, k.id AS duplicate_of_id, k.source AS duplicate_of_source FROM fates f
                             LEFT JOIN fates k ON k.seq = f.duplicate_of WHERE f.id = ? ORDER BY f.seq""",
                          (doc_id,)).fetchall()
        return [dict(row) for row in rows]
    finally:
        db.close()


def largest_clusters(path: Path, limit: int) -> list[dict]:
    """The `limit` kept documents with the most duplicates, with their removed members."""
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        heads = db.execute("""SELECT duplicate_of AS seq, COUNT(*) AS n FROM fates WHERE duplicate_of IS NOT NULL
                              GROUP BY duplicate_of ORDER BY n DESC, duplicate_of LIMIT ?""", (limit,)).fetchall()
        clusters = []
        for head in heads:
            kept = db.execute("SELECT id, source FROM fates WHERE seq = ?", (head["seq"],)).fetchone()
            members = db.execute("""SELECT id, source, removed_text AS text, similarity, step FROM fates
                                    WHERE duplicate_of = ? ORDER BY seq""", (head["seq"],)).fetchall()
            clusters.append({"seq": head["seq"], "kept": dict(kept), "members": [dict(m) for m in members]})
        return clusters
    finally:
        db.close()


class RemovedExamples:
    def __init__(self, per_rule: int):
        self.per_rule = per_rule
        self.examples: dict[str, list[dict]] = {}

    def add(self, document: Document, outcome: Outcome) -> None:
        kept = self.examples.setdefault(outcome.rule, [])
        if len(kept) < self.per_rule:
            kept.append({"id": document.id, "source": document.source, "text": document.text,
                         "reason": outcome.reason, "duplicate_of": outcome.duplicate_of})

    def write(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for rule, examples in self.examples.items():
            with (folder / f"{rule}.jsonl").open("w", encoding="utf-8") as f:
                for example in examples:
                    f.write(json.dumps(example, ensure_ascii=False) + "\n")
