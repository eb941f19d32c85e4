"""The terminal view of a run: what a person at a terminal reads of its events."""

from __future__ import annotations

import io

from engine.terminal_view import TerminalView


def test_artifacts_are_shown_where_they_are_not_relative_to_the_workspace(tmp_path):
    out = io.StringIO()
    view = TerminalView(out, color=False, workspace=tmp_path)
    view({"v": 1, "seq": 0, "t": 1.0, "type": "artifact", "kind": "model", "path": "runs/r1/output/model", "meta": {}})
    view({"v": 1, "seq": 1, "t": 2.0, "type": "finished", "status": "completed",
          "summary": {"model": "runs/r1/output/merged"}})
    text = out.getvalue()
    assert f"model: {tmp_path / 'runs' / 'r1' / 'output' / 'model'}" in text
    assert f"model: {tmp_path / 'runs' / 'r1' / 'output' / 'merged'}" in text
