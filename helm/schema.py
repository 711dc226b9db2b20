"""Generate ``values.schema.json`` from the ``## @param`` lines of ``values.yaml``.

``python -m helm.schema`` first writes the catalog's values into values.yaml (``helm.catalog_values``).

Why generated: the bitnami convention documents every value once, in values.yaml, and the
schema repeats type, description and default. Writing both by hand lets them drift; here
the documentation lines are the source and the schema is derived, so a value cannot be
undocumented (that is an error) and a documented key cannot be missing from values.yaml.

Grammar of a documentation line (one per leaf value, or per free-form object/array)::

    ## @section <title>
    ## @param <dotted.key> [modifier] [modifier] <description>

Modifiers: ``[object]`` / ``[array]`` (free-form, no nested documentation),
``[string]`` / ``[integer]`` / ``[number]`` / ``[boolean]`` (force the type),
``[nullable]``, ``[enum:a|b|c]``, ``[min:N]`` / ``[max:N]`` (bounds; for arrays the item
count). Without a type modifier the type comes from the default. Nested mappings without
their own line become objects that reject unknown keys, so a typo in a values file fails.

Run ``python -m helm.schema`` to rewrite the schema; ``python -m helm.lint`` fails when it
is stale.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from helm._errors import SchemaError

__all__ = ["CHART_DIR", "Param", "build_schema", "parse_params", "render_schema", "write_schema"]

#: The chart this module documents.
CHART_DIR = Path(__file__).resolve().parent / "visionserve"

_PARAM = re.compile(r"^\s*## @param\s+(?P<key>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")
_SECTION = re.compile(r"^\s*## @section\s+(?P<title>.+?)\s*$")
_MODIFIER = re.compile(r"^\[(?P<body>[^\]]+)\]\s*")
_TYPES = {"object", "array", "string", "integer", "number", "boolean"}


@dataclass(frozen=True)
class Param:
    """One documented value.

    Args:
        key: dotted path in values.yaml.
        description: the text after the modifiers.
        section: the ``@section`` the line sits under.
        modifiers: raw modifier bodies, e.g. ``("min:1", "nullable")``.
        line: 1-based line number in values.yaml (for messages).
    """

    key: str
    description: str
    section: str
    modifiers: tuple[str, ...] = field(default=())
    line: int = 0

    @property
    def forced_type(self) -> str | None:
        types = [m for m in self.modifiers if m in _TYPES]
        return types[0] if types else None


def parse_params(text: str, source: str = "values.yaml") -> dict[str, Param]:
    """Every ``## @param`` line of ``text`` by key; a SchemaError names a malformed line."""
    params: dict[str, Param] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if m := _SECTION.match(line):
            section = m["title"]
            continue
        m = _PARAM.match(line)
        if not m:
            continue
        key, rest = m["key"], m["rest"]
        modifiers: list[str] = []
        while mod := _MODIFIER.match(rest):
            modifiers.append(mod["body"].strip())
            rest = rest[mod.end() :]
        description = rest.strip()
        where = f"{source}:{number}"
        if not section:
            raise SchemaError(f"{where}: @param {key} comes before any @section")
        if not description:
            raise SchemaError(f"{where}: @param {key} has no description")
        if key in params:
            raise SchemaError(f"{where}: @param {key} is documented twice (also line {params[key].line})")
        for mod_body in modifiers:
            name = mod_body.split(":", 1)[0]
            if mod_body not in _TYPES and mod_body != "nullable" and name not in {"enum", "min", "max"}:
                raise SchemaError(f"{where}: unknown modifier [{mod_body}] on {key}")
        params[key] = Param(key, description, section, tuple(modifiers), number)
    return params


#: Python type of a YAML value -> its JSON-schema type; bool before int (a bool is an int).
_JSON_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "boolean"),
    (int, "integer"),
    (float, "number"),
    (str, "string"),
    (list, "array"),
    (dict, "object"),
)


def _inferred_type(value: Any) -> str:
    for python_type, json_type in _JSON_TYPES:
        if isinstance(value, python_type):
            return json_type
    raise SchemaError(f"cannot infer a type for {value!r}")


