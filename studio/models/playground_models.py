"""The models a playground can ask, and what each one reads — without Qt, torch or transformers.

`find_playground_models` lists what the workspace's runs wrote: final models (pretraining, full
fine-tuning, merged adapters, PPO/DPO/GRPO policies), LoRA adapters (loaded on the base model they
name) and checkpoints. `read_layout` and `model_reads` show a prompt as the model will read it: the
model's own chat template (from its tokenizer files), rendered with Jinja as transformers renders
it, with the bos token the engine puts first; `tokenizers` counts its tokens when the model has a
tokenizer.json. The server's `prompt_tokens` stays the authority; this is the preview beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from engine.specs.chat import CHAT_PRESETS
from studio.models.engine_schema import kind_title

# (folder under output/, what it is), in the order a run's own id resolves them.
_OUTPUTS = (("merged", "merged"), ("model", "model"), ("policy", "policy"), ("adapter", "adapter"))
CHECKPOINTS_PER_RUN = 2  # the latest ones; older ones are a folder away


@dataclass(frozen=True)
class FoundModel:
    path: str
    label: str  # what the column and the results call it
    detail: str  # "finetune · adapter (on its base)"
    modified: float


def _spec(run_dir: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load((run_dir / "spec.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _is_model(folder: Path) -> bool:
    return (folder / "config.json").exists() or (folder / "adapter_config.json").exists()


def find_playground_models(workspace: str | Path | None) -> list[FoundModel]:
    """Models, adapters and checkpoints written by the workspace's runs, newest first."""
    if not workspace:
        return []
    runs = Path(workspace).expanduser() / "runs"
    found: list[FoundModel] = []
    for run_dir in runs.glob("*") if runs.is_dir() else []:
        outputs = [(run_dir / "output" / name, what) for name, what in _OUTPUTS if _is_model(run_dir / "output" / name)]
        checkpoints = sorted((p for p in run_dir.glob("checkpoints/checkpoint-*") if _is_model(p)),
                             key=lambda p: _step(p.name), reverse=True)[:CHECKPOINTS_PER_RUN]
        if not outputs and not checkpoints:
            continue
        spec = _spec(run_dir)
        kind, name = str(spec.get("kind") or "run"), str(spec.get("name") or run_dir.name)
        if kind == "reward":
            continue  # a reward model scores answers; it does not write them
        kind = kind_title(kind)  # as a person writes it: "GRPO", "Fine-tune"
        for folder, what in outputs:
            detail = f"{kind} · {what}" + (" (on its base)" if what == "adapter" else "")
            found.append(FoundModel(str(folder), name if what != "adapter" else f"{name} (adapter)", detail,
                                    _mtime(folder)))
        for folder in checkpoints:
            found.append(FoundModel(str(folder), f"{name}@{folder.name}", f"{kind} · checkpoint", _mtime(folder)))
    return sorted(found, key=lambda f: f.modified, reverse=True)


def default_label(path: str, adapter: str = "") -> str:
    """A short name for a model typed or chosen: the run (`run@checkpoint-200`), else the folder or hub id."""
    def name(text: str) -> str:
        p = Path(text).expanduser()
        if not p.exists():
            return text.rstrip("/")  # a hub id or a run id
        parts = p.resolve().parts
        if "runs" in parts[:-1]:
            at = len(parts) - 1 - parts[::-1].index("runs")
            run = parts[at + 1] if at + 1 < len(parts) else p.name
            checkpoint = next((q for q in parts[at + 2:] if q.startswith("checkpoint-")), None)
            return f"{run}@{checkpoint}" if checkpoint else run
        return p.name
    label = name(path)
    return f"{label} + {name(adapter)}" if adapter else label


# ---------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class Layout:
    """How a model's prompts are laid out: a chat template (None = the text as is) and its specials."""

    template: str | None
    source: str  # "its own chat template", "the chatml template", "no chat template: the text as is"
    bos: str | None = None
    eos: str | None = None
    add_bos: bool = False  # the engine puts bos first (the tokenizer starts every text with it)
    tokenizer_file: str | None = None
    problem: str = ""  # why the layout is a guess (no tokenizer files on this computer, …)


def tokenizer_folder(path: str, adapter: str = "", workspace: str | Path | None = None) -> Path | None:
    """The folder whose tokenizer the engine loads for this model: an adapter's own when it saved
    one, else its base model's (run ids and run folders resolve as the engine resolves them)."""
    for candidate in ([adapter] if adapter else []) + [path]:
        folder = _locate(candidate, workspace)
        if folder is None:
            continue
        if _has_tokenizer(folder):
            return folder
        if (folder / "adapter_config.json").exists():  # an adapter without a tokenizer: its base's
            base = _adapter_base(folder)
            if base is not None and _has_tokenizer(base):
                return base
    return None


