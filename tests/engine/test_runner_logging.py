"""The runner's capture of a run's output: several runs in one process (the demo's stages) — a library's
log handler bound to the stderr of an earlier run must follow to the current one instead of failing on
the closed stream; and the log tee must not hold the process back once the run has finished."""

import io
import logging
import subprocess
import sys
import time

import pytest

from engine.runner import _configure_logging
from tests.engine.conftest import ROOT, one_thread, tiny_spec


def test_a_library_handler_on_a_closed_stream_is_pointed_at_the_current_stderr(monkeypatch, tmp_path):
    earlier, current = open(tmp_path / "earlier-run.log", "w"), io.StringIO()  # a closed file's flush raises
    library = logging.getLogger("atelier-test-library")
    handler = logging.StreamHandler(earlier)
    handler.flush = earlier.flush  # as transformers does with its handler
    library.addHandler(handler)
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    try:
        earlier.close()  # the first run ended: its stderr is gone
        monkeypatch.setattr(sys, "stderr", current)
        _configure_logging()
        library.warning("resizing embeddings")
        assert handler.stream is current and "resizing embeddings" in current.getvalue()
        assert "Logging error" not in current.getvalue()
    finally:
        library.removeHandler(handler)
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)




def _worker_specs(corpus_file) -> dict[str, dict]:
    return {
        # A pool of spawned worker processes: multiprocessing's resource tracker starts, inherits the
        # run's stderr and outlives the run by design (it exits with the engine).
        # (The corpus is short, repetitive sentences: the quality rules would keep nothing.)
        "clean": {"kind": "clean", "name": "cl", "input": {"sources": [str(corpus_file)]}, "workers": 2,
                  "batch_documents": 50, "quality": {"enabled": False}},
        "pretrain": tiny_spec(str(corpus_file), **{"train.max_steps": 6, "train.dataloader_workers": 2,
                                                   "train.checkpoint_every": 100, "train.eval_every": 100,
                                                   "train.sample_every": 100}),
    }


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["clean", "pretrain"])
def test_a_run_with_worker_processes_exits_within_a_second_of_finishing(engine, corpus_file, tmp_path, kind):
    """The log tee (stderr echoed and written to engine.log) stops once the run restores its descriptors,
    not at the pipe's end of file, which a worker or multiprocessing's resource tracker holds back: the
    process used to linger ~2 s after its `finished` event."""
    one_thread(engine)
    spec = _worker_specs(corpus_file)[kind]
    with open(tmp_path / "stderr.txt", "w") as stderr:  # stdout a pipe: the engine tees its stderr
        process = subprocess.Popen(engine.command("run", str(engine.write_spec(spec)), "--json"), cwd=ROOT,
                                   env=engine.env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        finished_at = None
        for line in process.stdout:
            if '"type":"finished"' in line:
                finished_at = time.monotonic()
                assert '"status":"completed"' in line, line
        process.wait(timeout=60)
        exited_at = time.monotonic()
    assert process.returncode == 0, (tmp_path / "stderr.txt").read_text()[-3000:]
    assert finished_at is not None
    assert exited_at - finished_at < 1.0, f"the engine exited {exited_at - finished_at:.2f} s after finishing"
