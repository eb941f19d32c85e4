"""The job specs an engine accepts, as its own `studio-engine schema` describes them.

The studio builds its forms from, and checks the fields of a spec against, the schema of the engine
that will run it — local or over SSH, of this studio's version or another — and never assumes that
its own copy of engine/specs matches. Qt-free: a schema split per kind, the values a new spec starts
from, a kind's wizard layout, field-level problems (jsonschema), the problems an engine's `validate`
printed, and what differs between two schemas, in sentences.

An engine's schema hash is the SHA-256 (hex) of the text `studio-engine schema` prints (without its
final newline): what `studio-engine schema --hash` and the `schema_hash` of `studio-engine doctor
--json` give.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from engine.specs import SpecProblem

UNKNOWN_FIELD = "unknown field (check the spelling; `studio-engine schema` lists the fields)"
# A problem line of the engine's SpecError: "  - line 4, train.lr: message" or "  - train.lr: message".
_PROBLEM_LINE = re.compile(r"^\s+- (?:line (\d+), )?(\(top level\)|[\w.]*): (.*)$")


def schema_hash(text: str) -> str:
    """The hash of a schema as `studio-engine schema` printed it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class WizardStep:
    name: str
    fields: tuple[str, ...]  # top-level properties of the spec
    intro: str


@dataclass(frozen=True)
class WizardLayout:
    """How a kind's spec declares its wizard (`json_schema_extra={"wizard": …}` on the spec model)."""

    title: str
    subtitle: str
    steps: tuple[WizardStep, ...]


class EngineSchema:
    """One engine's job specs: the union schema `studio-engine schema` printed, read per kind."""

    def __init__(self, text: str):
        self.text = text.rstrip("\n")  # as printed, less the newline `print` adds
        self.union: dict = json.loads(self.text)
        self.hash = schema_hash(self.text)

    @cached_property
    def kinds(self) -> tuple[str, ...]:
        """The kinds the engine runs, in its registry's order."""
        found = []
        for ref in self.union.get("oneOf", []):
            definition = self._resolve(ref)
            kind = definition.get("properties", {}).get("kind", {}).get("const")
            if kind:
                found.append(kind)
        return tuple(found)

    def kind_schema(self, kind: str) -> dict:
        """The JSON schema of one kind, with the definitions it refers to."""
        for ref in self.union.get("oneOf", []):
            definition = self._resolve(ref)
            if definition.get("properties", {}).get("kind", {}).get("const") == kind:
                return {**definition, "$defs": self.union.get("$defs", {})}
        raise KeyError(f"this engine has no job kind '{kind}'; its kinds: {', '.join(self.kinds)}")

    def _resolve(self, node: dict) -> dict:
        return resolve(node, self.union)

    def defaults(self, kind: str) -> dict:
        """The values a new spec of `kind` starts from: the schema's defaults, required fields blank."""
        schema = self.kind_schema(kind)
        return _object_defaults(schema, schema)

    def wizard(self, kind: str) -> WizardLayout | None:
        """The wizard layout the kind's spec declares, if it does."""
        declared = self.kind_schema(kind).get("wizard")
        if not isinstance(declared, dict):
            return None
        steps = tuple(WizardStep(step["name"], tuple(step.get("fields", ())), step.get("intro", ""))
                      for step in declared.get("steps", ()))
        return WizardLayout(declared.get("title", kind), declared.get("subtitle", ""), steps)

    def problems(self, data: dict) -> list[SpecProblem]:
        """Field-level problems of a spec (types, bounds, choices, required and unknown fields) by this
        engine's schema. Checks across fields are the engine's: `studio-engine validate`."""
        from jsonschema import Draft202012Validator

        kind = data.get("kind") if isinstance(data, dict) else None
        if kind not in self.kinds:
            return [SpecProblem("kind", f"this engine has no job kind '{kind}'; its kinds: {', '.join(self.kinds)}")]
        validator = Draft202012Validator(self.kind_schema(kind))
        problems: list[SpecProblem] = []
        for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
            problems += _error_problems(error)
        return problems


def resolve(node: dict, root: dict) -> dict:
    """`node` with a `$ref` to `#/$defs/…` followed (its own keys kept beside the definition's)."""
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/$defs/"):
        return node
    definition = root.get("$defs", {}).get(ref.removeprefix("#/$defs/"), {})
    return {**definition, **{k: v for k, v in node.items() if k != "$ref"}}


def _nullable_inner(node: dict, root: dict) -> tuple[dict, bool]:
    options = node.get("anyOf")
    if isinstance(options, list):
        kept = [o for o in options if o.get("type") != "null"]
        if len(kept) == 1:
            return resolve(kept[0], root), len(kept) < len(options)
    return resolve(node, root), False


