"""Staging as it arrives from EHRs and pathology systems (medpolicy.staging), and what the case makes of it."""

from __future__ import annotations

import pytest

from medpolicy import CaseError, Policy, parse_case
from medpolicy.staging import AJCC8_T, Staging, parse_staging, t_family

BASE = {"date_of_service": "2024-03-01", "procedure_codes": ["77425"]}


@pytest.mark.parametrize(
    ("raw", "prefix", "category", "n", "m"),
    [
        ("pT4b", "p", "T4b", None, None),
        ("cT4N1M0", "c", "T4", "N1", "M0"),
        ("T4b N2", "", "T4b", "N2", None),
        ("ypT3 N1a M0", "yp", "T3", "N1a", "M0"),
        ("rcT4", "rc", "T4", None, None),
        ("rpT3", "rp", "T3", None, None),
        ("rypT2", "ryp", "T2", None, None),
        ("yrpT2", "ryp", "T2", None, None),  # the same, in canonical order
        ("aT4a", "a", "T4a", None, None),
        ("pT4aN2bM1a", "p", "T4a", "N2b", "M1a"),
        ("cT4 cN1 cM0", "c", "T4", "N1", "M0"),
        ("cT4cN1cM0", "c", "T4", "N1c", "M0"),  # the c after T4 is N1's prefix; N1c is a category
        ("pTisN0", "p", "Tis", "N0", None),
        ("TXNXMX", "", "TX", "NX", "MX"),
        ("yp t3", "yp", "T3", None, None),
    ],
)
def test_t_n_and_m_are_read_from_how_systems_write_them(
    raw: str, prefix: str, category: str, n: str | None, m: str | None
) -> None:
    st = parse_staging(raw)
    assert st == Staging(prefix, category, False, n, m)


@pytest.mark.parametrize("raw", ["N1", "pT5", "pT4e", "cT4N4", "cT4M2", "xpT4", "p T4 b", "cT4N1M0 G2", ""])
def test_what_is_not_a_staging(raw: str) -> None:
    assert parse_staging(raw) is None


def _st(raw: str) -> Staging:
    st = parse_staging(raw)
    assert st is not None
    return st


def test_recurrence_and_metastases_from_a_staging() -> None:
    assert _st("rpT3").recurrence
    assert not _st("ypT3").recurrence
    assert _st("cT4N1M1b").metastatic is True
    assert _st("cT4N1M0").metastatic is False
    assert _st("cT4N1MX").metastatic is None
    assert _st("cT4").metastatic is None


def test_a_category_names_its_family() -> None:
    assert t_family("T4") == {"T4", "T4a", "T4b", "T4c", "T4d"}
    assert t_family("T4a") == {"T4a"}
    assert t_family("Tis") == {"Tis"}
    assert t_family("T0") == {"T0"}
    assert set(AJCC8_T["colorectal"]) == {"TX", "T0", "Tis", "T1", "T2", "T3", "T4", "T4a", "T4b"}


def test_the_policy_t4_criterion_matches_the_whole_family(iort: Policy) -> None:
    atom = next(c for c in iort.version("2009-10-06").criteria() if c.id == "t4-lesion")
    assert atom.operand == t_family("T4")  # type: ignore[attr-defined]


def test_t4c_on_a_rectal_cancer_names_the_chapter_and_its_categories(iort: Policy) -> None:
    with pytest.raises(CaseError) as info:
        parse_case({**BASE, "diagnosis_codes": ["C20"], "t_stage": ["cT4a", "pT4c"]}, iort)
    (fe,) = info.value.errors
    assert (fe.code, fe.field, fe.value) == ("t_category_not_in_site_chapter", "t_stage[1]", "pT4c")
    assert "colon and rectum chapter" in fe.message
    assert "tumor_site is 'rectum' (derived from diagnosis_codes)" in fe.message
    assert "TX, T0, Tis, T1, T2, T3, T4, T4a, T4b" in fe.message


def test_a_tnm_string_is_kept_whole_for_people_and_gives_its_t_category(iort: Policy) -> None:
    c = parse_case({**BASE, "diagnosis_codes": ["C20"], "t_stage": "T4b N2 M0"}, iort)
    assert c.display["t_stage"] == ["T4bN2M0"]
    assert c.values["t_stage"] == frozenset({"T4b"})
    assert c.values["metastatic"] is False
    assert c.sources["metastatic"] == "derived from t_stage"


def test_codes_and_staging_that_agree_on_metastases_say_both(iort: Policy) -> None:
    c = parse_case({**BASE, "diagnosis_codes": ["C20", "C78.7"], "t_stage": "cT4N1M1"}, iort)
    assert c.values["metastatic"] is True
    assert c.sources["metastatic"] == "derived from diagnosis_codes and t_stage"


@pytest.mark.parametrize("fact", ["procedure_codes", "diagnosis_codes", "t_stage"])
def test_an_empty_list_is_unknown_with_a_note(iort: Policy, fact: str) -> None:
    c = parse_case({**BASE, "diagnosis_codes": ["C20"], fact: []}, iort)
    assert fact not in c.values
    assert any(n.code == "empty_list" and fact in n.message for n in c.notes)


def test_a_staging_conflict_names_the_fact_and_the_other_value(iort: Policy) -> None:
    c = parse_case({**BASE, "diagnosis_codes": ["C20"], "t_stage": "rT2", "recurrent": False}, iort)
    (n,) = [n for n in c.notes if n.code == "conflicting_facts"]
    assert (n.fact, n.alternative) == ("recurrent", True)
    assert "recurrence staging rT2" in n.message
    assert c.values["recurrent"] is False  # the given value is used


def test_r2_with_zero_mm_is_no_conflict(iort: Policy) -> None:
    c = parse_case({**BASE, "margin_status": "R2", "margin_distance_mm": 0}, iort)
    assert not [n for n in c.notes if n.code == "conflicting_facts"]
