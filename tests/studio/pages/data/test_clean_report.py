"""The clean run's report view, the word diff it and the dry run share, and the plain-data readers."""

from __future__ import annotations

import pytest

from studio.models.clean_results import median_bin, parse_dry_run, short_rule, step_title
from studio.widgets.text_diff import TextDiffView, tokens, word_diff
from tests.studio.pages.data.clean_fixtures import DRY_RUN, KEPT, NEAR, write_clean_run


# ------------------------------------------------------------------------------------ word diff
def test_tokens_join_back_to_the_text():
    text = "Write to jane.doe@example.org,\n\tthen  wait…"
    assert "".join(tokens(text)) == text


def test_a_changed_word_is_marked_on_each_side_and_the_rest_is_equal():
    diff = word_diff(KEPT, NEAR)
    assert [s.text for s in diff.left if s.kind == "delete"] == ["records"]
    assert [s.text for s in diff.right if s.kind == "insert"] == ["entries"]
    assert "".join(s.text for s in diff.left) == KEPT and "".join(s.text for s in diff.right) == NEAR
    assert diff.changes == 1 and 0.9 < diff.similarity < 1


def test_identical_texts_have_no_changes():
    diff = word_diff("same text here", "same text here")
    assert diff.changes == 0 and diff.similarity == 1.0
    assert all(s.kind == "equal" for s in diff.left + diff.right)


def test_frequent_words_of_long_texts_still_match():
    # autojunk would treat "the" as junk in texts this long and report everything as changed.
    left = " ".join(["the value of the list"] * 60)
    right = left.replace("list", "tuple", 1)
    diff = word_diff(left, right)
    assert diff.changes == 1 and diff.similarity > 0.99


def test_the_diff_view_highlights_both_sides_and_says_how_similar(qtbot):
    view = TextDiffView()
    qtbot.addWidget(view)
    view.set_texts("Write to jane.doe@example.org now.", "Write to <EMAIL> now.", "Before", "After")
    assert "background-color" in view.left_view.toHtml() and "jane" in view.left_view.toPlainText()
    assert "&lt;EMAIL&gt;" in view.right_view.toHtml() or "<EMAIL>" in view.right_view.toPlainText()
    assert "in common" in view.summary_label.text()
    assert (view.left_title.full_text(), view.right_title.full_text()) == ("Before", "After")
    assert not view.splitter.isHidden() and not view.splitter.widget(1).isHidden()
    view.set_single("only one text", "Text")
    assert view.splitter.widget(1).isHidden() and view.diff is None
    view.clear("Nothing selected.")
    assert view.splitter.isHidden() and view.placeholder.text() == "Nothing selected."


def test_a_changed_line_ending_is_drawn_visibly():
    from studio.widgets.text_diff import spans_html

    diff = word_diff("one\r\ntwo", "one\ntwo")
    assert "␍" in spans_html(diff.left)


# ------------------------------------------------------------------------------- plain data
def test_dry_run_json_parses_with_either_shape_of_rule_counts():
    result = parse_dry_run(DRY_RUN)
    assert result.effect("quality").rules == {"quality.gopher.min_words": 1}
    assert result.effect("near_dedup").rules == {"near_dedup.minhash": 1}
    assert result.counts() == {"removed": 2, "modified": 1, "kept": 2}
    assert result.effect("pii").summary() == "modifies 1" and result.effect("exact_dedup").summary() == "no change"
    assert result.drawn() == "5 documents drawn at random from the first 40"
    assert result.by_id()["a.jsonl:3"].why() == "changed by Personal information: email ×1"


def test_steps_and_rules_are_named_from_the_spec():
    assert step_title("near_dedup") == "Near duplicates" and step_title("pii") == "Personal information"
    assert short_rule("quality.gopher.min_words") == "gopher.min_words"
    assert short_rule("exact_dedup") == "exact_dedup"


def test_the_median_length_bin():
    assert median_bin([0, 32, 64, 128], [1, 1, 5, 1]) == "64–128"
    assert median_bin([0, 32], [0, 0]) == "—"


# ----------------------------------------------------------------------------------- report
@pytest.fixture
def report_view(qtbot, tmp_path):
    from studio.pages.data.clean_report import CleanReport

    view = CleanReport()
    qtbot.addWidget(view)
    view.resize(1000, 700)
    run_dir = tmp_path / "run"
    view.load(run_dir, write_clean_run(run_dir))
    return view


def test_the_report_shows_what_each_step_removed(report_view):
    view = report_view
    assert view.stats["documents kept (-10.0%)"].text() == "36 of 40"
    assert view.stats["broken records skipped"].text() == "1"
    table = view.steps_table
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == ["Quality", "Personal information",
                                                                          "Near duplicates"]
    assert table.item(0, 1).text() == "3" and table.item(1, 4).text() == "email ×3"
    rules = [view.rules_table.item(r, 0).text() for r in range(view.rules_table.rowCount())]
    assert rules == ["quality.gopher.min_words", "quality.fineweb.max_newline_ratio", "near_dedup.minhash"]


def test_clicking_a_rule_shows_the_documents_it_removed(report_view):
    view = report_view
    view._rule_clicked(0)
    assert view.tabs.currentIndex() == 1
    assert view.examples_table.rowCount() == 2 and view.examples_table.item(0, 0).text() == "a.jsonl:2"
    assert view.example_view.toPlainText() == "Too short to keep."
    assert "4 words, fewer than 50" in view.example_reason.text()
    assert "2 examples of 2 removed" == view.examples_count.text()
    # A rule whose examples file is missing says so instead of showing an empty list.
    assert view.show_rule("quality.fineweb.max_newline_ratio") == 0
    assert "No example" in view.examples_note.text()


def test_the_length_histogram_has_the_bins_with_documents(report_view):
    bins = report_view.histogram.bins
    assert [label for label, _, _ in bins] == ["0", "32", "64", "128"]  # the empty 256 bin is left out
    assert bins[2] == ("64", 20, 22)
    assert "median 64–128" in report_view.histogram.legend.text()


def test_opening_a_cluster_shows_its_members_side_by_side(report_view):
    view = report_view
    assert view.tabs.tabText(3) == "Duplicates (1)"
    view.open_cluster(0)
    diff = view.cluster_diff
    assert diff.left_view.toPlainText() == KEPT and diff.right_view.toPlainText() == NEAR
    assert [s.text for s in diff.diff.right if s.kind == "insert"] == ["entries"]
    assert diff.left_title.full_text() == "Kept: a.jsonl:1" and "a.jsonl:4" in diff.right_title.full_text()
    assert view.clusters_table.item(0, 3).text() == "0.86" and view.clusters_table.item(0, 2).text() == "near"


def test_no_clusters_is_said_plainly(qtbot, tmp_path):
    from studio.pages.data.clean_report import CleanReport

    view = CleanReport()
    qtbot.addWidget(view)
    run_dir = tmp_path / "run"
    view.load(run_dir, write_clean_run(run_dir, clusters=False))
    assert view.clusters_stack.currentWidget() is view.clusters_empty
    assert "No duplicates found" in view.clusters_empty.text()


def test_the_input_tab_lists_broken_records_and_repairs(report_view):
    text = report_view.input_label.text()
    assert "Read 40 documents" in text and "bom ×1" in text and "1 broken record skipped" in text
    assert report_view.skipped_list.item(0).text() == "a.jsonl, line 7: not valid JSON"
