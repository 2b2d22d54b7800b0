"""Shared checks of the screening tests: a result equals ``decide`` line for line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from medpolicy import decide, load_policies
from medpolicy.screening.generator import GenClaim

POINTERS = {"837p": True, "fhir": True}


def result_rows(path: Path) -> list[tuple[Any, ...]]:
    src = f"'{path}/*.parquet'" if path.is_dir() else f"'{path}'"
    return duckdb.sql(
        "SELECT claim_id, line_number, outcome, missing_facts, policy_version, disposition, rests_on_conflict "
        f"FROM {src}"
    ).fetchall()


def assert_equivalent(
    rows: list[tuple[Any, ...]], claims: dict[str, GenClaim], fmt: str, policy_id: str | None = None
) -> int:
    """Every screened line's outcome, missing facts, version and conflict flag equal ``decide`` on the
    same case
    (``policy_id``: decided under that policy, as screening with ``--policy``)."""
    policies = load_policies()
    for cid, ln, outcome, missing, version, _, flag in rows:
        c = claims[cid]
        line = next(x for x in c.all_lines() if x.line_number == ln)
        case = c.case(
            line, pointers=POINTERS.get(fmt, False) and not c.institutional, line_of_business=fmt != "rif"
        )
        det = decide(case, policies, policy_id=policy_id)
        expected = (
            det.outcome.value,
            ",".join(m.name for m in det.missing_facts),
            det.version.id if det.version else None,
            det.rests_on_conflict,
        )
        assert (outcome, missing or "", version, flag) == expected, (fmt, cid, ln, case)
    return len(rows)


# Lines brought in scope by the service given (``governs_service``): HDR brachytherapy IORT billed with
# brachytherapy codes (77770, 77771), its facts-table row stating ``intraoperative_radiation``.
SERVICE_LINES = [
    # (code, intraoperative_radiation as the facts table gives it, line of business)
    ("77770", "true", ""),
    ("77771", "yes", "commercial"),
    ("77770", "false", ""),
    ("77770", "", ""),
    ("77772", "1", "medicare_advantage"),
    ("77425", "true", ""),
    ("77425", "", "commercial"),
    ("99213", "TRUE", ""),
    ("77770", "true", "self_pay"),
    ("77424", "no", "medicaid"),
]
SERVICE_FACTS = {"margin_status": "positive", "t_stage": "pT4b", "delivery_method": "HDR"}


def write_service_lines(folder: Path, *, by_member: bool = False) -> tuple[Path, Path]:
    """A claims CSV and a facts table (by claim, or by member) of ``SERVICE_LINES``."""
    import csv

    claims, facts = folder / "svc.csv", folder / "svc-facts.csv"
    with open(claims, "w", newline="") as c, open(facts, "w", newline="") as f:
        cw, fw = csv.writer(c), csv.writer(f)
        cw.writerow(
            [
                "claim_id",
                "line_number",
                "member_id",
                "procedure_code",
                "modifiers",
                "diagnosis_codes",
                "date_of_service",
                "billed_amount",
                "line_of_business",
            ]
        )
        fw.writerow(["member_id" if by_member else "claim_id", "intraoperative_radiation", *SERVICE_FACTS])
        for k, (code, svc, lob) in enumerate(SERVICE_LINES):
            cw.writerow([f"c{k}", 1, f"m{k}", code, "", "C20", "2025-09-15", 100 + k, lob])
            fw.writerow([f"m{k}" if by_member else f"c{k}", svc, *SERVICE_FACTS.values()])
    return claims, facts


def service_case(k: int) -> dict[str, Any]:
    """The case of ``SERVICE_LINES[k]`` with every fact of its facts-table row, as screening reads them
    (a boolean's text as true or false)."""
    code, svc, lob = SERVICE_LINES[k]
    case: dict[str, Any] = {
        "procedure_codes": [code],
        "diagnosis_codes": ["C20"],
        "date_of_service": "2025-09-15",
    }
    if svc:
        case["intraoperative_radiation"] = svc.lower() in {"true", "yes", "1", "t", "y"}
    case.update({"margin_status": "positive", "t_stage": ["pT4b"], "delivery_method": "HDR"})
    if lob:
        case["line_of_business"] = lob
    return case


def assert_service_scope(
    rows: list[tuple[Any, ...]], errors: list[dict[str, Any]], policy_id: str | None
) -> None:
    """Every line of ``SERVICE_LINES`` screened as ``decide`` governs and answers it: a line ``decide``
    routes (``Policy.governs_case``: a governed code, or the service stated true) has its outcome, missing
    facts and version, or ``decide``'s error; any other line is neither written nor in error."""
    from medpolicy.errors import CaseError, NoPolicyApplies

    policies = load_policies()
    got = {r[0]: r for r in rows}
    errs = {e["claim_id"]: e["code"] for e in errors}
    for k in range(len(SERVICE_LINES)):
        cid = f"c{k}"
        full = service_case(k)
        candidates = [policies.get(policy_id)] if policy_id else list(policies)
        governed = any(p.governs_case(full) for p in candidates)
        if not governed:
            assert cid not in got, (k, full)
            assert cid not in errs, (k, full)
            continue
        try:
            if policy_id is None:
                from medpolicy.routing import route_case

                pol = route_case(full, policies)
            else:
                pol = policies.get(policy_id)
            case = {key: v for key, v in full.items() if key == "line_of_business" or key in pol.fact_index}
            det = decide(case, policies, policy_id=pol.id)
        except (CaseError, NoPolicyApplies) as e:
            code = e.errors[0].code if isinstance(e, CaseError) else e.code
            assert errs.get(cid) == code, (k, full, errs.get(cid))
            continue
        assert cid not in errs, (k, full, errs[cid])
        row = got[cid]
        assert (row[2], row[3] or "", row[4]) == (
            det.outcome.value,
            ",".join(m.name for m in det.missing_facts),
            det.version.id if det.version else None,
        ), (k, full)
