"""The learning rate a fine-tuning run starts from: by method and by the size of the model, and what
to expect of it — the spec has one default, and no single rate suits both a full fine-tune of the
demo's 1.3M-parameter model and a LoRA on a 7B one.

Where the figures come from: full fine-tuning of the demo's pretrained model (1.3M parameters)
learns its task at 3e-3 in 400 steps and not at 1e-5 (docs/finetuning.md); Alpaca fine-tuned LLaMA
7B at 2e-5 and LIMA LLaMA 65B at 1e-5; QLoRA trained its adapters at 2e-4 on 7B and 13B models and
1e-4 on 33B and 65B; PEFT's prefix and prompt tuning examples use 1e-2 to 3e-2. Between those
anchors the rate falls roughly with the model's width. Qt-free: the Method step applies it, the
Review step says it.
"""

from __future__ import annotations

from dataclasses import dataclass

from studio.widgets.formatting import count

# Upper bounds of the size classes (parameters), and the rate of each method family in each class.
SIZE_BOUNDS = (10e6, 100e6, 1e9, 10e9)
RATES: dict[str, tuple[float, ...]] = {
    "full": (3e-3, 5e-4, 5e-5, 2e-5, 1e-5),
    "adapter": (1e-3, 1e-3, 5e-4, 2e-4, 1e-4),  # LoRA, QLoRA, AdaLoRA
    "prompt": (1e-2, 1e-2, 1e-2, 1e-2, 1e-2),  # prefix, prompt and p-tuning: only a few virtual tokens learn
}
FAMILIES = {"full": "full", "lora": "adapter", "qlora": "adapter", "adalora": "adapter", "prefix": "prompt",
            "prompt": "prompt", "ptuning": "prompt"}
# Below this size an adapter has little to work with: the demo's LoRA stayed at 0% where full
# fine-tuning reached 95%.
SMALL_FOR_ADAPTERS = 50e6


@dataclass(frozen=True)
class LearningRate:
    value: float
    method: str
    parameters: int | None

    def reason(self) -> str:
        """Why this rate, in a sentence."""
        family = FAMILIES.get(self.method, "adapter")
        what = {"full": "full fine-tuning", "adapter": "adapters (LoRA and its kin)",
                "prompt": "learned virtual tokens"}[family]
        size = f"a model of {count(self.parameters)} parameters" if self.parameters else "a model of unknown size"
        return f"the usual start for {what} on {size}"

    def expectation(self) -> str:
        """This rate, why, and what the run should show at it."""
        return f"Learning rate {self.value:g}: {self.reason()}. {self.outlook()}"

    def outlook(self) -> str:
        """What a run should show at a suitable rate, and what to change when it does not."""
        text = ("Expect the training loss to fall within the first tens of steps; a flat loss says the rate is too "
                "low, a loss that jumps up or turns NaN that it is too high.")
        if FAMILIES.get(self.method) != "full" and self.parameters and self.parameters < SMALL_FOR_ADAPTERS:
            text += (f" On a model this small ({count(self.parameters)} parameters) adapters have little to work "
                     "with: full fine-tuning learns where they may not.")
        return text


def suggested(method: str, parameters: int | None) -> LearningRate:
    """The learning rate to start `method` from on a model of `parameters` (unknown: a 1B-class model's)."""
    rates = RATES[FAMILIES.get(method, "adapter")]
    size = parameters if parameters else 1e9
    index = next((i for i, bound in enumerate(SIZE_BOUNDS) if size < bound), len(SIZE_BOUNDS))
    return LearningRate(rates[index], method, parameters)