def _number(text: str, param: Param) -> int | float:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            raise SchemaError(f"values.yaml:{param.line}: bound {text!r} of {param.key} is not a number") from None


def _leaf(param: Param, default: Any) -> dict[str, Any]:
    type_ = param.forced_type or _inferred_type(default)
    if default is not None and type_ != "number" and _inferred_type(default) != type_:
        raise SchemaError(f"values.yaml:{param.line}: {param.key} is declared [{type_}] but defaults to {default!r}")
    schema: dict[str, Any] = {
        "type": [type_, "null"] if "nullable" in param.modifiers else type_,
        "description": param.description,
        "default": default,
    }
    if type_ == "array" and default and all(isinstance(v, str) for v in default):
        schema["items"] = {"type": "string"}
    for mod in param.modifiers:
        name, _, arg = mod.partition(":")
        if name == "enum":
            choices = arg.split("|")
            if default not in choices:
                raise SchemaError(f"values.yaml:{param.line}: default {default!r} of {param.key} not in {choices}")
            schema["enum"] = choices + ([None] if "nullable" in param.modifiers else [])
        elif name in {"min", "max"}:
            bound = _number(arg, param)
            if type_ == "array":
                schema["minItems" if name == "min" else "maxItems"] = bound
            else:
                schema["minimum" if name == "min" else "maximum"] = bound
    return schema


def _node(value: Any, path: str, params: dict[str, Param], used: set[str]) -> dict[str, Any]:
    if path in params:
        used.add(path)
        return _leaf(params[path], value)
    if isinstance(value, dict) and value:
        properties = {
            str(key): _node(child, f"{path}.{key}" if path else str(key), params, used) for key, child in value.items()
        }
        return {"type": "object", "additionalProperties": False, "properties": properties}
    raise SchemaError(f"values.yaml: {path or '<root>'} has no `## @param {path}` line")


def build_schema(values_text: str) -> dict[str, Any]:
    """The JSON schema of a values.yaml text (draft-07, what Helm validates with)."""
    params = parse_params(values_text)
    values = yaml.safe_load(values_text) or {}
    if not isinstance(values, dict):
        raise SchemaError("values.yaml: expected a mapping at the top level")
    used: set[str] = set()
    root = _node(values, "", params, used)
    unknown = sorted(set(params) - used)
    if unknown:
        lines = ", ".join(f"{k} (line {params[k].line})" for k in unknown)
        raise SchemaError(f"values.yaml: documented but not a value: {lines}")
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "visionserve chart values",
        "description": "Generated from the ## @param lines of values.yaml by `python -m helm.schema`.",
        **root,
    }


def render_schema(chart_dir: Path = CHART_DIR) -> str:
    """The schema file's expected text for the chart's current values.yaml."""
    schema = build_schema((chart_dir / "values.yaml").read_text())
    return json.dumps(schema, indent=2) + "\n"


def write_schema(chart_dir: Path = CHART_DIR) -> Path:
    """Rewrite ``values.schema.json``; returns its path."""
    target = chart_dir / "values.schema.json"
    target.write_text(render_schema(chart_dir))
    return target


def main(argv: list[str] | None = None) -> int:
    """Write the catalog's values into values.yaml, then regenerate values.schema.json.

    ``--check`` only reports whether either is stale.
    """
    from helm.catalog_values import sync_values, write_values
    from visionserve.catalog import load_catalog

    argv = list(sys.argv[1:] if argv is None else argv)
    values_path = CHART_DIR / "values.yaml"
    try:
        if "--check" in argv:
            values_stale = sync_values(values_path.read_text(), load_catalog()) != values_path.read_text()
            stale = values_stale or (CHART_DIR / "values.schema.json").read_text() != render_schema()
            print("values.yaml or values.schema.json is stale: run python -m helm.schema" if stale else "up to date")
            return 1 if stale else 0
        if write_values(values_path, load_catalog()):
            print(f"wrote the catalog's values into {values_path}")
        print(f"wrote {write_schema()}")
        return 0
    except SchemaError as exc:
        print(f"helm.schema: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
