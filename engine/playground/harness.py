"""The benchmark tasks of an evaluate job (`harness:`), run by lm-evaluation-harness on a model the job
has already loaded (its HF backend, `HFLM`, wrapping our model and tokenizer: nothing is downloaded
for the model, and the chat template is the one the job's other prompts get).

Tasks are found and their data read before any model loads (`load_tasks`), so a misspelt task, a
missing data file or a dataset that needs the network stops the run at once, named by its place in
the spec (`harness.tasks[1]`):

- a registry task (`arc_easy`, a group such as `mmlu`, a tag) comes from the harness's own task
  index, built only when the spec names one (it reads some ten thousand YAML files); its data comes
  from the Hugging Face hub through `datasets`, which honours HF_HUB_OFFLINE — a dataset that is not
  in the local cache then fails with a message that says so and what to do;
- a local task is a YAML file in the harness's format (read by the harness's own loader, so
  `include:` and `!function` work), usually `dataset_path: json` (or csv, parquet) with its data in
  `dataset_kwargs.data_files`. Relative data files are taken from the YAML's folder — the harness
  would take them from the engine's working folder, which a spec written elsewhere cannot know.

Scores come from the harness's results: for each task (and each group's aggregate) every metric,
with the filter it went through when that is not "none" (`exact_match (strict-match)`), its standard
error, and the number of examples.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError, first_line
from engine.specs.evaluate import HarnessTasks, is_local_task

# dataset_path values that read local files through `datasets`' packaged builders
LOCAL_BUILDERS = ("json", "csv", "parquet", "text", "arrow")
NETWORK_HINT = ("Run the evaluation once where the Hugging Face hub is reachable (HF_HUB_OFFLINE unset), so the "
                "dataset lands in the local cache, or write the task as a local .yaml with its data in a file "
                "(docs/evaluation.md).")


@dataclass
class HarnessTask:
    """One entry of `harness.tasks`, found and loaded: the harness's Task or Group objects to run."""

    entry: str  # as the spec gives it
    place: str  # "harness.tasks[0]"
    name: str  # the harness's name of the task, group or tag
    local: Path | None  # the YAML of a local task
    objects: list = field(default_factory=list)  # top-level Task/Group objects (a tag gives several tasks)


@dataclass
class TaskScore:
    """The figures of one task (or group) for one model."""

    task: str
    values: dict[str, float | None]
    stderr: dict[str, float | None]
    examples: int | None
    higher_is_better: dict[str, bool]


