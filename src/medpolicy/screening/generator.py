"""Realistic IORT claim files in every format screening reads, for tests, benchmarks and first runs.

A mix of professional and inpatient claims: IORT lines (CPT 77424/77425/77469, ICD-10-PCS on inpatient
claims) among ordinary ones, diagnoses of many sites (rectal, colon, pancreatic, sarcoma, the ambiguous
rectosigmoid junction, history-of codes), dates across the policy's versions, and a facts table in
which some claims have no row and others miss a fact or two. Each line's ``case`` is what ``decide``
would be given for it: the equivalence tests compare the two.

By default the claims suit Blue KC's policy (dates 2000-2015, its facts). ``generate_claims(...,
policy=...)`` makes them for any policy: dates across that policy's versions, and of the clinical facts
the generator knows (margins, staging, breast pathology, a birth date, the delivery method, trial
enrolment...) those the policy declares.

Each claim has a payer: an 837 claim filing indicator code (``FILING_CODES``, a mix of commercial,
Medicare Advantage, Medicaid and Medicare fee-for-service), written as SBR09 on the 837s, as a contained
Coverage (Source of Payment Typology ``type``) on the FHIR EOBs and as the ``line_of_business`` column of
the canonical CSV and the bulk Parquet; ``GenClaim.line_of_business`` is what a reader gives for it
(None for Medicare fee-for-service). The CMS RIF layout has no such column (its claims are all Medicare
fee-for-service): its lines have none.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from medpolicy.policy import Policy

__all__ = ["GenClaim", "GenLine", "generate_claims", "write_all", "write_bulk_parquet"]

IORT_CPT = ("77425", "77424", "77469")
IORT_PCS = ("DDY7CZZ", "DDY5CZZ", "DFY3CZZ")
OTHER_CPT = ("99213", "77014", "88305", "45395", "44145", "77263", "99223")
DIAGNOSES = (
    "C20",
    "C20",
    "C20",
    "C18.7",
    "C25.0",
    "C16.9",
    "C48.0",
    "C49.4",
    "C53.9",
    "C19",
    "Z85.048",
    "C78.5",
    "C50.911",
    "C64.1",
    "C71.9",
)
OTHER_DX = ("I10", "E11.9", "K57.30", "D12.6")
DATES = (
    (dt.date(2000, 1, 1), 0.05),
    (dt.date(2003, 1, 1), 0.05),
    (dt.date(2006, 1, 1), 0.1),
    (dt.date(2012, 1, 1), 0.8),
)
MARGINS = ("negative", "close", "positive", "gross_residual", "R1")
STAGES = ("pT3", "pT4b", "ypT4a", "rT3", "cT4", "pT2")
# Sites whose AJCC 8 chapter has no T4a/T4b (anus, pancreas, soft tissue, cervix, ...): stagings of that
# chapter, so that a generated case is valid input (`decide` refuses T4b on a pancreatic cancer).
STAGES_NO_T4_SUBCATEGORY = ("pT3", "pT4", "rT3", "cT4", "pT2")
# For a given policy: breast (invasive and DCIS), colon, sarcoma, cervix and uterus are frequent.
POLICY_DIAGNOSES = (
    *DIAGNOSES,
    "C50.411",
    "C50.411",
    "D05.11",
    "D05.11",
    "C18.2",
    "C49.12",
    "C54.1",
)
POLICY_PCS = (*IORT_PCS, "DMY0CZZ", "DMY1CZZ", "DUY1CZZ")


@dataclass
class GenLine:
    line_number: int
    code: str
    modifiers: list[str]
    pointers: list[int]  # 1-based into the claim's diagnoses (837P, FHIR)
    date: dt.date | None
    amount: float | None


@dataclass
class GenClaim:
    claim_id: str
    member_id: str
    institutional: bool
    dx: list[str]
    statement: tuple[dt.date, dt.date]
    lines: list[GenLine]
    pcs: list[tuple[str, dt.date]] = field(default_factory=list)
    facts: dict[str, Any] | None = None
    filing_code: str = "CI"  # SBR09

    @property
    def line_of_business(self) -> str | None:
        """The line of business the readers give this claim's lines (``lob.py``)."""
        from medpolicy.screening.lob import from_filing_indicator

        return from_filing_indicator(self.filing_code)

    def line_dx(self, line: GenLine, *, pointers: bool) -> list[str]:
        if pointers and line.pointers and line.line_number > 0:
            return [self.dx[p - 1] for p in line.pointers]
        return list(self.dx)

    def all_lines(self) -> list[GenLine]:
        """Service lines, then the ICD-10-PCS procedures as lines -1, -2, ..."""
        pcs = [GenLine(-(k + 1), c, [], [], d, None) for k, (c, d) in enumerate(self.pcs)]
        return [*self.lines, *pcs]

    def case(self, line: GenLine, *, pointers: bool, line_of_business: bool = True) -> dict[str, Any]:
        """The case ``decide`` is given for a line (the facts table's row joined in; the claim's line of
        business unless ``line_of_business`` is false: a format that does not carry it, CMS RIF)."""
        date = line.date or (self.statement[0] if self.institutional else None)
        case: dict[str, Any] = {"procedure_codes": [line.code]}
        if date is not None:
            case["date_of_service"] = date.isoformat()
        dx = self.line_dx(line, pointers=pointers)
        if dx:
            case["diagnosis_codes"] = dx
        case.update({k: v for k, v in (self.facts or {}).items() if v is not None})
        if line_of_business and self.line_of_business is not None:
            case["line_of_business"] = self.line_of_business
        return case


