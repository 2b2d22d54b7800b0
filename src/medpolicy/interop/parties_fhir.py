"""Members, providers and clinical documents from FHIR (pure): PAS Bundles and CRD hook calls.

* :func:`pas_parties`: the member from ``Claim.patient`` and ``Claim.insurance.coverage``
  (member id = ``Coverage.subscriberId``, else the Patient's first identifier; plan and group from
  ``Coverage.class``), the requesting provider from ``Claim.provider`` and the servicing provider
  from ``Claim.careTeam`` (Practitioner, PractitionerRole or Organization, with NPI and TIN).
* :func:`crd_parties`: the same from a CDS Hooks call: ``context.patientId`` and ``userId``
  resolved in the prefetch (``patient``, ``coverage``, ``user`` / ``practitioner``, ...).
* :func:`pas_documents`: the clinical documents of a PAS Claim: ``supportingInfo.valueAttachment``
  and ``supportingInfo.valueReference`` to a DocumentReference in the Bundle, with inline ``data``.

An NPI that fails its check digit is not used; it is kept in ``Provider.npi_invalid`` for the reviewer
to see (the published PAS examples carry such NPIs, so a submission is not refused for one).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medpolicy.parties import Member, Parties, Provider, npi_valid, tin_valid

__all__ = ["NPI_SYSTEM", "TIN_SYSTEM", "AttachedDocument", "crd_parties", "pas_documents", "pas_parties"]

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
TIN_SYSTEM = "urn:oid:2.16.840.1.113883.4.4"
_COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"

Resolver = Callable[[str | None], dict[str, Any] | None]


@dataclass(frozen=True)
class AttachedDocument:
    title: str
    filename: str | None
    content_type: str | None  # as declared; the store sniffs the real type from the bytes
    data: bytes
    path: str  # where in the Claim, for error messages


class DocumentInputError(ValueError):
    """An attachment whose data is not base64 (field, message)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _ref(value: Any) -> str | None:
    return value.get("reference") if isinstance(value, Mapping) else None


def _name(resource: Mapping[str, Any]) -> str | None:
    names = resource.get("name")
    if isinstance(names, str):
        return names
    for name in names or []:
        if not isinstance(name, Mapping):
            continue
        if isinstance(name.get("text"), str) and name["text"].strip():
            return " ".join(name["text"].split())
        given = " ".join(str(g) for g in name.get("given") or [] if isinstance(g, str))
        family = name.get("family") if isinstance(name.get("family"), str) else ""
        full = " ".join(p for p in (given, family) if p).strip()
        if full:
            return full.title() if full.isupper() else full
    return None


def _identifier(resource: Mapping[str, Any] | None, system: str | None = None) -> str | None:
    for ident in (resource or {}).get("identifier") or []:
        if not isinstance(ident, Mapping) or not isinstance(ident.get("value"), str):
            continue
        if system is None or ident.get("system") == system:
            return str(ident["value"]).strip()
    return None


def _member(patient: Mapping[str, Any] | None, coverage: Mapping[str, Any] | None) -> Member | None:
    if patient is None and coverage is None:
        return None
    member_id = None
    if coverage is not None and isinstance(coverage.get("subscriberId"), str):
        member_id = coverage["subscriberId"].strip()
    member_id = member_id or _identifier(coverage) or _identifier(patient)
    if not member_id:
        return None
    plan = group = None
    for cls in (coverage or {}).get("class") or []:
        if not isinstance(cls, Mapping):
            continue
        kind = next(
            (c.get("code") for c in (cls.get("type") or {}).get("coding") or [] if isinstance(c, Mapping)),
            None,
        )
        label = cls.get("name") or cls.get("value")
        label = f"{cls.get('name')} ({cls.get('value')})" if cls.get("name") and cls.get("value") else label
        if kind == "plan" and plan is None:
            plan = str(label)
        elif kind == "group" and group is None:
            group = str(label)
    birth = patient.get("birthDate") if patient is not None else None
    return Member(
        member_id=member_id[:200],
        name=_name(patient) if patient is not None else None,
        birth_date=birth if isinstance(birth, str) and len(birth) == 10 else None,
        plan=plan,
        group=group,
    )


def _provider(resource: Mapping[str, Any] | None, resolve: Resolver) -> Provider | None:
    if resource is None:
        return None
    rtype = resource.get("resourceType")
    practitioner: Mapping[str, Any] | None = None
    organization: Mapping[str, Any] | None = None
    if rtype == "Practitioner":
        practitioner = resource
    elif rtype == "Organization":
        organization = resource
    elif rtype == "PractitionerRole":
        practitioner = resolve(_ref(resource.get("practitioner")))
        organization = resolve(_ref(resource.get("organization")))
        if practitioner is None and organization is None:
            practitioner = resource  # the NPI may be on the role itself
    else:
        return None
    npi = _identifier(practitioner, NPI_SYSTEM) if practitioner is not None else None
    org_npi = _identifier(organization, NPI_SYSTEM) if organization is not None else None
    tin = _identifier(organization, TIN_SYSTEM) or _identifier(practitioner, TIN_SYSTEM)
    invalid = None
    if npi is not None and not npi_valid(npi):
        invalid, npi = npi, None
    if org_npi is not None and not npi_valid(org_npi):
        invalid, org_npi = invalid or org_npi, None
    return Provider(
        name=_name(practitioner) if practitioner is not None else None,
        npi=npi,
        organization=_name(organization) if organization is not None else None,
        organization_npi=org_npi,
        tin=tin if tin and tin_valid(tin) else None,
        npi_invalid=invalid,
    )


