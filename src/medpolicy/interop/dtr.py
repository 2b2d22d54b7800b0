"""Da Vinci DTR (Documentation Templates and Rules, STU 2.0.1) <-> medpolicy (pure, no web framework).

What this module does:

* **Questionnaires from the policy.** :func:`build_questionnaire` turns a policy's declared facts
  (``Policy.facts``) into a FHIR R4 ``Questionnaire`` (profile ``dtr-std-questionnaire``): one item per
  fact the policy can ask about, ``linkId`` = fact name. Each item carries ``enableWhen`` conditions
  computed *from the engine*, not hand-written: for every fact ``G`` with a finite set of answers (an
  enum, a boolean) and every answer ``v``, :func:`medpolicy.decide` is asked which facts are still
  missing once ``G = v`` is known. A fact that is never missing under ``G = v`` cannot change the
  outcome then, so its item is enabled only for the answers of ``G`` under which it still matters.
  Nothing about IORT is hard-coded; the same generator works for any policy.
* **$questionnaire-package** (:func:`questionnaire_package`): DTR input Parameters (coverage, order(s),
  questionnaire canonicals, context) -> output Parameters with one ``PackageBundle`` per policy that
  governs an order (Questionnaire first, then a draft QuestionnaireResponse pre-populated from the
  order, with ``qr-context`` extensions naming the Coverage and the order). Orders no policy governs,
  and canonicals this payer does not serve, give warnings in the ``outcome`` parameter.
* **$next-question** (:func:`next_question`, SDC adaptive forms): input Parameters with a
  ``questionnaire-response`` and its contained Questionnaire. For ours, the answers so far become a
  case, the engine decides, and the next question is the first of ``Determination.missing_facts``
  not yet asked. When the outcome is definite (or every missing fact has been asked and left
  unanswered) the QuestionnaireResponse is ``completed`` and carries the determination in the
  :data:`DETERMINATION_EXT` extension (and a read-only display item states it in words). Another
  party's adaptive questionnaire has no question of ours: it is ``completed`` at once, with a note.
* **QuestionnaireResponse checks** (:func:`check_questionnaire_response`): DTR ``information-origin``
  rules, including, when the Questionnaire is known (contained, ours, or supplied with the response
  to ``$determine``), that an answer to an item it pre-populates is not ``manual``.
* **$log-questionnaire-errors** (:func:`parse_questionnaire_errors`): a DTR application reports what
  went wrong with one of our questionnaires (an OperationOutcome, no PHI); the service stores it for
  the policy analysts.
* **ValueSet/$expand** (:func:`expand_value_set`): the answers of each enum fact as a value set
  (``{CANONICAL_BASE}/ValueSet/<fact>``), filtered and paged; the DTR payer service SHALL offer it.
* **QuestionnaireResponse -> case** (:func:`questionnaire_response_to_case`): answers whose ``linkId``
  is a fact name become that fact; in a response to a questionnaire that is not ours, ICD-10-CM and
  CPT/HCPCS codings anywhere in the answers still count as diagnosis and procedure codes.

FHIR version: requests and responses are FHIR R4 (4.0.1) JSON. They are validated with the
``fhir.resources.R4B`` models (fhir.resources 8 ships no R4 package; R4B is the closest published
model set and accepts every R4 construct used here).

Errors: every problem with a request raises :class:`FhirInputError` (HTTP status, stable code, and one
:class:`Problem` per issue with a FHIRPath-like location), which the service renders as an
``OperationOutcome``. Invalid case values raise :class:`medpolicy.CaseError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from medpolicy import CaseError, Determination, FieldError, Policy, PolicySet, decide, parse_case
from medpolicy.errors import MedpolicyError, NoPolicyApplies
from medpolicy.interop import fhir_case

__all__ = [
    "CANONICAL_BASE",
    "DETERMINATION_EXT",
    "DTR_QR_PROFILE",
    "ExpandRequest",
    "FhirInputError",
    "NextQuestionResult",
    "PackageResult",
    "Problem",
    "QuestionnaireErrorReport",
    "adaptive_questionnaire_url",
    "build_adaptive_questionnaire",
    "build_questionnaire",
    "derivation_sources",
    "determination_extension",
    "enable_conditions",
    "expand_arguments",
    "expand_request",
    "expand_value_set",
    "next_question",
    "parse_questionnaire_errors",
    "parse_questionnaire_response",
    "policy_for_questionnaire",
    "questionnaire_date",
    "questionnaire_package",
    "questionnaire_response_to_case",
    "questionnaire_url",
    "relevant_facts",
    "validate_fhir",
    "value_set_url",
    "value_sets",
]

#: Base of medpolicy's canonical URLs (Questionnaires, CodeSystems, extensions). An identifier, not
#: necessarily resolvable; the service's error code system lives under the same base.
CANONICAL_BASE = "https://medpolicy.dev/fhir"
#: Extension on a QuestionnaireResponse (and $next-question output) carrying the determination.
DETERMINATION_EXT = f"{CANONICAL_BASE}/StructureDefinition/determination"

SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition"
DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition"
DTR_STD_QUESTIONNAIRE = f"{DTR}/dtr-std-questionnaire"
DTR_ADAPT_SEARCH = f"{DTR}/dtr-questionnaire-adapt-search"
DTR_ADAPT = f"{DTR}/dtr-questionnaire-adapt"
DTR_QR_PROFILE = f"{DTR}/dtr-questionnaireresponse"
DTR_PACKAGE_BUNDLE = f"{DTR}/DTR-QPackageBundle"
DTR_PACKAGE_OUTPUT = f"{DTR}/dtr-qpackage-output-parameters"
SDC_QR_ADAPT = f"{SDC}/sdc-questionnaireresponse-adapt"
SDC_NEXT_QUESTION_OUT = f"{SDC}/parameters-questionnaire-next-question-out"
QR_CONTEXT_EXT = f"{DTR}/qr-context"
INFORMATION_ORIGIN_EXT = f"{DTR}/information-origin"
ADAPTIVE_EXT = f"{SDC}/sdc-questionnaire-questionnaireAdaptive"
#: SDC item extensions by which a Questionnaire pre-populates an item's answer (DTR: the client
#: SHALL evaluate them before showing the form; such answers are marked ``auto``, or ``override``
#: once a user changes them). ``candidateExpression`` only offers answers to choose from: not here.
PREPOPULATION_EXTS: Mapping[str, str] = {
    f"{SDC}/sdc-questionnaire-initialExpression": "initialExpression",
    f"{SDC}/sdc-questionnaire-calculatedExpression": "calculatedExpression",
}
UNIT_EXT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"
MIN_VALUE_EXT = "http://hl7.org/fhir/StructureDefinition/minValue"
UCUM = "http://unitsofmeasure.org"

#: Order resource types DTR allows in $questionnaire-package (dtr-qpackage-input-parameters).
PACKAGE_ORDER_TYPES = frozenset(
    {
        "Appointment",
        "Encounter",
        "CommunicationRequest",
        "DeviceRequest",
        "ImmunizationRecommendation",
        "MedicationRequest",
        "NutritionOrder",
        "ServiceRequest",
        "SupplyRequest",
        "VisionPrescription",
        "Claim",
    }
)
_ORIGIN_CODES = frozenset({"auto", "manual", "override"})
_QR_STATUSES = frozenset({"in-progress", "completed", "amended", "entered-in-error", "stopped"})
#: Outcomes after which no answer can change anything (the adaptive form is complete).
_INFORMATION_NEEDED = "information_needed"


# --------------------------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class Problem:
    """One issue with a request: stable ``code``, FHIRPath-like ``field``, the ``value``, a ``message``."""

    code: str
    field: str | None
    message: str
    value: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "value": self.value, "message": self.message}


class FhirInputError(MedpolicyError):
    """A FHIR request that cannot be processed. ``status`` is the HTTP status (400, 404 or 422)."""

    def __init__(self, status: int, code: str, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.problems: list[Problem] = list(problems) or [Problem(code, None, message)]


def _invalid(
    message: str, field: str | None, *, code: str = "invalid_resource", value: Any = None
) -> FhirInputError:
    return FhirInputError(422, code, message, [Problem(code, field, message, value)])


def _loc_path(root: str, loc: Sequence[Any]) -> str:
    path = root
    for part in loc:
        path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}"
    return path


def validate_fhir(
    resource: Any, *, expected: str | Iterable[str] | None = None, path: str | None = None
) -> None:
    """Validate ``resource`` (FHIR JSON) against the ``fhir.resources.R4B`` model of its type.

    Raises :class:`FhirInputError` (422, ``invalid_resource``) naming every invalid element, or
    (``wrong_resource_type``) when it is not a resource or not of an ``expected`` type.
    """
    from fhir.resources.R4B import get_fhir_model_class

    where = path or "resource"
    if not isinstance(resource, Mapping) or not isinstance(resource.get("resourceType"), str):
        raise _invalid(f"{where} is not a FHIR resource (no resourceType)", where, code="not_a_resource")
    rtype = resource["resourceType"]
    if expected is not None:
        allowed = {expected} if isinstance(expected, str) else set(expected)
        if rtype not in allowed:
            wanted = " or ".join(sorted(allowed))
            raise _invalid(
                f"{where} must be a {wanted}, not a {rtype}", where, code="wrong_resource_type", value=rtype
            )
    try:
        model = get_fhir_model_class(rtype)
    except (KeyError, ValueError) as exc:
        raise _invalid(
            f"{where}: unknown resource type {rtype!r}", where, code="unknown_resource_type"
        ) from exc
    try:
        model.model_validate(dict(resource))
    except ValidationError as exc:
        root = path or rtype
        problems = [
            Problem(
                "invalid_resource",
                _loc_path(root, err.get("loc", ())),
                str(err.get("msg", "invalid")).lower(),
                None if err.get("type") == "missing" else _short(err.get("input")),
            )
            for err in exc.errors()
        ]
        count = len(problems)
        message = problems[0].message if count == 1 else f"{count} elements of the {rtype} are invalid"
        if count == 1 and problems[0].field:
            message = f"{problems[0].field}: {message}"
        raise FhirInputError(422, "invalid_resource", message, problems) from None


def _short(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return None


def trim_codes(value: Any) -> Any:
    """A copy of FHIR JSON with leading/trailing white space removed from every ``code`` string.

    Lenient on purpose: the DTR kit's conformant QuestionnaireResponse codes a diagnosis as ``" G30.0"``.
    """
    if isinstance(value, Mapping):
        return {
            k: (v.strip() if k == "code" and isinstance(v, str) else trim_codes(v)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [trim_codes(v) for v in value]
    return value


# ------------------------------------------------------------------------------------- canonical URLs


def questionnaire_url(policy: Policy) -> str:
    """Canonical URL of the policy's (static) DTR Questionnaire. Version: :func:`policy_version`."""
    return f"{CANONICAL_BASE}/Questionnaire/{policy.id}"


