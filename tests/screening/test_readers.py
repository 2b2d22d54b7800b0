"""The readers' line of business: 837 SBR09, FHIR EOB coverage, CSV/Parquet mapping column."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from medpolicy.routing import LINES_OF_BUSINESS
from medpolicy.screening import screen
from medpolicy.screening.duckdb_runner import DuckDBRunner
from medpolicy.screening.fhir import read_fhir
from medpolicy.screening.generator import generate_claims, write_csv, write_fhir, write_x12
from medpolicy.screening.lob import filing_indicator_table, from_filing_indicator
from medpolicy.screening.records import STAGED_COLUMNS
from medpolicy.screening.x12 import read_x12

LOB = STAGED_COLUMNS.index("line_of_business")
SOPT = "urn:oid:2.16.840.1.113883.3.221.5"


def governed_lob(paths: list[Path], **kw: Any) -> dict[tuple[str, int], str | None]:
    """``(claim_id, line_number) -> line_of_business`` of the governed lines a run read."""
    runner = DuckDBRunner()
    try:
        s = screen(paths, None, runner=runner, keep_table="mp_kept", **kw)
        assert s.balanced
        rows = runner.query("SELECT claim_id, line_number, line_of_business FROM mp_routed")
    finally:
        runner.close()
    return {(str(c), int(n)): lob for c, n, lob in rows}


def test_the_mapping_table_names_only_lines_a_plan_routes() -> None:
    table = filing_indicator_table()
    assert set(table.values()) == set(LINES_OF_BUSINESS)
    assert (table["16"], table["MC"], table["CI"], table["BL"]) == (
        "medicare_advantage",
        "medicaid",
        "commercial",
        "commercial",
    )
    assert from_filing_indicator("MA") is None
    assert from_filing_indicator("MB") is None
    assert from_filing_indicator("") is None
    assert from_filing_indicator(None) is None


@pytest.mark.parametrize("institutional", [False, True])
def test_x12_lines_carry_the_line_of_business_of_sbr09(institutional: bool, tmp_path: Path) -> None:
    gen = generate_claims(300, 5)
    rows: list[tuple[Any, ...]] = []
    read_x12(write_x12(gen, tmp_path / "c.837", institutional=institutional), rows.append, pytest.fail)
    by_claim = {c.claim_id: c for c in gen}
    assert rows
    for r in rows:
        assert r[LOB] == by_claim[r[0]].line_of_business
    assert {r[LOB] for r in rows} == {*LINES_OF_BUSINESS, None}


def test_an_sbr_after_clm_is_another_payers_and_does_not_change_it(tmp_path: Path) -> None:
    gen = [c for c in generate_claims(40, 3) if not c.institutional]
    path = write_x12(gen, tmp_path / "c.837", institutional=False)
    text = path.read_text()
    # Loop 2320 (other subscriber information) follows the claim: its SBR names another payer's code.
    text = text.replace("~\nHI*", "~\nSBR*S*18*******MC~\nHI*")
    text = _recount(text)
    path.write_text(text)
    rows: list[tuple[Any, ...]] = []
    read_x12(path, rows.append, pytest.fail)
    by_claim = {c.claim_id: c for c in gen}
    assert rows
    assert all(r[LOB] == by_claim[r[0]].line_of_business for r in rows)


def _recount(text: str) -> str:
    """Fix each SE01 after segments were added."""
    out, count = [], 0
    for seg in text.split("~"):
        s = seg.strip()
        if s.startswith("ST*"):
            count = 0
        count += 1
        if s.startswith("SE*"):
            parts = s.split("*")
            seg = seg.replace(s, f"SE*{count}*{parts[2]}")
        out.append(seg)
    return "~".join(out)


def test_fhir_reads_the_focal_coverage_contained_or_from_a_coverage_file(tmp_path: Path) -> None:
    gen = generate_claims(60, 9)
    path = write_fhir(gen, tmp_path / "eob.ndjson")
    rows: list[tuple[Any, ...]] = []
    read_fhir(path, rows.append, pytest.fail)
    by_claim = {c.claim_id: c for c in gen}
    assert all(r[LOB] == by_claim[r[0]].line_of_business for r in rows)

    # A Bulk Data export: the Coverage in its own file (read first), the EOB referring to it.
    eob = orjson.loads(path.read_bytes().splitlines()[0])
    coverage = {**eob.pop("contained")[0], "id": "cov-1"}
    coverage["type"] = {"coding": [{"system": SOPT, "code": "21"}]}
    eob["insurance"] = [
        {"focal": False, "coverage": {"reference": "Coverage/other"}},
        {"focal": True, "coverage": {"reference": "https://bulk.example/fhir/Coverage/cov-1"}},
    ]
    other = {**coverage, "id": "other", "type": {"coding": [{"system": SOPT, "code": "111"}]}}
    (tmp_path / "Coverage.ndjson").write_bytes(orjson.dumps(coverage) + b"\n" + orjson.dumps(other) + b"\n")
    (tmp_path / "ExplanationOfBenefit.ndjson").write_bytes(orjson.dumps(eob) + b"\n")
    bare = {k: v for k, v in eob.items() if k != "insurance"}
    (tmp_path / "no-insurance.ndjson").write_bytes(orjson.dumps(bare) + b"\n")
    coverages: dict[str, str | None] = {}
    rows.clear()
    for name in ("Coverage.ndjson", "ExplanationOfBenefit.ndjson"):
        read_fhir(tmp_path / name, rows.append, pytest.fail, coverages)
    assert rows
    assert {r[LOB] for r in rows} == {"medicaid"}
    rows.clear()
    read_fhir(tmp_path / "no-insurance.ndjson", rows.append, pytest.fail, coverages)
    assert rows
    assert {r[LOB] for r in rows} == {None}


def test_every_format_gives_the_same_line_of_business_to_the_engine(tmp_path: Path) -> None:
    gen = generate_claims(200, 4)
    expected = {(c.claim_id, ln.line_number): c.line_of_business for c in gen for ln in c.all_lines()}
    files = {
        "837p": write_x12(gen, tmp_path / "c.837p", institutional=False),
        "837i": write_x12(gen, tmp_path / "c.837i", institutional=True),
        "fhir": write_fhir(gen, tmp_path / "c.ndjson"),
        "csv": write_csv(gen, tmp_path / "c.csv"),
    }
    for fmt, path in files.items():
        got = governed_lob([path])
        assert got, fmt
        assert all(lob == expected[key] for key, lob in got.items()), fmt
        assert None in got.values(), fmt
        assert "medicare_advantage" in got.values(), fmt


def test_a_mapping_column_of_codes_a_constant_or_none(tmp_path: Path) -> None:
    head = "CLAIM,LINE,CPT,DX,DOS"
    (tmp_path / "codes.csv").write_text(
        f"{head},PAYER\nA,1,77425,C20,2024-03-01,16\nB,1,77425,C20,2024-03-01,MC\n"
        "C,1,77425,C20,2024-03-01,MB\nD,1,77425,C20,2024-03-01,commercial\nE,1,77425,C20,2024-03-01,\n"
    )
    cols = (
        "columns: {claim_id: CLAIM, line_number: LINE, procedure_code: CPT, diagnosis_codes: [DX], "
        "date_of_service: DOS"
    )
    (tmp_path / "codes.yaml").write_text(f"name: codes\n{cols}, line_of_business: PAYER}}\n")
    got = governed_lob([tmp_path / "codes.csv"], mapping=str(tmp_path / "codes.yaml"))
    assert got == {
        ("A", 1): "medicare_advantage",
        ("B", 1): "medicaid",
        ("C", 1): None,
        ("D", 1): "commercial",
        ("E", 1): None,
    }
    (tmp_path / "plain.csv").write_text(f"{head}\nA,1,77425,C20,2024-03-01\n")
    (tmp_path / "const.yaml").write_text(f"name: const\nline_of_business: medicaid\n{cols}}}\n")
    assert governed_lob([tmp_path / "plain.csv"], mapping=str(tmp_path / "const.yaml")) == {
        ("A", 1): "medicaid"
    }
    (tmp_path / "none.yaml").write_text(f"name: none\n{cols}}}\n")
    assert governed_lob([tmp_path / "plain.csv"], mapping=str(tmp_path / "none.yaml")) == {("A", 1): None}
    # A file without the column a mapping requires: reported, not guessed.
    s = screen([tmp_path / "plain.csv"], tmp_path / "r.parquet", mapping=str(tmp_path / "codes.yaml"))
    assert [e["code"] for e in s.errors] == ["unknown_column"]
    assert "PAYER" in s.errors[0]["reason"]


def test_a_canonical_extract_without_the_column_reads_as_none(tmp_path: Path) -> None:
    (tmp_path / "old.csv").write_text(
        "claim_id,line_number,member_id,procedure_code,modifiers,diagnosis_codes,date_of_service,billed_amount\n"
        "A,1,M,77425,,C20,2024-03-01,10\n"
    )
    assert governed_lob([tmp_path / "old.csv"]) == {("A", 1): None}


def test_a_coverage_file_is_read_first_whatever_the_order_given(tmp_path: Path) -> None:
    gen = [c for c in generate_claims(40, 2) if c.line_of_business == "commercial"]
    eobs, coverages = [], []
    for line in write_fhir(gen, tmp_path / "all.ndjson").read_bytes().splitlines():
        eob = orjson.loads(line)
        coverage = {**eob.pop("contained")[0], "id": f"cov-{eob['id']}"}
        coverage["type"] = {"coding": [{"system": SOPT, "code": "111"}]}  # Medicare managed care
        eob["insurance"] = [{"focal": True, "coverage": {"reference": f"Coverage/cov-{eob['id']}"}}]
        eobs.append(orjson.dumps(eob))
        coverages.append(orjson.dumps(coverage))
    (tmp_path / "ExplanationOfBenefit.ndjson").write_bytes(b"\n".join(eobs) + b"\n")
    (tmp_path / "z-Coverage.ndjson").write_bytes(b"\n".join(coverages) + b"\n")
    got = governed_lob([tmp_path / "ExplanationOfBenefit.ndjson", tmp_path / "z-Coverage.ndjson"])
    assert got
    assert set(got.values()) == {"medicare_advantage"}
