"""Render the job specs' JSON schema as Markdown: the spec reference in docs/specs.md.

    python -m engine.schema_docs > docs/specs.md

The same schema builds the studio's forms and validates the CLI's specs, so the three agree.
"""

from __future__ import annotations

import json

from engine.specs import json_schema, spec_models


def _type(prop: dict) -> str:
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        return " or ".join(_type(p) for p in prop["anyOf"])
    if "$ref" in prop:
        return "section"
    if prop.get("type") == "array":
        return f"list of {_type(prop.get('items', {}))}"
    return prop.get("type", "")


def _bounds(prop: dict) -> str:
    parts = []
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤"), ("exclusiveMaximum", "<"),
                      ("minLength", "length ≥"), ("maxLength", "length ≤"), ("minItems", "items ≥")):
        if key in prop:
            parts.append(f"{sign} {prop[key]}")
    return ", ".join(parts)


def _section(title: str, schema: dict, path: str, defs: dict, out: list[str]) -> None:
    out += [f"### `{path or title}`", "", schema.get("description", ""), "",
            "| field | type | default | bounds | description |", "|---|---|---|---|---|"]
    nested = []
    for name, prop in schema.get("properties", {}).items():
        ref = (prop.get("$ref") or next((p["$ref"] for p in prop.get("anyOf", []) if "$ref" in p), None)
               or prop.get("items", {}).get("$ref"))  # a list of sections (generate's models)
        default = prop.get("default", "")
        default = "" if ref else f"`{json.dumps(default)}`" if "default" in prop else "required"
        advanced = " *(advanced)*" if prop.get("advanced") else ""
        out.append(f"| `{name}` | {_type(prop)} | {default} | {_bounds(prop)} | "
                   f"{prop.get('description', '')}{advanced} |")
        if ref:
            nested.append((name, defs[ref.split("/")[-1]]))
    out.append("")
    for name, sub in nested:
        _section(name, sub, f"{path}.{name}" if path else name, defs, out)


def render() -> str:
    out = ["# Job spec reference", "",
           "Generated from the engine's pydantic specs by `python -m engine.schema_docs`; "
           "`studio-engine schema KIND` prints the same as JSON schema. Unknown keys are errors.", ""]
    for kind in spec_models():
        schema = json_schema(kind)
        out += [f"## `kind: {kind}`", ""]
        _section(kind, schema, "", schema.get("$defs", {}), out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
