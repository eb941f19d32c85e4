"""Clean a corpus: read → per-document steps (repair, normalise, quality, language, PII) in worker
processes → exact and near deduplication → cleaned dataset, every document's fate, a report.

The steps live in engine/cleaning/; this file wires them to the run: progress with ETA, cancel
between batches, atomic outputs, and the report's figures as events. A resumed clean run starts
again from the first document (it has no checkpoints: the output appears whole or not at all).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.cleaning.outputs import DatasetWriter, FateLog, RemovedExamples, largest_clusters
from engine.cleaning.pipeline import Pipeline, dedup_steps
from engine.cleaning.reader import CorpusReader, Problems
from engine.cleaning.report import CLUSTER_TEXT_CHARS, CleaningStats, write_html
from engine.errors import DataError
from engine.rundir import atomic_directory, atomic_write_text
from engine.runner import JobContext
from engine.specs import CleanSpec

PROGRESS_SECONDS = 0.5


def run(ctx: JobContext) -> dict:
    spec: CleanSpec = ctx.spec
    output = ctx.run.output_dir
    started = time.monotonic()
    problems = Problems(stop=spec.input.on_bad_record == "stop")
    reader = CorpusReader(spec.input, spec.repair, problems)
    stats = CleaningStats(spec.document_steps() + dedup_steps(spec))
    pipeline = Pipeline(spec)
    ctx.events.log("info", f"Cleaning {', '.join(spec.input.sources)}: steps {' → '.join(stats.steps) or '(none)'}, "
                           f"{pipeline.workers} worker process{'es' if pipeline.workers != 1 else ''}.")

    dataset_dir = output / "dataset"
    with atomic_directory(dataset_dir) as tmp:
        writer = DatasetWriter(tmp, spec.output.format)
        fates = FateLog(ctx.run.path / "fates.sqlite")
        examples = RemovedExamples(spec.output.removed_examples)
        last_progress = 0.0
        for document, outcome in pipeline.run(reader):
            stats.add(document, outcome)
            fates.add(document, outcome)
            if outcome.text is None:
                examples.add(document, outcome)
            else:
                writer.add(document, outcome.text)
            if time.monotonic() - last_progress > PROGRESS_SECONDS:
                last_progress = time.monotonic()
                report_progress(ctx, reader, stats, time.monotonic() - started)
                ctx.check_cancelled()
        writer.close()
        fates.close()
        check_not_empty(spec, stats, problems)
    report_progress(ctx, reader, stats, time.monotonic() - started, done=True)

    examples.write(output / "removed")
    seconds = time.monotonic() - started
    report = build_report(ctx, reader, problems, stats, pipeline, dataset_dir, seconds)
    report_path = output / "report.json"
    atomic_write_text(report_path, json.dumps(report, indent=1, ensure_ascii=False))
    write_html(output / "report.html", spec.name, report, examples.examples)

    ctx.events.metric(0, "eval", stats.metric_values())
    ctx.events.artifact("dataset", str(dataset_dir), {"documents": stats.documents_out, "format": spec.output.format})
    ctx.events.artifact("report", str(report_path), {"html": str(output / "report.html")})
    ctx.events.log("info", summary_text(report))
    return {"documents_in": stats.documents_in, "documents_out": stats.documents_out,
            "removed": stats.documents_in - stats.documents_out, "dataset": str(dataset_dir),
            "report": str(report_path)}


def report_progress(ctx: JobContext, reader: CorpusReader, stats: CleaningStats, elapsed: float,
                    done: bool = False) -> None:
    total = reader.total_bytes / 1e6 or None
    read = total if done and total else min(reader.bytes_read / 1e6, total or float("inf"))
    eta = elapsed / read * (total - read) if total and read > 0 else None
    ctx.events.progress("clean", round(read, 3), round(total, 3) if total else None, "MB", eta)
    ctx.step = stats.documents_in
    ctx.update_status()


def check_not_empty(spec: CleanSpec, stats: CleaningStats, problems: Problems) -> None:
    if stats.documents_in:
        return
    if problems.count:
        first = problems.examples[0]
        raise DataError(f"No document could be read from {', '.join(spec.input.sources)}: all {problems.count} "
                        f"records were broken (first: {first['where']}: {first['problem']}).",
                        "Fix the input files; the report of a dry run (`studio-engine preview`) lists the problems.")
    raise DataError(f"The input is empty: {', '.join(spec.input.sources)} holds no document.",
                    "Check input.sources and input.text_field.")


def build_report(ctx: JobContext, reader: CorpusReader, problems: Problems, stats: CleaningStats,
                 pipeline: Pipeline, dataset_dir: Path, seconds: float) -> dict:
    spec = ctx.spec
    clusters = largest_clusters(ctx.run.path / "fates.sqlite", spec.output.clusters_in_report)
    attach_kept_texts(clusters, dataset_dir, spec.output.format)
    indexed = max(1, stats.documents_out)
    index_bytes = pipeline.dedup.index_bytes()
    return {
        "input": {"documents": stats.documents_in, "chars": stats.chars_in, "bytes": reader.total_bytes,
                  "files": reader.files, "skipped": problems.count, "skipped_examples": problems.examples,
                  "repairs": reader.repairs},
        "output": {"documents": stats.documents_out, "chars": stats.chars_out, "path": str(dataset_dir),
                   "format": spec.output.format},
        "steps": stats.step_rows("removed"),
        "histograms": stats.histograms(),
        "clusters": clusters,
        "near_dedup": {"method": spec.near_dedup.method if spec.near_dedup.enabled else None,
                       "index_bytes": index_bytes, "bytes_per_document": round(index_bytes / indexed, 1)},
        "seconds": round(seconds, 2),
        "mb_per_s": round(reader.total_bytes / 1e6 / max(seconds, 1e-9), 3),
    }


def attach_kept_texts(clusters: list[dict], dataset_dir: Path, format: str) -> None:
    """Fill in each cluster's kept text from the written dataset (one pass, only the ids needed)."""
    wanted = {c["kept"]["id"]: c for c in clusters}
    if not wanted:
        return
    for doc_id, text in _dataset_rows(dataset_dir, format):
        cluster = wanted.pop(doc_id, None)
        if cluster is not None:
            cluster["kept"]["text"] = text[:CLUSTER_TEXT_CHARS]
            if not wanted:
                break
    for cluster in clusters:
        cluster["kept"].setdefault("text", "")
        for member in cluster["members"]:
            member["text"] = (member["text"] or "")[:CLUSTER_TEXT_CHARS]
        del cluster["seq"]


