"""Cleaning in shards: the per-document steps in N processes of their own, then one global
deduplication stage over what they wrote.

Shard k takes batches k, k + N, k + 2N, … of `batch_documents` in reading order. Every shard reads
the whole corpus (reading is cheap next to the steps; only this way does each document get the same
place in the order as in a one-process run, whatever the input's layout) and runs the steps, the
exact-duplicate key and the MinHash/SimHash signatures on its own batches only, writing them to
`shards/shard-<k>.pkl` in the run folder. The final stage reads the shards' batches back in reading
order and judges them with the pipeline's own deduplicator: the streaming index sees the same
signatures in the same order as in a one-process run, so the same documents are kept, and each
removed one names the same earlier document.

A shard is `python -m engine.cleaning.shards SPEC_JSON K N OUT`: one command that a scheduler's array
task could run as well; here the job starts them as local processes.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from engine.cleaning.pipeline import DocumentWorker, Pipeline, _batches
from engine.cleaning.reader import CorpusReader, Document, Problems
from engine.errors import DataError
from engine.specs.clean import CleanSpec

SHARDS_FOLDER = "shards"
POLL_S = 0.5


def shard_file(folder: Path, shard: int) -> Path:
    return folder / f"shard-{shard:05d}.pkl"


def run_shard(spec: CleanSpec, shard: int, shards: int, out: Path) -> None:
    """Clean shard `shard` of `shards`: write (batch index, documents, outcomes, signatures) for each
    of its batches, then what reading the corpus counted (the same in every shard)."""
    problems = Problems(stop=spec.input.on_bad_record == "stop")
    reader = CorpusReader(spec.input, spec.repair, problems)
    worker = DocumentWorker(spec)
    progress = out.with_suffix(".progress")
    tmp = out.with_name(out.name + ".tmp")
    shown = 0.0
    with tmp.open("wb") as f:
        for index, batch in enumerate(_batches(reader, spec.batch_documents)):
            if index % shards == shard:
                pickle.dump(("batch", index, batch, *worker([d.text for d in batch])), f,
                            protocol=pickle.HIGHEST_PROTOCOL)
            if time.monotonic() - shown > POLL_S:
                progress.write_text(str(reader.bytes_read))
                shown = time.monotonic()
        pickle.dump(("read", {"files": reader.files, "whole_txt_files": reader.whole_txt_files,
                              "bytes_read": reader.bytes_read, "total_bytes": reader.total_bytes,
                              "repairs": reader.repairs, "problems": problems.count,
                              "problem_examples": problems.examples}), f)
    os.replace(tmp, out)


class ShardedPipeline(Pipeline):
    """A Pipeline whose per-document steps run in `spec.shards` shard processes. `tick()` is called
    while the shards work (every POLL_S), after `reader.bytes_read` is updated from theirs: the job
    reports progress and checks for cancel there (an exception it raises stops the shards)."""

    def __init__(self, spec: CleanSpec, folder: Path, tick: Callable[[], None]):
        super().__init__(spec, workers=spec.shards)
        self.folder, self.tick = folder, tick

    def run(self, documents: Iterable[Document]) -> Iterator[tuple[Document, object]]:
        reader = documents
        assert isinstance(reader, CorpusReader), "shards read the corpus themselves: pass the job's CorpusReader"
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self._shard_processes(reader)
        streams = [shard_file(self.folder, k).open("rb") for k in range(self.spec.shards)]
        try:
            index, seq = 0, 0
            while True:
                record = pickle.load(streams[index % self.spec.shards])
                if record[0] == "read":  # this shard has no more batches: neither has any other
                    break
                _, batch_index, batch, outcomes, signatures = record
                assert batch_index == index, (batch_index, index)
                yield from self._judge(batch, outcomes, signatures, seq)
                seq += len(batch)
                index += 1
            self._apply_reading(reader, record)
        finally:
            for stream in streams:
                stream.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _shard_processes(self, reader: CorpusReader) -> None:
        spec_path = self.folder / "spec.json"
        spec_path.write_text(json.dumps(self.spec.model_dump(mode="json")), encoding="utf-8")
        processes = []
        try:
            for k in range(self.spec.shards):
                log = (self.folder / f"shard-{k:05d}.log").open("wb")
                processes.append(subprocess.Popen(
                    [sys.executable, "-m", "engine.cleaning.shards", str(spec_path), str(k), str(self.spec.shards),
                     str(shard_file(self.folder, k))], stdin=subprocess.DEVNULL, stdout=log, stderr=log))
                log.close()
            while any(p.poll() is None for p in processes):
                self._check_failed(processes)
                reader.bytes_read = min(self._bytes_read(k) for k in range(self.spec.shards))
                self.tick()
                time.sleep(POLL_S)
            self._check_failed(processes)
        finally:
            for p in processes:
                if p.poll() is None:
                    p.terminate()
            for p in processes:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()

    def _bytes_read(self, shard: int) -> int:
        try:
            return int(shard_file(self.folder, shard).with_suffix(".progress").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _check_failed(self, processes: list[subprocess.Popen]) -> None:
        """The first shard that failed ends the run: with its own message when the input was at fault."""
        for k, p in enumerate(processes):
            if p.poll() in (None, 0):
                continue
            error = shard_file(self.folder, k).with_suffix(".error.json")
            if error.exists():
                found = json.loads(error.read_text(encoding="utf-8"))
                raise DataError(found["message"], found["hint"])
            log = (self.folder / f"shard-{k:05d}.log").read_text(encoding="utf-8", errors="replace")
            raise RuntimeError(f"Cleaning shard {k} of {self.spec.shards} failed (exit status {p.returncode}):\n"
                               + "\n".join(log.splitlines()[-20:]))

    @staticmethod
    def _apply_reading(reader: CorpusReader, record: tuple) -> None:
        read = record[1]
        reader.files, reader.whole_txt_files = read["files"], read["whole_txt_files"]
        reader.bytes_read, reader.total_bytes, reader.repairs = read["bytes_read"], read["total_bytes"], read["repairs"]
        reader.problems.count, reader.problems.examples = read["problems"], read["problem_examples"]


def main(argv: list[str]) -> int:
    spec_path, shard, shards, out = argv
    spec = CleanSpec.model_validate(json.loads(Path(spec_path).read_text(encoding="utf-8")))
    try:
        run_shard(spec, int(shard), int(shards), Path(out))
    except DataError as e:
        Path(out).with_suffix(".error.json").write_text(json.dumps({"message": e.message, "hint": e.hint}),
                                                        encoding="utf-8")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
