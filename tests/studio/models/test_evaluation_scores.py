"""An evaluate run's metric events as a table of scores: rows per task/variant × metric, columns per
run × model, standard errors, and the best of a row."""

from __future__ import annotations

from studio.models.evaluation_scores import cell_scores, score_table, score_text
from tests.studio.evaluation_fixtures import EVENTS


def test_cells_become_rows_of_tasks_then_variants_and_columns_of_models():
    scores = cell_scores(EVENTS, "run-1")
    assert len(scores) == 2 + 2 + 2 + 1 + 1  # latency and tokens are figures, not scores
    table = score_table(scores)
    assert table.rows == [("task", "arc_easy", "acc"), ("task", "arc_easy", "acc_norm"),
                          ("task", "wikitext", "word_perplexity"), ("variant", "plain", "exact_match"),
                          ("variant", "plain", "bleu")]
    assert table.columns == [("run-1", "base"), ("run-1", "tuned")]
    acc = table.cells[("task", "arc_easy", "acc"), ("run-1", "tuned")]
    assert (acc.value, acc.stderr, acc.examples) == (0.6, 0.078, 40)
    assert score_text(acc) == "0.600 ± 0.078"
    assert score_text(table.cells[("variant", "plain", "bleu"), ("run-1", "base")]) == "12.3"
    assert score_text(table.cells.get((("variant", "plain", "bleu"), ("run-1", "tuned")))) == "—"


def test_the_best_of_a_row_is_the_highest_unless_less_is_better_and_ties_share_it():
    table = score_table(cell_scores(EVENTS, "run-1"))
    assert table.best(("task", "arc_easy", "acc")) == {("run-1", "tuned")}
    assert table.best(("task", "arc_easy", "acc_norm")) == {("run-1", "base"), ("run-1", "tuned")}
    assert table.best(("task", "wikitext", "word_perplexity")) == {("run-1", "tuned")}
    assert table.best(("variant", "plain", "exact_match")) == set()  # one column: nothing to compare


def test_events_without_standard_errors_keep_their_scores_but_not_their_figures():
    old = [{"type": "metric", "variant": "v", "model": "m", "values": {"exact_match": 1.0, "latency_s": 0.3}}]
    [score] = cell_scores(old, "older-run")
    assert (score.metric, score.value, score.stderr) == ("exact_match", 1.0, None)


def test_the_playgrounds_evaluation_runs_benchmark_tasks_alone_or_beside_the_grid():
    from engine.specs import parse_spec
    from studio.models.playground_session import ModelColumn, Session, evaluate_spec_data

    session = Session(name="bench")
    session.models.append(ModelColumn(path="runs/x/output/model", label="x"))
    session.batch.tasks = ["arc_easy", "~/tasks/mine.yaml"]
    session.batch.limit = 20
    alone = parse_spec(evaluate_spec_data(session))
    assert alone.data is None and alone.harness.tasks[0] == "arc_easy"
    assert not alone.harness.tasks[1].startswith("~") and alone.harness.limit == 20
    session.batch.data_path = "rows.jsonl"
    both = parse_spec(evaluate_spec_data(session))
    assert both.data.path == "rows.jsonl" and both.harness.tasks[0] == "arc_easy" and both.variants[0].name
