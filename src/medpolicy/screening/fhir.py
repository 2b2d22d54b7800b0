"""FHIR R4 ExplanationOfBenefit and Claim resources as Bulk Data NDJSON (CARIN Blue Button, as CMS's BCDA
and Blue Button 2.0 serve them): claim lines out, unreadable resources reported.

Per item: ``productOrService`` (its first coding) and ``modifier``, ``diagnosisSequence`` selecting from the
resource's ``diagnosis`` (all of them when an item names none), ``servicedDate`` or ``servicedPeriod.start``
falling back to ``billablePeriod.start``, and the billed amount (``net``, else the ``submitted``
adjudication). ICD-10-PCS ``procedure`` entries become lines numbered -1, -2, ... as on an 837I. A
``.json`` file holds one resource (or a Bundle of them); any other file one resource per line.

The line of business: CARIN Blue Button's EOB names its coverage in ``insurance`` (the ``focal`` entry,
else the first): ``insurance.coverage.reference`` to a Coverage, either ``contained`` in the resource
(``#id``) or read earlier in the same run (``Coverage/id``: a Bulk Data export's ``Coverage.ndjson``,
which ``screen`` reads before the other files, or an entry of the same Bundle). The Coverage's ``type`` gives it
(``lob.from_coverage``: medpolicy's line-of-business code system, else the Source of Payment Typology
code CARIN Blue Button binds ``Coverage.type`` to). None when any of that is absent. Coverage resources
are read for this only (they hold no claim lines).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import orjson

from medpolicy.screening.lob import from_coverage
from medpolicy.screening.records import Emit, Progress, ReadError, Report

__all__ = ["read_fhir"]

_KINDS = {"ExplanationOfBenefit", "Claim"}
_PCS_SYSTEM = "http://www.cms.gov/Medicare/Coding/ICD10"


def read_fhir(
    path: Path,
    emit: Emit,
    report: Report,
    coverages: dict[str, str | None] | None = None,
    progress: Progress | None = None,
) -> int:
    """Read one NDJSON (or single-resource JSON) file; returns the number of claim resources read.
    ``coverages`` (``Coverage/id`` -> line of business) gathers the Coverage resources read, for the
    EOBs that refer to them; pass the same dict to every file of a run. ``progress``: told the bytes
    read, every megabyte or so (the whole file once done)."""
    name = path.name
    n = 0
    covs: dict[str, str | None] = {} if coverages is None else coverages
    pending = told = 0
    for where, raw in _documents(path):
        if progress is not None:
            pending += len(raw)
            if pending >= 1 << 20:
                progress(pending)
                told, pending = told + pending, 0
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            code = "not_utf8" if "utf-8" in str(e).lower() else "invalid_json"
            report(ReadError(name, where, code, f"not a JSON resource: {e}"))
            continue
        resources = (
            [e.get("resource") for e in doc.get("entry", []) if isinstance(e, Mapping)]
            if isinstance(doc, Mapping) and doc.get("resourceType") == "Bundle"
            else [doc]
        )
        for res in resources:
            if isinstance(res, Mapping) and res.get("resourceType") == "Coverage":
                if res.get("id") is not None:
                    covs[f"Coverage/{res['id']}"] = from_coverage(res)
                continue
        for res in resources:
            if isinstance(res, Mapping) and res.get("resourceType") == "Coverage":
                continue
            if not isinstance(res, Mapping) or res.get("resourceType") not in _KINDS:
                kind = res.get("resourceType") if isinstance(res, Mapping) else type(res).__name__
                report(
                    ReadError(
                        name,
                        where,
                        "unsupported_resource",
                        f"{kind!s} is not an ExplanationOfBenefit or Claim",
                    )
                )
                continue
            try:
                _resource(res, where, emit, covs)
            except (TypeError, ValueError, KeyError, AttributeError) as e:
                items = res.get("item")
                report(
                    ReadError(
                        name,
                        where,
                        "invalid_resource",
                        f"{res.get('resourceType')} cannot be read: {e}",
                        lines=len(items) if isinstance(items, list) else 0,
                        claim_id=_str(res.get("id")),
                    )
                )
                continue
            n += 1
    if progress is not None:
        progress(max(path.stat().st_size - told, 0))
    return n


def _documents(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.suffix.lower() == ".json":
        yield "document", path.read_bytes()
        return
    with open(path, "rb") as fh:
        for i, line in enumerate(fh, 1):
            if line.strip():
                yield f"line {i}", line


def _str(v: Any) -> str | None:
    return None if v is None else str(v)


def _code(concept: Any) -> str | None:
    if not isinstance(concept, Mapping):
        return None
    for c in concept.get("coding") or ():
        if isinstance(c, Mapping) and c.get("code"):
            return str(c["code"])
    return None


def _date(v: Any) -> str | None:
    return str(v)[:10] if v else None


def _line_of_business(res: Mapping[str, Any], coverages: Mapping[str, str | None]) -> str | None:
    entries = [i for i in res.get("insurance") or () if isinstance(i, Mapping)]
    chosen = next((i for i in entries if i.get("focal") is True), entries[0] if entries else None)
    if chosen is None:
        return None
    ref = (chosen.get("coverage") or {}).get("reference")
    if not isinstance(ref, str):
        return None
    if ref.startswith("#"):
        for c in res.get("contained") or ():
            if isinstance(c, Mapping) and c.get("resourceType") == "Coverage" and c.get("id") == ref[1:]:
                return from_coverage(c)
        return None
    return coverages.get("/".join(ref.rsplit("/", 2)[-2:]))  # an absolute URL ends in Coverage/id


def _resource(res: Mapping[str, Any], where: str, emit: Emit, coverages: Mapping[str, str | None]) -> None:
    cid = _str(res.get("id"))
    lob = _line_of_business(res, coverages)
    patient = (res.get("patient") or {}).get("reference") or ""
    member = patient.rsplit("/", 1)[-1] or None
    dx: dict[int, str] = {}
    for d in res.get("diagnosis") or ():
        code = _code(d.get("diagnosisCodeableConcept"))
        if code:
            dx[int(d["sequence"])] = code
    period_start = _date((res.get("billablePeriod") or {}).get("start"))
    all_dx = "|".join(dx[k] for k in sorted(dx))
    for item in res.get("item") or ():
        seqs = item.get("diagnosisSequence") or ()
        dxs = "|".join(dx[int(s)] for s in seqs if int(s) in dx) if seqs else all_dx
        date = _date(item.get("servicedDate")) or _date((item.get("servicedPeriod") or {}).get("start"))
        mods = [m for m in (_code(m) for m in item.get("modifier") or ()) if m]
        emit(
            (
                cid,
                int(item["sequence"]),
                member,
                _code(item.get("productOrService")),
                ":".join(mods) or None,
                dxs,
                date or period_start,
                _amount(item),
                where,
                lob,
            )
        )
    for k, proc in enumerate(res.get("procedure") or ()):
        code = _code(proc.get("procedureCodeableConcept"))
        if code:
            emit(
                (
                    cid,
                    -(k + 1),
                    member,
                    code,
                    None,
                    all_dx,
                    _date(proc.get("date")) or period_start,
                    None,
                    where,
                    lob,
                )
            )


def _amount(item: Mapping[str, Any]) -> float | None:
    net = item.get("net")
    if isinstance(net, Mapping) and net.get("value") is not None:
        return float(net["value"])
    for adj in item.get("adjudication") or ():
        cat = adj.get("category") or {}
        codes = {c.get("code") for c in cat.get("coding") or () if isinstance(c, Mapping)}
        if "submitted" in codes and isinstance(adj.get("amount"), Mapping):
            return float(adj["amount"]["value"])
    return None