def offline() -> bool:
    return any(os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def load_tasks(harness: HarnessTasks, log) -> tuple[list[HarnessTask], Any]:
    """Every task of the spec found, its data read, ready to run; and the harness's TaskManager.
    Raises DataError naming the entry when one cannot be found or read."""
    from lm_eval.tasks import TaskManager

    registry_wanted = any(not is_local_task(entry) for entry in harness.tasks)
    if registry_wanted:
        log("info", "Reading the harness's task registry (some ten thousand task files; a few seconds).")
    manager = TaskManager(include_defaults=registry_wanted)
    tasks = []
    for i, entry in enumerate(harness.tasks):
        place = f"harness.tasks[{i}]"
        if is_local_task(entry):
            config = local_task_config(entry, place)
            task = HarnessTask(entry, place, config["task"], Path(entry).expanduser().resolve())
            spec: Any = config
        else:
            if entry not in manager.all_tasks:
                close = difflib.get_close_matches(entry, manager.all_tasks, n=3, cutoff=0.75)
                raise DataError(f"{place}: the harness has no task, group or tag named '{entry}'"
                                + (f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else "") + ".",
                                "Use a name from `lm-eval ls tasks`, or the path of a task .yaml of your own "
                                "(a name ending in .yaml is read as a file).")
            task = HarnessTask(entry, place, entry, None)
            spec = entry
        task.objects = _load(manager, spec, task)
        tasks.append(task)
    return tasks, manager


def local_task_config(entry: str, place: str) -> dict:
    """A local task's YAML as the harness reads it, its relative data files made absolute from the
    YAML's folder. Raises DataError for a missing or unreadable file, a group, or missing data."""
    from lm_eval.tasks._yaml_loader import load_yaml

    path = Path(entry).expanduser()
    if not path.is_file():
        raise DataError(f"{place}: the task file {entry} does not exist.",
                        "Check the path (relative paths start from the folder the engine runs in), or give the name "
                        "of a task of the harness's registry.")
    try:
        config = load_yaml(path, resolve_func=True)
    except Exception as e:  # noqa: BLE001 - YAML syntax, a bad include or !function: all the user's file
        raise DataError(f"{place}: {entry} is not a task file the harness can read: {first_line(e)}.",
                        "Fix the YAML (the harness's task format: task, dataset_path, doc_to_text, "
                        "doc_to_target, metric_list…).") from None
    if not isinstance(config.get("task"), str):
        what = "a group" if "group" in config else "no `task:` name"
        raise DataError(f"{place}: {entry} has {what}; a local task file defines one task.",
                        "Give it `task: NAME` and its dataset, prompt and metrics; list several task files for "
                        "several tasks.")
    if not config.get("dataset_path"):
        raise DataError(f"{place}: {entry} names no dataset_path.",
                        "Set `dataset_path: json` (or csv, parquet) and `dataset_kwargs: {data_files: {test: "
                        "FILE}}` with `test_split: test`.")
    folder = path.resolve().parent
    dataset_kwargs = dict(config.get("dataset_kwargs") or {})
    if "data_files" in dataset_kwargs:
        dataset_kwargs["data_files"] = _data_files(dataset_kwargs["data_files"], folder, place, entry)
        config["dataset_kwargs"] = dataset_kwargs
    elif config["dataset_path"] in LOCAL_BUILDERS:
        raise DataError(f"{place}: {entry} reads `dataset_path: {config['dataset_path']}` but names no file in "
                        f"dataset_kwargs.data_files.",
                        "Add `dataset_kwargs: {data_files: {test: data.jsonl}}` (relative to the YAML) and "
                        "`test_split: test`.")
    local_folder = folder / str(config["dataset_path"])
    if config["dataset_path"] not in LOCAL_BUILDERS and local_folder.is_dir():
        config["dataset_path"] = str(local_folder)
    return config


def _data_files(value: Any, folder: Path, place: str, entry: str) -> Any:
    if isinstance(value, dict):
        return {split: _data_files(files, folder, place, entry) for split, files in value.items()}
    if isinstance(value, list):
        return [_data_files(files, folder, place, entry) for files in value]
    given = Path(str(value)).expanduser()
    path = given if given.is_absolute() else folder / given
    if not path.is_file():
        raise DataError(f"{place}: the data file {value} of {entry} (dataset_kwargs.data_files) does not exist "
                        f"(looked for {path}).",
                        "Put the data file there, or fix the path: relative paths start from the YAML's folder.")
    return str(path)


def _load(manager, spec: Any, task: HarnessTask) -> list:
    """The task's top-level Task/Group objects, its documents read (downloaded for hub datasets)."""
    try:
        loaded = manager.load([spec])
    except Exception as e:  # noqa: BLE001 - datasets and the harness raise many types; sorted below
        raise _load_error(e, task, spec, manager) from None
    children = {child for names in loaded["group_map"].values() for child in names}
    grouped = {t.task_name for group in loaded["groups"].values() for t in group.get_all_tasks()}
    return ([group for name, group in loaded["groups"].items() if name not in children]
            + [t for name, t in loaded["tasks"].items() if name not in grouped])


def _load_error(error: Exception, task: HarnessTask, spec: Any, manager) -> DataError:
    text = first_line(error)
    if isinstance(spec, dict):
        dataset = spec.get("dataset_path")
    else:
        entry = manager.task_index.get(spec)
        dataset = (entry.cfg or {}).get("dataset_path") if entry is not None else None
    if _needs_network(error):
        state = ("this engine is offline (HF_HUB_OFFLINE=1)" if offline()
                 else "the Hugging Face hub could not be reached")
        return DataError(f"{task.place}: the task '{task.name}' reads its data from the Hugging Face hub"
                         + (f" ({dataset})" if dataset else "") + f", and {state}: {text}.", NETWORK_HINT)
    where = f"{task.entry}" if task.local else f"the task '{task.name}'"
    return DataError(f"{task.place}: could not read the data of {where}: {text}.",
                     "Check the task's dataset_path, dataset_kwargs and split names (test_split, "
                     "validation_split) against its data file.")


def _needs_network(error: BaseException) -> bool:
    names = {cls.__name__ for cls in type(error).__mro__}
    text = str(error)
    return bool(names & {"ConnectionError", "OfflineModeIsEnabled", "LocalEntryNotFoundError", "HTTPError",
                         "Timeout", "DatasetNotFoundError"}) or "OfflineModeIsEnabled" in text \
        or "Couldn't reach" in text or "offline" in text.lower()


def evaluate_task(task: HarnessTask, manager, model, tokenizer, template: str | None, harness: HarnessTasks,
                  seed: int) -> tuple[list[TaskScore], list[dict]]:
    """One task (or group) scored on one loaded model: its scores, and one line per example."""
    import jinja2
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=harness.batch_size,
              chat_template_args={"chat_template": template} if template else None)
    try:
        result = simple_evaluate(
            model=lm, tasks=list(task.objects), task_manager=manager, num_fewshot=harness.num_fewshot,
            limit=harness.limit, bootstrap_iters=harness.bootstrap_iters, log_samples=True,
            apply_chat_template=template is not None, random_seed=seed, numpy_random_seed=seed,
            torch_random_seed=seed, fewshot_random_seed=seed)
    except jinja2.TemplateError as e:
        raise DataError(f"{task.place}: a prompt template of the task '{task.name}' fails on its data: "
                        f"{first_line(e)}.",
                        "Fix doc_to_text / doc_to_target / doc_to_choice in the task's YAML to name fields its "
                        "data has.") from None
    return scores_of(result), sample_lines(result)