#: Claim filing indicator codes (SBR09) and how often they occur; each with the Source of Payment
#: Typology code of the same payer type (the FHIR Coverage.type).
FILING_CODES = (
    ("CI", 0.3, "52"),
    ("12", 0.1, "512"),
    ("BL", 0.1, "6"),
    ("HM", 0.05, "511"),
    ("16", 0.25, "111"),
    ("MC", 0.1, "2"),
    ("MB", 0.1, "121"),
)
_SOPT = {code: sopt for code, _, sopt in FILING_CODES}


def _date(rng: random.Random, window: tuple[dt.date, int] | None = None) -> dt.date:
    if window is not None:
        return window[0] + dt.timedelta(days=rng.randrange(0, window[1]))
    start = rng.choices([d for d, _ in DATES], weights=[w for _, w in DATES])[0]
    return start + dt.timedelta(days=rng.randrange(0, 1400))


def _window(policy: Policy) -> tuple[dt.date, int]:
    """From a little before the policy's first version to a year and a half after its latest."""
    first = policy.versions[0].effective_from - dt.timedelta(days=60)
    last = policy.versions[-1].effective_from + dt.timedelta(days=540)
    return first, (last - first).days


def _breast_facts(rng: random.Random, f: dict[str, Any], dos: dt.date) -> None:
    """Breast pathology, a birth date (or a stated age), the delivery method and trial enrolment, each
    present or not; values around the partial-breast suitability thresholds."""
    if rng.random() < 0.8:
        years = rng.choice((38, 49, 50, 50, 62, 71))
        born = dos - dt.timedelta(days=round(years * 365.25) + rng.randint(-3, 3))
        f["date_of_birth"] = born.isoformat()
    if rng.random() < 0.1:
        f["age"] = rng.choice((48, 50, 66))  # stated beside the birth date: may disagree with it
    picks: dict[str, tuple[Any, ...]] = {
        "histology": ("invasive_ductal", "IDC", "dcis", "invasive_lobular"),
        "tumor_size_mm": (8, 18, 20, 24, "1.6 cm", "2.6 cm"),
        "lymphovascular_invasion": (False, False, True),
        "er_status": ("positive", "positive", "ER-"),
        "brca_variant": (False, False, True),
        "node_status": ("negative", "pN0", "positive"),
        "nuclear_grade": ("low", "intermediate", "high"),
        "screen_detected": (True, True, False),
        "trial_enrolment": (True, True, False),
        "delivery_method": ("electron_beam", "HDR", "low_energy_xray"),
    }
    for name, values in picks.items():
        if rng.random() < 0.75:
            f[name] = rng.choice(values)
    if "margin_status" not in f and rng.random() < 0.5:
        f["margin_distance_mm"] = rng.choice((1.0, 2.0, 2.5, 3.0, 5.0))


