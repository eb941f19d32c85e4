"""Job specs: the one source of truth for every parameter — parsing, loading and the union of kinds.

A spec is a YAML file whose `kind:` selects the job. The GUI builds its forms from the JSON schema
of these models (titles, descriptions, defaults, bounds; fields marked `advanced` go into the
Advanced section), the CLI validates with them, and the docs print their schema. Each kind's model
lives in its own module of this package; `engine.kinds` registers them, and the union is built
from that registry.

Imported by the GUI: pydantic and PyYAML only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from engine.workspace_paths import portable_paths, resolved_paths
from engine.specs.base import StrictModel

_LEADING_FIELD = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+)\b")


def spec_models() -> dict[str, type[StrictModel]]:
    """kind -> spec model, in the registry's order."""
    from engine.kinds import KINDS  # the registry imports this package's modules: read it when asked

    return {name: kind.spec for name, kind in KINDS.items()}


@cache
def _adapter() -> TypeAdapter:
    models = tuple(spec_models().values())
    return TypeAdapter(Annotated[Union[models], Field(discriminator="kind")])


@dataclass
class SpecProblem:
    field: str  # dotted path, e.g. "train.batch_size"
    message: str
    line: int | None = None  # 1-based line in the YAML file, when known

    def __str__(self) -> str:
        where = f"line {self.line}, " if self.line else ""
        return f"{where}{self.field or '(top level)'}: {self.message}"


