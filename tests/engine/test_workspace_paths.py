"""engine/workspace_paths.py: references to a workspace's files stored relative to it and read back, also
after the workspace moved."""

import shutil

from engine.rundir import RunDirectory
from engine.workspace_paths import portable_paths, resolve_path, resolved_paths, run_named


def test_paths_inside_the_workspace_are_stored_relative_to_it_and_resolved_back(tmp_path):
    workspace = tmp_path / "ws"
    model = RunDirectory.create(workspace, "sft-1").output_dir / "model"
    model.mkdir()
    (workspace / "corpus.txt").write_text("text")
    spec = {"model": {"path": str(model)}, "data": {"sources": [str(workspace / "corpus.txt"), "builtin:tasks",
                                                                str(tmp_path / "elsewhere.jsonl")]},
            "name": "sft", "reward_model": "sft-1", "hub": "Qwen/Qwen2.5-0.5B"}
    stored = portable_paths(spec, workspace)
    assert stored["model"]["path"] == "runs/sft-1/output/model"
    assert stored["data"]["sources"] == ["./corpus.txt", "builtin:tasks", str(tmp_path / "elsewhere.jsonl")]
    assert {k: stored[k] for k in ("name", "reward_model", "hub")} == {k: spec[k] for k in ("name", "reward_model", "hub")}
    assert resolved_paths(stored, workspace) == spec


def test_a_moved_workspace_resolves_relative_and_old_absolute_references(tmp_path):
    old = tmp_path / "old"
    RunDirectory.create(old, "sft-1")
    (old / "runs" / "sft-1" / "checkpoints" / "checkpoint-20").mkdir()
    written_before = str(old / "runs" / "sft-1" / "checkpoints" / "checkpoint-20")  # absolute, the old way
    new = tmp_path / "moved" / "ws"
    shutil.move(str(old), str(new))
    assert resolve_path("runs/sft-1/checkpoints/checkpoint-20", new) == str(new / "runs/sft-1/checkpoints/checkpoint-20")
    assert resolve_path(written_before, new) == str(new / "runs/sft-1/checkpoints/checkpoint-20")
    assert resolve_path(str(tmp_path / "runs" / "gone-1" / "x"), new) == str(tmp_path / "runs" / "gone-1" / "x")
    assert resolve_path("runs", new) == "runs"  # a bare name is a name, not a path
    for reference in ("sft-1", "runs/sft-1/output", written_before, str(new / "runs" / "sft-1")):
        assert run_named(reference, new) == "sft-1"
    assert run_named("Qwen/Qwen2.5-0.5B", new) is None and run_named("other", new) is None
    # A checkpoint rotated away since still names its run.
    assert run_named("runs/sft-1/checkpoints/checkpoint-10", new) == "sft-1"