def _facts(
    rng: random.Random, dx: list[str], policy: Policy | None = None, dos: dt.date | None = None
) -> dict[str, Any] | None:
    if rng.random() < 0.3:
        return None
    f = _tumour_facts(rng, dx)
    if policy is None:
        return f
    _breast_facts(rng, f, dos or dt.date(2025, 1, 1))
    return {k: v for k, v in f.items() if k in policy.fact_index}


def _tumour_facts(rng: random.Random, dx: list[str]) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if rng.random() < 0.7:
        f["margin_status"] = rng.choice(MARGINS)
    elif rng.random() < 0.5:
        f["margin_distance_mm"] = rng.choice((0.5, 1.0, 1.5, 2.0, 4.0))
    if rng.random() < 0.7:
        no_subcategory = any(c.startswith(("C21", "C25")) for c in dx)  # anus, pancreas chapters
        f["t_stage"] = rng.choice(STAGES_NO_T4_SUBCATEGORY if no_subcategory else STAGES)
    if rng.random() < 0.3:
        f["recurrent"] = rng.random() < 0.5
    if rng.random() < 0.4:
        f["metastatic"] = rng.random() < 0.3
    if rng.random() < 0.4:
        f["treatment_intent"] = rng.choice(("curative", "palliative"))
    return f


def generate_claims(
    n: int, seed: int = 0, *, iort_share: float = 0.6, policy: Policy | None = None
) -> list[GenClaim]:
    """``n`` claims; about ``iort_share`` of them carry an IORT line. ``policy``: claims for that
    policy (dates across its versions, the facts it declares; default: Blue KC's)."""
    rng = random.Random(seed)
    window = _window(policy) if policy is not None else None
    diagnoses = POLICY_DIAGNOSES if policy is not None else DIAGNOSES
    pcs_codes = POLICY_PCS if policy is not None else IORT_PCS
    payer_rng = random.Random(seed + 7919)  # its own stream: the claims are those of a seed without it
    claims = []
    for k in range(n):
        inst = rng.random() < 0.3
        iort = rng.random() < iort_share
        dx = rng.sample(diagnoses, rng.choice((0, 1, 1, 1, 2))) if iort else rng.sample(OTHER_DX, 1)
        if not dx and (not inst or rng.random() < 0.5):  # an 837P claim needs a diagnosis (HI)
            dx = rng.sample(OTHER_DX, 1)
        dos = _date(rng, window)
        lines = []
        n_lines = rng.randint(1, 4)
        for i in range(1, n_lines + 1):
            code = rng.choice(IORT_CPT) if iort and i == 1 else rng.choice(OTHER_CPT)
            mods = ["26"] if code in IORT_CPT and rng.random() < 0.3 else []
            ptrs = sorted(rng.sample(range(1, len(dx) + 1), min(len(dx), rng.randint(1, 2)))) if dx else []
            date = None if inst and rng.random() < 0.5 else dos
            lines.append(GenLine(i, code, mods, ptrs, date, round(rng.uniform(80, 4000), 2)))
        pcs = [(rng.choice(pcs_codes), dos)] if inst and iort and rng.random() < 0.5 else []
        claims.append(
            GenClaim(
                f"CLM{seed}-{k:07d}",
                f"MBR{rng.randrange(n * 2 + 1):07d}",
                inst,
                dx,
                (dos, dos + dt.timedelta(days=rng.randint(0, 5))),
                lines,
                pcs,
                _facts(rng, dx, policy, dos) if iort else None,
                payer_rng.choices([c for c, _, _ in FILING_CODES], [w for _, w, _ in FILING_CODES])[0],
            )
        )
    return claims