def _object_defaults(schema: dict, root: dict) -> dict:
    return {name: _default(prop, root) for name, prop in schema.get("properties", {}).items()}


def _default(prop: dict, root: dict) -> Any:
    if "default" in prop:
        return copy.deepcopy(prop["default"])
    if "const" in prop:
        return prop["const"]
    inner, nullable = _nullable_inner(prop, root)
    if "default" in inner:
        return copy.deepcopy(inner["default"])
    if nullable:
        return None
    if inner.get("type") == "object" and "properties" in inner:
        return _object_defaults(inner, root)
    return {"string": "", "array": [], "boolean": False}.get(inner.get("type"))


# ------------------------------------------------------------------------- field-level problems
_TYPE_WORDS = {"integer": "a valid integer", "number": "a valid number", "string": "a valid string",
               "boolean": "a valid boolean", "array": "a valid list", "object": "a valid dictionary",
               "null": "empty"}


def _path(parts: Any) -> str:
    return ".".join(str(p) for p in parts)


def _error_problems(error: Any) -> list[SpecProblem]:
    """An error of jsonschema as SpecProblems, worded as the engine's own (pydantic's) are."""
    where = list(error.absolute_path)
    validator, expected = error.validator, error.validator_value
    if validator == "required":
        missing = [name for name in expected if isinstance(error.instance, dict) and name not in error.instance]
        return [SpecProblem(_path([*where, name]), "Field required") for name in missing]
    if validator == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = [name for name in error.instance if name not in allowed] if isinstance(error.instance, dict) else []
        return [SpecProblem(_path([*where, name]), UNKNOWN_FIELD) for name in extra]
    if validator in ("anyOf", "oneOf") and error.context:
        # An optional field (X or null) failed as X: report why it is not an X.
        non_null = [e for e in error.context if e.validator != "type" or e.validator_value != "null"]
        if non_null:
            deepest = max(non_null, key=lambda e: len(list(e.absolute_path)))
            return _error_problems(deepest)
    return [SpecProblem(_path(where), _message(validator, expected, error))]


# Bounds and patterns, worded as pydantic words them ({n}: the bound, {s}: a plural's "s").
_BOUND_WORDS = {
    "minLength": "String should have at least {n} character{s}",
    "maxLength": "String should have at most {n} character{s}",
    "minItems": "List should have at least {n} item{s}",
    "maxItems": "List should have at most {n} item{s}",
    "minimum": "Input should be greater than or equal to {n}",
    "exclusiveMinimum": "Input should be greater than {n}",
    "maximum": "Input should be less than or equal to {n}",
    "exclusiveMaximum": "Input should be less than {n}",
    "pattern": "String should match pattern '{n}'",
}


