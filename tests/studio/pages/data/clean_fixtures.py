"""Made-up results of the clean job in the engine's formats (the dry run's JSON, report.json and
removed/<rule>.jsonl), and a stand-in engine that answers `preview` with them: the Data page's
widgets are tested here without the engine; tests/e2e/test_studio_clean.py drives the real one."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

KEPT = "The parser reads the file and returns a list of records for the caller."
NEAR = "The parser reads the file and returns a list of entries for the caller."

DRY_RUN = {
    "sample": 5, "read": 40, "seconds": 0.3,
    "steps": [
        {"step": "quality", "removed": 1, "removed_chars": 18, "modified": 0,
         "rules": {"quality.gopher.min_words": {"removed": 1, "chars": 18}}, "changes": {}},
        {"step": "pii", "removed": 0, "removed_chars": 0, "modified": 1, "rules": {},
         "changes": {"pii.email": 1}},
        {"step": "exact_dedup", "removed": 0, "removed_chars": 0, "modified": 0, "rules": {}, "changes": {}},
        {"step": "near_dedup", "removed": 1, "removed_chars": len(NEAR), "modified": 0,
         "rules": {"near_dedup.minhash": 1}, "changes": {}},  # a bare count: older engines wrote these
    ],
    "documents": [
        {"id": "a.jsonl:1", "source": "a.jsonl", "text": KEPT, "final_text": KEPT, "fate": "kept", "step": None,
         "rule": None, "reason": None, "modified": [], "changes": {}, "duplicate_of": None, "similarity": None},
        {"id": "a.jsonl:2", "source": "a.jsonl", "text": "Too short to keep.", "final_text": None, "fate": "removed",
         "step": "quality", "rule": "quality.gopher.min_words",
         "reason": "4 words, fewer than 50 (quality.gopher.min_words)", "modified": [], "changes": {},
         "duplicate_of": None, "similarity": None},
        {"id": "a.jsonl:3", "source": "a.jsonl", "text": "Write to jane.doe@example.org about the parser.",
         "final_text": "Write to <EMAIL> about the parser.", "fate": "modified", "step": None, "rule": None,
         "reason": None, "modified": ["pii"], "changes": {"pii.email": 1}, "duplicate_of": None, "similarity": None},
        {"id": "a.jsonl:4", "source": "a.jsonl", "text": NEAR, "final_text": None, "fate": "removed",
         "step": "near_dedup", "rule": "near_dedup.minhash",
         "reason": "near duplicate of a.jsonl:1 (estimated similarity 0.86)", "modified": [], "changes": {},
         "duplicate_of": "a.jsonl:1", "similarity": 0.86},
        {"id": "a.jsonl:5", "source": "a.jsonl", "text": "Another ordinary document about buffers and streams.",
         "final_text": "Another ordinary document about buffers and streams.", "fate": "kept", "step": None,
         "rule": None, "reason": None, "modified": [], "changes": {}, "duplicate_of": None, "similarity": None},
    ],
    "problems": ["a.jsonl, line 7: not valid JSON (skipped)"],
    "problem_count": 1,
}


def report(dataset: Path, clusters: bool = True) -> dict:
    return {
        "input": {"documents": 40, "chars": 4000, "bytes": 4100, "files": 1, "skipped": 1,
                  "skipped_examples": [{"where": "a.jsonl, line 7", "problem": "not valid JSON"}],
                  "repairs": {"repair.bom": 1}},
        "output": {"documents": 36, "chars": 3600, "path": str(dataset), "format": "jsonl"},
        "steps": [
            {"step": "quality", "removed": 3, "removed_chars": 300, "modified": 0, "changes": {},
             "rules": {"quality.gopher.min_words": {"removed": 2, "chars": 100,
                                                    "examples": "removed/quality.gopher.min_words.jsonl"},
                       "quality.fineweb.max_newline_ratio": {
                           "removed": 1, "chars": 200, "examples": "removed/quality.fineweb.max_newline_ratio.jsonl"}}},
            {"step": "pii", "removed": 0, "removed_chars": 0, "modified": 2, "changes": {"pii.email": 3}, "rules": {}},
            {"step": "near_dedup", "removed": 1, "removed_chars": 100, "modified": 0, "changes": {},
             "rules": {"near_dedup.minhash": {"removed": 1, "chars": 100,
                                              "examples": "removed/near_dedup.minhash.jsonl"}}},
        ],
        "histograms": {"edges": [0, 32, 64, 128, 256], "before": [4, 10, 20, 6, 0], "after": [0, 8, 22, 6, 0]},
        "clusters": [{"kept": {"id": "a.jsonl:1", "source": "a.jsonl", "text": KEPT},
                      "members": [{"id": "a.jsonl:4", "source": "a.jsonl", "text": NEAR, "similarity": 0.86,
                                   "step": "near_dedup"}]}] if clusters else [],
        "near_dedup": {"method": "minhash", "index_bytes": 24000, "bytes_per_document": 620},
        "seconds": 1.5, "mb_per_s": 0.0027,
    }


def write_clean_run(run_dir: Path, clusters: bool = True) -> dict:
    """A finished clean run's output folder: a JSONL dataset, report.json and removed examples."""
    output = run_dir / "output"
    (output / "dataset").mkdir(parents=True, exist_ok=True)
    (output / "dataset" / "data-00000.jsonl").write_text(
        json.dumps({"text": KEPT, "id": "a.jsonl:1", "source": "a.jsonl"}) + "\n", encoding="utf-8")
    data = report(output / "dataset", clusters)
    (output / "report.json").write_text(json.dumps(data), encoding="utf-8")
    (output / "removed").mkdir(exist_ok=True)
    examples = {"quality.gopher.min_words": [("a.jsonl:2", "Too short to keep.", "4 words, fewer than 50"),
                                             ("a.jsonl:9", "Also short.", "2 words, fewer than 50")],
                "near_dedup.minhash": [("a.jsonl:4", NEAR, "near duplicate of a.jsonl:1")]}
    for rule, rows in examples.items():
        (output / "removed" / f"{rule}.jsonl").write_text("".join(
            json.dumps({"id": i, "source": "a.jsonl", "text": t, "reason": r}) + "\n" for i, t, r in rows),
            encoding="utf-8")
    return data


def stand_in_preview_engine(tmp_path: Path, answer: dict | None = None) -> tuple[list[str], Path]:
    """An `entry` for LocalEngine whose `preview` prints `answer` as the engine would, keeping only
    the steps the spec enables, and fails like the engine when a source does not exist. Each call
    appends its arguments to the returned log file."""
    log = tmp_path / "preview-calls.jsonl"
    script = tmp_path / "stand_in_preview.py"
    script.write_text(textwrap.dedent(f"""
        import json, os, sys, yaml
        args = sys.argv[1:]
        with open({str(log)!r}, "a") as f:
            f.write(json.dumps(args) + "\\n")
        spec = yaml.safe_load(open(args[args.index("preview") + 1]))
        missing = [s for s in spec["input"]["sources"] if not s.startswith("builtin:") and not os.path.exists(s)]
        if missing:
            print("studio-engine: " + missing[0] + " does not exist", file=sys.stderr)
            sys.exit(1)
        answer = {json.dumps(answer or DRY_RUN)!r}
        answer = json.loads(answer)
        answer["steps"] = [s for s in answer["steps"] if spec[s["step"]]["enabled"]]
        print(json.dumps(answer))
    """), encoding="utf-8")
    return [sys.executable, str(script)], log


def preview_calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