class SpecError(Exception):
    """Every problem of a spec at once, each with its field path (and YAML line when known)."""

    def __init__(self, source: str, problems: list[SpecProblem]):
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem{'s' if len(problems) != 1 else ''}:"]
        lines += [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


# What a spec may be: specs are a few hundred lines; these bounds keep a hostile file (a "billion
# laughs" of nested anchors, a megabyte of brackets) from taking the memory or the stack of whoever
# reads it — the engine, or the studio checking a spec as the user edits it.
MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_VALUES = 100_000  # values once every alias is expanded
MAX_SPEC_DEPTH = 64


class _SpecLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no tags that build objects) that also refuses a document nested deeper than
    MAX_SPEC_DEPTH before Python's stack runs out."""

    def __init__(self, stream) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_SPEC_DEPTH:
                raise _Refused(f"nested more than {MAX_SPEC_DEPTH} levels deep", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Refused(Exception):
    def __init__(self, message: str, mark, field: str = "") -> None:
        super().__init__(message)
        self.message, self.field, self.line = message, field, (mark.line + 1 if mark is not None else None)


def _expanded_values(root: yaml.Node) -> int:
    """How many values the document holds once every alias is expanded (an alias repeats its anchor's
    whole subtree), counted without expanding anything; a ValueError for an alias inside itself."""
    sizes: dict[int, int | None] = {}

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            if sizes[key] is None:
                raise ValueError("an anchor is used inside itself (a recursive alias)")
            return sizes[key]
        sizes[key] = None
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(size(item) for item in node.value)
        else:
            total = 1
        sizes[key] = min(total, MAX_SPEC_VALUES + 1)
        return sizes[key]

    return size(root)


def load_yaml(text: str, source: str = "spec") -> tuple[Any, dict[tuple, int]]:
    """The data of a YAML spec text, and the line of each key path in it; SpecError (with the line) for
    what is not YAML or not within the bounds a spec keeps (size, depth, expanded values, duplicate keys)."""
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(source, [SpecProblem("", f"is {len(text):,} characters long; a spec is at most "
                                                 f"{MAX_SPEC_BYTES:,} (is this the right file?)")])
    loader = None
    try:
        loader = _SpecLoader(text)  # reads the text at once: refuses characters YAML does not allow
        root = loader.get_single_node()
        if root is None:
            return None, {}
        try:
            values = _expanded_values(root)
        except ValueError as e:
            raise _Refused(str(e), root.start_mark) from None
        if values > MAX_SPEC_VALUES:
            raise _Refused(f"expands to more than {MAX_SPEC_VALUES:,} values through its anchors and aliases "
                           "(a spec needs a few hundred)", root.start_mark)
        lines = _yaml_lines(root)
        try:
            data = loader.construct_document(root)
        except ValueError as e:  # a number of thousands of digits, a date that is not one
            node = _unreadable_scalar(loader, root) or root
            raise _Refused(f"holds a value YAML cannot read ({str(e).split(';')[0]})", node.start_mark,
                           ".".join(str(p) for p in _path_of(root, node))) from None
    except _Refused as e:
        raise SpecError(source, [SpecProblem(e.field, e.message, e.line)]) from None
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        raise SpecError(source, [SpecProblem("", f"not valid YAML: character {e.character!r} is not allowed in "
                                                 "YAML text", line)]) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise SpecError(source, [SpecProblem("", f"not valid YAML: {getattr(e, 'problem', e)}", line)]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, lines


def _unreadable_scalar(loader: yaml.SafeLoader, root: yaml.Node) -> yaml.ScalarNode | None:
    """The first scalar of the document that the loader cannot turn into a value."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            loader.constructed_objects, loader.recursive_objects = {}, {}  # as a fresh document
            try:
                loader.construct_object(node)
            except ValueError:
                return node
        elif isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in reversed(node.value) for n in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    return None


def _path_of(root: yaml.Node, target: yaml.Node) -> tuple:
    """The key path of `target` in the document (empty when it is the root or not found)."""
    stack: list[tuple[yaml.Node, tuple]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if node is target:
            return path
        if isinstance(node, yaml.MappingNode):
            stack.extend((value, path + (key.value,)) for key, value in node.value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + (i,)) for i, item in enumerate(node.value))
    return ()


def _yaml_lines(root: yaml.Node) -> dict[tuple, int]:
    """Map each key path in a composed YAML document to the 1-based line where its key (or item) sits.
    A key given twice in one mapping is refused (_Refused, naming both lines): YAML would keep the last
    without a word, and a spec must not say two things."""
    lines: dict[tuple, int] = {}

    def walk(node: yaml.Node, path: tuple) -> None:
        if isinstance(node, yaml.ScalarNode) and any(0xD800 <= ord(c) <= 0xDFFF for c in node.value):
            raise _Refused("holds a \\u escape of half a character (a lone surrogate), which is not text",
                           node.start_mark, ".".join(str(p) for p in path))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults`: later keys may override it
                    walk(value, path)
                    continue
                line = key.start_mark.line + 1
                walk(key, path)
                if isinstance(key, yaml.ScalarNode) and key.value in first:
                    where = ".".join(str(p) for p in path + (key.value,))
                    raise _Refused(f"given twice (first on line {first[key.value]}); YAML would silently keep "
                                   "the last", key.start_mark, where)
                if isinstance(key, yaml.ScalarNode):
                    first[key.value] = line
                sub = path + (key.value,)
                lines[sub] = line
                walk(value, sub)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(root, ())
    return lines


def _problems(error: ValidationError, lines: dict[tuple, int]) -> list[SpecProblem]:
    kinds = spec_models()
    problems = []
    for err in error.errors():
        # Drop the union tag from the location: ("pretrain", "train", "lr") -> ("train", "lr").
        loc = tuple(err["loc"])
        if loc and loc[0] in kinds:
            loc = loc[1:]
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; `studio-engine schema` lists the fields)"
        elif err["type"] == "union_tag_invalid":
            loc = ("kind",)
            message = f"unknown kind; use one of: {', '.join(kinds)}"
        elif err["type"] == "union_tag_not_found":
            loc = ("kind",)
            message = f"missing; use one of: {', '.join(kinds)}"
        elif message.startswith("Value error, "):
            message = message[len("Value error, "):]
            # A cross-field check names the field it blames first ("tokenizer.vocab_size (300) is …"):
            # report it at that field, so the GUI marks the right input.
            named = _LEADING_FIELD.match(message)
            if named and named.group(1).startswith(".".join(str(p) for p in loc)):
                loc = tuple(named.group(1).split("."))
        line = None
        for n in range(len(loc), -1, -1):
            if loc[:n] in lines:
                line = lines[loc[:n]]
                break
        problems.append(SpecProblem(".".join(str(p) for p in loc), message, line))
    return problems


def parse_spec(data: Any, source: str = "spec", text: str | None = None,
               lines: dict[tuple, int] | None = None) -> StrictModel:
    """Validate a spec given as plain data; raise SpecError listing every problem. The problems carry
    YAML lines from `lines` (what `load_yaml` returns), or from `text` when that is given instead."""
    if not isinstance(data, dict):
        raise SpecError(source, [SpecProblem("", "a spec is a mapping with a `kind:` key")])
    try:
        spec = _adapter().validate_python(data)
    except ValidationError as e:
        raise SpecError(source, _problems(e, _lines(lines, text, source))) from None
    problems = []
    for where, nested in getattr(spec, "nested_specs", list)():  # a sweep's base: a spec in a spec
        try:
            parse_spec(nested, f"{source}: {where}")
        except SpecError as e:
            found = _lines(lines, text, source)
            problems += [SpecProblem(f"{where}.{p.field}" if p.field else where,
                                     f"{p.message} (in the base, with the first trial's values)",
                                     found.get((where, *p.field.split("."))) or found.get((where,)))
                         for p in e.problems]
    if problems:
        raise SpecError(source, problems)
    return spec


def _lines(lines: dict[tuple, int] | None, text: str | None, source: str) -> dict[tuple, int]:
    if lines is None and text is not None:
        try:
            lines = load_yaml(text, source)[1]
        except SpecError:
            lines = {}
    return lines or {}


def load_spec(path: Path | str) -> StrictModel:
    """Read and validate a YAML spec file (safe, bounded: see `load_yaml`); raise SpecError or FileNotFoundError."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise SpecError(str(path), [SpecProblem("", "is a folder; give the spec's YAML file")]) from None
    except OSError as e:
        raise SpecError(str(path), [SpecProblem("", f"cannot be read ({e.strerror or e})")]) from None
    if len(raw) > MAX_SPEC_BYTES:
        raise SpecError(str(path), [SpecProblem("", f"is larger than {MAX_SPEC_BYTES:,} bytes; a spec is a short "
                                                    "YAML file (is this the right file?)")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise SpecError(str(path), [SpecProblem("", f"is not UTF-8 text (byte {e.start} cannot be read); save the "
                                                    "spec as UTF-8", line)]) from None
    data, lines = load_yaml(text, str(path))
    return parse_spec(data, str(path), lines=lines)


def with_workspace_paths(spec: StrictModel, workspace: Path) -> StrictModel:
    """The spec with the references it stores relative to `workspace` made paths of it (what a job
    reads: a run's spec.yaml names the files of its workspace relative to it)."""
    return parse_spec(resolved_paths(spec.model_dump(mode="json"), workspace))


def spec_to_yaml(spec: BaseModel, workspace: Path | None = None) -> str:
    """The spec as YAML; with `workspace`, the paths inside it written relative to it (a run's spec.yaml)."""
    data = spec.model_dump(mode="json")
    return yaml.safe_dump(data if workspace is None else portable_paths(data, workspace), sort_keys=False,
                          allow_unicode=True)


def json_schema(kind: str | None = None) -> dict:
    """The JSON schema of one kind, or of the whole union when kind is None."""
    if kind is None:
        return _adapter().json_schema()
    models = spec_models()
    if kind not in models:
        raise KeyError(f"unknown kind '{kind}'; known kinds: {', '.join(models)}")
    return models[kind].model_json_schema()


def json_schema_text(kind: str | None = None) -> str:
    return json.dumps(json_schema(kind), indent=2)