def _message(validator: str, expected: Any, error: Any) -> str:
    if validator in _BOUND_WORDS:
        return _BOUND_WORDS[validator].format(n=expected, s="" if expected == 1 else "s")
    if validator == "type":
        types = expected if isinstance(expected, list) else [expected]
        return "Input should be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    if validator == "enum":
        choices = [repr(v) for v in expected]
        return "Input should be " + (", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0])
    if validator == "const":
        return f"Input should be {expected!r}"
    return error.message


def problems_from_engine(text: str) -> list[SpecProblem]:
    """The problems an engine printed for an invalid spec (`validate` or `run`: "  - line N, field: message"),
    each at its field; one problem holding the whole text when there is no such line."""
    problems = []
    for line in text.splitlines():
        match = _PROBLEM_LINE.match(line)
        if match:
            line_no, field, message = match.groups()
            problems.append(SpecProblem("" if field == "(top level)" else field, message,
                                        int(line_no) if line_no else None))
    if not problems and text.strip():
        problems.append(SpecProblem("", text.strip().splitlines()[-1]))
    return problems


# ---------------------------------------------------------------------------- what differs
def schema_differences(ours: EngineSchema, theirs: EngineSchema, engine: str = "the engine") -> list[str]:
    """What `theirs` (the engine's) accepts differently from `ours` (this studio's), one sentence each:
    kinds only on one side, and per kind the fields added, removed, or with another type or default."""
    if ours.hash == theirs.hash:
        return []
    sentences = []
    only_theirs = [k for k in theirs.kinds if k not in ours.kinds]
    only_ours = [k for k in ours.kinds if k not in theirs.kinds]
    if only_theirs:
        sentences.append(f"Kinds only {engine} runs: {', '.join(only_theirs)}.")
    if only_ours:
        sentences.append(f"Kinds {engine} does not run: {', '.join(only_ours)}.")
    for kind in (k for k in theirs.kinds if k in ours.kinds):
        mine, its = _flat_fields(ours.kind_schema(kind)), _flat_fields(theirs.kind_schema(kind))
        changes = []
        added = [f for f in its if f not in mine]
        removed = [f for f in mine if f not in its]
        if added:
            changes.append("added " + ", ".join(f"{f} ({_describe(its[f])})" for f in added))
        if removed:
            changes.append("removed " + ", ".join(removed))
        for field in (f for f in its if f in mine):
            (old_type, old_default), (new_type, new_default) = mine[field], its[field]
            if old_type != new_type:
                changes.append(f"{field} is {new_type} (here {old_type})")
            elif old_default != new_default:
                changes.append(f"{field} defaults to {_show(new_default)} (here {_show(old_default)})")
        if changes:
            sentences.append(f"{kind}: " + "; ".join(changes) + ".")
    if not sentences:
        sentences.append(f"The specs of {engine} differ from this studio's only in titles, descriptions or bounds.")
    return sentences


_NO_DEFAULT = "(required)"


def _flat_fields(schema: dict) -> dict[str, tuple[str, Any]]:
    """Every field of a kind's schema by dotted path: (type, default)."""
    fields: dict[str, tuple[str, Any]] = {}

    def walk(node: dict, prefix: str) -> None:
        for name, prop in node.get("properties", {}).items():
            path = f"{prefix}{name}"
            inner, nullable = _nullable_inner(prop, schema)
            if inner.get("type") == "object" and "properties" in inner:
                walk(inner, f"{path}.")
                continue
            kind = inner.get("type") or ("choice" if "enum" in inner else "value")
            if "enum" in inner:
                kind = "one of " + "/".join(str(v) for v in inner["enum"])
            if nullable:
                kind += " or empty"
            default = prop.get("default", inner.get("default", _NO_DEFAULT))
            fields[path] = (kind, default)

    walk(schema, "")
    return fields


def _describe(field: tuple[str, Any]) -> str:
    kind, default = field
    return f"{kind}, required" if default == _NO_DEFAULT else f"{kind}, default {_show(default)}"


def _show(value: Any) -> str:
    return value if value == _NO_DEFAULT else json.dumps(value, ensure_ascii=False)


@cache
def own_schema() -> EngineSchema:
    """The schema of this studio's own copy of the specs (used until an engine has answered)."""
    from engine.specs import json_schema_text

    return EngineSchema(json_schema_text())


def kind_title(kind: str) -> str:
    """A kind as a person writes it ("Fine-tune", "PPO"): the registry's title; a kind this studio does
    not know (a newer engine's) by its name."""
    from engine.kinds import KINDS

    return KINDS[kind].title if kind in KINDS else kind


# ------------------------------------------------------------------ fields as the forms show them
# A spec field as an engine's message names it: `data.chat_template`, `train.batch_size`.
_FIELD_IN_TEXT = re.compile(r"(?<![\w./-])([a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)+)(?![\w/-]|\.\w)")


def field_titles(schema: dict, path: str) -> list[str] | None:
    """The titles along a dotted field path of a kind's schema (["Data", "Chat template"]), or None
    when the path is no field of it."""
    node, titles = schema, []
    for part in path.split("."):
        props = node.get("properties") or {}
        if part not in props:
            return None
        prop = props[part]
        inner, _ = _nullable_inner(prop, schema)
        titles.append(prop.get("title") or inner.get("title") or part.replace("_", " ").capitalize())
        node = inner
    return titles


def in_controls(text: str, schema: dict, steps: dict[str, list[str]] | None = None) -> str:
    """An engine's message with each spec field it names (`data.chat_template`) named as the form
    shows it: “Chat template” on the Data step (`steps`: step name -> the top-level fields it shows),
    or “Data ▸ Chat template” where no step shows it."""
    def named(match: re.Match) -> str:
        path = match.group(1)
        titles = field_titles(schema, path)
        if titles is None:
            return path
        top = path.split(".", 1)[0]
        step = next((name for name, fields in (steps or {}).items() if top in fields), None)
        if step is not None:
            return f"“{titles[-1]}” on the {step} step"
        return "“" + " ▸ ".join(titles) + "”"

    return _FIELD_IN_TEXT.sub(named, text)


def error_text(error: dict, kind: str | None, steps: dict[str, list[str]] | None = None,
               schema: EngineSchema | None = None) -> str:
    """A run's or a preview's error ({message, hint}) as the studio says it: what failed, then what to
    do, each spec field they name as the forms show it (`in_controls`; `schema`: the engine's,
    this studio's own by default)."""
    text = "\n".join(str(error[key]) for key in ("message", "hint") if error.get(key))
    schema = schema or own_schema()
    return in_controls(text, schema.kind_schema(kind), steps) if kind in schema.kinds else text
