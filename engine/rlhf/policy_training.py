"""What the DPO, KTO and GRPO recipes share around their TRL trainer: the policy loaded for
preference data, its forwards run packed, the task evaluation before training and the saved policy with the
run's summary.
(The training arguments, the training call and the outputs are the training core's, engine/training.)"""

from __future__ import annotations

from engine.devices import Placement
from engine.finetune.model import check_max_length, model_config
from engine.generate.models import stop_ids
from engine.models import resolve_choice
from engine.rlhf.policy_eval import TaskEvaluator, emit_task_eval
from engine.rlhf.policy_model import Policy, load_policy, prompt_template, save_policy
from engine.runner import JobContext
from engine.training.batches import Packing
from engine.training.outputs import whole_weights
from engine.training.packed_rows import PackedLogProbs


def load_preference_policy(ctx: JobContext, placement: Placement, several_turns: str | None,
                           what: str) -> tuple[Policy, bool]:
    """The policy of a preference kind (data.max_length checked against its positions) with the prompt
    layout data.chat_template gives it, and whether it differs from its folder on disk. `several_turns`
    says where the data has a conversation plain text cannot lay out; `what` is logged ("DPO (sigmoid
    loss, β 0.1)")."""
    spec = ctx.spec
    choice = resolve_choice(spec.model, ctx.run.path.parent.parent, "model")
    check_max_length(model_config(choice.base, choice.trust_remote_code), spec.data.max_length,
                     f"the model {choice.label}")
    ctx.events.progress("model", 0, None, "model")
    ctx.events.log("info", f"{what} of {choice.description} ({spec.method.name}).")
    model, tokenizer, changed = load_policy(choice, placement.device, placement.dtype, ctx.events.log)
    template = prompt_template(tokenizer, spec.data.chat_template, several_turns, "data.chat_template", choice.label,
                               ctx.events.log)
    return Policy(model, tokenizer, choice, template, stop_ids(model, tokenizer, template)), changed


def run_packed(ctx: JobContext, trainer, packing: Packing) -> None:
    """The trainer's forwards of the policy and of its reference model (the same module under LoRA) run
    padding-free where `packing` packs, as the run's log says."""
    if packing.packed:
        modules = (trainer.model, getattr(trainer, "ref_model", None))
        for module in {id(m): m for m in modules if m is not None}.values():
            PackedLogProbs(module, packing)
    ctx.events.log("info", f"Batches: {packing.describe()} (each answer's log-probabilities read from its own "
                           "positions)." if packing.packed else "Batches: padded.")


def task_accuracy_before(ctx: JobContext, model, evaluator: TaskEvaluator | None) -> dict[str, float]:
    if evaluator is None or ctx.resume_from:
        return {}
    ctx.events.progress("evaluate", 0, len(evaluator.prompts), "answers")
    values = emit_task_eval(ctx, 0, evaluator, model)
    if values:
        ctx.events.log("info", "Before training: " + ", ".join(f"{k} {v:.3g}" for k, v in values.items()))
    return values


def finish(ctx: JobContext, trainer, tokenizer, template: str | None, evaluator: TaskEvaluator | None,
           before: dict[str, float], summary: dict) -> dict:
    """Task accuracy after training, the policy saved to output/policy, and the run's summary."""
    step = trainer.state.global_step
    after = emit_task_eval(ctx, step, evaluator, trainer.model) if evaluator is not None else {}
    summary = {"step": step, **summary}
    summary.update({f"{k}_before": v for k, v in before.items()})
    summary.update({f"{k}_after": v for k, v in after.items()})
    summary["policy"] = str(ctx.run.output_dir / "policy")
    ctx.events.progress("save", 0, None, "model")
    with whole_weights(trainer) as state_dict:
        save_policy(ctx, trainer.model, tokenizer, template, summary, "", state_dict)
    return summary
