"""Prefill from attached documents: the reports attached to a PAS submission (``Claim.supportingInfo``
``valueAttachment``, or a ``DocumentReference`` / ``Binary`` in the Bundle, base64 text or PDF) read by
:func:`~medpolicy.extract.extract`, and a DTR QuestionnaireResponse prefilled from the result.

Pure: resources in, records and cases out. Given facts always win; extracted facts are marked
``source: extracted`` (see :mod:`medpolicy.extract.proposal`), so no approval rests on them unconfirmed.
When two documents state different values of a fact, the fact stays unknown with a warning.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medpolicy.extract.model import FACT_NAMES
from medpolicy.extract.pipeline import extraction_record
from medpolicy.extract.proposal import EXTRACTED, merge_extracted

__all__ = [
    "INFORMATION_ORIGIN_EXT",
    "Attachment",
    "bundle_attachments",
    "combine",
    "extract_attachments",
    "prefill_case",
    "prefill_from_attachments",
    "prefilled_response_items",
]

INFORMATION_ORIGIN_EXT = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition/information-origin"
_TEXTUAL = ("text/", "application/pdf")


@dataclass(frozen=True, slots=True)
class Attachment:
    """A document found in a Bundle: where it is, what it says it is, and its bytes (``None`` when it
    has no inline data, e.g. only a URL, which is not fetched)."""

    where: str
    content_type: str | None
    title: str | None
    data: bytes | None
    problem: str | None = None


def _attachment(where: str, att: Mapping[str, Any]) -> Attachment | None:
    ctype = att.get("contentType") if isinstance(att.get("contentType"), str) else None
    title = att.get("title") if isinstance(att.get("title"), str) else None
    if ctype is not None and not ctype.lower().startswith(_TEXTUAL):
        return None  # an image or another type: not a report we read
    raw = att.get("data")
    if not isinstance(raw, str):
        return Attachment(where, ctype, title, None, "no inline data (a URL is not fetched)")
    try:
        return Attachment(where, ctype, title, base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        return Attachment(where, ctype, title, None, "the attachment's data is not valid base64")


def _resource_attachments(res: Mapping[str, Any], where: str) -> Iterator[Attachment]:
    kind = res.get("resourceType")
    if kind == "DocumentReference":
        for i, content in enumerate(res.get("content") or []):
            att = content.get("attachment") if isinstance(content, Mapping) else None
            if isinstance(att, Mapping):
                found = _attachment(f"{where}.content[{i}].attachment", att)
                if found is not None:
                    yield found
    elif kind == "Binary":
        found = _attachment(where, res)
        if found is not None:
            yield found


def bundle_attachments(claim: Mapping[str, Any], resources: Sequence[Mapping[str, Any]]) -> list[Attachment]:
    """Every text or PDF document of a PAS request: the Claim's supportingInfo attachments first, then
    DocumentReference and Binary resources of the Bundle (each once)."""
    found: list[Attachment] = []
    for i, info in enumerate(claim.get("supportingInfo") or []):
        if isinstance(info, Mapping) and isinstance(info.get("valueAttachment"), Mapping):
            att = _attachment(f"Claim.supportingInfo[{i}].valueAttachment", info["valueAttachment"])
            if att is not None:
                found.append(att)
    for res in resources:
        where = f"{res.get('resourceType')}/{res.get('id')}"
        found.extend(_resource_attachments(res, where))
    return found


def extract_attachments(attachments: Sequence[Attachment]) -> list[dict[str, Any]]:
    """One extraction record per attachment (an ``error`` record when it has no readable text)."""
    records: list[dict[str, Any]] = []
    for att in attachments:
        name = att.title or att.where
        if att.data is None:
            records.append(
                {"file": name, "where": att.where, "error": {"code": "no_data", "message": att.problem}}
            )
            continue
        record = extraction_record(att.data, name=name, content_type=att.content_type)
        record["where"] = att.where
        records.append(record)
    return records


def combine(
    records: Sequence[Mapping[str, Any]],
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The facts several documents state together: (facts, evidence with each document named,
    warnings). A fact two documents state differently stays unknown, with a ``documents_disagree``
    warning."""
    facts: dict[str, Any] = dict.fromkeys(FACT_NAMES)
    evidence: dict[str, list[dict[str, Any]]] = {}
    warnings: list[dict[str, Any]] = []
    conflicted: set[str] = set()
    for rec in records:
        if "error" in rec:
            warnings.append(
                {"code": rec["error"]["code"], "message": f"{rec['file']}: {rec['error']['message']}"}
            )
            continue
        for name, value in rec["facts"].items():
            if value is None or name in conflicted:
                continue
            if facts.get(name) is None:
                facts[name] = value
            elif facts[name] != value:
                conflicted.add(name)
                facts[name] = None
                warnings.append(
                    {
                        "code": "documents_disagree",
                        "fact": name,
                        "message": f"the documents disagree on {name}",
                    }
                )
                continue
            evidence.setdefault(name, []).extend(
                {**e, "document": rec["file"]} for e in rec["evidence"].get(name, [])
            )
        warnings.extend({**w, "document": rec["file"]} for w in rec.get("warnings", []))
    for name in conflicted:
        evidence.pop(name, None)
    return facts, evidence, warnings


