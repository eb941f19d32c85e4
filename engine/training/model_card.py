"""The model card (README.md) written into every model folder a training kind saves: what the model is,
its final figures, how to load it, and the spec that made it."""

from __future__ import annotations

from engine.specs import spec_to_yaml

FOLDER = "path/to/this/folder"


def usage(auto_class: str, library: str = "transformers") -> str:
    """Python that loads a folder saved with `auto_class` (an Auto… class of transformers or PEFT)."""
    return (f"from {library} import {auto_class}\nfrom transformers import AutoTokenizer\n"
            f"model = {auto_class}.from_pretrained(\"{FOLDER}\")\n"
            f"tokenizer = AutoTokenizer.from_pretrained(\"{FOLDER}\")")


def adapter_usage(base_model: str, added_tokens: int) -> list[tuple[str, str]]:
    """How to load a PEFT adapter folder: (sentence, Python) for each way. `AutoPeftModelForCausalLM`
    loads the base the adapter names and gives it the adapter's vocabulary; on a base model loaded by
    hand, the rows of the `added_tokens` chat-template tokens must exist before the adapter is put on
    (PEFT's trainable tokens index them), so its embeddings are resized to the adapter's tokenizer first."""
    auto = (f"from peft import AutoPeftModelForCausalLM\nfrom transformers import AutoTokenizer\n"
            f"model = AutoPeftModelForCausalLM.from_pretrained(\"{FOLDER}\")\n"
            f"tokenizer = AutoTokenizer.from_pretrained(\"{FOLDER}\")")
    resize = ("base.resize_token_embeddings(len(tokenizer))  # the chat-template tokens this run added\n"
              if added_tokens else "")
    by_hand = (f"from peft import PeftModel\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
               f"tokenizer = AutoTokenizer.from_pretrained(\"{FOLDER}\")\n"
               f"base = AutoModelForCausalLM.from_pretrained(\"{base_model}\")\n{resize}"
               f"model = PeftModel.from_pretrained(base, \"{FOLDER}\")")
    said = (f"On a base model you load yourself, resize its embeddings to this tokenizer first: the run added "
            f"{added_tokens} chat-template token{'s' if added_tokens != 1 else ''} to the vocabulary, whose trained "
            "rows the adapter holds." if added_tokens else "On a base model you load yourself:")
    return [("The adapter loads with the base model it was trained on:", auto), (said, by_hand)]


def _value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def model_card(spec, summary: dict, *, description: str, use: str | list[tuple[str, str]], tags: list[str],
               library: str = "transformers", base_model: str | None = None) -> str:
    """Front matter for the hub (library, base model, tags), the description, the final figures of
    `summary`, the loading snippet `use` (or several, each after its sentence), and the spec as YAML."""
    rows = "\n".join(f"| {key} | {_value(value)} |" for key, value in summary.items())
    front = [f"library_name: {library}"] + ([f"base_model: {base_model}"] if base_model else [])
    front.append(f"tags: [{', '.join(['atelier', *tags])}]")
    uses = []
    for said, code in ([("", use)] if isinstance(use, str) else use):
        uses += ([said, ""] if said else []) + ["```python", code.strip(), "```", ""]
    return "\n".join([
        "---", *front, "---", "", f"# {spec.name}", "", description.strip(), "",
        "## Final metrics", "", "| metric | value |", "|---|---|", rows, "",
        "## Use", "", *uses,
        "## Training spec", "", "```yaml", spec_to_yaml(spec).rstrip(), "```", ""])