def adaptive_questionnaire_url(policy: Policy) -> str:
    """Canonical URL of the policy's adaptive ($next-question) Questionnaire."""
    return f"{CANONICAL_BASE}/Questionnaire/{policy.id}-adaptive"


def fact_code_system(fact_name: str) -> str:
    """Code system of the answers of an enum fact (codes are the fact's values)."""
    return f"{CANONICAL_BASE}/CodeSystem/{fact_name.replace('_', '-')}"


def policy_version(policy: Policy, as_of: date | None = None) -> str | None:
    """Version id of the policy in force on ``as_of`` (today), or ``None`` before its first version."""
    version = policy.version_for(as_of or datetime.now(UTC).date())
    return None if version is None else str(version.id)


def policy_for_questionnaire(canonical: str, policies: PolicySet) -> tuple[Policy, bool] | None:
    """The policy whose questionnaire ``canonical`` (``url`` or ``url|version``) names, and whether it
    is the adaptive one; ``None`` when this payer serves no such questionnaire."""
    url = canonical.split("|", 1)[0].strip()
    for policy in _policies(policies):
        if url == questionnaire_url(policy):
            return policy, False
        if url == adaptive_questionnaire_url(policy):
            return policy, True
    return None


def _policies(policies: PolicySet) -> list[Policy]:
    return list(policies)


# ------------------------------------------------------------------------------------- fact helpers


def _fact_options(fact: Any) -> list[tuple[str, str]]:
    """(code, display) of each allowed value of an enum (or valued staging) fact."""
    values = getattr(fact, "values", None) or ()
    labels = getattr(fact, "labels", None) or {}
    return [(str(v), str(labels.get(v) or v)) for v in values]


def _finite_answers(fact: Any) -> list[Any]:
    """Answers to enumerate when computing enableWhen: enum values, or True/False."""
    if fact.type == "boolean":
        return [True, False]
    if fact.type == "enum":
        return [code for code, _ in _fact_options(fact)]
    return []


def _facts_by_name(policy: Policy) -> dict[str, Any]:
    return {f.name: f for f in policy.facts}


def _missing_names(det: Determination) -> list[str]:
    return [m.name for m in det.missing_facts]


def _outcome(det: Determination) -> str:
    return str(getattr(det.outcome, "value", det.outcome))


def _decide(case: Mapping[str, Any], policies: PolicySet, policy: Policy) -> Determination:
    return decide(dict(case), policies, policy_id=policy.id)


# ---------------------------------------------------------------------------- relevance / enableWhen


def _base_case(as_of: date) -> dict[str, Any]:
    return {"date_of_service": as_of.isoformat()}


def derivation_sources(policy: Policy) -> dict[str, str]:
    """Facts that stand in for another (``derive.from``): source fact -> the fact derived from it.

    The engine asks for the derived fact (the tumour site, the margin status); the questionnaire
    also offers its source (the diagnosis codes, the margin distance) as another way to answer it.
    """
    out: dict[str, str] = {}
    for fact in policy.facts:
        derive = getattr(fact, "derive", None)
        source = getattr(derive, "source", None) if derive is not None else None
        if isinstance(source, str):
            out.setdefault(source, fact.name)
    return out


def relevant_facts(policy: Policy, policies: PolicySet, *, as_of: date | None = None) -> list[Any]:
    """The facts the questionnaire asks, in the policy's order: every fact the engine reports as able
    to change the outcome under the version in force when nothing else is known, the facts those
    can be derived from, and ``date_of_service`` when declared."""
    when = as_of or datetime.now(UTC).date()
    missing = set(_missing_names(_decide(_base_case(when), policies, policy)))
    sources = {s for s, derived in derivation_sources(policy).items() if derived in missing}
    return [f for f in policy.facts if f.name in missing | sources or f.name == "date_of_service"]


@dataclass(frozen=True, slots=True)
class EnableCondition:
    """``fact`` matters only when ``controller`` is unanswered or has one of ``answers``."""

    fact: str
    controller: str
    answers: tuple[Any, ...]


#: (id of the PolicySet, policy id, date) -> (the Policy object, conditions); the object is compared on
#: reads so a recycled id never serves another policy's conditions.
_CONDITIONS_CACHE: dict[tuple[int, str, str], tuple[Policy, dict[str, list[EnableCondition]]]] = {}


def enable_conditions(
    policy: Policy, policies: PolicySet, *, as_of: date | None = None
) -> dict[str, list[EnableCondition]]:
    """For each fact, the conditions under which it can still change the outcome, asked of the engine.

    For every fact ``G`` with finitely many answers and every answer ``v``: decide the case
    ``{date_of_service, G: v}`` and read ``missing_facts``. If fact ``F`` is missing for some answers
    of ``G`` but not for all, ``F`` gets the condition "``G`` in those answers". (A fact missing for
    none of ``G``'s answers matters only while ``G`` is unknown: condition with no answers.) Only
    questions asked earlier control later ones, so an answered question never disappears. A fact
    the engine never asks for itself but derives another from (diagnosis codes -> tumour site) takes
    the conditions of the fact it stands in for.
    """
    when = as_of or datetime.now(UTC).date()
    key = (id(policies), policy.id, when.isoformat())
    cached = _CONDITIONS_CACHE.get(key)
    if cached is not None and cached[0] is policy:
        return {k: list(v) for k, v in cached[1].items()}
    base = _base_case(when)
    asked = relevant_facts(policy, policies, as_of=when)
    names = [f.name for f in asked]
    missing_at_start = set(_missing_names(_decide(base, policies, policy)))
    result: dict[str, list[EnableCondition]] = {n: [] for n in names}
    for controller in asked:
        answers = _finite_answers(controller)
        if not answers or controller.name not in missing_at_start:
            continue
        missing_by_answer: dict[Any, set[str]] = {}
        for answer in answers:
            case = dict(base)
            case[controller.name] = [answer] if getattr(controller, "multiple", False) else answer
            try:
                det = _decide(case, policies, policy)
            except CaseError:
                continue
            missing_by_answer[answer] = set(_missing_names(det))
        if not missing_by_answer:
            continue
        for name in names[names.index(controller.name) + 1 :]:
            if name == "date_of_service" or name not in missing_at_start:
                continue
            enabled = tuple(a for a in missing_by_answer if name in missing_by_answer[a])
            if len(enabled) < len(missing_by_answer):
                result[name].append(EnableCondition(name, controller.name, enabled))
    for source, derived in derivation_sources(policy).items():
        if source in result and source not in missing_at_start and derived in result:
            result[source] = [
                EnableCondition(source, c.controller, c.answers)
                for c in result[derived]
                if c.controller != source
            ]
    if len(_CONDITIONS_CACHE) > 64:
        _CONDITIONS_CACHE.clear()
    _CONDITIONS_CACHE[key] = (policy, {k: list(v) for k, v in result.items()})
    return result