# ----------------------------------------------------------------------------------------------------
# Writers


def _d8(d: dt.date) -> str:
    return d.strftime("%Y%m%d")


def _isa(control: int) -> str:
    return (
        f"ISA*00*          *00*          *ZZ*MEDPOLICYSUBM  *ZZ*MEDPOLICYPAYER *240301*1200*^*00501*"
        f"{control:09d}*0*T*:~"
    )


def write_x12(claims: list[GenClaim], path: Path, *, institutional: bool, per_transaction: int = 50) -> Path:
    """An 837P (``institutional=False``: the professional claims) or 837I file, ``per_transaction``
    claims per ST/SE, one subscriber loop per claim."""
    version = "005010X223A3" if institutional else "005010X222A2"
    picked = [c for c in claims if c.institutional == institutional]
    out = [_isa(1), f"GS*HC*MEDPOLICYSUBM*MEDPOLICYPAYER*20240301*1200*1*X*{version}~"]
    n_tx = 0
    for start in range(0, len(picked), per_transaction):
        n_tx += 1
        ctrl = f"{n_tx:04d}"
        segs = [
            f"ST*837*{ctrl}*{version}",
            "BHT*0019*00*0123*20240301*1200*CH",
            "NM1*41*2*MEDPOLICY SUBMITTER*****46*12345",
            "PER*IC*CONTACT*TE*5555555555",
            "NM1*40*2*MEDPOLICY PAYER*****46*54321",
            "HL*1**20*1",
            "NM1*85*2*GENERAL HOSPITAL*****XX*1234567893",
            "N3*1 MAIN ST",
            "N4*KANSAS CITY*MO*64108",
            "REF*EI*123456789",
        ]
        for k, c in enumerate(picked[start : start + per_transaction]):
            segs += [
                f"HL*{k + 2}*1*22*0",
                f"SBR*P*18*******{c.filing_code}",
                f"NM1*IL*1*DOE*PAT****MI*{c.member_id}",
                "NM1*PR*2*MEDPOLICY PAYER*****PI*54321",
            ]
            total = sum(ln.amount or 0 for ln in c.lines)
            pos = "11:A:1" if institutional else "22:B:1"
            segs.append(f"CLM*{c.claim_id}*{total:.2f}***{pos}*Y*A*Y*Y")
            if institutional:
                segs.append(f"DTP*434*RD8*{_d8(c.statement[0])}-{_d8(c.statement[1])}")
            if c.dx:
                segs.append(
                    "HI*"
                    + "*".join(
                        f"{'ABK' if i == 0 else 'ABF'}:{d.replace('.', '')}" for i, d in enumerate(c.dx)
                    )
                )
            if c.pcs:
                segs.append(
                    "HI*"
                    + "*".join(
                        f"{'BBR' if i == 0 else 'BBQ'}:{p}:D8:{_d8(d)}" for i, (p, d) in enumerate(c.pcs)
                    )
                )
            for ln in c.lines:
                proc = ":".join(["HC", ln.code, *ln.modifiers])
                segs.append(f"LX*{ln.line_number}")
                if institutional:
                    segs.append(f"SV2*0333*{proc}*{ln.amount:.2f}*UN*1")
                else:
                    ptr = ":".join(map(str, ln.pointers[:4])) or "1"
                    segs.append(f"SV1*{proc}*{ln.amount:.2f}*UN*1***{ptr}")
                if ln.date is not None:
                    segs.append(f"DTP*472*D8*{_d8(ln.date)}")
        segs.append(f"SE*{len(segs) + 1}*{ctrl}")
        out.extend(s + "~" for s in segs)
    out += [f"GE*{n_tx}*1~", "IEA*1*000000001~"]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path


