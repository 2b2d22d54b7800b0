"""A submitted QuestionnaireResponse decided (:func:`determine_questionnaire_response`), and how a
determination is written in FHIR (the :data:`DETERMINATION_EXT` extension, a one-line summary)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medpolicy import Determination, Policy, PolicySet
from medpolicy.errors import NoPolicyApplies
from medpolicy.interop import fhir_case
from medpolicy.interop.dtr.canonical import DETERMINATION_EXT, policy_for_questionnaire
from medpolicy.interop.dtr.facts import _INFORMATION_NEEDED, _decide, _facts_by_name, _outcome
from medpolicy.interop.dtr.questionnaire import build_questionnaire
from medpolicy.interop.dtr.responses import (
    _contained_questionnaire,
    _validated_response,
    check_questionnaire_response,
    questionnaire_response_to_case,
)
from medpolicy.interop.dtr.validation import _invalid, _single_resource_param, trim_codes, validate_fhir


def determination_extension(det: Determination, *, determination_id: str | None = None) -> dict[str, Any]:
    """The :data:`DETERMINATION_EXT` extension: outcome, summary, policy, version, id, missing facts."""
    data = det.to_dict()
    subs: list[dict[str, Any]] = [{"url": "outcome", "valueCode": _outcome(det)}]
    summary = _summary(det)
    if summary:
        subs.append({"url": "summary", "valueString": summary})
    for key, url in (("policy_id", "policy"), ("policy_version", "policyVersion")):
        value = data.get(key) or (data.get("policy") or {}).get("id" if key == "policy_id" else "version")
        if value:
            subs.append({"url": url, "valueString": str(value)})
    if determination_id:
        subs.append({"url": "determinationId", "valueString": determination_id})
    for m in det.missing_facts:
        subs.append({"url": "missingFact", "valueString": m.name})
    return {"url": DETERMINATION_EXT, "extension": subs}


def _summary(det: Determination) -> str:
    data = det.to_dict()
    for key in ("summary", "reason", "explanation", "message"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return _outcome(det).replace("_", " ")


def determination_summary(det: Determination) -> str:
    """One line saying the outcome and why (for notes and display items)."""
    return _summary(det)


def _display_text(det: Determination) -> str:
    outcome = _outcome(det)
    text = f"Outcome: {outcome.replace('_', ' ')}. {_summary(det)}"
    if outcome == _INFORMATION_NEEDED and det.missing_facts:
        text += " Still unknown: " + ", ".join(m.name.replace("_", " ") for m in det.missing_facts) + "."
    return text


#: linkId of the display item added to another party's adaptive Questionnaire (see next_question).
NOTE_LINK_ID = "medpolicy-note"


#: What the determination extension says when no policy of this payer governs a response.
NO_POLICY_SUMMARY = "no medical policy of this payer governs this response"


def no_policy_extension(summary: str = NO_POLICY_SUMMARY) -> dict[str, Any]:
    """The :data:`DETERMINATION_EXT` extension for a response no policy of this payer governs."""
    return {
        "url": DETERMINATION_EXT,
        "extension": [
            {"url": "outcome", "valueCode": "not_applicable"},
            {"url": "summary", "valueString": summary},
        ],
    }


@dataclass(frozen=True)
class ResponseDetermination:
    """A submitted QuestionnaireResponse, understood: its policy (``None``: not one of ours), the case
    and the determination (``None`` when no policy governs the case at all)."""

    policy: Policy | None
    case: dict[str, Any]
    determination: Determination | None
    questionnaire_response: dict[str, Any]


def _canonical_parts(canonical: str) -> tuple[str, str | None]:
    url, _, version = canonical.partition("|")
    return url.strip(), (version.strip() or None)


def _same_questionnaire(reference: str, questionnaire: Mapping[str, Any]) -> bool:
    """Can ``questionnaire`` be the one ``reference`` (``url`` or ``url|version``) names? A
    Questionnaire without ``url`` can (the caller vouches for it); otherwise url (and version, when
    both state one) must agree."""
    url, version = _canonical_parts(reference)
    q_url = questionnaire.get("url")
    if not isinstance(q_url, str) or not q_url:
        return True
    if q_url.strip() != url:
        return False
    q_version = questionnaire.get("version")
    return version is None or not isinstance(q_version, str) or q_version == version


def _response_request(body: Any) -> tuple[dict[str, Any], str, dict[str, Any] | None, str | None]:
    """(QuestionnaireResponse, its path, the Questionnaire supplied with it or None, that one's path)
    from a ``$determine`` body: a QuestionnaireResponse, or Parameters with ``questionnaire-response``
    (1..1) and ``questionnaire`` (0..1, a Questionnaire resource) parts, as SDC ``$extract`` takes."""
    if isinstance(body, Mapping) and body.get("resourceType") == "Parameters":
        qr, qr_path = _single_resource_param(body, "questionnaire-response")
        qr = _validated_response(qr, qr_path)
        found = [
            (i, p)
            for i, p in enumerate(body.get("parameter") or [])
            if isinstance(p, Mapping) and p.get("name") == "questionnaire"
        ]
        if not found:
            return qr, qr_path, None, None
        if len(found) > 1:
            raise _invalid(
                "the 'questionnaire' parameter is given more than once; at most one is allowed",
                "Parameters.parameter.where(name='questionnaire')",
                code="repeated_parameter",
            )
        i, param = found[0]
        q_path = f"Parameters.parameter[{i}].resource"
        resource = param.get("resource")
        if not isinstance(resource, Mapping):
            raise _invalid(
                "the 'questionnaire' parameter carries the Questionnaire answered, as a resource",
                f"Parameters.parameter[{i}]",
                code="invalid_parameter",
            )
        questionnaire = trim_codes(resource)
        validate_fhir(questionnaire, expected="Questionnaire", path=q_path)
        return qr, qr_path, dict(questionnaire), q_path
    return _validated_response(body, "QuestionnaireResponse"), "QuestionnaireResponse", None, None


def _decide_by_codes(
    qr: Mapping[str, Any],
    policies: PolicySet,
    context_resources: Sequence[Mapping[str, Any]] = (),
) -> tuple[Policy | None, dict[str, Any], Determination | None]:
    """A response to a questionnaire that is not ours, decided on the ICD-10-CM and CPT/HCPCS codings
    of its answers (and ``context_resources``) by the first policy governing them; no policy: the
    case and ``None``."""
    case, _ = questionnaire_response_to_case(qr, None, known_facts={})
    if context_resources:
        for key, value in fhir_case.extract_case(None, context_resources).case.items():
            case.setdefault(key, value)
    routing = fhir_case.coverage_routing(context_resources) if context_resources else {}
    try:
        pol = policies.for_order(case.get("procedure_codes", []), case.get("date_of_service"), **routing)
    except NoPolicyApplies:
        pol = None
    if pol is None:
        return None, case, None
    known = _facts_by_name(pol)
    case = {k: v for k, v in case.items() if k in known}
    return pol, case, _decide(case, policies, pol)


def determine_questionnaire_response(
    body: Any, policies: PolicySet, *, context_resources: Sequence[Mapping[str, Any]] = ()
) -> ResponseDetermination:
    """Validate a submitted QuestionnaireResponse, turn it into a case and decide it.

    ``body`` is the QuestionnaireResponse, or Parameters with a ``questionnaire-response`` and
    optionally the ``questionnaire`` it answers (see :func:`_response_request`). The Questionnaire
    the response is checked against (:func:`check_questionnaire_response`) is, in this order: the
    one it contains (``questionnaire`` = ``#id``; then no other may be supplied), one of ours (its
    ``questionnaire`` canonical is ours), or the supplied one (whose ``url``, when it has one, must
    be the canonical the response names: 422 ``questionnaire_mismatch`` otherwise). Without any,
    only the Questionnaire-independent rules apply.

    A response to one of our questionnaires is decided under that policy. A response to another
    payer's questionnaire is decided on the codes it carries (ICD-10-CM, CPT/HCPCS codings); when no
    policy governs them, ``determination`` is ``None``. ``context_resources`` (Conditions,
    Observations...) add facts the answers do not give (answers win).
    """
    qr, root, supplied, supplied_path = _response_request(body)
    ref = qr.get("questionnaire")
    policy: Policy | None = None
    questionnaire: Mapping[str, Any] | None = supplied
    if isinstance(ref, str) and ref.startswith("#"):
        contained, _ = _contained_questionnaire(qr, root)
        if supplied is not None:
            raise _invalid(
                f"the QuestionnaireResponse answers its contained Questionnaire {ref}; "
                "a 'questionnaire' parameter cannot name another",
                supplied_path,
                code="questionnaire_mismatch",
                value=ref,
            )
        questionnaire = contained
        for c in [contained.get("url"), *(contained.get("derivedFrom") or [])]:
            if isinstance(c, str) and (m := policy_for_questionnaire(c, policies)):
                policy = m[0]
                break
    elif isinstance(ref, str):
        if supplied is not None and not _same_questionnaire(ref, supplied):
            raise _invalid(
                f"the QuestionnaireResponse answers {ref}, not the supplied Questionnaire "
                f"{supplied.get('url')}" + (f"|{supplied['version']}" if supplied.get("version") else ""),
                f"{supplied_path}.url",
                code="questionnaire_mismatch",
                value=supplied.get("url"),
            )
        if m := policy_for_questionnaire(ref, policies):
            policy = m[0]
            questionnaire = build_questionnaire(policy, policies)  # ours is authoritative
    check_questionnaire_response(qr, root, questionnaire)
    if policy is not None:
        case, _ = questionnaire_response_to_case(qr, policy)
        if context_resources:
            for key, value in fhir_case.extract_case(None, context_resources).case.items():
                case.setdefault(key, value)
        return ResponseDetermination(policy, case, _decide(case, policies, policy), qr)
    pol, case, det = _decide_by_codes(qr, policies, context_resources)
    return ResponseDetermination(pol, case, det, qr)