def _answer_element(fact: Any, answer: Any) -> dict[str, Any]:
    if fact.type == "boolean":
        return {"answerBoolean": bool(answer)}
    return {"answerCoding": {"system": fact_code_system(fact.name), "code": str(answer)}}


def _enable_when(facts: Mapping[str, Any], conditions: Sequence[EnableCondition]) -> dict[str, Any]:
    """enableWhen + enableBehavior for an item (empty when it is always enabled).

    ``!=`` for each answer of a controlling question under which the item cannot matter, all of
    them required (``enableBehavior: all``). ``!=`` is true while the controlling question is
    unanswered (R4: "true if no answer has a value equal to the enableWhen answer"), so the item is
    shown until an answer makes it moot; a fact that matters only while its controller is unknown
    gets ``exists = false``.
    """
    entries: list[dict[str, Any]] = []
    for cond in conditions:
        ctrl = facts[cond.controller]
        if not cond.answers:
            entries.append({"question": cond.controller, "operator": "exists", "answerBoolean": False})
            continue
        for answer in _finite_answers(ctrl):
            if answer not in cond.answers:
                entries.append(
                    {"question": cond.controller, "operator": "!=", **_answer_element(ctrl, answer)}
                )
    if not entries:
        return {}
    out: dict[str, Any] = {"enableWhen": entries}
    if len(entries) > 1:
        out["enableBehavior"] = "all"
    return out


# ------------------------------------------------------------------------------------ questionnaires


def question_item(fact: Any) -> dict[str, Any]:
    """The Questionnaire item asking ``fact`` (no enableWhen)."""
    item: dict[str, Any] = {"linkId": fact.name, "text": fact.question or fact.name.replace("_", " ")}
    multiple = bool(getattr(fact, "multiple", False))
    ftype = fact.type
    if ftype == "enum":
        item["type"] = "choice"
        item["answerOption"] = [
            {"valueCoding": {"system": fact_code_system(fact.name), "code": code, "display": label}}
            for code, label in _fact_options(fact)
        ]
    elif ftype == "boolean":
        item["type"] = "boolean"
    elif ftype == "number":
        item["type"] = "decimal"
        unit = getattr(fact, "unit", None)
        if unit:
            item["extension"] = [
                {"url": UNIT_EXT, "valueCoding": {"system": UCUM, "code": unit, "display": unit}}
            ]
        minimum = getattr(fact, "minimum", None)
        if isinstance(minimum, int | float):
            item.setdefault("extension", []).append({"url": MIN_VALUE_EXT, "valueDecimal": minimum})
    elif ftype == "date":
        item["type"] = "date"
    elif ftype == "staging" and _fact_options(fact):
        item["type"] = "open-choice"
        item["answerOption"] = [{"valueString": code} for code, _ in _fact_options(fact)]
    else:  # codes, staging: free text, one code or category per answer
        item["type"] = "string"
    item["required"] = False
    if multiple:
        item["repeats"] = True
    return item


def _narrative(title: str, lines: Iterable[str]) -> dict[str, Any]:
    from html import escape

    body = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return {
        "status": "generated",
        "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><p>{escape(title)}</p><ul>{body}</ul></div>',
    }


def questionnaire_date(policy: Policy, as_of: date) -> date:
    """When the questionnaire last changed: the later of the policy's last update and the start of
    the version in force (the questions are derived from both)."""
    version = policy.version_for(as_of)
    dates = [
        d for d in (getattr(policy, "last_updated", None), getattr(version, "effective_from", None)) if d
    ]
    return max(dates) if dates else as_of


def _computable_name(policy: Policy) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", policy.id) if part) or "Policy"


def _questionnaire_header(policy: Policy, *, adaptive: bool, as_of: date) -> dict[str, Any]:
    version = policy_version(policy, as_of)
    title = str(getattr(policy, "title", None) or policy.id)
    q: dict[str, Any] = {
        "resourceType": "Questionnaire",
        "id": f"{policy.id}-adaptive" if adaptive else policy.id,
        "meta": {"profile": [DTR_ADAPT_SEARCH if adaptive else DTR_STD_QUESTIONNAIRE]},
        "url": adaptive_questionnaire_url(policy) if adaptive else questionnaire_url(policy),
    }
    if version:
        q["version"] = version
    q.update(
        {
            "name": _computable_name(policy) + ("Adaptive" if adaptive else ""),
            "title": f"{title}: documentation for prior authorization" + (" (adaptive)" if adaptive else ""),
            "status": "active",
            "subjectType": ["Patient"],
            "date": questionnaire_date(policy, as_of).isoformat(),
            "publisher": "medpolicy",
        }
    )
    publisher = getattr(policy, "publisher", None)
    if publisher:
        q["description"] = f"Asks only the facts the medical policy of {publisher} needs to decide."
    return q


def build_questionnaire(policy: Policy, policies: PolicySet, *, as_of: date | None = None) -> dict[str, Any]:
    """The policy's DTR standard Questionnaire (R4 JSON), with engine-derived ``enableWhen``."""
    when = as_of or datetime.now(UTC).date()
    facts = relevant_facts(policy, policies, as_of=when)
    by_name = {f.name: f for f in facts}
    conditions = enable_conditions(policy, policies, as_of=when)
    q = _questionnaire_header(policy, adaptive=False, as_of=when)
    q["text"] = _narrative(q["title"], [f.question or f.name for f in facts])
    items = []
    for fact in facts:
        item = question_item(fact)
        item.update(_enable_when(by_name, conditions.get(fact.name, [])))
        items.append(item)
    q["item"] = items
    return q


def build_adaptive_questionnaire(policy: Policy, *, as_of: date | None = None) -> dict[str, Any]:
    """The policy's adaptive Questionnaire (``dtr-questionnaire-adapt-search``): no items; the questions
    come one at a time from ``$next-question``."""
    when = as_of or datetime.now(UTC).date()
    q = _questionnaire_header(policy, adaptive=True, as_of=when)
    q["extension"] = [{"url": ADAPTIVE_EXT, "valueBoolean": True}]
    q["text"] = _narrative(q["title"], ["Questions are asked one at a time with $next-question."])
    return q


# ------------------------------------------------------------------------------ answers -> case facts