def prefill_case(
    case: Mapping[str, Any], records: Sequence[Mapping[str, Any]], *, known: set[str] | None = None
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any]]:
    """``case`` with the facts the documents state that it lacks: (case, sources of the added facts,
    the extraction summary to keep with the determination: facts, evidence, warnings, documents)."""
    facts, evidence, warnings = combine(records)
    merged, sources = merge_extracted(case, facts, known=known)
    summary = {
        "source": EXTRACTED,
        "facts": {k: merged[k] for k in sources},
        "evidence": {k: v for k, v in evidence.items() if k in sources},
        "warnings": warnings,
        "documents": [r["file"] for r in records],
    }
    return merged, sources, summary


def _answer(value: Any) -> list[dict[str, Any]]:
    values = value if isinstance(value, list) else [value]
    out: list[dict[str, Any]] = []
    for v in values:
        if isinstance(v, bool):
            out.append({"valueBoolean": v})
        elif isinstance(v, int | float):
            out.append({"valueDecimal": v})
        else:
            out.append({"valueString": str(v)})
    return out


def prefilled_response_items(
    questionnaire: Mapping[str, Any], facts: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """QuestionnaireResponse items for the questionnaire's questions that ``facts`` answer, each answer
    marked with DTR's ``information-origin`` source ``auto`` (pre-populated, not entered by a person:
    a person confirms by keeping or overriding it). Choice items answer with the question's coding."""
    items: list[dict[str, Any]] = []
    for q in questionnaire.get("item") or []:
        if not isinstance(q, Mapping):
            continue
        link = q.get("linkId")
        value = facts.get(link) if isinstance(link, str) else None
        if value is None:
            continue
        answers = _answer(value)
        if q.get("type") == "choice":
            codings = {
                o["valueCoding"].get("code"): o["valueCoding"]
                for o in q.get("answerOption") or []
                if isinstance(o, Mapping) and isinstance(o.get("valueCoding"), Mapping)
            }
            if value not in codings:
                continue
            answers = [{"valueCoding": dict(codings[value])}]
        origin = {"url": INFORMATION_ORIGIN_EXT, "extension": [{"url": "source", "valueCode": "auto"}]}
        items.append(
            {
                "linkId": link,
                "text": q.get("text"),
                "answer": [{**a, "extension": [origin]} for a in answers],
            }
        )
    return items


def prefill_from_attachments(
    claim: Mapping[str, Any], resources: Sequence[Mapping[str, Any]], case: Mapping[str, Any], policy: Any
) -> tuple[dict[str, Any], dict[str, str], dict[str, Any] | None]:
    """A PAS request's case with the facts its attached reports state and it lacks: (case, sources of
    the added facts, the extraction summary or ``None`` when nothing is attached)."""
    attachments = bundle_attachments(claim, resources)
    if not attachments:
        return dict(case), {}, None
    known = {f.name for f in policy.facts} if policy is not None else None
    return prefill_case(case, extract_attachments(attachments), known=known)
