"""Small helpers over a policy's declared facts and the engine's answers, shared by the DTR modules."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medpolicy import Determination, Policy, PolicySet, decide
from medpolicy.interop.dtr.canonical import _policies

#: Outcomes after which no answer can change anything (the adaptive form is complete).
_INFORMATION_NEEDED = "information_needed"


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


def all_facts(policies: PolicySet) -> dict[str, Any]:
    """Every fact any policy declares, by name (the first declaration of a name wins)."""
    facts: dict[str, Any] = {}
    for policy in _policies(policies):
        for f in policy.facts:
            facts.setdefault(f.name, f)
    return facts
