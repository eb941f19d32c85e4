"""Screenshots of the Label page (called by `tools.screenshots.pages.render_all`).

A queue of word-reversal answers like those a fine-tuned demo model gives, two annotators who
labeled part of it (and disagree on two items), and a ranking queue of three answers per prompt.
"""

from __future__ import annotations

import random
from pathlib import Path

from engine.labeling.store import LabelStore
from engine.tasks.generators import generate

GUIDELINES = ("**Prefer the answer that reverses every word, in order.**\n\n"
              "- A missing or repeated word makes an answer wrong.\n"
              "- Both wrong? Press **4** (both bad). Unsure? Press **S** and someone else gets it.")


def near_miss(answer: str, rng: random.Random) -> str:
    """A wrong reversal as a small model makes it: two words swapped, or one left out."""
    words = answer.split()
    if len(words) > 2 and rng.random() < 0.5:
        i = rng.randrange(len(words) - 1)
        words[i], words[i + 1] = words[i + 1], words[i]
    else:
        words.pop(rng.randrange(len(words)))
    return " ".join(words)


def build_demo_label_queues(workspace: Path) -> LabelStore:
    """The pair queue `reverse-words` (partly labeled by ana and ben) and the ranking queue `reverse-ranked`."""
    rng = random.Random(5)
    store = LabelStore(Path(workspace) / "store.db", rng=random.Random(2))
    store.create_queue("reverse-words", guidelines=GUIDELINES, overlap=0.25)
    records = generate("reverse", 40, seed=11)
    items = []
    for record in records:
        right = record["output"]
        items.append({"prompt": f"{record['instruction']}\n\n`{record['input']}`",
                      "candidates": [{"text": right, "model": "demo-sft", "seed": rng.randrange(10**6)},
                                     {"text": near_miss(right, rng), "model": "demo-pretrained",
                                      "seed": rng.randrange(10**6)}]})
    store.add_items("reverse-words", items)
    for annotator, count, contrary in (("ana", 14, set()), ("ben", 9, {0, 3})):
        for n in range(count):
            task = store.next_task("reverse-words", annotator)
            if task is None:
                break
            correct_left = task.shown_candidates()[0].model == "demo-sft"
            verdict = "left" if correct_left != (n in contrary) else "right"
            store.add_label(task, verdict, comment="the last word is missing" if n in contrary else "",
                            seconds=rng.uniform(2, 6))
    store.create_queue("reverse-ranked", mode="rank", guidelines=GUIDELINES)
    ranked = []
    for record in generate("reverse", 6, seed=12):
        right = record["output"]
        ranked.append({"prompt": f"{record['instruction']}\n\n`{record['input']}`",
                       "candidates": [right, near_miss(right, rng), near_miss(near_miss(right, rng), rng)]})
    store.add_items("reverse-ranked", ranked)
    store.create_queue("reverse-judged", mode="single", guidelines=GUIDELINES)
    judged = []
    for i, record in enumerate(generate("reverse", 8, seed=13)):
        right = record["output"]
        judged.append({"prompt": f"{record['instruction']}\n\n`{record['input']}`",
                       "candidates": [right if i % 2 else near_miss(right, rng)]})
    store.add_items("reverse-judged", judged)
    return store


def shoot_label_page(window, shot, workspace: Path, demo_run: str | None) -> None:
    page = window.page("label")
    page.annotator.setText("you")
    page.annotator.editingFinished.emit()
    page.refresh_queues(select="reverse-words")
    shot("label")
    page.view.toggle_diff()
    page.view.toggle_guidelines()
    shot("label-diff")
    page.view.toggle_diff()
    page.view.toggle_guidelines()
    page.tabs.setCurrentWidget(page.overview)
    shot("label-overview")
    page.tabs.setCurrentWidget(page.conflicts)
    shot("label-conflicts")
    page.tabs.setCurrentWidget(page.arena)  # demo-sft against demo-pretrained, from ana's and ben's votes
    shot("label-arena")
    page.tabs.setCurrentWidget(page.generate)
    if demo_run:
        model = Path(workspace) / "runs" / demo_run / "output" / "model"
        page.generate.add_model(str(model), label="pretrained")
    shot("label-generate")
    page.generate.models_table.set_models([])
    page.refresh_queues(select="reverse-ranked")
    page.view.press_digit(2)
    shot("label-rank")
    page.view.unpick()
    page.refresh_queues(select="reverse-judged")
    shot("label-single")
    page.refresh_queues(select="reverse-words")
