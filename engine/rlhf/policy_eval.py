"""Task accuracy of a policy during preference and RL training: its answers to held-out prompts of a
built-in task (`evaluation.task`), checked by the task's checker — greedy, and sampled where the
job samples — before training, every `train.eval_every` steps and at the end.

The prompts are laid out exactly as the generate job and training lay them out (`prompt_text`), and
answered with the generate job's sampler (greedy, or one recorded seed per prompt, the same seeds at
every evaluation so the figures compare).
"""

from __future__ import annotations

from transformers import TrainerCallback

from engine.finetune.rendering import text_ids
from engine.generate.prompts import Prompt, load_prompts
from engine.generate.sampling import candidate_seed, generate
from engine.rlhf.policy_model import prompt_text
from engine.specs.generate import PromptSource, Sampling
from engine.specs.rlhf import TaskEvaluation
from engine.tasks.generators import check

BATCH = 16
SAMPLES = 3  # sample events per evaluation


class TaskEvaluator:
    def __init__(self, evaluation: TaskEvaluation, tokenizer, template: str | None, stops: list[int],
                 sampling: Sampling | None = None, exclude: set[str] | None = None, seed: int = 0):
        """`sampling`: also measure answers sampled this way (task_accuracy_sampled); `exclude`: questions
        (a task record's input) seen in training, left out of the held-out prompts."""
        self.task, self.tokenizer, self.stops, self.seed = evaluation.task, tokenizer, stops, seed
        source = PromptSource(sources=["builtin:tasks"], task=evaluation.task, task_examples=evaluation.examples,
                              task_seed=evaluation.seed)
        prompts, _ = load_prompts(source, seed)
        self.prompts: list[Prompt] = [p for p in prompts if p.meta["input"] not in (exclude or set())]
        self.left_out = len(prompts) - len(self.prompts)
        self.ids = [text_ids(prompt_text(p, tokenizer, template), tokenizer) for p in self.prompts]
        self.greedy = Sampling(do_sample=False, max_new_tokens=evaluation.max_new_tokens)
        self.sampled = (sampling.model_copy(update={"max_new_tokens": evaluation.max_new_tokens})
                        if sampling is not None else None)
        self.last_answers: list[str] = []

    @property
    def longest_prompt(self) -> int:
        return max((len(ids) for ids in self.ids), default=0)

    def score(self, model) -> dict[str, float]:
        """{"task_accuracy": share of greedy answers the checker accepts, and "task_accuracy_sampled"
        for sampled ones when the job samples}; {} when every held-out prompt was left out."""
        if not self.prompts:
            return {}
        was_training = model.training
        model.eval()  # no dropout in the answers measured
        try:
            self.last_answers = self._answers(model, self.greedy, [None] * len(self.ids))
            values = {"task_accuracy": self._accuracy(self.last_answers)}
            if self.sampled is not None:
                seeds = [candidate_seed(self.seed, 0, i, 0) for i in range(len(self.ids))]
                values["task_accuracy_sampled"] = self._accuracy(self._answers(model, self.sampled, seeds))
        finally:
            model.train(was_training)
        return values

    def samples(self, count: int = SAMPLES) -> list[tuple[str, str]]:
        """(prompt, "answer   (expected: …)") for the first prompts of the last scoring."""
        return [(p.text, f"{answer}   (expected: {p.meta['answer']})")
                for p, answer in zip(self.prompts[:count], self.last_answers[:count])]

    def _answers(self, model, sampling: Sampling, seeds: list[int | None]) -> list[str]:
        texts = []
        for start in range(0, len(self.ids), BATCH):
            answers = generate(model, self.tokenizer, self.ids[start:start + BATCH], seeds[start:start + BATCH],
                               sampling, self.stops)
            texts += [a.text for a in answers]
        return texts

    def _accuracy(self, answers: list[str]) -> float:
        right = sum(check(self.task, p.meta, answer) for p, answer in zip(self.prompts, answers))
        return round(right / len(answers), 4)


def emit_task_eval(ctx, step: int, evaluator: TaskEvaluator, model) -> dict[str, float]:
    """Score the model, and send the figures (split eval) and a few answers as events."""
    values = evaluator.score(model)
    if values:
        ctx.events.metric(step, "eval", values)
        for prompt, text in evaluator.samples():
            ctx.events.sample(step, prompt, text)
    return values


class TaskEvalCallback(TrainerCallback):
    """Task accuracy every `every` steps during training (the job measures before and after)."""

    def __init__(self, ctx, evaluator: TaskEvaluator, every: int):
        self.ctx, self.evaluator, self.every = ctx, evaluator, every

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if (model is not None and state.global_step % self.every == 0 and state.global_step < state.max_steps
                and not control.should_training_stop):
            emit_task_eval(self.ctx, state.global_step, self.evaluator, model)
