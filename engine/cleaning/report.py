"""Figures of a cleaning run: what each step removed and changed, lengths before and after, and the
duplicate clusters; written as report.json and a self-contained report.html."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from jinja2 import Environment, select_autoescape

from engine.cleaning.pipeline import Outcome
from engine.cleaning.reader import Document

# Length histogram bins in characters: 0, 32, 64, … 128 Ki, and a last bin for anything longer.
HISTOGRAM_EDGES = [0] + [2 ** k for k in range(5, 18)]
CLUSTER_TEXT_CHARS = 20_000  # a cluster member's text in the report is cut here


def length_bin(chars: int) -> int:
    for i in range(len(HISTOGRAM_EDGES) - 1, -1, -1):
        if chars >= HISTOGRAM_EDGES[i]:
            return i
    return 0


class CleaningStats:
    """Counts per step and rule, and length histograms, accumulated one document at a time."""

    def __init__(self, steps: list[str]):
        self.steps = steps
        self.documents_in = self.documents_out = self.chars_in = self.chars_out = 0
        self.removed: Counter[str] = Counter()
        self.removed_chars: Counter[str] = Counter()
        self.modified: Counter[str] = Counter()
        self.changes: dict[str, Counter[str]] = defaultdict(Counter)
        self.rules: dict[str, Counter[str]] = defaultdict(Counter)
        self.rule_chars: dict[str, Counter[str]] = defaultdict(Counter)
        self.before = [0] * len(HISTOGRAM_EDGES)
        self.after = [0] * len(HISTOGRAM_EDGES)

    def add(self, document: Document, outcome: Outcome) -> None:
        chars = len(document.text)
        self.documents_in += 1
        self.chars_in += chars
        self.before[length_bin(chars)] += 1
        for step in outcome.modified:
            self.modified[step] += 1
        for key, n in outcome.changes.items():
            self.changes[key.split(".", 1)[0]][key] += n
        if outcome.text is None:
            self.removed[outcome.step] += 1
            self.removed_chars[outcome.step] += chars
            self.rules[outcome.step][outcome.rule] += 1
            self.rule_chars[outcome.step][outcome.rule] += chars
        else:
            self.documents_out += 1
            self.chars_out += len(outcome.text)
            self.after[length_bin(len(outcome.text))] += 1

    def step_rows(self, examples_dir: str | None = None) -> list[dict]:
        rows = []
        for step in self.steps:
            rules = {}
            for rule, n in self.rules[step].most_common():
                rules[rule] = {"removed": n, "chars": self.rule_chars[step][rule]}
                if examples_dir:
                    rules[rule]["examples"] = f"{examples_dir}/{rule}.jsonl"
            rows.append({"step": step, "removed": self.removed[step], "removed_chars": self.removed_chars[step],
                         "modified": self.modified[step], "rules": rules, "changes": dict(self.changes[step])})
        return rows

    def histograms(self) -> dict:
        return {"edges": HISTOGRAM_EDGES, "before": self.before, "after": self.after}

    def metric_values(self) -> dict[str, float]:
        values = {"documents_in": self.documents_in, "documents_out": self.documents_out,
                  "chars_in": self.chars_in, "chars_out": self.chars_out}
        values.update({f"removed_{step}": self.removed[step] for step in self.steps})
        return values


_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cleaning report — {{ name }}</title>
<style>
body { font: 14px/1.5 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; padding: 0 1em; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .25em .8em; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.bar { background: #4c78a8; height: .8em; display: inline-block; } .after { background: #59a14f; }
pre { white-space: pre-wrap; background: #f7f7f7; padding: .6em; max-height: 16em; overflow: auto; font-size: 12px; }
.cluster { display: flex; gap: 1em; } .cluster > div { flex: 1; min-width: 0; }
.muted { color: #777; }
</style></head><body>
<h1>Cleaning report — {{ name }}</h1>
<p>{{ "{:,}".format(r.input.documents) }} documents in ({{ "{:,}".format(r.input.chars) }} characters);
{{ "{:,}".format(r.output.documents) }} kept ({{ "{:,}".format(r.output.chars) }} characters) in
<code>{{ r.output.path }}</code> ({{ r.output.format }}).
{{ "%.1f" | format(r.seconds) }} s, {{ "%.2f" | format(r.mb_per_s) }} MB/s.</p>
{% if r.input.skipped %}<p>{{ r.input.skipped }} broken records skipped, for example:</p>
<ul>{% for p in r.input.skipped_examples[:10] %}<li>{{ p.where }}: {{ p.problem }}</li>{% endfor %}</ul>{% endif %}
{% if r.input.repairs %}<p>Decoding repairs: {% for k, n in r.input.repairs.items() %}{{ k }} ×{{ n }}{{ ", " if not loop.last }}{% endfor %}</p>{% endif %}
<h2>Steps</h2>
<table><tr><th>Step</th><th>Removed</th><th>Characters removed</th><th>Modified</th><th>Changes</th></tr>
{% for s in r.steps %}<tr><td>{{ s.step }}</td><td>{{ "{:,}".format(s.removed) }}</td><td>{{ "{:,}".format(s.removed_chars) }}</td>
<td>{{ "{:,}".format(s.modified) }}</td><td>{% for k, n in s.changes.items() %}{{ k }} ×{{ n }}{{ ", " if not loop.last }}{% endfor %}</td></tr>{% endfor %}
</table>
<h2>Rules and removed examples</h2>
{% for s in r.steps %}{% for rule, info in s.rules.items() %}
<h3>{{ rule }} — {{ "{:,}".format(info.removed) }} removed</h3>
{% for ex in examples.get(rule, [])[:3] %}<p class="muted">{{ ex.id }} — {{ ex.reason }}</p><pre>{{ ex.text[:1500] }}</pre>{% endfor %}
{% endfor %}{% endfor %}
<h2>Document lengths (characters)</h2>
<table><tr><th>Length</th><th>Before</th><th></th><th>After</th><th></th></tr>
{% for i in range(r.histograms.edges | length) %}<tr><td>{{ bin_label(i) }}</td>
<td>{{ r.histograms.before[i] }}</td><td style="text-align:left"><span class="bar" style="width:{{ 300 * r.histograms.before[i] // top }}px"></span></td>
<td>{{ r.histograms.after[i] }}</td><td style="text-align:left"><span class="bar after" style="width:{{ 300 * r.histograms.after[i] // top }}px"></span></td></tr>{% endfor %}
</table>
<h2>Duplicate clusters</h2>
{% if not r.clusters %}<p>No duplicates found.</p>{% endif %}
{% for c in r.clusters[:20] %}<h3>{{ c.kept.id }} and {{ c.members | length }} duplicate{{ "s" if c.members | length != 1 }}</h3>
<div class="cluster"><div><p class="muted">kept: {{ c.kept.id }}</p><pre>{{ c.kept.text[:1500] }}</pre></div>
{% for m in c.members[:2] %}<div><p class="muted">removed: {{ m.id }} (similarity {{ "%.2f" | format(m.similarity) }})</p><pre>{{ m.text[:1500] }}</pre></div>{% endfor %}</div>
{% endfor %}
</body></html>
"""


def bin_label(i: int) -> str:
    edges = HISTOGRAM_EDGES
    return f"≥ {edges[i]:,}" if i == len(edges) - 1 else f"{edges[i]:,}–{edges[i + 1] - 1:,}"


def write_html(path: Path, name: str, report: dict, examples: dict[str, list[dict]]) -> None:
    from engine.rundir import atomic_write_text

    template = Environment(autoescape=select_autoescape(default=True)).from_string(_HTML)
    top = max(1, *report["histograms"]["before"], *report["histograms"]["after"])
    atomic_write_text(path, template.render(name=name, r=report, examples=examples, top=top, bin_label=bin_label))
