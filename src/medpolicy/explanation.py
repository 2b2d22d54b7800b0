"""The patient's reason: what a determination rests on, in the words a letter and a reviewer need.

``explanation(d)`` lists each deciding fact with its value and where it came from (given, derived
from another fact...), each parameter the decision used with its value (a threshold the member can
check), the basis of the decision (criteria met; criteria not met; an exclusion the policy states
outright; investigational, with the rationale section and the policy's own conclusion sentence), and
the notes that bear on the member's rights. ``flags(d)`` are machine-readable marks for the life cycle
and reviewers (``rests_on_conflict``, ``policy_review_overdue``); they are not letter sentences.

Pure: everything comes from the determination, its case and its policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from medpolicy.case import CONFLICT, Case, Note
from medpolicy.language import Atom, Not
from medpolicy.policy import Outcome

if TYPE_CHECKING:
    from medpolicy.engine import Determination

__all__ = ["REST_ON_CONFLICT", "REVIEW_OVERDUE", "conflicts", "explanation", "fact_label", "flags"]

REST_ON_CONFLICT = "rests_on_conflict"
REVIEW_OVERDUE = "policy_review_overdue"

_LABELS = {"t_stage": "T stage", "margin_distance_mm": "Margin distance"}


def fact_label(name: str) -> str:
    return _LABELS.get(name, name.replace("_", " ").capitalize())


def conflicts(d: Determination, redecide: Callable[[Case], Outcome]) -> list[dict[str, Any]]:
    """The case's conflicting facts, each marked ``decisive`` when the value the other facts point to
    (alone, or with all the others) gives another outcome: the determination rests on it."""
    notes = [n for n in d.case.notes if n.code == CONFLICT and n.fact is not None]
    if not notes:
        return []
    case = d.case

    def outcome_with(chosen: list[Note]) -> Outcome:
        values = dict(case.values)
        for n in chosen:
            if n.alternative is None:
                values.pop(str(n.fact), None)
            else:
                values[str(n.fact)] = n.alternative
        return redecide(Case(values, case.display, case.sources, case.notes, case.metadata))

    together = outcome_with(notes) != d.outcome if len(notes) > 1 else False
    out = []
    for n in notes:
        given = case.display.get(str(n.fact))
        out.append(
            {
                "fact": n.fact,
                "given": given,
                "alternative": n.alternative,
                "message": n.message,
                # a conflict that leaves the fact unknown is decisive when knowing it could matter
                "decisive": together or outcome_with([n]) != d.outcome,
            }
        )
    return out


def flags(d: Determination, conflict_list: list[dict[str, Any]]) -> list[str]:
    out = []
    if any(c["decisive"] for c in conflict_list):
        out.append(REST_ON_CONFLICT)
    review_by = d.policy.review_by
    dos = d.case.values.get("date_of_service")
    if review_by is not None and dos is not None and dos > review_by:
        out.append(REVIEW_OVERDUE)
    return out


def explanation(d: Determination) -> dict[str, Any]:
    """The explanation block of a determination (``DeterminationV1.explanation``)."""
    case = d.case
    heads, basis, statement, parameters, rationale = _key_parts(d)
    display, sources = case.display, case.sources
    facts = [
        {
            "name": n,
            "label": label,
            "value": display.get(n),
            "unit": unit,
            "source": sources.get(n, "unknown"),
        }
        for n, label, unit in heads
    ]
    return {
        "basis": basis,
        "statement": statement,
        "facts": facts,
        "parameters": [dict(p) for p in parameters],
        "rationale": dict(rationale) if rationale is not None else None,
        "notes": [{"code": n.code, "message": n.message} for n in d.notes if n.letter],
    }


#: The parts of an explanation fixed by the engine's result, the rationale section, whether the date
#: of service is known and where each fact came from, kept per result (the service explains every
#: determination it stores: walking the deciding criteria for the facts, parameters and basis was
#: ~20 us of a /v1 call). Bounded; an entry holds its result so that ``id`` is not reused while kept.
#: (deciding facts as (name, label, unit), basis, statement, parameters, rationale)
_Parts = tuple[list[tuple[str, str, str | None]], str, str, list[dict[str, Any]], dict[str, Any] | None]
_PARTS: dict[tuple[Any, ...], tuple[Any, _Parts]] = {}
_PARTS_MAX = 16_384


def _key_parts(d: Determination) -> _Parts:
    """The parts of ``d``'s explanation shared between determinations alike in everything they read;
    callers copy the mutable parts."""
    r = d.result
    rat = d.rationale
    case = d.case
    key = (
        id(r),
        rat.id if rat is not None else None,
        "date_of_service" in case.values,
        *case.sources.items(),
    )
    hit = _PARTS.get(key)
    if hit is not None and hit[0] is r:
        return hit[1]
    policy = d.policy
    names = _deciding_facts(d)
    basis, statement = _basis(d)
    heads = [(n, fact_label(n), policy.fact(n).unit) for n in names]
    parts: _Parts = (heads, basis, statement, _parameters(d, names), _rationale(d))
    if len(_PARTS) < _PARTS_MAX:
        _PARTS[key] = (r, parts)
    return parts


def _deciding_facts(d: Determination) -> list[str]:
    """Facts the deciding criteria read, the facts they were derived from, and the date of service."""
    policy, case = d.policy, d.case
    read: set[str] = {c.criterion.fact for c in d.deciding if isinstance(c.criterion, Atom)}
    if "date_of_service" in case.values:
        read.add("date_of_service")
    for name in list(read):
        source = case.sources.get(name, "")
        if source.startswith("derived from "):
            read |= {s for s in source.removeprefix("derived from ").split(" and ") if s in policy.fact_index}
    return [f.name for f in policy.facts if f.name in read]


def _parameters(d: Determination, names: list[str]) -> list[dict[str, Any]]:
    policy, case = d.policy, d.case
    used: list[str] = []
    for n in names:
        spec = policy.fact(n)
        if spec.derive is not None and case.sources.get(n) == spec.derive.label:
            used += spec.derive.params
    for c in d.deciding:
        for k in c.criterion.walk():
            p = policy.criterion_params.get(k.id)
            if p is not None:
                used.append(p)
    seen: list[str] = []
    for p in used:
        if p not in seen and p in policy.parameters:
            seen.append(p)
    return [
        {"name": p, "value": policy.parameters[p], "description": policy.parameter_descriptions.get(p, "")}
        for p in seen
    ]


def _rationale(d: Determination) -> dict[str, Any] | None:
    rat = d.rationale
    if rat is None:
        return None
    conclusion = rat.conclusion
    if conclusion is None:
        summary = d.policy.rationale.get("summary")
        conclusion = summary.conclusion if summary is not None else None
    return {"section": rat.id, "title": rat.title, "conclusion": conclusion}


def _basis(d: Determination) -> tuple[str, str]:
    """(basis, a sentence saying it)."""
    o = d.outcome
    tops = [c for c in d.deciding if c.depth == 0]
    fired = next((c for c in tops if c.outcome is o and c.value is True), None)
    version = d.version
    rule = None
    if version is not None and fired is not None:
        rule = next((r for r in version.decision_list if r.criterion is fired.criterion), None)
    cite = " ".join(fired.criterion.cite) if fired is not None else ""
    if o is Outcome.MEDICALLY_NECESSARY:
        return "criteria_met", f"The policy's criteria are met: {cite}" if cite else "The criteria are met."
    if o is Outcome.INFORMATION_NEEDED:
        return "information_needed", "The policy cannot be applied until the missing information is given."
    if o is Outcome.NOT_APPLICABLE:
        return "not_applicable", d.summary
    if o is Outcome.NOT_MEDICALLY_NECESSARY and rule is not None and rule.when is not None:
        title = rule.criterion.title.rstrip(".")
        return (
            "exclusion",
            f"This is an exclusion the policy states outright, not a finding that the records fall short "
            f"of its criteria. {title}, and the policy says: \u201c{cite}\u201d",
        )
    if o is Outcome.NOT_MEDICALLY_NECESSARY:
        unmet = _unmet(d)
        return (
            "criteria_not_met",
            "The records do not show that the policy's criteria for medical necessity are met"
            + (f": {'; '.join(unmet)}." if unmet else "."),
        )
    rat = _rationale(d)
    text = f"The policy considers this use investigational: \u201c{cite}\u201d" if cite else ""
    if rat is not None:
        text += f" The policy's rationale for this site is its section \u201c{rat['title']}\u201d"
        if rat["conclusion"]:
            text += f", and the policy concludes: \u201c{rat['conclusion']}\u201d"
        else:
            text += "."
    return "investigational", text.strip()


def _unmet(d: Determination) -> list[str]:
    """The leaves of favourable rules that are false (what the records do not show)."""
    out: list[str] = []
    current = False
    for c in d.deciding:
        if c.depth == 0:
            current = c.outcome is Outcome.MEDICALLY_NECESSARY and c.value is False
        elif current and c.value is False and (not c.criterion.children() or isinstance(c.criterion, Not)):
            out.append(c.criterion.title)
    return out
