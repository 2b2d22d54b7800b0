"""Measured values: lengths in mm or cm, ages in whole years (pure functions, no I/O).

A number fact with a length ``unit`` (``mm`` or ``cm``) accepts a plain number (in the fact's unit), a
string with a unit (``"1.8 cm"``, ``"18 mm"``) or ``{"value": 1.8, "unit": "cm"}`` (FHIR Quantity
style, ``code`` accepted for ``unit``); every form is normalised to the fact's unit. An age fact
(``unit: years``) is usually derived from a date of birth and the date of service (``derive: {from:
date_of_birth, age_at: date_of_service}``): whole years, birthdays counted on the day.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any

__all__ = ["LENGTH_MM", "UNITS", "age_in_years", "known_unit", "parse_length"]

#: Millimetres per unit, for length facts.
LENGTH_MM = {"mm": 1.0, "cm": 10.0}
UNITS = ("mm", "cm", "years")

_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*([A-Za-z]+)?\s*$")


def known_unit(unit: str) -> bool:
    return unit in UNITS


def parse_length(value: Any, unit: str) -> tuple[float | None, str]:
    """``(number in unit, "")`` or ``(None, why)`` for a length given with its own unit."""
    if isinstance(value, dict):
        if set(value) - {"value", "unit", "code", "system"}:
            return None, "a length is {value, unit}"
        number, given = value.get("value"), value.get("unit", value.get("code"))
        if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
            return None, "value must be a finite number"
    elif isinstance(value, str):
        m = _QUANTITY.match(value)
        if not m:
            return None, f"expected a number with a unit ({' or '.join(LENGTH_MM)}), for example '1.8 cm'"
        number, given = float(m.group(1)), m.group(2)
    else:
        return None, "expected a finite number"
    given = (given or unit).strip().lower() if isinstance(given, str) or given is None else None
    if given not in LENGTH_MM:
        return None, f"unknown length unit {given!r} (use {' or '.join(LENGTH_MM)})"
    return round(float(number) * LENGTH_MM[given] / LENGTH_MM[unit], 6), ""


def age_in_years(born: dt.date, on: dt.date) -> int | None:
    """Whole years from ``born`` to ``on`` (None when ``on`` is before ``born``)."""
    if on < born:
        return None
    years = on.year - born.year
    if (on.month, on.day) < (born.month, born.day):
        years -= 1
    return years
