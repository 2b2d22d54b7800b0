"""Batch screening on DuckDB: the same answers as ``decide``, every format, bad input reported."""

from __future__ import annotations

import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from screening_helpers import assert_equivalent, result_rows
from typer.testing import CliRunner

from medpolicy import decide, load_policies
from medpolicy.cli import app
from medpolicy.screening import impact, screen
from medpolicy.screening.generator import generate_claims, write_all, write_csv, write_facts, write_x12
from medpolicy.screening.x12 import read_x12

FIXTURES = Path(__file__).parents[1] / "fixtures" / "claims"
N, SEED = 300, 7


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("claims"), N, SEED)


@pytest.fixture(scope="module")
def claims() -> dict[str, object]:
    return {c.claim_id: c for c in generate_claims(N, SEED)}


@pytest.mark.parametrize("fmt", ["837p", "837i", "fhir", "csv", "rif"])
def test_every_governed_line_equals_decide_in_every_format(
    fmt: str, generated: dict[str, Path], claims: dict, tmp_path: Path
) -> None:
    out = tmp_path / "result.parquet"
    s = screen([generated[fmt]], out, facts=generated["facts"])
    assert s.balanced
    assert s.governed > 0
    assert assert_equivalent(result_rows(out), claims, fmt) == s.written


def test_parquet_input_and_every_output_format(generated: dict[str, Path], tmp_path: Path) -> None:
    import duckdb

    pq = tmp_path / "claims.parquet"
    duckdb.sql(
        f"COPY (SELECT * FROM read_csv('{generated['csv']}', all_varchar=true)) TO '{pq}' (FORMAT parquet)"
    )
    sizes = {}
    for fmt in ("parquet", "csv", "jsonl"):
        s = screen([pq], tmp_path / f"r.{fmt}", fmt=fmt, facts=generated["facts"])
        sizes[fmt] = s.written
    assert len(set(sizes.values())) == 1
    first = orjson.loads((tmp_path / "r.jsonl").read_text().splitlines()[0])
    assert list(first) == [
        "claim_id",
        "line_number",
        "member_id",
        "procedure_code",
        "date_of_service",
        "billed_amount",
        "policy_id",
        "policy_version",
        "outcome",
        "missing_facts",
        "deciding_criteria",
        "disposition",
        "carc",
        "rarc",
        "rests_on_conflict",
        "matched_key",
    ]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10**6), n=st.integers(1, 25))
def test_property_screen_equals_decide(seed: int, n: int, tmp_path: Path) -> None:
    gen = generate_claims(n, seed)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    out = folder / "r.parquet"
    s = screen([write_csv(gen, folder / "c.csv")], out, facts=write_facts(gen, folder / "f.csv"))
    assert s.balanced
    assert_equivalent(result_rows(out), {c.claim_id: c for c in gen}, "csv")


