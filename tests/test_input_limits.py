"""Hostile input at the core's door: strict JSON, bounded cases, bounded caches, clear errors.

Each test here failed before the limits existed (see docs/security.md, "Bounded resources" and
"Malformed input")."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from medpolicy import CaseError, Policy, parse_case, strictjson
from medpolicy.case import parser_for
from medpolicy.limits import LIMITS

BASE = {"date_of_service": "2024-03-01", "procedure_codes": ["77425"], "diagnosis_codes": ["C20"]}


def problems(iort: Policy, case: Any) -> list[dict[str, Any]]:
    with pytest.raises(CaseError) as e:
        parse_case(case, iort)
    found = [fe.to_dict() for fe in e.value.errors]
    json.dumps(found, allow_nan=False)  # every error can be written as strict JSON
    return found


# -- strict JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": -Infinity}', "-Infinity"),
        (b'{"a": 1e999}', "out of range"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b'{"\\udfff": 1}', "lone surrogate"),
        (b'{"a": 1' + b"0" * 400 + b"}", "out of range"),
        (b'{"id": 18446744073709551616}', "out of range"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b'{"case": {"x": 1, "x": 1}}', "duplicate key 'x'"),
        (b"[" * 10_000 + b"]" * 10_000, "nested deeper"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nested deeper"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'{"a": "\xed\xa0\x80"}', "not valid UTF-8"),  # a surrogate encoded as UTF-8 bytes
        (b"", "expecting value"),
    ],
)
def test_strict_json_refuses_what_json_cannot_carry(text: bytes, why: str) -> None:
    with pytest.raises(strictjson.JsonInputError) as e:
        strictjson.loads(text)
    assert why.lower() in e.value.message.lower()


def test_strict_json_reads_ordinary_json() -> None:
    doc = {"a": [1, 2.5, -(2**63), 2**64 - 1, "😀", "\u00e9", None, True], "b": {"c": [[[{}]]]}}
    assert strictjson.loads(json.dumps(doc).encode()) == doc
    assert strictjson.loads(json.dumps(doc, ensure_ascii=False)) == doc


def test_dumps_safe_never_writes_bare_nan() -> None:
    text = strictjson.dumps_safe({"v": float("nan"), "w": [float("inf")], "s": "\ud800"})
    assert "NaN" not in text.replace("'nan'", "")
    assert json.loads(text) == {"v": "nan", "w": ["inf"], "s": "?"}


# -- case limits --------------------------------------------------------------------------------


def test_a_string_where_a_list_of_codes_belongs_is_refused(iort: Policy) -> None:
    [e] = problems(iort, {**BASE, "diagnosis_codes": "C20"})
    assert (e["code"], e["field"]) == ("invalid_type", "diagnosis_codes")


def test_too_many_codes_are_refused_naming_the_limit(iort: Policy) -> None:
    codes = ["C20"] * (LIMITS.max_list_items + 1)
    [e] = problems(iort, {**BASE, "diagnosis_codes": codes})
    assert e["code"] == "limit_exceeded"
    assert e["field"] == "diagnosis_codes"
    assert f"the limit is {LIMITS.max_list_items}" in e["message"]


def test_too_many_fields_are_refused_naming_the_limit(iort: Policy) -> None:
    case = {**BASE, **{f"x{i}": 1 for i in range(LIMITS.max_case_fields)}}
    [e] = problems(iort, case)
    assert e["code"] == "limit_exceeded"
    assert f"the limit is {LIMITS.max_case_fields}" in e["message"]


@pytest.mark.parametrize("fact", ["tumor_site", "date_of_service", "id", "label"])
def test_an_overlong_string_is_refused_and_not_echoed_whole(iort: Policy, fact: str) -> None:
    long = "x" * 100_000
    [e] = problems(iort, {**BASE, fact: long})
    assert e["code"] in ("limit_exceeded", "invalid_date")
    assert len(json.dumps(e)) < 1_000


def test_an_overlong_code_is_refused_naming_the_limit(iort: Policy) -> None:
    [e] = problems(iort, {**BASE, "diagnosis_codes": ["C" * 1000]})
    assert (e["code"], e["field"]) == ("limit_exceeded", "diagnosis_codes[0]")
    assert f"the limit is {LIMITS.max_string_chars}" in e["message"]


@pytest.mark.parametrize("value", [10**400, -(10**400), float("inf"), float("nan")])
def test_numbers_no_float_can_hold_are_refused(iort: Policy, value: Any) -> None:
    [e] = problems(iort, {**BASE, "margin_distance_mm": value})
    assert (e["code"], e["field"]) == ("invalid_type", "margin_distance_mm")


@pytest.mark.parametrize("value", [2**64, -(2**64), float("nan"), 1.5, [1], {"a": 1}])
@pytest.mark.parametrize("key", ["id", "label"])
def test_metadata_must_be_a_string_or_a_64_bit_whole_number(iort: Policy, key: str, value: Any) -> None:
    [e] = problems(iort, {**BASE, key: value})
    assert (e["code"], e["field"]) == ("invalid_type", key)


def test_metadata_in_range_is_kept(iort: Policy) -> None:
    case = parse_case({**BASE, "id": 2**64 - 1, "label": "a case"}, iort)
    assert case.metadata == {"id": 2**64 - 1, "label": "a case"}


def test_a_date_of_service_beyond_the_horizon_is_refused(iort: Policy) -> None:
    [e] = problems(iort, {**BASE, "date_of_service": "9999-12-31"})
    assert (e["code"], e["field"]) == ("date_beyond_horizon", "date_of_service")
    assert f"{LIMITS.date_horizon_days} days ahead" in e["message"]
    soon = dt.date.today() + dt.timedelta(days=LIMITS.date_horizon_days)
    assert parse_case({**BASE, "date_of_service": soon.isoformat()}, iort).values["date_of_service"] == soon


def test_the_date_horizon_is_configurable(iort: Policy) -> None:
    from medpolicy.limits import configure

    before = LIMITS.date_horizon_days
    try:
        configure(date_horizon_days=10)
        tomorrow_plus = (dt.date.today() + dt.timedelta(days=11)).isoformat()
        [e] = problems(iort, {**BASE, "date_of_service": tomorrow_plus})
        assert e["code"] == "date_beyond_horizon"
    finally:
        configure(date_horizon_days=before)


# -- bounded caches -----------------------------------------------------------------------------


def _memo_sizes(iort: Policy) -> list[int]:
    sizes = []
    for handler in parser_for(iort).handlers.values():
        for cell in handler.__closure__ or ():
            content = cell.cell_contents
            if isinstance(content, dict):
                sizes.append(sum(len(repr(k)) for k in content))
    return sizes


def test_the_parser_caches_hold_only_small_values_and_a_bounded_number(iort: Policy) -> None:
    for i in range(3 * LIMITS.cache_entries):
        parse_case({**BASE, "procedure_codes": [f"{77000 + i % 1000}"] * 40, "label": str(i)}, iort)
        parse_case({**BASE, "procedure_codes": [f"{70000 + i:05d}"[:5]]}, iort)
        parse_case({**BASE, "date_of_service": "2024-03-01" + " " * (i % 150)}, iort)
    for size in _memo_sizes(iort):
        assert size <= LIMITS.cache_entries * (LIMITS.cache_value_chars * 4 + 16)
