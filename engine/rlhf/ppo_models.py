"""The four models of a PPO run: the policy (optionally with a LoRA adapter), its frozen reference,
the reward model and the value model; where they are, the checks that they fit together, and
loading them.

- The policy is found as every model entry is (engine/models: a run, a folder, a checkpoint, a hub
  id, with an SFT adapter) and loaded as the generate job loads a model, the adapter merged in.
  The reference is a frozen copy of it, or with LoRA the same weights with the PPO adapter switched
  off (no second copy in memory).
- The reward model (a reward run's output/reward_model, a classifier's folder or a hub id, found by
  the same locator) is a `...ForSequenceClassification` with one label, scoring the conversation
  with the answer as the reward job encodes it for training (engine/rlhf/reward_data.py), in the
  chat template it was trained with. The value model is a transformer body with a linear head
  applied at every token: a copy of the reward model's body and score head, or the policy's body
  with a new head.
- The reward and value models read the policy's token ids, so the reward model must share the
  policy's vocabulary: that is checked on the tokenizers before any weights are loaded.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from engine.errors import ModelError, first_line
from engine.generate.models import stop_ids
from engine.generate.prompts import Prompt
from engine.models import ModelChoice, choice_tokenizer, load_tokenizer, locate_model, resolve_choice
from engine.rlhf.policy_model import load_policy, lora_config, prompt_template
from engine.specs.ppo import PPOSpec
from engine.training.batches import Packing


class ScalarHeadModel(nn.Module):
    """A transformer body and a linear head giving one number per token: the value model, and the
    reward model read at an answer's last token."""

    def __init__(self, body: nn.Module, head: nn.Linear):
        super().__init__()
        self.body, self.head = body, head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                position_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.body(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=False).last_hidden_state
        return self.head(hidden.to(self.head.weight.dtype)).squeeze(-1).float()


@dataclass
class PPOModels:
    policy: nn.Module  # trained: the whole model, or a PeftModel whose LoRA adapter trains
    reference: nn.Module | None  # frozen; None: the policy with its adapter disabled
    reward: nn.Module  # frozen: a transformers ...ForSequenceClassification with one label
    value: ScalarHeadModel  # trained
    tokenizer: object  # the policy's
    template: str | None  # the chat template prompts are laid out with; None: the prompt text as is
    stops: list[int]  # token ids that end an answer
    reward_tokenizer: object  # the same vocabulary as the policy's, with the reward model's own template
    score_template: str | None  # what the reward model reads conversations in (its own template, else the policy's)
    # Whether the policy's (and reference's) and the value model's forwards on prompt + answer run packed.
    policy_packing: Packing = Packing(False)
    value_packing: Packing = Packing(False)

    def reference_mode(self):
        """A context in which `reference_model()` answers as the reference."""
        return self.policy.disable_adapter() if self.reference is None else contextlib.nullcontext()

    def reference_model(self) -> nn.Module:
        return self.policy if self.reference is None else self.reference

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.policy, self.value) for p in m.parameters() if p.requires_grad]


@dataclass
class Located:
    """The models of the spec, found and checked, before their weights are loaded."""

    policy: ModelChoice
    reward: str
    tokenizer: object  # the policy's
    template: str | None
    reward_tokenizer: object
    score_template: str | None


def locate(spec: PPOSpec, workspace: Path | None, prompts: list[Prompt], log) -> Located:
    """Find the policy and the reward model and check that they fit together and the prompts,
    reading only their configurations and tokenizers (fast: bad input fails before any weights load)."""
    policy = resolve_choice(spec.policy, workspace, "policy")
    tokenizer = choice_tokenizer(policy)
    template = None
    if spec.chat_template != "none":
        several = next((p.where for p in prompts if sum(m["role"] != "system" for m in p.messages) > 1), None)
        template = prompt_template(tokenizer, spec.chat_template, several, "chat_template", policy.label, log)
    reward = locate_model(spec.reward_model, workspace, "reward_model", "reward").path
    _check_reward_config(reward, spec.policy.trust_remote_code)
    reward_tokenizer = load_tokenizer(reward, "reward_model", spec.policy.trust_remote_code)
    check_same_vocabulary(tokenizer, reward_tokenizer, policy.description, reward)
    # The reward job saves the template it trained with; a reward model without one reads what the policy writes.
    own = getattr(reward_tokenizer, "chat_template", None)
    score_template = (own.get("default") if isinstance(own, dict) else own) or template
    if template is not None and score_template != template:
        log("info", f"The reward model {reward} reads conversations in its own chat template, which differs from "
                    f"the one the policy's prompts are laid out with; answers are scored in the reward model's.")
    return Located(policy, reward, tokenizer, template, reward_tokenizer, score_template)