def scores_of(result: dict) -> list[TaskScore]:
    """The harness's results as one TaskScore per task and group, in its order."""
    scores = []
    for name, row in result["results"].items():
        values: dict[str, float | None] = {}
        errors: dict[str, float | None] = {}
        for key, value in row.items():
            if "," not in key or key.split(",")[0].endswith("_stderr"):
                continue
            metric, filter_name = key.split(",", 1)
            label = metric if filter_name == "none" else f"{metric} ({filter_name})"
            values[label] = _number(value)
            errors[label] = _number(row.get(f"{metric}_stderr,{filter_name}"))
        if not values:
            continue
        counts = (result.get("n-samples") or {}).get(name) or {}
        better = (result.get("higher_is_better") or {}).get(name) or {}
        scores.append(TaskScore(task=name, values=values, stderr=errors,
                                examples=counts.get("effective", row.get("sample_len")),
                                higher_is_better={label: bool(better.get(label.split(" (")[0], True))
                                                  for label in values}))
    return scores


def sample_lines(result: dict) -> list[dict]:
    """One line per scored example: the task, the document's index, the prompt the model read, what
    was expected, what the model gave (after the task's filters; for a multiple-choice task the index
    of the choice it found likeliest) and its scores."""
    lines = []
    for task, samples in (result.get("samples") or {}).items():
        for sample in samples:
            arguments = sample.get("arguments") or [()]
            first = arguments[0] if isinstance(arguments, list) else next(iter(arguments.values()), {})
            prompt = first[0] if isinstance(first, (list, tuple)) and first else \
                first.get("arg_0") if isinstance(first, dict) else None
            metrics = sample.get("metrics") or []
            lines.append({"task": task, "doc_id": sample.get("doc_id"), "prompt": prompt,
                          "target": sample.get("target"), "response": _response(sample.get("filtered_resps")),
                          "scores": {m: _number(sample.get(m)) for m in metrics}})
    return lines


def _response(given: Any) -> Any:
    """A generated text as itself; a multiple-choice task's (log-likelihood, greedy) per choice as the
    index of the likeliest choice; anything else as the harness gave it."""
    if isinstance(given, list) and len(given) == 1 and isinstance(given[0], str):
        return given[0]
    if isinstance(given, list) and given and all(isinstance(g, (list, tuple)) and len(g) == 2
                                                 and isinstance(g[0], (int, float)) for g in given):
        return max(range(len(given)), key=lambda i: given[i][0])
    return given


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and value == value and abs(value) != float("inf"):
        return round(float(value), 6)
    return None
