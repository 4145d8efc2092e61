"""The run form: fields built from a flow's registered parameters, and the values read back.

A parameter's field type comes from its default's type (a flow's code declares no other):

============  ============================  =====================================
default       field                         value sent
============  ============================  =====================================
bool          a yes/no choice               ``true`` / ``false``
int           a number, whole               ``int``
float         a number                      ``float``
str           a text line                   the text as typed
list, dict    a JSON text                   the parsed JSON
none, absent  a text                        the text parsed as JSON, or as it is if it is not JSON
============  ============================  =====================================

Required parameters (no default) are marked and must be filled. An optional field left empty
is not sent, so the run uses the flow's default. Secret parameters get no field: the server
never stores secret values (the run gets them where it executes).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["FormError", "ParameterField", "parameter_fields", "parse_parameters"]


class FormError(ValueError):
    """A value in the run form cannot be used; the message names the field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(slots=True)
class ParameterField:
    name: str
    kind: str  # bool, int, float, str, json, any
    required: bool
    secret: bool
    default: Any
    has_default: bool

    @property
    def input_name(self) -> str:
        return f"param.{self.name}"

    @property
    def default_text(self) -> str:
        """The default as the field shows it (a placeholder, or the prefilled value)."""
        if not self.has_default:
            return ""
        if self.kind == "str":
            return str(self.default)
        if self.kind == "bool":
            return "true" if self.default else "false"
        if self.default is None:
            return ""
        return json.dumps(self.default)


def parameter_fields(parameters: list[dict[str, Any]]) -> list[ParameterField]:
    """Fields for a flow's parameters (as registered), required ones first, then by name."""
    fields = []
    for p in parameters:
        if not isinstance(p, dict) or not isinstance(p.get("name"), str):
            continue
        has_default = "default" in p and not p.get("required")
        default = p.get("default")
        fields.append(
            ParameterField(
                name=p["name"],
                kind=_kind(default) if has_default else "any",
                required=bool(p.get("required")),
                secret=bool(p.get("secret")),
                default=default,
                has_default=has_default,
            )
        )
    return sorted(fields, key=lambda f: (not f.required, f.name))


def parse_parameters(fields: list[ParameterField], form: dict[str, str]) -> dict[str, Any]:
    """The parameters the form's values give (``FormError`` names every bad field)."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for f in fields:
        if f.secret:
            continue
        raw = form.get(f.input_name, "")
        if f.kind != "str":
            raw = raw.strip()
        if raw == "" and f.kind != "bool":
            if f.required:
                errors[f.name] = "required"
            continue
        try:
            values[f.name] = _parse(f.kind, raw)
        except ValueError as exc:
            errors[f.name] = str(exc)
    if errors:
        raise FormError(errors)
    return values


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if default is None:
        return "any"
    return "json"


def _parse(kind: str, raw: str) -> Any:
    if kind == "bool":
        if raw.lower() in ("true", "on", "yes", "1"):
            return True
        if raw.lower() in ("", "false", "off", "no", "0"):
            return False
        raise ValueError(f"expected yes or no, got {raw!r:.40}")
    if kind == "int":
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"expected a whole number, got {raw!r:.40}") from None
    if kind == "float":
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r:.40}") from None
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {raw!r:.40}")
        return value
    if kind == "str":
        return raw
    if kind == "any":
        try:
            return json.loads(raw, parse_constant=_no_constants)
        except ValueError:
            return raw
    try:
        return json.loads(raw, parse_constant=_no_constants)
    except ValueError as exc:
        raise ValueError(f'expected JSON (a list, an object, a number, "text"...): {exc}') from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")