def check_same_vocabulary(policy_tokenizer, reward_tokenizer, policy: str, reward: str) -> None:
    """Refuse a reward model whose tokenizer maps tokens to other ids than the policy's."""
    mine, theirs = policy_tokenizer.get_vocab(), reward_tokenizer.get_vocab()
    if mine == theirs:
        return
    moved = next((t for t in sorted(mine, key=mine.get) if t in theirs and theirs[t] != mine[t]), None)
    missing = next((t for t in sorted(mine, key=mine.get) if t not in theirs), None)
    if moved is not None:
        example = f"{moved!r} is token {mine[moved]} for the policy and {theirs[moved]} for the reward model"
    elif missing is not None:
        example = f"{missing!r} (token {mine[missing]} of the policy's) is not in the reward model's"
    else:
        extra = next(t for t in sorted(theirs, key=theirs.get) if t not in mine)
        example = f"{extra!r} (token {theirs[extra]} of the reward model's) is not in the policy's"
    raise ModelError(f"The reward model {reward} (reward_model) and the policy {policy} (policy.path) use different "
                     f"tokenizers: the reward model's has {len(theirs):,} tokens and the policy's {len(mine):,}, and "
                     f"{example}.",
                     "PPO reads the policy's answers token by token with the reward model and the value model made "
                     "from it, so they need the policy's vocabulary. Train the reward model from the policy (a "
                     "`kind: reward` run whose model.path is the policy, or the SFT model it came from), or start "
                     "the policy from the model the reward model was trained on.")


def load_models(spec: PPOSpec, located: Located, device: str, dtype: torch.dtype, log) -> PPOModels:
    """Every model on `device`, in eval mode (PPO keeps dropout off: the probability ratio of an
    unchanged policy must be exactly 1), with only the policy and value model trainable."""
    policy, tokenizer, _ = load_policy(located.policy, device, dtype, log)  # an SFT adapter merged in
    stops = stop_ids(policy, tokenizer, located.template)
    reward = _load_reward(located.reward, spec.policy.trust_remote_code, device, dtype, tokenizer.pad_token_id)
    if spec.value_model == "reward":
        value = ScalarHeadModel(copy.deepcopy(reward.base_model), copy.deepcopy(_score_head(reward, located.reward)))
    else:
        body = copy.deepcopy(policy.base_model)
        value = ScalarHeadModel(body, nn.Linear(policy.config.get_text_config().hidden_size, 1, bias=False,
                                                device=device, dtype=dtype))
        nn.init.zeros_(value.head.weight)  # values start at 0 and learn from the first returns
    for p in reward.parameters():
        p.requires_grad_(False)
    reference = None
    if spec.method.name == "lora":
        import peft

        policy = peft.get_peft_model(policy, lora_config(spec.method, policy))
        body_lora = lora_config(spec.method, value.body)
        body_lora.task_type = None  # a bare transformer body, not a language model
        value = ScalarHeadModel(peft.get_peft_model(value.body, body_lora), value.head)
    else:
        reference = copy.deepcopy(policy)
        for p in reference.parameters():
            p.requires_grad_(False)
        reference.eval()
    for module in (policy, value, reward):
        module.to(device)
        module.eval()
    for p in value.head.parameters():
        p.requires_grad_(True)
    return PPOModels(policy, reference, reward, value, tokenizer, located.template, stops,
                     located.reward_tokenizer, located.score_template)


def _check_reward_config(reward: str, trust_remote_code: bool) -> None:
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(reward, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - offline hub id, damaged config: the user's to fix
        raise ModelError(f"Could not read the configuration of the reward model {reward} (reward_model): "
                         f"{first_line(e)}",
                         "Check the folder or hub id (HF_HUB_OFFLINE=1 forbids downloads).") from None
    architectures = config.architectures or []
    hint = ("Train a reward model with a `kind: reward` run, or point reward_model at a model saved from "
            "AutoModelForSequenceClassification with num_labels=1.")
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ModelError(f"{reward} (reward_model) is not a reward model: its architecture is "
                         f"{', '.join(architectures) or 'not named'}, not a ...ForSequenceClassification.", hint)
    if config.num_labels != 1:
        raise ModelError(f"{reward} (reward_model) gives {config.num_labels} scores per text; a reward model gives "
                         f"one.", hint)


def _load_reward(path: str, trust_remote_code: bool, device: str, dtype: torch.dtype, pad_token_id: int | None):
    from transformers import AutoModelForSequenceClassification

    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, dtype=dtype,
                                                                   trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load the reward model {path} (reward_model): {first_line(e)}",
                         "Check that the folder holds a complete model (config.json and weights).") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = pad_token_id  # how its forward finds each row's last token in a padded batch
    return model.to(device)


def _score_head(reward: nn.Module, path: str) -> nn.Linear:
    head = getattr(reward, "score", None)
    if not isinstance(head, nn.Linear) or head.out_features != 1:
        raise ModelError(f"The reward model {path} (reward_model) is a {type(reward).__name__}, whose score is not "
                         f"one linear layer on its token states (a `score` head), so the value model cannot start "
                         f"from it.",
                         "Set value_model: policy, or use a decoder reward model (LlamaForSequenceClassification, "
                         "Qwen2ForSequenceClassification, …) such as a `kind: reward` run's.")
    return head
