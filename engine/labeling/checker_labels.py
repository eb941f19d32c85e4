"""Labels given by a task's answer checker, standing in for a person (the demo's RLHF stage).

A generate run on `builtin:tasks` prompts marks each candidate `correct` or not; this turns that into
labels of kind `checker` (annotator `checker:<task>`): the correct answer beats a wrong one, two
correct answers tie, two wrong ones are both bad. They are plainly marked as not human in the store,
the Overview and every export's counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.labeling.store import LabelStore, Queue, Task


@dataclass
class CheckerReport:
    queue: str
    annotator: str
    labeled: int
    preferences: int  # a correct answer over a wrong one
    ties: int
    both_bad: int
    unchecked: int  # items whose candidates carry no checker verdict (not from builtin tasks)
    already: int  # items this checker had labeled before

    def to_json(self) -> dict:
        return dict(self.__dict__)


def label_by_checker(store: LabelStore, queue: Queue | str) -> CheckerReport:
    """Label every pair item of `queue` whose two candidates the task checker judged."""
    q = store.queue(queue) if not isinstance(queue, Queue) else queue
    items = store.items(q)
    tasks = sorted({str(item.meta.get("task")) for item in items if item.meta.get("task")})
    annotator = f"checker:{tasks[0] if len(tasks) == 1 else 'tasks'}"
    done = {label.item_id for label in store.labels(q, annotator=annotator)}
    report = CheckerReport(queue=q.name, annotator=annotator, labeled=0, preferences=0, ties=0, both_bad=0,
                           unchecked=0, already=len(done))
    for item in items:
        if item.id in done:
            continue
        verdicts = [c.meta.get("correct") for c in item.candidates]
        if len(verdicts) != 2 or any(not isinstance(v, bool) for v in verdicts):
            report.unchecked += 1
            continue
        task_ = Task(item=item, annotator=annotator, shown=(0, 1))  # no display: no side to randomise
        if verdicts[0] != verdicts[1]:
            verdict = "left" if verdicts[0] else "right"
            report.preferences += 1
        elif verdicts[0]:
            verdict = "tie"
            report.ties += 1
        else:
            verdict = "both_bad"
            report.both_bad += 1
        store.add_label(task_, verdict, kind="checker", source="checker")
        report.labeled += 1
    return report
