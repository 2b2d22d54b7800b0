"""The ICD-10-CM table is the real code set: it agrees code by code with simple-icd-10-cm."""

from __future__ import annotations

import warnings

import pytest

from medpolicy.codes import icd10cm, normalize_icd10


@pytest.fixture(scope="module")
def cm():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import simple_icd_10_cm

    return simple_icd_10_cm


def test_table_matches_the_package_code_by_code(cm) -> None:  # type: ignore[no-untyped-def]
    table = icd10cm()
    codes = [
        c for c in cm.get_all_codes(True) if cm.is_category_or_subcategory(c) or cm.is_extended_subcategory(c)
    ]
    assert len(codes) > 90_000
    for code in codes:
        assert table.is_billable(code) == cm.is_leaf(code), code
    billable = {c for c, k in table.kinds.items() if k == "billable"}
    assert billable == {c for c in codes if cm.is_leaf(c)}


def test_provenance_header_names_the_source() -> None:
    assert icd10cm().source.startswith("ICD-10-CM code table generated from simple-icd-10-cm ")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("c20", "C20"),
        (" C20 ", "C20"),
        ("C20.", "C20"),
        ("c49a5", "C49.A5"),
        ("C 49. A5", "C49.A5"),
        ("z85048", "Z85.048"),
    ],
)
def test_normalisation(raw: str, code: str) -> None:
    assert normalize_icd10(raw) == code


def test_group_expansion_follows_the_hierarchy_not_string_prefixes() -> None:
    t = icd10cm()
    assert "C20" in t.billable_under("C20")
    assert t.billable_under("C21") >= {"C21.0", "C21.1", "C21.2", "C21.8"}
    assert "C49.A5" in t.billable_under("C49")
    assert "C00.0" in t.billable_under("C00-C14")
    assert "C15.3" not in t.billable_under("C00-C14")
    with pytest.raises(KeyError):
        t.billable_under("C20.9")


def test_the_table_is_in_pre_order_so_subtrees_are_contiguous(cm) -> None:  # type: ignore[no-untyped-def]
    """`descendants` relies on it: every code follows its parent, and a subtree is one run of rows."""
    t = icd10cm()
    stack: list[str] = []
    for code, parent in zip(t.order, t.parents, strict=True):
        while stack and stack[-1] != parent:
            stack.pop()
        assert parent == "" or stack, f"{code} does not follow its parent {parent}"
        stack.append(code)
    for root in ("C18", "C49", "D48.1", "C7A", "S72.0"):
        expected = {
            d
            for d in cm.get_descendants(root)
            if cm.is_category_or_subcategory(d) or cm.is_extended_subcategory(d)
        }
        assert set(t.descendants(root)) == expected, root


def test_a_block_and_a_range_cover_their_categories() -> None:
    t = icd10cm()
    everything = t.billable_under("C00-C96")
    assert {"C61", "C20", "C50.911", "C7A.026"} <= everything
    assert "D01.2" not in everything
    assert t.billable_under("C77-C79") >= {"C78.5", "C78.7", "C79.51"}


def test_the_shipped_compact_table_is_built_from_the_generated_tsv() -> None:
    """`icd10cm()` reads `icd10cm.compact.gz` (fast to load); it must be exactly what `build` makes of
    the TSV that is checked against simple-icd-10-cm above (rebuild: python -m medpolicy.codes.compact)."""
    from importlib import resources

    from medpolicy.codes.compact import COMPACT, SOURCE, build, from_compact, from_tsv

    files = resources.files("medpolicy.codes")
    reference = from_tsv(files.joinpath(SOURCE).read_bytes())
    shipped = files.joinpath(COMPACT).read_bytes()
    assert shipped == build(reference), "stale icd10cm.compact.gz: run python -m medpolicy.codes.compact"
    assert from_compact(shipped) == reference == icd10cm()


def test_billable_codes_are_leaves_and_unknown_codes_have_no_descendants() -> None:
    t = icd10cm()
    for i, code in enumerate(t.order[:-1]):
        if t.kinds[code] == "billable":
            assert t.depths[i + 1] <= t.depths[i], code
    assert t.descendants("C20") == []
    with pytest.raises(KeyError):
        t.descendants("C20.9")
