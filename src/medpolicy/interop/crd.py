"""Da Vinci CRD answers from a medpolicy determination (pure, no web framework).

The engine recommends; it never denies. A CRD ``coverage-information`` assertion is what an EHR shows a
clinician *before* a prior-authorization request exists, so it must not read as a denial either. The
mapping (documented in docs/api-cds.md, "Outcome -> coverage information"):

=========================  =============  ===============  ===========  ===========  ==========  =============
engine outcome             covered        pa-needed        doc-needed   doc-purpose  info-needed questionnaire
=========================  =============  ===============  ===========  ===========  ==========  =============
medically_necessary        covered        auth-needed [1]  clinical     withpa [2]   --          DTR form
information_needed         conditional    auth-needed [1]  clinical     withpa [2]   OTH         DTR form
investigational            conditional    auth-needed [1]  clinical     withpa [2]   OTH         DTR form
not_medically_necessary    conditional    auth-needed [1]  clinical     withpa [2]   OTH         DTR form
not_applicable             (no assertion: the policy does not govern the order's codes)
=========================  =============  ===============  ===========  ===========  ==========  =============

[1] ``auth-needed`` when the policy requires prior authorization (``Policy.prior_authorization``, which a
    deployment may override); ``no-auth`` otherwise. [2] ``withclaim`` when no prior authorization.

``investigational`` and ``not_medically_necessary`` are *conditional*, not ``not-covered``: the criteria do
not appear to be met on the data the EHR holds, and only a physician reviewer may decide against the
request (42 CFR 422.566(d) and state law). The reason and the card say so in plain words. Every
assertion carries at least one ``reason`` with text, which satisfies crd-ci-q6..q8 at once.

Invariants (CRD 2.0.1 crd-ci-q1..q5 and CRD 2.2 crd-ci-q1..q9) are satisfied by construction and checked
by the tests with fhirpathpy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CARD_TYPE_SYSTEM_2_0",
    "CARD_TYPE_SYSTEM_2_2",
    "COVERAGE_INFO_URL",
    "CPT_SYSTEM",
    "CoverageAssertion",
    "assertion_for",
    "coverage_information_extension",
    "information_card",
    "system_action",
    "with_coverage_information",
]

COVERAGE_INFO_URL = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-coverage-information"
CARD_TYPE_SYSTEM_2_0 = "http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp"
CARD_TYPE_SYSTEM_2_2 = "http://terminology.hl7.org/CodeSystem/cdshooks-card-type"
CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"

Covered = Literal["covered", "not-covered", "conditional"]
PaNeeded = Literal["no-auth", "auth-needed", "satisfied", "performpa", "conditional"]

_REVIEW_OUTCOMES = frozenset({"investigational", "not_medically_necessary"})


@dataclass(frozen=True)
class CoverageAssertion:
    """The content of one coverage-information extension, before ids and dates are attached."""

    outcome: str
    covered: Covered
    pa_needed: PaNeeded | None
    doc_needed: str | None
    doc_purpose: tuple[str, ...]
    info_needed: tuple[str, ...]
    reasons: tuple[str, ...]
    questionnaires: tuple[str, ...]
    billing_codes: tuple[str, ...]

    @property
    def needs_review(self) -> bool:
        """A physician must review before any adverse decision (the engine recommended against)."""
        return self.outcome in _REVIEW_OUTCOMES


def assertion_for(
    outcome: str,
    *,
    prior_authorization: bool,
    billing_codes: Sequence[str],
    reason: str,
    questionnaire_url: str | None,
) -> CoverageAssertion | None:
    """The CRD assertion for an engine outcome (``None`` for ``not_applicable``: nothing to assert).

    Args:
        outcome: the :class:`medpolicy.Outcome` value (a string).
        prior_authorization: whether the plan requires prior authorization for the service.
        billing_codes: CPT/HCPCS codes of the order that the policy governs (the codes to bill).
        reason: the reason in plain words (no patient data beyond what the clinician entered).
        questionnaire_url: canonical URL of the DTR questionnaire for the policy.
    """
    if outcome == "not_applicable":
        return None
    pa: PaNeeded = "auth-needed" if prior_authorization else "no-auth"
    purpose = ("withpa",) if prior_authorization else ("withclaim",)
    questionnaires = (questionnaire_url,) if questionnaire_url else ()
    if outcome == "medically_necessary":
        return CoverageAssertion(
            outcome=outcome,
            covered="covered",
            pa_needed=pa,
            doc_needed="clinical",
            doc_purpose=purpose,
            info_needed=(),
            reasons=(reason,),
            questionnaires=questionnaires,
            billing_codes=tuple(billing_codes),
        )
    if outcome in _REVIEW_OUTCOMES or outcome == "information_needed":
        return CoverageAssertion(
            outcome=outcome,
            covered="conditional",
            pa_needed=pa,
            doc_needed="clinical",
            doc_purpose=purpose,
            info_needed=("OTH",),
            reasons=(reason,),
            questionnaires=questionnaires,
            billing_codes=tuple(billing_codes),
        )
    raise ValueError(f"unknown outcome {outcome!r}")


def coverage_information_extension(
    assertion: CoverageAssertion,
    *,
    coverage_reference: str,
    assertion_id: str,
    assertion_date: str,
    contact_url: str | None = None,
) -> dict[str, Any]:
    """The ``ext-coverage-information`` extension (valid for CRD 2.0.1 and 2.2).

    Sub-extensions are emitted in the profile's order: coverage, covered, pa-needed, doc-needed,
    doc-purpose, info-needed, billingCode, reason, questionnaire, date, coverage-assertion-id, contact.
    """
    subs: list[dict[str, Any]] = [
        {"url": "coverage", "valueReference": {"reference": coverage_reference}},
        {"url": "covered", "valueCode": assertion.covered},
    ]
    if assertion.pa_needed is not None:
        subs.append({"url": "pa-needed", "valueCode": assertion.pa_needed})
    if assertion.doc_needed is not None:
        subs.append({"url": "doc-needed", "valueCode": assertion.doc_needed})
    subs.extend({"url": "doc-purpose", "valueCode": p} for p in assertion.doc_purpose)
    subs.extend({"url": "info-needed", "valueCode": i} for i in assertion.info_needed)
    subs.extend(
        {"url": "billingCode", "valueCoding": {"system": CPT_SYSTEM, "code": c}}
        for c in assertion.billing_codes
    )
    subs.extend({"url": "reason", "valueCodeableConcept": {"text": r}} for r in assertion.reasons)
    if assertion.doc_needed is not None:  # crd-ci-q1: a questionnaire only with doc-needed
        subs.extend({"url": "questionnaire", "valueCanonical": q} for q in assertion.questionnaires)
    subs.append({"url": "date", "valueDate": assertion_date})
    subs.append({"url": "coverage-assertion-id", "valueString": assertion_id})
    if contact_url:
        subs.append({"url": "contact", "valueContactPoint": {"system": "url", "value": contact_url}})
    return {"url": COVERAGE_INFO_URL, "extension": subs}


def with_coverage_information(
    resource: Mapping[str, Any], extensions: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """A copy of ``resource`` whose coverage-information extensions are replaced by ``extensions``.

    Other extensions of the resource are kept as they were (a CRD ``update`` replaces the draft order).
    The copy is shallow: its other members are the resource's own objects (nothing here changes
    them; a caller that wants to edit the result copies it first). A deep copy took 17 µs for a
    small order (274 bytes of JSON) on each order-sign answer, more for a real one.
    """
    out = dict(resource)
    kept = [
        e
        for e in out.get("extension") or []
        if not (isinstance(e, Mapping) and e.get("url") == COVERAGE_INFO_URL)
    ]
    out["extension"] = [*kept, *(dict(e) for e in extensions)]
    return out


def system_action(resource: Mapping[str, Any], description: str) -> dict[str, Any]:
    """A CDS Hooks ``update`` action carrying ``resource``."""
    return {"type": "update", "description": description, "resource": dict(resource)}


_SUMMARIES = {
    "medically_necessary": "{title}: criteria met; prior authorization required",
    "medically_necessary/no-auth": "{title}: criteria met; covered",
    "information_needed": "{title}: more information needed to apply the policy",
    "investigational": "{title}: criteria not shown to be met; physician review required",
    "not_medically_necessary": "{title}: criteria not shown to be met; physician review required",
}


def information_card(
    assertion: CoverageAssertion,
    *,
    card_uuid: str,
    policy_title: str,
    policy_url: str,
    source_label: str,
    crd_version: str,
    order_reference: str | None,
) -> dict[str, Any]:
    """The information card: the policy's name, the reason in plain words and a link to the policy.

    ``summary`` is kept under 140 characters (CDS Hooks). The topic uses the CRD temporary code system
    for CRD 2.0.1 requests and the CDS Hooks card-type code system for CRD 2.1 and later.
    """
    key = assertion.outcome
    if key == "medically_necessary" and assertion.pa_needed == "no-auth":
        key = "medically_necessary/no-auth"
    title = policy_title if len(policy_title) <= 70 else policy_title[:67] + "..."
    summary = _SUMMARIES[key].format(title=title)[:139]
    system = CARD_TYPE_SYSTEM_2_0 if crd_version.startswith("2.0") else CARD_TYPE_SYSTEM_2_2
    lines = [*assertion.reasons]
    if assertion.needs_review:
        lines.append(
            "This is not a denial. Only a physician reviewer can decide against this request; "
            "submit it for prior authorization with the clinical documentation."
        )
    elif assertion.outcome == "information_needed":
        lines.append("Complete the documentation questionnaire so the policy can be applied.")
    if assertion.billing_codes:
        lines.append("Billing codes: " + ", ".join(assertion.billing_codes) + ".")
    card: dict[str, Any] = {
        "uuid": card_uuid,
        "summary": summary,
        "detail": "\n\n".join(lines),
        "indicator": "warning" if assertion.needs_review else "info",
        "source": {
            "label": source_label,
            "url": policy_url,
            "topic": {"system": system, "code": "coverage-info", "display": "Coverage Information"},
        },
        "links": [{"label": f"Medical policy: {title}", "url": policy_url, "type": "absolute"}],
    }
    if order_reference and not crd_version.startswith("2.0"):
        card["extension"] = {"davinci-crd.associated-resource": [{"reference": order_reference}]}
    return card
