"""Clinical values read from resources: AJCC T and M categories, margin status and distance (the worst
margin of several), treatment intent, primary malignancy."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from medpolicy.interop.fhir_case.resources import _codings
from medpolicy.interop.fhir_case.vocabulary import _INTENT_CODES, MCODE_PROCEDURE_INTENT, SNOMED_SYSTEM

# T category, alone or inside a TNM string ("pT3N1M0"); a lowercase letter or digit may not follow
_T_CATEGORY = re.compile(r"(?<![A-Za-z])(yc|yp|c|p|r|a)?T(X|x|0|is|IS|Is|[1-4][a-d]?)(?![a-z0-9])")
_M_CATEGORY = re.compile(r"(?<![A-Za-z])(yc|yp|c|p|r|a)?M(0|1[a-d]?|X|x)(?![a-z0-9])")
_R_CLASS = re.compile(r"(?<![A-Za-z0-9])R([012])(?![0-9])")

# margin value vocabulary (lower-cased text, display or code) -> medpolicy margin_status value
_MARGIN_WORDS: tuple[tuple[str, str], ...] = (
    ("gross residual", "gross_residual"),
    ("gross_residual", "gross_residual"),
    ("macroscopic", "gross_residual"),
    ("no tumor at", "negative"),
    ("uninvolved", "negative"),
    ("not involved", "negative"),
    ("negative", "negative"),
    ("free", "negative"),
    ("clear", "negative"),
    ("close", "close"),
    ("involved", "positive"),
    ("positive", "positive"),
)


def _value_texts(obs: Mapping[str, Any]) -> list[str]:
    """Every human/machine text of an Observation's value: string, CodeableConcept text/display/code."""
    texts: list[str] = []
    if isinstance(obs.get("valueString"), str):
        texts.append(obs["valueString"])
    concept = obs.get("valueCodeableConcept")
    if isinstance(concept, Mapping):
        if isinstance(concept.get("text"), str):
            texts.append(concept["text"])
        for coding in _codings(concept):
            for key in ("display", "code"):
                if isinstance(coding.get(key), str):
                    texts.append(coding[key])
    return texts


def _has_value(obs: Mapping[str, Any]) -> bool:
    return any(k.startswith("value") for k in obs)


def _parse_t(texts: Sequence[str], default_prefix: str) -> str | None:
    for text in texts:
        m = _T_CATEGORY.search(text.strip())
        if m:
            prefix = m.group(1) or default_prefix
            cat = m.group(2)
            cat = "is" if cat.lower() == "is" else cat.upper() if cat.lower() == "x" else cat
            return f"{prefix}T{cat}"
    return None


def _parse_m(texts: Sequence[str]) -> bool | None:
    for text in texts:
        m = _M_CATEGORY.search(text.strip())
        if m:
            cat = m.group(2).upper()
            if cat == "X":
                return None
            return cat.startswith("1")
    return None


def _parse_margin(texts: Sequence[str]) -> str | None:
    for text in texts:
        r_class = _R_CLASS.search(text)
        if r_class:
            return f"R{r_class.group(1)}"
        low = text.strip().lower()
        for word, value in _MARGIN_WORDS:
            if word in low:
                return value
    return None


def _distance_mm(obs: Mapping[str, Any]) -> float | None:
    """Distance in mm from a valueQuantity, or ``None`` if the unit is not mm or cm."""
    q = obs.get("valueQuantity")
    if not isinstance(q, Mapping) or not isinstance(q.get("value"), int | float):
        raise ValueError("no numeric valueQuantity")
    unit = str(q.get("code") or q.get("unit") or "mm").strip().lower()
    value = float(q["value"])
    if unit in {"mm", "millimeter", "millimeters", "millimetre", "millimetres"}:
        return value
    if unit in {"cm", "centimeter", "centimeters", "centimetre", "centimetres"}:
        return value * 10.0
    return None


def _intent(resource: Mapping[str, Any]) -> str | None:
    for ext in resource.get("extension") or []:
        if isinstance(ext, Mapping) and ext.get("url") == MCODE_PROCEDURE_INTENT:
            for coding in _codings(ext.get("valueCodeableConcept")):
                code = coding.get("code")
                if coding.get("system") == SNOMED_SYSTEM and code in _INTENT_CODES:
                    return _INTENT_CODES[str(code)]
    return None


def _is_primary_malignancy(code: str) -> bool:
    """ICD-10-CM C00-C76 / C80-C96 (primary malignant neoplasms), not C77-C79 (secondary)."""
    m = re.match(r"^C(\d{2})", code)
    if not m:
        return code.startswith("C7A") or code.startswith("C4A")
    n = int(m.group(1))
    return not 77 <= n <= 79


_MARGIN_RANK = {"negative": 0, "R0": 0, "close": 1, "positive": 2, "R1": 2, "gross_residual": 3, "R2": 3}


def _worst_margin(values: Sequence[str]) -> str:
    """The most involved of several margin statuses (a resection is judged by its worst margin)."""
    return max(values, key=lambda v: _MARGIN_RANK.get(v, 0))
