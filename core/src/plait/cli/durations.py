"""Durations on the command line: ``--interval 30m``, ``6h``, ``1d``, ``2w``, ``1mo``, ``1h30m``."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import click

__all__ = ["parse_duration", "parse_interval"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(mo|w|d|h|m|s)")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_HELP = (
    "use a number and a unit: s (seconds), m (minutes), h (hours), d (days), w (weeks), mo (months); "
    "e.g. 30m, 6h, 1d, 1mo, 1h30m"
)


def parse_duration(text: str, param_hint: str = "--interval") -> timedelta:
    """``"1d"``, ``"6h"``, ``"1h30m"``, ``"90s"``, ``"2w"`` -> a ``timedelta`` (must be positive).

    Units are lowercase: ``M`` is refused rather than guessed (minutes or months?).
    """
    value = parse_interval(text, param_hint, months=False)
    assert isinstance(value, timedelta)
    return value


def parse_interval(text: str, param_hint: str = "--interval", months: bool = True) -> Any:
    """Like ``parse_duration``, and ``"1mo"``/``"3mo"`` -> ``plait.engine.scheduling.Months``."""
    cleaned = text.strip()
    if re.search(r"\d\s*M(?![a-z])", cleaned):
        raise click.BadParameter(
            f"{text!r}: 'M' is ambiguous; write 'm' for minutes or 'mo' for months (e.g. 30m, 1mo)",
            param_hint=param_hint,
        )
    if re.search(r"[A-Z]", cleaned):
        raise click.BadParameter(f"{text!r}: units are lowercase; {_HELP}", param_hint=param_hint)
    parts = _DURATION_PART.findall(cleaned)
    if not parts or _DURATION_PART.sub("", cleaned).strip():
        raise click.BadParameter(f"{text!r} is not a duration; {_HELP}", param_hint=param_hint)
    month_parts = [n for n, unit in parts if unit == "mo"]
    if month_parts:
        if not months:
            raise click.BadParameter(f"{text!r}: months are not allowed here; {_HELP}", param_hint=param_hint)
        if len(parts) > 1 or "." in month_parts[0]:
            raise click.BadParameter(
                f"{text!r}: a month interval is a whole number of months alone (e.g. 1mo, 3mo)", param_hint=param_hint
            )
        from plait.engine.scheduling import Months

        count = int(month_parts[0])
        if count < 1:
            raise click.BadParameter(f"{text!r} must be longer than zero", param_hint=param_hint)
        return Months(count)
    total = timedelta()
    for number, unit in parts:
        total += timedelta(**{_UNITS[unit]: float(number)})
    if total <= timedelta(0):
        raise click.BadParameter(f"{text!r} must be longer than zero", param_hint=param_hint)
    return total
