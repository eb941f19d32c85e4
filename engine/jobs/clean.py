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
from engine.cleaning.shards import SHARDS_FOLDER, ShardedPipeline
from engine.cleaning.report import CLUSTER_TEXT_CHARS, CleaningStats, write_html
from engine.data.reader import iter_records
from engine.errors import DataError
from engine.progress import ProgressMeter
from engine.rundir import atomic_directory, atomic_write_text
from engine.runner import JobContext
from engine.specs.clean import CleanSpec

def run(ctx: JobContext) -> dict:
    spec: CleanSpec = ctx.spec
    output = ctx.run.output_dir
    started = time.monotonic()
    problems = Problems(stop=spec.input.on_bad_record == "stop")
    reader = CorpusReader(spec.input, spec.repair, problems)
    stats = CleaningStats(spec.document_steps() + dedup_steps(spec))
    progress = ProgressMeter(ctx, "clean", round(reader.total_bytes / 1e6, 3) or None, "MB", start=0)
    pipeline = build_pipeline(ctx, reader, progress)
    processes = (f"{spec.shards} shard processes, then deduplication across them" if spec.shards > 1 else
                 f"{pipeline.workers} worker process{'es' if pipeline.workers != 1 else ''}")
    ctx.events.log("info", f"Cleaning {', '.join(spec.input.sources)}: steps {' → '.join(stats.steps) or '(none)'}, "
                           f"{processes}.")

    dataset_dir = output / "dataset"
    with atomic_directory(dataset_dir) as tmp:
        writer = DatasetWriter(tmp, spec.output.format)
        fates = FateLog(ctx.run.path / "fates.sqlite")
        examples = RemovedExamples(spec.output.removed_examples)
        for document, outcome in pipeline.run(reader):
            stats.add(document, outcome)
            fates.add(document, outcome)
            if outcome.text is None:
                examples.add(document, outcome)
            else:
                writer.add(document, outcome.text)
            progress.update(megabytes_read(reader), step=stats.documents_in)
            ctx.check_cancelled()
        writer.close()
        fates.close()
        check_not_empty(spec, stats, problems)
        check_kept_some(spec, stats, examples, reader)
    progress.update(progress.total or megabytes_read(reader), step=stats.documents_in, force=True)

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


def build_pipeline(ctx: JobContext, reader: CorpusReader, progress: ProgressMeter) -> Pipeline:
    """One process reading and a pool of workers, or `spec.shards` shard processes and a global
    deduplication stage (the same documents kept either way)."""
    if ctx.spec.shards == 1:
        return Pipeline(ctx.spec)

    def tick() -> None:
        progress.update(megabytes_read(reader), step=0)
        ctx.check_cancelled()

    return ShardedPipeline(ctx.spec, ctx.run.path / SHARDS_FOLDER, tick)


def megabytes_read(reader: CorpusReader) -> float:
    """Input read so far (what reading has decompressed may run past the files' sizes: capped)."""
    total = reader.total_bytes / 1e6
    return min(reader.bytes_read / 1e6, total) if total else reader.bytes_read / 1e6


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


def check_kept_some(spec: CleanSpec, stats: CleaningStats, examples: RemovedExamples, reader: CorpusReader) -> None:
    """A run that removes every document fails, saying which rules removed them and why: an empty
    dataset would only fail later, in a training run, far from the cause."""
    if stats.documents_out or not stats.documents_in:
        return
    causes = []
    for step in stats.steps:
        for rule, count in stats.rules[step].most_common():
            example = (examples.examples.get(rule) or [{}])[0]
            reason = f" (e.g. {example['id']}: {example['reason']})" if example.get("reason") else ""
            causes.append(f"{rule} removed {count:,}{reason}")
    hint = "Loosen the rules that removed them, or switch those steps off; the dry run (`studio-engine preview " \
           "SPEC`) shows each document's fate."
    if spec.input.txt_documents == "file" and reader.whole_txt_files:
        hint = (f"{reader.whole_txt_files:,} .txt file(s) were each read as one document (input.txt_documents: "
                "file): if a file holds one document a line or a paragraph, set input.txt_documents to line or "
                "paragraph. Otherwise: " + hint[0].lower() + hint[1:])
    read = "the one document read was" if stats.documents_in == 1 else f"all {stats.documents_in:,} documents read were"
    raise DataError(f"Nothing is left after cleaning: {read} removed: {'; '.join(causes)}.", hint)


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
    for path in sorted(folder.glob(f"*.{format}")):
        for record in iter_records(path, columns=["id", "text"]):
            yield record.value["id"], record.value["text"]


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