def test_dispositions_and_adjustment_codes(tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text(
        "claim_id,line_number,member_id,procedure_code,modifiers,diagnosis_codes,date_of_service,billed_amount\n"
        "a,1,m,77425,,C20,2024-03-01,100\n"
        "b,1,m,77425,,C25.0,2024-03-01,100\n"
        "c,1,m,77425,,,2024-03-01,100\n"
        "d,1,m,77425,,C20,2003-03-01,100\n"
        "e,1,m,77425,,C20,2024-03-01,100\n"
    )
    f = tmp_path / "f.csv"
    f.write_text("claim_id,margin_status,t_stage,treatment_intent\na,positive,pT4b,\nd,,,palliative\n")
    out = tmp_path / "r.jsonl"
    screen([p], out, fmt="jsonl", facts=f)
    rows = {r["claim_id"]: r for r in map(orjson.loads, out.read_text().splitlines())}
    assert (rows["a"]["disposition"], rows["a"].get("carc")) == ("pass", None)
    assert (rows["b"]["disposition"], rows["b"]["carc"]) == ("refer_to_review", "55")
    assert (rows["c"]["carc"], rows["c"]["rarc"]) == ("16", "M76")  # no diagnosis at all
    assert (rows["d"]["outcome"], rows["d"]["carc"], rows["d"]["policy_version"]) == (
        "not_medically_necessary",
        "50",
        "2002-09-01",
    )
    assert (rows["e"]["disposition"], rows["e"]["carc"], rows["e"]["rarc"]) == (
        "pend_for_records",
        "252",
        "M127,N706",
    )
    assert rows["e"]["missing_facts"] == "margin_status,t_stage,recurrent"
    assert all(r["policy_id"] == "bluekc-iort" for r in rows.values())


def test_bad_input_is_reported_and_the_run_goes_on(generated: dict[str, Path], tmp_path: Path) -> None:
    good = generated["837p"].read_bytes()
    wrong_delim = tmp_path / "wrong.837"
    wrong_delim.write_bytes(good[:106] + good[106:].replace(b"*", b"|"))
    truncated = tmp_path / "truncated.837"
    truncated.write_bytes(good[: len(good) // 2])
    non_utf8 = tmp_path / "latin.837"
    first_clm = good.index(b"CLM*")
    non_utf8.write_bytes(good[:first_clm] + b"\xff" + good[first_clm:])
    bad_values = tmp_path / "values.csv"
    bad_values.write_text(
        "claim_id,line_number,member_id,procedure_code,modifiers,diagnosis_codes,date_of_service,billed_amount\n"
        "x,1,m,77425,,C99.99,2024-03-01,1\nx,2,m,77425,,C20,2024-02-30,1\nx,3,m,77425,,C20,2024-02-01,1\n"
    )
    unmapped = tmp_path / "unmapped.csv"
    unmapped.write_text("CLAIM,LINE,CPT\n1,1,77425\n")
    out = tmp_path / "r.parquet"
    s = screen([wrong_delim, truncated, non_utf8, bad_values, unmapped], out)
    assert s.balanced
    assert s.written > 0
    codes = {(e["source"], e["code"]) for e in s.errors}
    assert ("wrong.837", "wrong_delimiter") in codes
    assert ("truncated.837", "truncated_transaction") in codes
    assert ("latin.837", "not_utf8") in codes
    assert ("values.csv", "unknown_code") in codes
    assert ("values.csv", "invalid_date") in codes
    assert ("unmapped.csv", "unknown_column") in codes
    assert all(e.get("location") or e.get("claim_id") for e in s.errors)
    written = (tmp_path / "r.errors.jsonl").read_text().splitlines()
    assert len(written) == len(s.errors)


def test_x12_reader_reads_pointers_dates_modifiers_and_pcs(tmp_path: Path) -> None:
    gen = generate_claims(200, 11)
    rows: list[tuple] = []
    read_x12(write_x12(gen, tmp_path / "p.837", institutional=False), rows.append, pytest.fail)
    by = {(r[0], int(r[1])): r for r in rows}
    for c in gen:
        if c.institutional:
            continue
        for ln in c.lines:
            r = by[(c.claim_id, ln.line_number)]
            assert r[3] == ln.code
            assert (r[4] or "") == ":".join(ln.modifiers)
            assert r[5] == "|".join(d.replace(".", "") for d in c.line_dx(ln, pointers=True))
            assert r[6] == ln.date.strftime("%Y%m%d")
    rows.clear()
    read_x12(write_x12(gen, tmp_path / "i.837", institutional=True), rows.append, pytest.fail)
    pcs = [r for r in rows if int(r[1]) < 0]
    assert pcs
    assert all(r[3].startswith("D") and len(r[3]) == 7 for r in pcs)
    inst = {c.claim_id: c for c in gen if c.institutional}
    for r in rows:  # a line without DTP*472 takes the statement date
        assert r[6] is not None
        assert r[6] >= inst[r[0]].statement[0].strftime("%Y%m%d")


def test_real_fixtures_are_read(tmp_path: Path) -> None:
    files = sorted(p for p in FIXTURES.iterdir() if p.suffix in (".837", ".837i", ".json", ".csv"))
    s = screen(files, tmp_path / "r.parquet")
    assert s.balanced
    assert s.lines_read > 200
    assert s.governed == 0
    assert not [e for e in s.errors if e["code"] in ("wrong_delimiter", "truncated_transaction", "not_utf8")]


def test_generated_837p_is_valid_x12_for_pyx12(generated: dict[str, Path], tmp_path: Path) -> None:
    """pyx12 (the validating parser) accepts the generated 837P and the real one; it rejects a broken
    file. (Its 837I map is of an older errata that rejects even the reference 837I fixtures.)"""
    from medpolicy.screening.x12 import validate

    for path in (generated["837p"], FIXTURES / "lfh-demo.autoaccident.837"):
        assert validate(path) == [], path
    broken = tmp_path / "broken.837"
    broken.write_text(generated["837p"].read_text().replace("CLM*", "CLX*", 1))
    assert validate(broken) != []


def test_icd10_pcs_is_governed_and_decided() -> None:
    policies = load_policies()
    iort = policies.get("bluekc-iort")
    assert "DDY7CZZ" in iort.governs.codes
    assert "77425" in iort.governs.codes
    d = decide(
        {"procedure_codes": ["DDY7CZZ"], "date_of_service": "2024-03-01", "diagnosis_codes": ["C25.0"]},
        policies,
    )
    assert d.outcome.value == "investigational"


def test_impact_transitions_and_changed_lines(generated: dict[str, Path], tmp_path: Path) -> None:
    r = impact(
        [generated["csv"]],
        "2004-09-01",
        "2009-10-06",
        tmp_path / "changed.csv",
        fmt="csv",
        facts=generated["facts"],
    )
    total = sum(n for *_, n, _ in r.transitions)
    assert total == r.summaries[0].written
    assert all(a == "investigational" for a, *_ in r.transitions)
    assert r.changed == sum(n for a, b, n, _ in r.transitions if a != b) + sum(
        0 for _ in ()
    ) or r.changed >= sum(n for a, b, n, _ in r.transitions if a != b)
    assert len((tmp_path / "changed.csv").read_text().splitlines()) == r.changed + 1


def test_cli_screen_and_impact(generated: dict[str, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "screen",
            str(generated["837p"]),
            "--facts",
            str(generated["facts"]),
            "-o",
            str(tmp_path / "r.parquet"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "lines read" in res.output
    assert "not governed" in res.output
    res = runner.invoke(app, ["impact", str(generated["csv"]), "--from", "2002-09-01", "--to", "2009-10-06"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["screen", str(generated["csv"]), "--mapping", "nope", "-o", str(tmp_path / "x.parquet")]
    )
    assert res.exit_code == 2
    assert "unknown column mapping" in res.output


def test_keep_ungoverned_writes_every_line(generated: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "all.parquet"
    s = screen([generated["csv"]], out, keep_ungoverned=True)
    rows = result_rows(out)
    assert len(rows) == s.written + s.not_governed
    assert sum(1 for r in rows if r[2] == "not_applicable" and r[5] == "pass") >= s.not_governed


@pytest.mark.slow
def test_large_screen_equals_decide_line_for_line(tmp_path: Path) -> None:
    gen = generate_claims(6000, 99)
    out = tmp_path / "large.parquet"
    s = screen([write_csv(gen, tmp_path / "c.csv")], out, facts=write_facts(gen, tmp_path / "f.csv"))
    assert s.balanced
    assert s.written > 3000  # (Medicaid lines are errors: no policy for that line of business)
    assert assert_equivalent(result_rows(out), {c.claim_id: c for c in gen}, "csv") == s.written
