"""Durations on the command line: ``--interval 1d``, ``6h``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta

import click

__all__ = ["parse_duration"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(w|d|h|m|s)", re.IGNORECASE)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


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