def _answer_values(item: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """(value[x] key, value) of each answer of a QuestionnaireResponse item."""
    out: list[tuple[str, Any]] = []
    for answer in item.get("answer") or []:
        if not isinstance(answer, Mapping):
            continue
        for key, value in answer.items():
            if key.startswith("value"):
                out.append((key, value))
    return out


def _convert(fact: Any, key: str, value: Any) -> Any:
    """One answer as the fact's raw case value; raises ValueError when the answer type does not fit."""
    ftype = fact.type
    if key == "valueCoding" and isinstance(value, Mapping):
        value, key = value.get("code"), "valueString"
    if key == "valueQuantity" and isinstance(value, Mapping):
        value, key = value.get("value"), "valueDecimal"
    if ftype == "boolean":
        if key == "valueBoolean" and isinstance(value, bool):
            return value
        raise ValueError("a yes/no answer (valueBoolean) is expected")
    if ftype == "number":
        if (
            key in ("valueDecimal", "valueInteger")
            and isinstance(value, int | float)
            and not isinstance(value, bool)
        ):
            return value
        raise ValueError("a number (valueDecimal) is expected")
    if ftype == "date":
        if key in ("valueDate", "valueDateTime", "valueString") and isinstance(value, str):
            return value[:10]
        raise ValueError("a date (valueDate) is expected")
    if key == "valueString" and isinstance(value, str):
        return value.strip()
    raise ValueError(f"a coded or text answer is expected, not {key}")


@dataclass
class _CaseBuilder:
    facts: Mapping[str, Any]
    case: dict[str, Any] = field(default_factory=dict)
    errors: list[FieldError] = field(default_factory=list)
    procedure_codes: list[str] = field(default_factory=list)
    diagnosis_codes: list[str] = field(default_factory=list)
    answered: list[str] = field(default_factory=list)

    def add_item(self, item: Mapping[str, Any], path: str) -> None:
        link = str(item.get("linkId", ""))
        fact = self.facts.get(link)
        values = _answer_values(item)
        if fact is not None and values:
            converted: list[Any] = []
            for key, value in values:
                try:
                    converted.append(_convert(fact, key, value))
                except ValueError as exc:
                    self.errors.append(
                        FieldError("invalid_type", fact.name, _short(value), f"{path} (linkId {link}): {exc}")
                    )
            if fact.type == "codes":
                codes = [
                    c.strip() for v in converted if isinstance(v, str) for c in v.split(",") if c.strip()
                ]
                if codes:
                    self.case[fact.name] = codes
            elif getattr(fact, "multiple", False):
                self.case[fact.name] = converted
            elif len(converted) == 1:
                self.case[fact.name] = converted[0]
            elif len(converted) > 1:
                self.errors.append(
                    FieldError(
                        "invalid_type", fact.name, None, f"{path} (linkId {link}): only one answer is allowed"
                    )
                )
            self.answered.append(fact.name)
        elif fact is None:
            for key, value in values:
                if key == "valueCoding" and isinstance(value, Mapping):
                    system, code = value.get("system"), value.get("code")
                    if not isinstance(code, str) or not code.strip():
                        continue
                    if system in fhir_case.ICD10CM_SYSTEMS:
                        self.diagnosis_codes.append(code.strip())
                    elif system in fhir_case.CPT_SYSTEMS | fhir_case.HCPCS_SYSTEMS:
                        self.procedure_codes.append(code.strip())
        for i, child in enumerate(item.get("item") or []):
            if isinstance(child, Mapping):
                self.add_item(child, f"{path}.item[{i}]")
        for a, answer in enumerate(item.get("answer") or []):
            if isinstance(answer, Mapping):
                for i, child in enumerate(answer.get("item") or []):
                    if isinstance(child, Mapping):
                        self.add_item(child, f"{path}.answer[{a}].item[{i}]")


def _dedupe(values: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for v in values:
        seen.setdefault(v, None)
    return list(seen)


def questionnaire_response_to_case(
    qr: Mapping[str, Any], policy: Policy | None, *, known_facts: Mapping[str, Any] | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The raw case a QuestionnaireResponse states, and the facts it answered (in order).

    ``policy`` is the policy whose questionnaire was answered (``None``: not ours). Items whose
    ``linkId`` is a fact name become that fact (of ``policy``, else of ``known_facts``); in items that
    are not facts, ICD-10-CM and CPT/HCPCS codings count as diagnosis and procedure codes. Raises
    :class:`medpolicy.CaseError` when an answer has the wrong type for its fact.
    """
    facts = _facts_by_name(policy) if policy is not None else dict(known_facts or {})
    builder = _CaseBuilder(facts)
    for i, item in enumerate(qr.get("item") or []):
        if isinstance(item, Mapping):
            builder.add_item(item, f"QuestionnaireResponse.item[{i}]")
    if builder.errors:
        raise CaseError(builder.errors)
    case = builder.case
    if builder.procedure_codes and "procedure_codes" not in case:
        case["procedure_codes"] = _dedupe(builder.procedure_codes)
    if builder.diagnosis_codes and "diagnosis_codes" not in case:
        case["diagnosis_codes"] = _dedupe(builder.diagnosis_codes)
    return case, _dedupe(builder.answered)


def _all_facts(policies: PolicySet) -> dict[str, Any]:
    facts: dict[str, Any] = {}
    for policy in _policies(policies):
        for f in policy.facts:
            facts.setdefault(f.name, f)
    return facts


# ------------------------------------------------------------------------ QuestionnaireResponse checks


def _walk_items(items: Any, path: str) -> Iterator[tuple[Mapping[str, Any], str]]:
    for i, item in enumerate(items or []):
        if not isinstance(item, Mapping):
            continue
        here = f"{path}.item[{i}]"
        yield item, here
        yield from _walk_items(item.get("item"), here)
        for a, answer in enumerate(item.get("answer") or []):
            if isinstance(answer, Mapping):
                yield from _walk_items(answer.get("item"), f"{here}.answer[{a}]")


def prepopulated_items(questionnaire: Mapping[str, Any]) -> dict[str, str]:
    """linkId -> the SDC extension (``initialExpression``, ``calculatedExpression``) by which
    ``questionnaire`` pre-populates that item, for every item (at any depth) that has one."""
    out: dict[str, str] = {}

    def visit(items: Any) -> None:
        for item in items or []:
            if not isinstance(item, Mapping):
                continue
            for ext in item.get("extension") or []:
                url = ext.get("url") if isinstance(ext, Mapping) else None
                kind = PREPOPULATION_EXTS.get(url) if isinstance(url, str) else None
                if kind and isinstance(item.get("linkId"), str):
                    out.setdefault(item["linkId"], kind)
            visit(item.get("item"))

    visit(questionnaire.get("item"))
    return out


def _origin_problems(
    link: Any, path: str, ext: Mapping[str, Any], prepopulated_by: str | None
) -> list[Problem]:
    """The DTR rules one ``information-origin`` extension of an answer breaks."""
    subs = [sub for sub in ext.get("extension") or [] if isinstance(sub, Mapping)]
    sources = [sub.get("valueCode") for sub in subs if sub.get("url") == "source"]
    has_author = any(sub.get("url") == "author" for sub in subs)
    if len(sources) != 1 or sources[0] not in _ORIGIN_CODES:
        return [
            Problem(
                "invalid_origin",
                path,
                f"item {link!r}: information-origin needs a source: auto, manual or override",
                sources[0] if sources else None,
            )
        ]
    source = sources[0]
    problems: list[Problem] = []
    if prepopulated_by is not None and source == "manual":
        problems.append(
            Problem(
                "invalid_origin",
                f"{path}.extension.where(url='source')",
                f"item {link!r} is pre-populated by its Questionnaire ({prepopulated_by}): its answer's "
                "information-origin source is 'auto' (pre-populated, unchanged) or 'override' (changed "
                "by the user), not 'manual'",
                source,
            )
        )
    if source in ("manual", "override") and not has_author:
        problems.append(
            Problem(
                "origin_author_missing",
                path,
                f"item {link!r}: information-origin source {source!r} needs an author (DTR dtrx-1)",
                source,
            )
        )
    elif source == "auto" and has_author:
        problems.append(
            Problem(
                "origin_author_not_allowed",
                path,
                f"item {link!r}: information-origin source 'auto' has no author (DTR dtrx-1)",
                source,
            )
        )
    return problems


def _raise_problems(problems: Sequence[Problem]) -> None:
    """One 422 for the QuestionnaireResponse's problems (nothing when there are none)."""
    if not problems:
        return
    codes = {p.code for p in problems}
    code = problems[0].code if len(codes) == 1 else "invalid_questionnaire_response"
    message = (
        problems[0].message
        if len(problems) == 1
        else f"{len(problems)} problems in the QuestionnaireResponse"
    )
    raise FhirInputError(422, code, message, problems)


def check_questionnaire_response(
    qr: Mapping[str, Any],
    root: str = "QuestionnaireResponse",
    questionnaire: Mapping[str, Any] | None = None,
) -> None:
    """Rules a QuestionnaireResponse must keep beyond the R4 model, as one 422 listing every breach.

    * ``status`` is a QuestionnaireResponse status code;
    * an item has an answer or child items (FHIR-25949, R5 ``qrs-3``, SDC): a question without an
      answer is left out, not sent empty;
    * each ``information-origin`` extension (DTR) has one ``source`` of ``auto``, ``manual`` or
      ``override`` (``invalid_origin``), and an ``author`` exactly when the source is ``manual`` or
      ``override`` (DTR 2.0.1 invariant dtrx-1: ``origin_author_missing``,
      ``origin_author_not_allowed``);
    * with the ``questionnaire`` answered: an answer to an item that questionnaire pre-populates
      (``sdc-questionnaire-initialExpression`` / ``calculatedExpression``) is not ``manual``
      (``invalid_origin``): DTR marks a pre-populated answer ``auto``, and ``override`` once a user
      changes it; ``manual`` is for answers entered without pre-population.

    A single breach is answered with its own code; several with ``invalid_questionnaire_response``
    (one issue each), unless they share a code.
    """
    prepopulated = prepopulated_items(questionnaire) if questionnaire is not None else {}
    problems: list[Problem] = []
    status = qr.get("status")
    if status not in _QR_STATUSES:
        problems.append(
            Problem(
                "invalid_value", f"{root}.status", f"status must be one of {sorted(_QR_STATUSES)}", status
            )
        )
    for item, path in _walk_items(qr.get("item"), root):
        link = item.get("linkId")
        if not item.get("answer") and not item.get("item"):
            problems.append(
                Problem(
                    "item_without_answer",
                    path,
                    f"item {link!r} has neither an answer nor child items; unanswered questions are omitted",
                    link,
                )
            )
        for a, answer in enumerate(item.get("answer") or []):
            if not isinstance(answer, Mapping):
                continue
            for e, ext in enumerate(answer.get("extension") or []):
                if isinstance(ext, Mapping) and ext.get("url") == INFORMATION_ORIGIN_EXT:
                    problems.extend(
                        _origin_problems(
                            link,
                            f"{path}.answer[{a}].extension[{e}]",
                            ext,
                            prepopulated.get(link) if isinstance(link, str) else None,
                        )
                    )
    _raise_problems(problems)


def parse_questionnaire_response(
    body: Any, root: str = "QuestionnaireResponse", questionnaire: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a QuestionnaireResponse (R4 model plus :func:`check_questionnaire_response`, against
    ``questionnaire`` when given); the (code-trimmed) resource. Raises :class:`FhirInputError`."""
    qr = _validated_response(body, root)
    check_questionnaire_response(qr, root, questionnaire)
    return qr


def _validated_response(body: Any, root: str) -> dict[str, Any]:
    """The code-trimmed QuestionnaireResponse, validated against the R4 model only."""
    if not isinstance(body, Mapping):
        raise FhirInputError(400, "not_a_resource", "the body must be a FHIR resource (a JSON object)")
    qr = trim_codes(body)
    validate_fhir(qr, expected="QuestionnaireResponse", path=root)
    return qr  # type: ignore[no-any-return]


def _contained_questionnaire(qr: Mapping[str, Any], root: str) -> tuple[dict[str, Any], int]:
    ref = qr.get("questionnaire")
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise _invalid(
            "an adaptive QuestionnaireResponse names its contained Questionnaire in 'questionnaire' (#id)",
            f"{root}.questionnaire",
            code="questionnaire_not_contained",
            value=ref,
        )
    for i, res in enumerate(qr.get("contained") or []):
        if (
            isinstance(res, Mapping)
            and res.get("resourceType") == "Questionnaire"
            and res.get("id") == ref[1:]
        ):
            return dict(res), i
    raise _invalid(
        f"the QuestionnaireResponse contains no Questionnaire with id {ref[1:]!r}",
        f"{root}.contained",
        code="questionnaire_not_contained",
        value=ref,
    )


def _answers_by_link(qr: Mapping[str, Any]) -> dict[str, list[tuple[str, Any]]]:
    answers: dict[str, list[tuple[str, Any]]] = {}
    for item, _ in _walk_items(qr.get("item"), "QuestionnaireResponse"):
        values = _answer_values(item)
        if values:
            answers.setdefault(str(item.get("linkId")), []).extend(values)
    return answers


def _same_answer(key: str, value: Any, ew: Mapping[str, Any]) -> bool | None:
    """Does answer (key, value) equal the enableWhen answer[x]? None when not comparable."""
    for ew_key, expected in ew.items():
        if not ew_key.startswith("answer"):
            continue
        if isinstance(expected, Mapping) and isinstance(value, Mapping):
            return bool(
                expected.get("code") == value.get("code")
                and (expected.get("system") in (None, value.get("system")) or value.get("system") is None)
            )
        if isinstance(expected, Mapping) or isinstance(value, Mapping):
            return None
        return bool(expected == value)
    return None


def _enabled(item: Mapping[str, Any], answers: Mapping[str, list[tuple[str, Any]]]) -> bool:
    """SDC enableWhen evaluation for the operators =, != and exists (others: treated as enabled)."""
    conditions = [c for c in item.get("enableWhen") or [] if isinstance(c, Mapping)]
    if not conditions:
        return True
    results: list[bool] = []
    for cond in conditions:
        given = answers.get(str(cond.get("question")), [])
        op = cond.get("operator")
        if op == "exists":
            results.append(bool(given) == bool(cond.get("answerBoolean")))
            continue
        if op not in ("=", "!="):
            return True
        matches = [_same_answer(k, v, cond) for k, v in given]
        if any(m is None for m in matches):
            return True
        hit = any(matches)
        results.append(hit if op == "=" else not hit)
    return all(results) if item.get("enableBehavior") == "all" else any(results)


def unanswered_required(questionnaire: Mapping[str, Any], qr: Mapping[str, Any], root: str) -> list[Problem]:
    """Required, enabled questions of ``questionnaire`` that ``qr`` does not answer."""
    answers = _answers_by_link(qr)
    problems: list[Problem] = []

    def visit(items: Any) -> None:
        for item in items or []:
            if not isinstance(item, Mapping) or not _enabled(item, answers):
                continue
            link = str(item.get("linkId"))
            if item.get("type") == "group":
                visit(item.get("item"))
                continue
            if item.get("type") == "display":
                continue
            if item.get("required") and not answers.get(link):
                problems.append(
                    Problem(
                        "required_answer_missing",
                        f"{root}.item.where(linkId='{link}')",
                        f"required question {link!r} ({item.get('text', '')}) has no answer",
                        link,
                    )
                )
            visit(item.get("item"))

    visit(questionnaire.get("item"))
    return problems


# ------------------------------------------------------------------------------ determination output


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


# --------------------------------------------------------------------------------- $next-question


@dataclass(frozen=True)
class NextQuestionResult:
    """Output of :func:`next_question`: the Parameters to answer, and (when complete) the case and
    determination to store."""

    parameters: dict[str, Any]
    questionnaire_response: dict[str, Any]
    #: The policy decided; ``None`` for another party's questionnaire whose answers no policy governs.
    policy: Policy | None
    case: dict[str, Any]
    #: ``None`` exactly when ``policy`` is ``None`` (nothing to store).
    determination: Determination | None
    complete: bool
    asked: str | None
    #: ``True`` when the contained Questionnaire is not one of ours (completed at once; see
    #: :func:`next_question`).
    foreign: bool = False


def _one_parameter(
    hits: Sequence[tuple[int, Mapping[str, Any]]], name: str, root: str
) -> tuple[int, Mapping[str, Any]]:
    """The one parameter ``name`` (index, parameter) among ``hits``; 422 when missing or repeated."""
    if len(hits) != 1:
        what = "is missing" if not hits else "is given more than once"
        raise _invalid(
            f"the {name!r} parameter {what}; exactly one is required",
            f"{root}.parameter.where(name='{name}')",
            code="missing_parameter" if not hits else "repeated_parameter",
        )
    return hits[0]


def _single_resource_param(params: Any, name: str, root: str = "Parameters") -> tuple[dict[str, Any], str]:
    if not isinstance(params, Mapping):
        raise FhirInputError(
            400, "not_a_resource", "the body must be a FHIR Parameters resource (a JSON object)"
        )
    params = trim_codes(params)
    validate_fhir(params, expected="Parameters", path=root)
    found = [
        (i, p)
        for i, p in enumerate(params.get("parameter") or [])
        if isinstance(p, Mapping) and p.get("name") == name
    ]
    i, param = _one_parameter(found, name, root)
    resource = param.get("resource")
    path = f"{root}.parameter[{i}].resource"
    if not isinstance(resource, Mapping):
        raise _invalid(f"the {name!r} parameter must carry a resource", path, code="missing_parameter")
    return dict(resource), path


def next_question(params: Any, policies: PolicySet) -> NextQuestionResult:
    """SDC/DTR ``Questionnaire/$next-question``.

    The QuestionnaireResponse is checked against its contained Questionnaire: the R4 model and
    :func:`check_questionnaire_response` (information-origin rules, including that an answer to an
    item the Questionnaire pre-populates is not ``manual``), then every required enabled question
    must be answered.

    A contained Questionnaire that is one of our adaptive questionnaires is administered: the next
    question is the first fact the engine still misses. Any other adaptive questionnaire (another
    party's, e.g. Inferno's dinner order) has no question this payer could ask: per SDC ("when the
    questionnaire is complete, the server updates the status") and DTR ("the final call ... echo back
    of the QuestionnaireResponse with no further questions ... set to complete") the response is
    echoed back ``completed`` at once, its contained Questionnaire gets a ``display`` item saying
    why, and the determination extension says what this payer's policies make of its answers (read
    for ICD-10-CM / CPT / HCPCS codings, as ``$determine`` does): usually ``not_applicable``.

    Raises :class:`FhirInputError`: 400/422 for a malformed request (no ``questionnaire-response``,
    an invalid QuestionnaireResponse, a required question left unanswered). Raises
    :class:`medpolicy.CaseError` when an answer is not a valid value of its fact.
    """
    qr_in, path = _single_resource_param(params, "questionnaire-response")
    qr = _validated_response(qr_in, path)
    questionnaire, q_index = _contained_questionnaire(qr, path)
    check_questionnaire_response(qr, path, questionnaire)
    missing_required = unanswered_required(questionnaire, qr, path)
    if missing_required:
        first = missing_required[0]
        message = (
            first.message
            if len(missing_required) == 1
            else f"{len(missing_required)} required questions have no answer"
        )
        raise FhirInputError(422, "required_answer_missing", message, missing_required)
    canonicals = [questionnaire.get("url"), *(questionnaire.get("derivedFrom") or [])]
    match = next(
        (m for c in canonicals if isinstance(c, str) and (m := policy_for_questionnaire(c, policies))), None
    )
    if match is None:
        return _complete_foreign(qr, questionnaire, q_index, policies)
    policy, _adaptive = match
    case, _answered = questionnaire_response_to_case(qr, policy)
    det = _decide(case, policies, policy)
    facts = _facts_by_name(policy)
    asked_links = {str(i.get("linkId")) for i, _ in _walk_items(questionnaire.get("item"), "Questionnaire")}
    next_fact: Any = None
    if _outcome(det) == _INFORMATION_NEEDED:
        for missing in det.missing_facts:
            if missing.name not in asked_links and missing.name in facts:
                next_fact = facts[missing.name]
                break
    out_q = dict(questionnaire)
    out_q.setdefault("extension", [])
    if not any(isinstance(e, Mapping) and e.get("url") == ADAPTIVE_EXT for e in out_q["extension"]):
        out_q["extension"] = [*out_q["extension"], {"url": ADAPTIVE_EXT, "valueBoolean": True}]
    out_q.setdefault("meta", {"profile": [DTR_ADAPT]})
    out_q.setdefault("status", "active")
    out_q.setdefault("text", _narrative(str(out_q.get("title") or policy.id), ["adaptive questionnaire"]))
    items = [i for i in out_q.get("item") or [] if i.get("linkId") != "determination"]
    out_qr = dict(qr)
    out_qr.setdefault("meta", {"profile": [SDC_QR_ADAPT]})
    extensions = [
        e
        for e in out_qr.get("extension") or []
        if not (isinstance(e, Mapping) and e.get("url") == DETERMINATION_EXT)
    ]
    if next_fact is not None:
        items.append(question_item(next_fact))
        out_qr["status"] = "in-progress"
        complete = False
    else:
        items.append({"linkId": "determination", "type": "display", "text": _display_text(det)})
        out_qr["status"] = "completed"
        extensions.append(determination_extension(det))
        complete = True
    out_q["item"] = items
    if extensions:
        out_qr["extension"] = extensions
    else:
        out_qr.pop("extension", None)
    parameters = _next_question_output(out_qr, out_q, q_index)
    return NextQuestionResult(
        parameters=parameters,
        questionnaire_response=out_qr,
        policy=policy,
        case=case,
        determination=det,
        complete=complete,
        asked=next_fact.name if next_fact is not None else None,
    )


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


def _all_link_ids(questionnaire: Mapping[str, Any]) -> set[str]:
    return {str(i.get("linkId")) for i, _ in _walk_items(questionnaire.get("item"), "Questionnaire")}


def _complete_foreign(
    qr: Mapping[str, Any], questionnaire: Mapping[str, Any], q_index: int, policies: PolicySet
) -> NextQuestionResult:
    """$next-question for an adaptive questionnaire that is not ours: this payer has no question to
    add, so the response is completed, with a display item and the determination extension saying
    so (or, when its codings fall under a policy, that policy's determination)."""
    name = (
        questionnaire.get("url") or (questionnaire.get("derivedFrom") or [None])[0] or questionnaire.get("id")
    )
    policy, case, det = _decide_by_codes(qr, policies)
    out_q = dict(questionnaire)
    items = [
        i
        for i in out_q.get("item") or []
        if not (isinstance(i, Mapping) and i.get("linkId") == NOTE_LINK_ID and i.get("type") == "display")
    ]
    link, n = NOTE_LINK_ID, 0
    taken = _all_link_ids({"item": items})
    while link in taken:
        n += 1
        link = f"{NOTE_LINK_ID}-{n}"
    if det is None:
        note = (
            f"This payer does not administer the adaptive questionnaire {name!r} and no medical "
            "policy of this payer needs information from it: there are no further questions."
        )
    else:
        note = (
            f"This payer does not administer the adaptive questionnaire {name!r}; its answers were "
            f"read for their codes. {_display_text(det)}"
        )
    items.append({"linkId": link, "type": "display", "text": note})
    out_q["item"] = items
    out_qr = dict(qr)
    out_qr.setdefault("meta", {"profile": [SDC_QR_ADAPT]})
    extensions = [
        e
        for e in out_qr.get("extension") or []
        if not (isinstance(e, Mapping) and e.get("url") == DETERMINATION_EXT)
    ]
    extensions.append(determination_extension(det) if det is not None else no_policy_extension(note))
    out_qr["extension"] = extensions
    out_qr["status"] = "completed"
    parameters = _next_question_output(out_qr, out_q, q_index)
    return NextQuestionResult(
        parameters=parameters,
        questionnaire_response=out_qr,
        policy=policy,
        case=case,
        determination=det,
        complete=True,
        asked=None,
        foreign=True,
    )


# ----------------------------------------------------------------------------- $questionnaire-package


@dataclass(frozen=True)
class PackageResult:
    """Output of :func:`questionnaire_package`: the Parameters to answer and the policies packaged."""

    parameters: dict[str, Any]
    policies: tuple[str, ...]
    warnings: tuple[str, ...]


def _params_by_name(params: Mapping[str, Any]) -> dict[str, list[tuple[int, Mapping[str, Any]]]]:
    by: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for i, p in enumerate(params.get("parameter") or []):
        if isinstance(p, Mapping):
            by.setdefault(str(p.get("name")), []).append((i, p))
    return by


def _next_question_output(out_qr: dict[str, Any], out_q: dict[str, Any], q_index: int) -> dict[str, Any]:
    """Put the updated Questionnaire back in the response, stamp it, and wrap it as the operation's
    output Parameters (SDC next-question out)."""
    contained = list(out_qr.get("contained") or [])
    contained[q_index] = out_q
    out_qr["contained"] = contained
    out_qr["authored"] = datetime.now(UTC).isoformat(timespec="seconds")
    return {
        "resourceType": "Parameters",
        "meta": {"profile": [SDC_NEXT_QUESTION_OUT]},
        "parameter": [{"name": "return", "resource": out_qr}],
    }


def questionnaire_package(params: Any, policies: PolicySet, *, as_of: date | None = None) -> PackageResult:
    """DTR ``Questionnaire/$questionnaire-package``.

    Input: Parameters (``dtr-qpackage-input-parameters``): ``coverage`` 1..*, and at least one of
    ``order``, ``questionnaire`` (canonical), ``context``; ``referenced`` resources help pre-populate.
    Output: Parameters with a ``PackageBundle`` per questionnaire (static or adaptive, as requested or
    as the governed orders need) and an ``outcome`` OperationOutcome carrying warnings (orders no
    policy governs, canonicals not served, an unknown ``context``).
    """
    if not isinstance(params, Mapping):
        raise FhirInputError(
            400, "not_a_resource", "the body must be a FHIR Parameters resource (a JSON object)"
        )
    params = trim_codes(params)
    validate_fhir(params, expected="Parameters", path="Parameters")
    by = _params_by_name(params)
    problems: list[Problem] = []
    coverages = by.get("coverage", [])
    if not coverages:
        problems.append(
            Problem(
                "missing_parameter",
                "Parameters.parameter.where(name='coverage')",
                "a coverage parameter (the member's Coverage) is required",
            )
        )
    for i, p in coverages:
        res = p.get("resource")
        if not isinstance(res, Mapping) or res.get("resourceType") != "Coverage":
            problems.append(
                Problem(
                    "wrong_resource_type",
                    f"Parameters.parameter[{i}].resource",
                    "the coverage parameter must carry a Coverage resource",
                )
            )
    orders = by.get("order", [])
    for i, p in orders:
        res = p.get("resource")
        if not isinstance(res, Mapping) or res.get("resourceType") not in PACKAGE_ORDER_TYPES:
            rtype = res.get("resourceType") if isinstance(res, Mapping) else None
            problems.append(
                Problem(
                    "wrong_resource_type",
                    f"Parameters.parameter[{i}].resource",
                    f"an order must be one of {sorted(PACKAGE_ORDER_TYPES)}",
                    rtype,
                )
            )
    canonicals = [(i, p.get("valueCanonical")) for i, p in by.get("questionnaire", [])]
    for i, value in canonicals:
        if not isinstance(value, str) or not value:
            problems.append(
                Problem(
                    "invalid_parameter",
                    f"Parameters.parameter[{i}].valueCanonical",
                    "a questionnaire parameter carries valueCanonical",
                )
            )
    contexts = by.get("context", [])
    if not (orders or canonicals or contexts):
        problems.append(
            Problem(
                "missing_parameter",
                "Parameters.parameter",
                "dtr-1: at least one order, questionnaire or context parameter is required",
            )
        )
    if problems:
        message = problems[0].message if len(problems) == 1 else f"{len(problems)} problems in the request"
        raise FhirInputError(
            422, problems[0].code if len(problems) == 1 else "invalid_parameters", message, problems
        )

    when = as_of or datetime.now(UTC).date()
    warnings: list[str] = []
    wanted: dict[str, tuple[Policy, bool]] = {}
    for _i, canonical in canonicals:
        assert isinstance(canonical, str)
        match = policy_for_questionnaire(canonical, policies)
        if match is None:
            warnings.append(f"questionnaire {canonical} is not served by this payer")
        else:
            key = (adaptive_questionnaire_url if match[1] else questionnaire_url)(match[0])
            wanted[key] = match
    referenced = fhir_case.flatten_resources(
        p.get("resource") for _i, p in by.get("referenced", []) if isinstance(p.get("resource"), Mapping)
    )
    order_resources = [dict(p["resource"]) for _i, p in orders]
    # The plan's routing: the member's Coverage (line of business, group) picks among the policies.
    routing = fhir_case.coverage_routing([dict(c[1]["resource"]) for c in coverages[:1]])
    for order in order_resources:
        codes = fhir_case.order_codes(order)
        dos = fhir_case.order_date(order)
        try:
            routed = policies.for_order(codes, dos, **routing)
        except NoPolicyApplies as exc:
            warnings.append(f"{fhir_case.reference_of(order)}: {exc}")
            continue
        governing = [routed] if routed is not None else []
        if not governing:
            label = fhir_case.reference_of(order)
            warnings.append(
                f"{label}: no medical policy of this payer governs "
                + (", ".join(codes) if codes else "this order (it names no CPT/HCPCS code)")
                + "; no documentation is required"
            )
        for pol in governing:
            if not any(m[0].id == pol.id for m in wanted.values()):
                wanted[questionnaire_url(pol)] = (pol, False)
    for _i, p in contexts:
        warnings.append(
            f"context {p.get('valueString')!r} is not known to this payer; orders decide the questionnaires"
        )

    coverage = dict(coverages[0][1]["resource"])
    bundles: list[dict[str, Any]] = []
    since = _changed_since(by)
    for policy, adaptive in wanted.values():
        if since is not None and questionnaire_date(policy, when) < since:
            continue  # unchanged since the client's copy
        questionnaire = (
            build_adaptive_questionnaire(policy, as_of=when)
            if adaptive
            else build_questionnaire(policy, policies, as_of=when)
        )
        governed_orders = [
            o
            for o in order_resources
            if policy.governs_order(fhir_case.order_codes(o), fhir_case.order_date(o))
        ]
        draft = _draft_response(
            questionnaire, policy, coverage, governed_orders, referenced, adaptive=adaptive
        )
        bundles.append(
            {
                "resourceType": "Bundle",
                "meta": {"profile": [DTR_PACKAGE_BUNDLE]},
                "type": "collection",
                "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                "entry": [
                    {"fullUrl": f"{questionnaire['url']}", "resource": questionnaire},
                    {"fullUrl": f"urn:uuid:{_uuid()}", "resource": draft},
                ],
            }
        )
    out_params: list[dict[str, Any]] = [{"name": "PackageBundle", "resource": b} for b in bundles]
    if warnings:
        out_params.append(
            {
                "name": "outcome",
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [
                        {
                            "severity": "warning",
                            "code": "not-found" if "not served" in w else "informational",
                            "diagnostics": w,
                        }
                        for w in warnings
                    ],
                },
            }
        )
    result: dict[str, Any] = {"resourceType": "Parameters", "meta": {"profile": [DTR_PACKAGE_OUTPUT]}}
    if out_params:
        result["parameter"] = out_params
    return PackageResult(result, tuple(p.id for p, _ in wanted.values()), tuple(warnings))


def _changed_since(by: Mapping[str, list[tuple[int, Mapping[str, Any]]]]) -> date | None:
    for i, p in by.get("changedsince", []):
        value = p.get("valueInstant") or p.get("valueDateTime")
        if isinstance(value, str) and len(value) >= 10:
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                pass
        raise _invalid(
            "changedsince carries an instant (valueInstant)",
            f"Parameters.parameter[{i}]",
            code="invalid_parameter",
            value=value if isinstance(value, str) else None,
        )
    return None


def _uuid() -> str:
    import uuid

    return str(uuid.uuid4())


def _draft_response(
    questionnaire: Mapping[str, Any],
    policy: Policy,
    coverage: Mapping[str, Any],
    orders: Sequence[Mapping[str, Any]],
    referenced: Sequence[Mapping[str, Any]],
    *,
    adaptive: bool,
) -> dict[str, Any]:
    """Initial draft QuestionnaireResponse for the package: context extensions for the Coverage and the
    orders; answers the payer can take from the orders, marked ``information-origin`` ``auto``."""
    canonical = questionnaire["url"] + (
        f"|{questionnaire['version']}" if questionnaire.get("version") else ""
    )
    qr: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "meta": {"profile": [SDC_QR_ADAPT if adaptive else DTR_QR_PROFILE]},
        "status": "in-progress",
        "authored": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    contexts = [coverage, *orders]
    qr["extension"] = [
        {
            "url": QR_CONTEXT_EXT,
            "valueReference": {"reference": fhir_case.reference_of(r), "type": r.get("resourceType")},
        }
        for r in contexts
        if r.get("id")
    ] or []
    if not qr["extension"]:
        del qr["extension"]
    subject = None
    for r in [*orders, coverage]:
        ref = r.get("subject") or r.get("patient") or r.get("beneficiary")
        if isinstance(ref, Mapping) and ref.get("reference"):
            subject = {"reference": ref["reference"]}
            break
    if subject:
        qr["subject"] = subject
    if adaptive:
        contained = dict(questionnaire)
        contained["id"] = "adaptive"
        contained["meta"] = {"profile": [DTR_ADAPT]}
        qr["contained"] = [contained]
        qr["questionnaire"] = "#adaptive"
        return qr
    qr["questionnaire"] = canonical
    try:
        extracted = fhir_case.extract_case(orders[0] if orders else None, referenced)
    except CaseError:
        return qr
    known = {k: v for k, v in extracted.case.items() if k in _facts_by_name(policy)}
    try:
        parsed = parse_case(known, policy)
    except CaseError:
        parsed = None
    if parsed is not None:  # derived facts (the tumour site from the diagnoses...) are answered too
        for fact in policy.facts:
            value = parsed.get(fact.name)
            if fact.derive is not None and fact.name not in known and isinstance(value, str | bool):
                if fact.type == "enum" and value not in (fact.values or ()):
                    continue  # e.g. an ambiguous site: left for the clinician
                known[fact.name] = value
    items: list[dict[str, Any]] = []
    asked = {str(i.get("linkId")): i for i in questionnaire.get("item") or []}
    for fact in policy.facts:
        if fact.name not in asked or fact.name not in known:
            continue
        value = known[fact.name]
        values = value if isinstance(value, list) else [value]
        answers = [_answer_for(fact, v) for v in values]
        items.append(
            {"linkId": fact.name, "text": asked[fact.name].get("text"), "answer": [a for a in answers if a]}
        )
    items = [i for i in items if i["answer"]]
    if items:
        qr["item"] = items
    return qr


def _answer_for(fact: Any, value: Any) -> dict[str, Any] | None:
    origin = {"url": INFORMATION_ORIGIN_EXT, "extension": [{"url": "source", "valueCode": "auto"}]}
    answer: dict[str, Any]
    if fact.type == "boolean" and isinstance(value, bool):
        answer = {"valueBoolean": value}
    elif fact.type == "number" and isinstance(value, int | float):
        answer = {"valueDecimal": value}
    elif fact.type == "date" and isinstance(value, str):
        answer = {"valueDate": value[:10]}
    elif fact.type == "enum" and isinstance(value, str):
        labels = dict(_fact_options(fact))
        answer = {
            "valueCoding": {
                "system": fact_code_system(fact.name),
                "code": value,
                "display": labels.get(value, value),
            }
        }
    elif isinstance(value, str):
        answer = {"valueString": value}
    else:
        return None
    answer["extension"] = [origin]
    return answer


# ------------------------------------------------------------------ QuestionnaireResponse -> determination


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


__all__ += [
    "NOTE_LINK_ID",
    "PREPOPULATION_EXTS",
    "EnableCondition",
    "ResponseDetermination",
    "check_questionnaire_response",
    "determination_summary",
    "determine_questionnaire_response",
    "fact_code_system",
    "no_policy_extension",
    "policy_version",
    "prepopulated_items",
    "question_item",
    "trim_codes",
    "unanswered_required",
]


# ------------------------------------------------------------------------ $log-questionnaire-errors


@dataclass(frozen=True)
class QuestionnaireErrorReport:
    """Input of ``Questionnaire/$log-questionnaire-errors``: what a DTR application could not do with
    one of our questionnaires. The OperationOutcome carries no PHI (the sender SHALL NOT put any in)."""

    questionnaire: str  # canonical, ideally version-specific (url|version)
    outcome: dict[str, Any]  # the OperationOutcome


#: Parameter names: DTR 2.0.1's OperationDefinition ('Questionnaire', 'OperationOutcome') and the
#: spelling of DTR 2.2's example ('questionnaire', 'operationOutcome').
_LOG_PARAMS = {"questionnaire": "Questionnaire", "operationoutcome": "OperationOutcome"}


def parse_questionnaire_errors(params: Any) -> QuestionnaireErrorReport:
    """Read a ``$log-questionnaire-errors`` Parameters: exactly one Questionnaire canonical and one
    OperationOutcome (validated). Raises :class:`FhirInputError`."""
    if not isinstance(params, Mapping):
        raise FhirInputError(
            400, "not_a_resource", "the body must be a FHIR Parameters resource (a JSON object)"
        )
    validate_fhir(params, expected="Parameters", path="Parameters")
    found: dict[str, list[tuple[int, Mapping[str, Any]]]] = {name: [] for name in _LOG_PARAMS.values()}
    for i, p in enumerate(params.get("parameter") or []):
        name = _LOG_PARAMS.get(str(p.get("name", "")).lower()) if isinstance(p, Mapping) else None
        if name is not None:
            found[name].append((i, p))
    i, q = _one_parameter(found["Questionnaire"], "Questionnaire", "Parameters")
    j, o = _one_parameter(found["OperationOutcome"], "OperationOutcome", "Parameters")
    canonical = q.get("valueCanonical")
    if not isinstance(canonical, str) or not canonical.strip():
        raise _invalid(
            "the 'Questionnaire' parameter must be a valueCanonical (the questionnaire's URL)",
            f"Parameters.parameter[{i}].valueCanonical",
            code="missing_parameter",
        )
    path = f"Parameters.parameter[{j}].resource"
    outcome = o.get("resource")
    validate_fhir(outcome, expected="OperationOutcome", path=path)
    assert isinstance(outcome, Mapping)
    return QuestionnaireErrorReport(questionnaire=canonical.strip(), outcome=dict(outcome))


# ------------------------------------------------------------------------------------ ValueSet/$expand


def value_set_url(fact_name: str) -> str:
    """Value set of every answer of an enum fact (all codes of :func:`fact_code_system`)."""
    return f"{CANONICAL_BASE}/ValueSet/{fact_name.replace('_', '-')}"


def value_sets(policies: PolicySet) -> dict[str, Any]:
    """The value sets this payer can expand: URL -> the enum fact whose answers it holds."""
    return {
        value_set_url(name): fact
        for name, fact in _all_facts(policies).items()
        if fact.type == "enum" and _fact_options(fact)
    }


@dataclass(frozen=True)
class ExpandRequest:
    url: str
    filter: str | None = None
    offset: int = 0
    count: int | None = None


def expand_request(params: Any) -> ExpandRequest:
    """The inputs of ``ValueSet/$expand`` given as a Parameters body (``url``, ``filter``, ``offset``,
    ``count``). Raises :class:`FhirInputError`; an inline ``valueSet`` is not supported (422)."""
    if not isinstance(params, Mapping):
        raise FhirInputError(
            400, "not_a_resource", "the body must be a FHIR Parameters resource (a JSON object)"
        )
    validate_fhir(params, expected="Parameters", path="Parameters")
    given: dict[str, Any] = {}
    for i, p in enumerate(params.get("parameter") or []):
        name = p.get("name") if isinstance(p, Mapping) else None
        if name == "valueSet":
            raise _invalid(
                "an inline valueSet is not expanded here; name one of ours by url",
                f"Parameters.parameter[{i}]",
                code="not_supported",
            )
        if name in ("url", "filter", "offset", "count"):
            values = [v for k, v in p.items() if k.startswith("value")]
            given[name] = (values[0] if values else None, f"Parameters.parameter[{i}]")
    return expand_arguments({k: v for k, (v, _) in given.items()}, {k: w for k, (_, w) in given.items()})


def expand_arguments(values: Mapping[str, Any], where: Mapping[str, str] | None = None) -> ExpandRequest:
    """``url``, ``filter``, ``offset``, ``count`` (from a query string or Parameters), checked."""
    where = where or {}
    url = values.get("url")
    if not isinstance(url, str) or not url.strip():
        raise _invalid(
            "the 'url' of the value set to expand is required",
            where.get("url", "url"),
            code="missing_parameter",
        )
    numbers: dict[str, int | None] = {}
    for name in ("offset", "count"):
        raw = values.get(name)
        if raw is None:
            numbers[name] = None
            continue
        try:
            number = int(raw)
        except (TypeError, ValueError):
            number = -1
        if isinstance(raw, bool) or number < 0:
            raise _invalid(
                f"'{name}' must be a whole number of at least 0",
                where.get(name, name),
                code="invalid_parameter",
                value=raw,
            )
        numbers[name] = number
    text = values.get("filter")
    return ExpandRequest(
        url=url.strip(),
        filter=(str(text).strip() or None) if text is not None else None,
        offset=numbers["offset"] or 0,
        count=numbers["count"],
    )


def expand_value_set(request: ExpandRequest, policies: PolicySet, *, now: datetime) -> dict[str, Any]:
    """``ValueSet/$expand`` of one of our value sets (``url`` or ``url|version``): every code, or
    those whose code or display contains ``filter`` (case-insensitive), paged by ``offset``/``count``.
    Raises :class:`FhirInputError` 404 ``value_set_not_found`` for a value set we do not have."""
    url = request.url.split("|", 1)[0]
    fact = value_sets(policies).get(url)
    if fact is None:
        raise FhirInputError(
            404,
            "value_set_not_found",
            f"no value set {request.url!r} here; ours are {CANONICAL_BASE}/ValueSet/<fact>",
            [Problem("value_set_not_found", "url", "no such value set", request.url)],
        )
    system = fact_code_system(fact.name)
    codes = [{"system": system, "code": code, "display": label} for code, label in _fact_options(fact)]
    if request.filter:
        needle = request.filter.casefold()
        codes = [c for c in codes if needle in c["code"].casefold() or needle in c["display"].casefold()]
    total = len(codes)
    end = None if request.count is None else request.offset + request.count
    expansion: dict[str, Any] = {"timestamp": now.isoformat(), "total": total, "offset": request.offset}
    parameters: list[dict[str, Any]] = []
    if request.filter:
        parameters.append({"name": "filter", "valueString": request.filter})
    if request.count is not None:
        parameters.append({"name": "count", "valueInteger": request.count})
    if parameters:
        expansion["parameter"] = parameters
    page = codes[request.offset : end]
    if page:
        expansion["contains"] = page
    return {
        "resourceType": "ValueSet",
        "url": url,
        "name": "".join(part.capitalize() for part in fact.name.split("_")),
        "title": f"Answers to: {fact.question}",
        "status": "active",
        "compose": {"include": [{"system": system}]},
        "expansion": expansion,
    }
