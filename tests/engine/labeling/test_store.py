"""The label store: claims, display order, one transaction per label, undo, overlap, concurrency."""

from __future__ import annotations

import random
import threading
import time

import pytest

from engine.labeling.store import LabelStore, LabelStoreError, is_overlap


def pair_items(count: int, start: int = 0) -> list[dict]:
    return [{"prompt": f"prompt {i}", "candidates": [{"text": f"first {i}", "model": "m1", "seed": i},
                                                        {"text": f"second {i}", "model": "m2", "seed": i}]}
            for i in range(start, start + count)]


@pytest.fixture
def store(tmp_path) -> LabelStore:
    return LabelStore(tmp_path / "store.db", rng=random.Random(7))


def test_items_are_handed_out_in_order_and_labels_record_the_display_order(store):
    queue = store.create_queue("q")
    assert store.add_items(queue, pair_items(6)).added == 6
    swapped_seen = set()
    for position in range(6):
        task = store.next_task(queue, "ann")
        assert task.item.position == position
        label = store.add_label(task, "left")
        swapped_seen.add(label.swapped)
        # "left" means the candidate shown on the left, whichever it was.
        assert label.ranking == (task.shown[0], task.shown[1])
    assert swapped_seen == {True, False}  # the order is randomised per item
    assert store.next_task(queue, "ann") is None
    assert store.progress(queue).done == 6


def test_the_same_claimed_item_comes_back_with_the_same_order(store):
    queue = store.create_queue("q")
    store.add_items(queue, pair_items(3))
    first = store.next_task(queue, "ann")
    again = store.next_task(queue, "ann")
    assert (again.item.id, again.shown) == (first.item.id, first.shown)
    other = store.next_task(queue, "bob")
    assert other.item.id != first.item.id  # a claimed single-label item is not handed to someone else


def test_undo_retracts_the_last_label_and_hands_the_item_back(store):
    queue = store.create_queue("q")
    store.add_items(queue, pair_items(3))
    first = store.next_task(queue, "ann")
    store.add_label(first, "right", comment="  clearer ")
    second = store.next_task(queue, "ann")
    store.add_label(second, "tie")
    back = store.undo_last(queue, "ann")
    assert (back.item.id, back.shown) == (second.item.id, second.shown)
    assert store.next_task(queue, "ann").item.id == second.item.id
    assert [label.verdict for label in store.labels(queue)] == ["right"]
    assert store.labels(queue)[0].comment == "clearer"
    history = store.labels(queue, include_retracted=True)
    assert [label.retracted is not None for label in history] == [False, True]  # nothing deleted


def test_a_second_label_by_the_same_annotator_is_refused(store):
    queue = store.create_queue("q")
    store.add_items(queue, pair_items(1))
    task = store.next_task(queue, "ann")
    store.add_label(task, "left")
    with pytest.raises(LabelStoreError, match="labeled item .* already"):
        store.add_label(task, "right")


def test_overlap_items_go_to_two_annotators_and_the_rest_to_one(store):
    queue = store.create_queue("q", overlap=0.25, overlap_annotators=2)
    store.add_items(queue, pair_items(40))
    overlap_positions = {i for i in range(40) if is_overlap(i, 0.25)}
    assert 8 <= len(overlap_positions) <= 12
    seen: dict[str, list[int]] = {"ann": [], "bob": []}
    while True:
        progressed = False
        for name in seen:
            task = store.next_task(queue, name)
            if task is not None:
                seen[name].append(task.item.position)
                store.add_label(task, "left")
                progressed = True
        if not progressed:
            break
    both = set(seen["ann"]) & set(seen["bob"])
    assert both == overlap_positions
    assert len(seen["ann"]) + len(seen["bob"]) == 40 + len(overlap_positions)
    assert store.progress(queue).done == 40


def test_skips_do_not_count_and_the_item_goes_to_someone_else(store):
    queue = store.create_queue("q")
    store.add_items(queue, pair_items(1))
    store.add_label(store.next_task(queue, "ann"), "skip")
    assert store.next_task(queue, "ann") is None
    task = store.next_task(queue, "bob")
    assert task is not None
    store.add_label(task, "left")
    progress = store.progress(queue)
    assert (progress.done, progress.skipped, progress.per_annotator) == (1, 1, {"bob": 1})


def test_ranking_queue_takes_a_full_order(store):
    queue = store.create_queue("r", mode="rank")
    store.add_items(queue, [{"prompt": "p", "candidates": ["a", "b", "c"]}])
    task = store.next_task(queue, "ann")
    with pytest.raises(LabelStoreError, match="every candidate once"):
        store.add_label(task, "rank", ranking=[0, 1])
    with pytest.raises(LabelStoreError, match="one of rank"):
        store.add_label(task, "left")
    label = store.add_label(task, "rank", ranking=[2, 0, 1])
    assert label.preference == "2>0>1"


def test_bad_items_and_duplicates_are_reported(store):
    queue = store.create_queue("q")
    with pytest.raises(LabelStoreError, match="Item 1 has 3 candidates; a pair queue takes exactly two"):
        store.add_items(queue, [{"prompt": "p", "candidates": ["a", "b", "c"]}])
    with pytest.raises(LabelStoreError, match="Item 2 has no prompt"):
        store.add_items(queue, [{"prompt": "p", "candidates": ["a", "b"]}, {"candidates": ["a", "b"]}])
    assert store.items(queue) == []  # the failed batch left nothing behind
    result = store.add_items(queue, [{"prompt": "p", "candidates": ["a", "b"]},
                                     {"prompt": "p", "candidates": ["b", "a"]}])
    assert (result.added, result.duplicates) == (1, [1])
    with pytest.raises(LabelStoreError, match="exists already"):
        store.create_queue("q")
    with pytest.raises(LabelStoreError, match="No labeling queue 'nope'.*queues: q"):
        store.queue("nope")


def test_two_writers_on_one_file_lose_nothing(tmp_path):
    path = tmp_path / "store.db"
    setup = LabelStore(path)
    queue = setup.create_queue("q")
    setup.add_items(queue, pair_items(60))
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def annotate(name: str) -> None:
        own = LabelStore(path)  # a second connection, as the web page has
        start.wait()
        try:
            while (task := own.next_task("q", name)) is not None:
                own.add_label(task, "right", source=name)
                time.sleep(0.002)  # a person's pace, scaled down: lets the two writers interleave
        except BaseException as e:  # noqa: BLE001 - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=annotate, args=(name,)) for name in ("gui", "web")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    labels = setup.labels("q")
    assert len(labels) == 60
    assert len({label.item_id for label in labels}) == 60  # no item labeled twice
    assert set(setup.progress("q").per_annotator) == {"gui", "web"}


def test_a_single_answer_queue_takes_one_answer_per_item_and_good_or_bad(tmp_path):
    from engine.labeling.store import LabelStore, LabelStoreError

    store = LabelStore(tmp_path / "store.db")
    store.create_queue("judge", mode="single")
    with pytest.raises(LabelStoreError, match="a single-answer queue takes exactly one"):
        store.add_items("judge", [{"prompt": "p", "candidates": ["a", "b"]}])
    store.add_items("judge", [{"prompt": "p", "candidates": ["a"]}])
    task = store.next_task("judge", "ann")
    with pytest.raises(LabelStoreError, match="good, bad, skip"):
        store.add_label(task, "left")
    assert store.add_label(task, "bad").verdict == "bad"
