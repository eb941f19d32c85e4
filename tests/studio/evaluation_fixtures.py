"""Metric events of evaluation cells (prompt variants and benchmark tasks × models), as an evaluate run
sends them, for the tests of the scores table and the run monitor."""

from __future__ import annotations

EVENTS = [
    {"type": "metric", "step": 0, "split": "eval", "variant": "plain", "model": "base",
     "values": {"exact_match": 0.25, "bleu": 12.345, "latency_s": 0.2, "tokens": 3.0},
     "stderr": {"exact_match": 0.1, "bleu": None}},
    {"type": "metric", "step": 0, "split": "eval", "task": "arc_easy", "model": "base", "examples": 40,
     "values": {"acc": 0.5, "acc_norm": 0.55}, "stderr": {"acc": 0.079, "acc_norm": 0.08}},
    {"type": "metric", "step": 0, "split": "eval", "task": "arc_easy", "model": "tuned", "examples": 40,
     "values": {"acc": 0.6, "acc_norm": 0.55}, "stderr": {"acc": 0.078, "acc_norm": 0.08}},
    {"type": "metric", "step": 10, "split": "train", "values": {"loss": 2.0}},  # not a cell: no model
    {"type": "metric", "step": 0, "split": "eval", "task": "wikitext", "model": "tuned",
     "values": {"word_perplexity": 30.0}, "stderr": {"word_perplexity": None}},
    {"type": "metric", "step": 0, "split": "eval", "task": "wikitext", "model": "base",
     "values": {"word_perplexity": 40.0}, "stderr": {"word_perplexity": None}},
]