def _dataset_rows(folder: Path, format: str):
    if format == "jsonl":
        for path in sorted(folder.glob("*.jsonl")):
            with path.open(encoding="utf-8") as f:
                for line in f:
                    record = json.loads(line)
                    yield record["id"], record["text"]
        return
    import pyarrow.parquet as pq
    for path in sorted(folder.glob("*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(columns=["id", "text"], batch_size=5000):
            data = batch.to_pydict()
            yield from zip(data["id"], data["text"])


def summary_text(report: dict) -> str:
    i, o = report["input"], report["output"]
    lines = [f"Kept {o['documents']:,} of {i['documents']:,} documents "
             f"({o['chars']:,} of {i['chars']:,} characters) in {report['seconds']:.1f} s."]
    for row in report["steps"]:
        rules = ", ".join(f"{rule} {info['removed']:,}" for rule, info in row["rules"].items())
        changes = ", ".join(f"{k} ×{n:,}" for k, n in row["changes"].items())
        lines.append(f"  {row['step']:<12} removed {row['removed']:>6,}  modified {row['modified']:>6,}"
                     + (f"  ({rules})" if rules else "") + (f"  [{changes}]" if changes else ""))
    if i["skipped"]:
        lines.append(f"  {i['skipped']:,} broken records skipped (first: {i['skipped_examples'][0]['where']}: "
                     f"{i['skipped_examples'][0]['problem']})")
    return "\n".join(lines)
