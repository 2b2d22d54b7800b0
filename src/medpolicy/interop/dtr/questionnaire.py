"""Questionnaires from the policy: the facts worth asking, ``enableWhen`` computed by asking the engine, and
the static (``dtr-std-questionnaire``) and adaptive (``dtr-questionnaire-adapt-search``) Questionnaires."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from medpolicy import CaseError, Policy, PolicySet
from medpolicy.interop.dtr.canonical import (
    ADAPTIVE_EXT,
    DTR_ADAPT_SEARCH,
    DTR_STD_QUESTIONNAIRE,
    MIN_VALUE_EXT,
    UCUM,
    UNIT_EXT,
    adaptive_questionnaire_url,
    fact_code_system,
    policy_version,
    questionnaire_url,
)
from medpolicy.interop.dtr.facts import _decide, _fact_options, _finite_answers, _missing_names


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
