"""Several runs in one process (the demo's stages): a library's log handler bound to the stderr of an
earlier run must follow to the current one instead of failing on the closed stream."""

import io
import logging
import sys

from engine.runner import _configure_logging


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
