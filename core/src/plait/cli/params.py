"""Parsing command-line values shared by the commands: ``--param NAME=VALUE`` and durations."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import click

__all__ = ["parse_duration", "parse_params"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_params(pairs: Iterable[str]) -> dict[str, Any]:
    """``["n=10", "name=ada", 'tags=["a"]']`` -> ``{"n": 10, "name": "ada", "tags": ["a"]}``.

    A value that is valid JSON is decoded (numbers, ``true``, lists, objects, quoted strings);
    anything else stays a string. Raises ``click.BadParameter`` for a pair without ``=``.
    """
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise click.BadParameter(f"{pair!r} is not NAME=VALUE (e.g. --param n=10)", param_hint="--param")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        params[name.strip()] = value
    return params


def parse_duration(text: str) -> timedelta:
    """``"1d"``, ``"6h"``, ``"1h30m"``, ``"90s"``, ``"2w"`` -> a ``timedelta`` (must be positive)."""
    cleaned = text.strip()
    parts = _DURATION_PART.findall(cleaned)
    if not parts or _DURATION_PART.sub("", cleaned).strip():
        raise click.BadParameter(
            f"{text!r} is not a duration; use a number and a unit w/d/h/m/s, e.g. 1d, 6h, 1h30m",
            param_hint="--interval",
        )
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit.lower()]: float(number)})
    if total <= timedelta(0):
        raise click.BadParameter(f"{text!r} must be longer than zero", param_hint="--interval")
    return total