def read_layout(path: str, adapter: str, workspace: str | Path | None, chat_template: str = "auto") -> Layout:
    folder = tokenizer_folder(path, adapter, workspace)
    if folder is None:
        template = CHAT_PRESETS[chat_template][0] if chat_template in CHAT_PRESETS else None
        return Layout(template, _source(chat_template, template),
                      problem="The model's tokenizer files are not on this computer: its own template and token "
                              "count show once the server answers.")
    config = _json(folder / "tokenizer_config.json")
    own = _own_template(folder, config)
    if chat_template == "none":
        template = None
    elif chat_template in CHAT_PRESETS:
        template = CHAT_PRESETS[chat_template][0]
    else:
        template = own
    problem = "This model has no chat template (chat template: model)." if chat_template == "model" and not own else ""
    bos, eos = _special(config.get("bos_token")), _special(config.get("eos_token"))
    tokenizer_file = folder / "tokenizer.json"
    return Layout(template, _source(chat_template, template, own), bos, eos,
                  _adds_bos(str(tokenizer_file), bos) if tokenizer_file.exists() else False,
                  str(tokenizer_file) if tokenizer_file.exists() else None, problem)


def model_reads(messages: list[dict], layout: Layout) -> str:
    """The text the model reads for `messages` (the user's turn last), up to its answer."""
    if layout.template is None:
        # As the engine lays out a prompt without a template: the system prompt, a blank line, the
        # user's text (a conversation as "Role: text" turns).
        system = [m["content"] for m in messages if m["role"] == "system"]
        spoken = [m for m in messages if m["role"] != "system"]
        text = spoken[0]["content"] if len(spoken) == 1 else "\n\n".join(
            f"{m['role'].capitalize()}: {m['content']}" for m in spoken)
        text = "\n\n".join([*system, text])
    else:
        text = _chat_env().from_string(layout.template).render(
            messages=messages, add_generation_prompt=True, bos_token=layout.bos or "", eos_token=layout.eos or "")
    if layout.add_bos and layout.bos and not text.startswith(layout.bos):
        text = layout.bos + text
    return text


def count_tokens(text: str, layout: Layout) -> int | None:
    if not layout.tokenizer_file:
        return None
    try:
        return len(_tokenizer(layout.tokenizer_file).encode(text, add_special_tokens=False).ids)
    except Exception:  # noqa: BLE001 - a tokenizer file the library cannot read: no count, no crash
        return None


def _source(choice: str, template: str | None, own: str | None = None) -> str:
    if template is None:
        return "no chat template: the text as is"
    if choice in CHAT_PRESETS:
        return f"the {choice} template"
    return "its own chat template" if template == own else "a chat template"


def _locate(path: str, workspace: str | Path | None) -> Path | None:
    folder = Path(path).expanduser()
    if not folder.exists() and workspace is not None and (Path(workspace) / "runs" / path).is_dir():
        folder = Path(workspace) / "runs" / path
    if not folder.is_dir():
        return None
    if _is_model(folder):
        return folder
    output = folder / "output" if (folder / "output").is_dir() else folder
    return next((output / name for name, _ in _OUTPUTS if _is_model(output / name)), None)


def _adapter_base(adapter: Path) -> Path | None:
    base = _json(adapter / "adapter_config.json").get("base_model_name_or_path")
    return Path(base).expanduser() if base and Path(base).expanduser().is_dir() else None


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).exists() for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))


def _own_template(folder: Path, config: dict) -> str | None:
    jinja = folder / "chat_template.jinja"  # transformers 4.47+ saves it beside the config
    if jinja.exists():
        return jinja.read_text(encoding="utf-8")
    own = config.get("chat_template")
    if isinstance(own, list):  # named templates: the default one is for chat
        own = next((t.get("template") for t in own if t.get("name") == "default"), None)
    return own or None


def _special(value) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _mtime(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0


def _step(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else -1


@lru_cache(maxsize=16)
def _tokenizer(file: str):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(file)


def _adds_bos(file: str, bos: str | None) -> bool:
    """Whether the tokenizer starts every text with bos (the engine then puts it first, once)."""
    if not bos:
        return False
    try:
        tokenizer = _tokenizer(file)
        with_specials = tokenizer.encode("a", add_special_tokens=True).ids
        without = tokenizer.encode("a", add_special_tokens=False).ids
    except Exception:  # noqa: BLE001 - unreadable tokenizer: assume no bos
        return False
    return with_specials[:1] == [tokenizer.token_to_id(bos)] != without[:1]


@lru_cache(maxsize=1)
def _chat_env():
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    # As transformers renders chat templates: sandboxed, trimmed blocks, and raise_exception.
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])

    def raise_exception(message):
        raise ValueError(message)

    env.globals["raise_exception"] = raise_exception
    env.filters["tojson"] = lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent)
    return env