def pas_parties(claim: Mapping[str, Any], resolve: Resolver) -> Parties:
    """Member, requesting and servicing providers of a PAS Claim (``resolve`` reads the Bundle)."""
    patient = resolve(_ref(claim.get("patient")))
    coverage = None
    for ins in claim.get("insurance") or []:
        if isinstance(ins, Mapping):
            coverage = resolve(_ref(ins.get("coverage")))
            if coverage is not None and (ins.get("focal") is not False):
                break
    requesting = _provider(resolve(_ref(claim.get("provider"))), resolve)
    servicing = None
    for member in claim.get("careTeam") or []:
        if isinstance(member, Mapping):
            servicing = _provider(resolve(_ref(member.get("provider"))), resolve)
            if servicing is not None:
                break
    return Parties(_member(patient, coverage), requesting, servicing)


def crd_parties(context: Mapping[str, Any], prefetch: Mapping[str, Any] | None) -> Parties:
    """Member and ordering provider of a CDS Hooks call: ``context.patientId`` / ``userId`` and the
    prefetched Patient, Coverage and Practitioner (or PractitionerRole) resources."""
    resources: list[Mapping[str, Any]] = []
    for value in (prefetch or {}).values():
        if not isinstance(value, Mapping):
            continue
        if value.get("resourceType") == "Bundle":
            resources += [
                e["resource"]
                for e in value.get("entry") or []
                if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
            ]
        else:
            resources.append(value)

    def resolve(reference: str | None) -> dict[str, Any] | None:
        for res in resources:
            if reference and f"{res.get('resourceType')}/{res.get('id')}" == reference:
                return dict(res)
        return None

    patient = resolve(f"Patient/{context.get('patientId')}") or next(
        (dict(r) for r in resources if r.get("resourceType") == "Patient"), None
    )
    coverage = next((dict(r) for r in resources if r.get("resourceType") == "Coverage"), None)
    user = context.get("userId")
    user_res = resolve(user if isinstance(user, str) else None) or next(
        (dict(r) for r in resources if r.get("resourceType") in ("Practitioner", "PractitionerRole")), None
    )
    return Parties(_member(patient, coverage), _provider(user_res, resolve), None)


def _attachment(att: Mapping[str, Any], path: str, fallback_title: str) -> AttachedDocument | None:
    data = att.get("data")
    if not isinstance(data, str) or not data:
        return None  # a URL only: we do not fetch it
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise DocumentInputError(f"{path}.data", "an attachment's data must be base64") from None
    title = att.get("title") if isinstance(att.get("title"), str) else None
    return AttachedDocument(
        title=title or fallback_title,
        filename=title,
        content_type=att.get("contentType") if isinstance(att.get("contentType"), str) else None,
        data=raw,
        path=path,
    )


def pas_documents(claim: Mapping[str, Any], resolve: Resolver) -> Sequence[AttachedDocument]:
    """The documents attached to a PAS Claim, in ``supportingInfo`` order."""
    out: list[AttachedDocument] = []
    for i, info in enumerate(claim.get("supportingInfo") or []):
        if not isinstance(info, Mapping):
            continue
        path = f"Claim.supportingInfo[{i}]"
        category = next(
            (
                c.get("display") or c.get("code")
                for c in (info.get("category") or {}).get("coding") or []
                if isinstance(c, Mapping)
            ),
            None,
        )
        fallback = str(category or "Supporting document")
        att = info.get("valueAttachment")
        if isinstance(att, Mapping):
            doc = _attachment(att, f"{path}.valueAttachment", fallback)
            if doc is not None:
                out.append(doc)
            continue
        ref = resolve(_ref(info.get("valueReference")))
        if ref is None or ref.get("resourceType") != "DocumentReference":
            continue
        title = ref.get("description") if isinstance(ref.get("description"), str) else None
        type_text = (ref.get("type") or {}).get("text") if isinstance(ref.get("type"), Mapping) else None
        for j, content in enumerate(ref.get("content") or []):
            if isinstance(content, Mapping) and isinstance(content.get("attachment"), Mapping):
                doc = _attachment(
                    content["attachment"],
                    f"{path}.valueReference(DocumentReference).content[{j}].attachment",
                    title or type_text or fallback,
                )
                if doc is not None:
                    out.append(doc)
    return out