def write_fhir(claims: list[GenClaim], path: Path) -> Path:
    """ExplanationOfBenefit resources (CARIN Blue Button shape), one per line of an NDJSON file."""
    with open(path, "wb") as fh:
        for c in claims:
            eob: dict[str, Any] = {
                "resourceType": "ExplanationOfBenefit",
                "id": c.claim_id,
                "status": "active",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                            "code": "institutional" if c.institutional else "professional",
                        }
                    ]
                },
                "use": "claim",
                "contained": [
                    {
                        "resourceType": "Coverage",
                        "id": "coverage",
                        "status": "active",
                        "type": {
                            "coding": [
                                {"system": "urn:oid:2.16.840.1.113883.3.221.5", "code": _SOPT[c.filing_code]}
                            ]
                        },
                        "beneficiary": {"reference": f"Patient/{c.member_id}"},
                        "payor": [{"display": "MEDPOLICY PAYER"}],
                    }
                ],
                "patient": {"reference": f"Patient/{c.member_id}"},
                "insurance": [{"focal": True, "coverage": {"reference": "#coverage"}}],
                "billablePeriod": {"start": c.statement[0].isoformat(), "end": c.statement[1].isoformat()},
                "diagnosis": [
                    {
                        "sequence": i + 1,
                        "diagnosisCodeableConcept": {
                            "coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": d}]
                        },
                    }
                    for i, d in enumerate(c.dx)
                ],
                "item": [],
            }
            for ln in c.lines:
                item: dict[str, Any] = {
                    "sequence": ln.line_number,
                    "productOrService": {
                        "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": ln.code}]
                    },
                    "net": {"value": ln.amount, "currency": "USD"},
                }
                if not c.institutional and ln.pointers:
                    item["diagnosisSequence"] = ln.pointers
                if ln.modifiers:
                    item["modifier"] = [{"coding": [{"code": m}]} for m in ln.modifiers]
                if ln.date is not None:
                    item["servicedDate"] = ln.date.isoformat()
                eob["item"].append(item)
            if c.pcs:
                eob["procedure"] = [
                    {
                        "sequence": i + 1,
                        "date": d.isoformat(),
                        "procedureCodeableConcept": {
                            "coding": [{"system": "http://www.cms.gov/Medicare/Coding/ICD10", "code": p}]
                        },
                    }
                    for i, (p, d) in enumerate(c.pcs)
                ]
            fh.write(orjson.dumps(eob) + b"\n")
    return path


CANONICAL_HEADER = (
    "claim_id",
    "line_number",
    "member_id",
    "procedure_code",
    "modifiers",
    "diagnosis_codes",
    "date_of_service",
    "billed_amount",
    "line_of_business",
)


def write_csv(claims: list[GenClaim], path: Path) -> Path:
    """The canonical layout (every claim diagnosis on every line, as flat extracts do)."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CANONICAL_HEADER)
        for c in claims:
            for ln in c.all_lines():
                date = ln.date or (c.statement[0] if c.institutional else None)
                w.writerow(
                    [
                        c.claim_id,
                        ln.line_number,
                        c.member_id,
                        ln.code,
                        ":".join(ln.modifiers),
                        "|".join(c.dx),
                        date.isoformat() if date else "",
                        "" if ln.amount is None else ln.amount,
                        c.line_of_business or "",
                    ]
                )
    return path


RIF_HEADER = (
    "BENE_ID",
    "CLM_ID",
    "CLM_FROM_DT",
    "PRNCPAL_DGNS_CD",
    *(f"ICD_DGNS_CD{i}" for i in range(1, 13)),
    "LINE_NUM",
    "LINE_1ST_EXPNS_DT",
    "HCPCS_CD",
    "HCPCS_1ST_MDFR_CD",
    "HCPCS_2ND_MDFR_CD",
    "LINE_SBMTD_CHRG_AMT",
    "LINE_ICD_DGNS_CD",
)


def write_rif_carrier(claims: list[GenClaim], path: Path) -> Path:
    """CMS RIF carrier lines (pipe-delimited, ``DD-Mon-YYYY`` dates) for the professional claims."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter="|")
        w.writerow(RIF_HEADER)
        for c in claims:
            if c.institutional:
                continue
            dxs = [d.replace(".", "") for d in c.dx]
            for ln in c.lines:
                date = ln.date.strftime("%d-%b-%Y") if ln.date else ""
                w.writerow(
                    [
                        c.member_id,
                        c.claim_id,
                        c.statement[0].strftime("%d-%b-%Y"),
                        dxs[0] if dxs else "",
                        *(dxs[1:] + [""] * 12)[:12],
                        ln.line_number,
                        date,
                        ln.code,
                        *([*ln.modifiers, "", ""])[:2],
                        ln.amount,
                        "",
                    ]
                )
    return path


