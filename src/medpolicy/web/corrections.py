"""Corrections in the workbench: the form that corrects a fact, and how corrections are shown.

A reviewer may correct a fact the provider submitted, or one the policy derived (the tumour site
derived from a diagnosis code), with a required reason; the store records it as its own audited
event (`medpolicy.store.corrections`). The request page and the letter show the corrected value
with who corrected it, from what, and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from medpolicy.store.corrections import nurse_corrected
from medpolicy.store.lifecycle import CORRECT
from medpolicy.store.records import AuditEvent
from medpolicy.web.present import QuestionField, fact_name, parse_answers, question_fields, show_value

__all__ = [
    "correctable_fields",
    "correction_events",
    "correction_lines",
    "overlay_sources",
    "parse_correction",
    "rests_on_nurse_correction",
]

ROLE_WORDS = {"nurse": "nurse reviewer", "physician": "physician reviewer"}


def correction_events(events: Sequence[AuditEvent]) -> list[AuditEvent]:
    return [e for e in events if e.action == CORRECT and e.details]


def rests_on_nurse_correction(case: Mapping[str, Any], events: Sequence[AuditEvent]) -> bool:
    return nurse_corrected(case, [(e.role, e.details or {}) for e in correction_events(events)])


def _who(event: AuditEvent, names: Mapping[str, str]) -> str:
    return f"{names.get(event.actor, event.actor)} ({ROLE_WORDS.get(event.role, event.role)})"


def _shown(value: Any, spec: Any) -> str:
    return "unknown" if value is None else show_value(value, spec)


def overlay_sources(
    sources: Mapping[str, tuple[str, str]],
    events: Sequence[AuditEvent],
    names: Mapping[str, str],
    policy: Any,
) -> dict[str, tuple[str, str]]:
    """`sources` (fact -> (source, detail)) with each corrected fact's latest correction."""
    index: Mapping[str, Any] = policy.fact_index if policy is not None else {}
    result = dict(sources)
    for e in correction_events(events):
        d = e.details or {}
        fact = str(d.get("fact"))
        was = "derived " if d.get("derived") else ""
        result[fact] = (
            "corrected",
            f"corrected by {_who(e, names)} from {was}{_shown(d.get('from'), index.get(fact))}, "
            f"{e.at:%d %b %Y %H:%M} UTC: {e.reason or ''}",
        )
    return result


def correction_lines(events: Sequence[AuditEvent], names: Mapping[str, str], policy: Any) -> list[str]:
    """One sentence per correction, for the letter's list of facts."""
    index: Mapping[str, Any] = policy.fact_index if policy is not None else {}
    lines = []
    for e in correction_events(events):
        d = e.details or {}
        fact = str(d.get("fact"))
        spec = index.get(fact)
        was = "derived by the policy as" if d.get("derived") else "submitted as"
        lines.append(
            f"{fact_name(fact)}: {_shown(d.get('to'), spec)}, corrected by {_who(e, names)} "
            f"from {_shown(d.get('from'), spec)} ({was} that). Reason: {e.reason or 'not given'}."
        )
    return lines


def correctable_fields(policy: Any) -> list[QuestionField]:
    """Every fact of the policy, as a form field (the correction form picks one)."""
    if policy is None:
        return []
    specs = [{"name": f.name, "type": f.type, "values": f.values} for f in policy.facts]
    return question_fields(specs, policy)


def parse_correction(form: Mapping[str, str], policy: Any) -> tuple[str, Any] | None:
    """(fact, value) from the correction form; a blank value makes the fact unknown. None: no fact."""
    fields = {f.name: f for f in correctable_fields(policy)}
    name = (form.get("fact") or "").strip()
    if name not in fields:
        return None
    raw = (form.get("value") or "").strip()
    if not raw:
        return name, None
    parsed = parse_answers({f"fact_{name}": raw}, [fields[name]])
    return name, parsed.get(name)