FACT_COLUMNS = (
    "margin_status",
    "margin_distance_mm",
    "t_stage",
    "recurrent",
    "metastatic",
    "treatment_intent",
)


def write_facts(claims: list[GenClaim], path: Path) -> Path:
    """The facts table: one row per claim that has clinical facts (by ``claim_id``); the columns of
    ``FACT_COLUMNS`` and any other fact a claim has."""
    more = sorted({k for c in claims for k in (c.facts or {})} - set(FACT_COLUMNS))
    columns = (*FACT_COLUMNS, *more)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("claim_id", *columns))
        for c in claims:
            if c.facts is not None:
                w.writerow(
                    [c.claim_id, *("" if c.facts.get(k) is None else _text(c.facts[k]) for k in columns)]
                )
    return path


def _text(v: Any) -> str:
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def write_all(folder: Path, n: int, seed: int = 0) -> dict[str, Path]:
    """Every format for the same ``n`` claims, and the facts table."""
    folder.mkdir(parents=True, exist_ok=True)
    claims = generate_claims(n, seed)
    return {
        "837p": write_x12(claims, folder / "claims.837p", institutional=False),
        "837i": write_x12(claims, folder / "claims.837i", institutional=True),
        "fhir": write_fhir(claims, folder / "claims.ndjson"),
        "csv": write_csv(claims, folder / "claims.csv"),
        "rif": write_rif_carrier(claims, folder / "claims-rif-carrier.csv"),
        "facts": write_facts(claims, folder / "facts.csv"),
    }


def write_bulk_parquet(path: Path, lines: int, *, governed_share: float = 0.1, seed: int = 0) -> Path:
    """A large canonical Parquet file made by DuckDB itself (10M lines in seconds): ``governed_share`` of
    the lines carry an IORT code, with diagnoses and dates across the policy's versions."""
    import duckdb

    gov = ", ".join(f"'{c}'" for c in IORT_CPT)
    oth = ", ".join(f"'{c}'" for c in OTHER_CPT)
    dxs = ", ".join(f"'{d}'" for d in (*DIAGNOSES, *OTHER_DX, ""))
    con = duckdb.connect()
    con.execute(f"SELECT setseed({(seed % 1000) / 1000})")
    con.execute(
        f"""COPY (
          SELECT 'C' || (i // 3)::VARCHAR AS claim_id, (i % 3 + 1)::BIGINT AS line_number,
                 'M' || (hash(i // 3) % 500000)::VARCHAR AS member_id,
                 CASE WHEN random() < {governed_share} THEN ([{gov}])[1 + (hash(i) % 3)::INT]
                      ELSE ([{oth}])[1 + (hash(i) % {len(OTHER_CPT)})::INT] END AS procedure_code,
                 '' AS modifiers,
                 ([{dxs}])[1 + (hash(i // 3 + 7) % {len(DIAGNOSES) + len(OTHER_DX) + 1})::INT] AS diagnosis_codes,
                 (DATE '2000-01-01' + INTERVAL (hash(i // 3 + 11) % 9000) DAY)::DATE::VARCHAR AS date_of_service,
                 round(80 + random() * 4000, 2) AS billed_amount,
                 (['commercial', 'commercial', 'medicare_advantage', 'medicaid', NULL])[1 + (hash(i // 3 + 13) % 5)::INT]
                   AS line_of_business
          FROM range({int(lines)}) t(i)
        ) TO '{path}' (FORMAT parquet)"""
    )
    con.close()
    return path
