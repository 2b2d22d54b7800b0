"""What the workbench pages show, built from the store's records and the policy (no HTTP here).

* `fact_rows`: the case facts with their display values and where each came from: the EHR (the
  submitted request), a questionnaire (information the submitter supplied later), a reviewer's entry,
  or derived by the policy from another fact. Provenance is read from the request's determinations
  and audit trail: each stored determination holds the whole case as it was then.
* `question_fields` and `parse_answers`: the form that asks exactly the missing facts.
* `checklist`: the criteria of the determination as met / not met / unknown, with their citations.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medpolicy.store import Store
from medpolicy.store.records import AuditEvent, PARequest

OUTCOME_LABELS = {
    "medically_necessary": "Medically necessary",
    "investigational": "Investigational",
    "not_medically_necessary": "Not medically necessary",
    "information_needed": "Information needed",
    "not_applicable": "Not governed by this policy",
}
STATE_LABELS = {
    "received": "Received (triage)",
    "information_needed": "Information needed",
    "pending_physician_review": "Pending physician review",
    "approved": "Approved",
    "denied": "Denied",
    "withdrawn": "Withdrawn",
    "ready_to_approve": "Ready to approve",
    "closed_not_governed": "Closed: not governed by this policy",
}
ACTION_LABELS = {
    "submit": "Submitted",
    "approve": "Approve",
    "request_information": "Request information",
    "route_to_physician": "Route to physician",
    "deny": "Deny",
    "withdraw": "Withdraw",
    "provide_information": "Provide information",
    "ready_to_approve": "Ready to approve",
    "close_not_governed": "Close: not governed by this policy",
    "assign": "Assign",
    "note": "Note",
    "document_added": "Document attached",
    "document_viewed": "Document viewed",
    "fact_cited": "Fact cited from a document",
    "peer_to_peer_offered": "Peer-to-peer offered",
    "peer_to_peer_scheduled": "Peer-to-peer scheduled",
    "peer_to_peer_held": "Peer-to-peer held",
}
ROLE_LABELS = {
    "system": "engine",
    "nurse": "nurse reviewer",
    "physician": "physician reviewer",
    "submitter": "submitter",
}
VALUE_LABELS = {"true": "Met", "false": "Not met", "unknown": "Unknown"}
FACT_NAMES = {"t_stage": "T stage", "margin_distance_mm": "Margin distance (mm)"}


def fact_name(name: str) -> str:
    return FACT_NAMES.get(name, name.replace("_", " ").capitalize())


def show_value(value: Any, spec: Any = None) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | tuple):
        return ", ".join(show_value(v, spec) for v in value)
    if spec is not None and isinstance(value, str) and getattr(spec, "labels", None):
        return str(spec.label(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass(frozen=True)
class FactRow:
    name: str
    label: str
    value: str
    source: str  # EHR, questionnaire, entered, derived
    detail: str


def _local(when: Any) -> str:
    from medpolicy.web.plan import load_plan

    return load_plan().when(when)


def fact_sources(store: Store, pa: PARequest, events: Sequence[AuditEvent]) -> dict[str, tuple[str, str]]:
    """fact name -> (source, detail) for the facts of the request's current case."""
    by_det = {e.determination_id: e for e in events if e.determination_id and e.role != "system"}
    sources: dict[str, tuple[str, str]] = {}
    previous: Mapping[str, Any] | None = None
    for snap in store.list_determinations(pa.id):
        case = snap.case
        if previous is None:
            for key in case:
                sources[key] = ("EHR", f"submitted with the request by {pa.submitter}")
        else:
            event = by_det.get(snap.id)
            for key in set(case) | set(previous):
                if case.get(key) == previous.get(key):
                    continue
                if event is None:
                    sources[key] = ("EHR", "updated by the submitter")
                elif event.role == "submitter":
                    sources[key] = (
                        "questionnaire",
                        f"answered by {event.actor}, {_local(event.at)}",
                    )
                else:
                    role = ROLE_LABELS.get(event.role, event.role)
                    sources[key] = (
                        "entered",
                        f"entered by {event.actor} ({role}), {_local(event.at)}",
                    )
        previous = case
    for key in pa.case:
        sources.setdefault(key, ("EHR", f"submitted with the request by {pa.submitter}"))
    return sources


def fact_rows(
    determination: Mapping[str, Any], policy: Any, sources: Mapping[str, tuple[str, str]]
) -> list[FactRow]:
    facts: Mapping[str, Any] = determination.get("facts") or {}
    index: Mapping[str, Any] = policy.fact_index if policy is not None else {}
    order = [f.name for f in policy.facts] if policy is not None else []
    names = [n for n in order if n in facts] + [n for n in facts if n not in order]
    rows = []
    for name in names:
        fact = facts[name]
        value = fact.get("value") if isinstance(fact, Mapping) else fact
        given = fact.get("source", "given") if isinstance(fact, Mapping) else "given"
        if given.startswith("derived"):
            source, detail = "derived", given.replace("_", " ")
        else:
            source, detail = sources.get(name, ("EHR", "submitted with the request"))
        rows.append(FactRow(name, fact_name(name), show_value(value, index.get(name)), source, detail))
    return rows


@dataclass(frozen=True)
class QuestionField:
    name: str
    question: str
    type: str
    input: str  # select, number, text, date
    options: tuple[tuple[str, str], ...]  # (value, label)
    hint: str
    unit: str | None


def question_fields(missing: Sequence[Mapping[str, Any]], policy: Any) -> list[QuestionField]:
    index: Mapping[str, Any] = policy.fact_index if policy is not None else {}
    fields = []
    for m in missing:
        name = str(m.get("name"))
        kind = str(m.get("type"))
        spec = index.get(name)
        hint = str(getattr(spec, "description", "") or "")
        options: tuple[tuple[str, str], ...] = ()
        if kind == "enum":
            values = m.get("values") or (spec.values if spec is not None else ()) or ()
            options = tuple((str(v), show_value(str(v), spec)) for v in values)
            widget = "select"
        elif kind == "boolean":
            options = (("yes", "Yes"), ("no", "No"))
            widget = "select"
        elif kind == "number":
            widget = "number"
        elif kind == "date":
            widget = "date"
        else:
            widget = "text"
            if kind == "staging":
                hint = hint or "AJCC 8th edition T category with its prefix, for example pT4b or cT3."
            elif kind == "codes":
                hint = hint or "One or more codes, separated by commas."
        fields.append(
            QuestionField(
                name=name,
                question=str(m.get("question") or fact_name(name)),
                type=kind,
                input=widget,
                options=options,
                hint=hint,
                unit=m.get("unit") or (getattr(spec, "unit", None) if spec is not None else None),
            )
        )
    return fields


def parse_answers(form: Mapping[str, str], fields: Sequence[QuestionField]) -> dict[str, Any]:
    """The answered questions as case facts (blank answers are left out). Values the engine checks."""
    answers: dict[str, Any] = {}
    for f in fields:
        raw = (form.get(f"fact_{f.name}") or "").strip()
        if not raw:
            continue
        if f.type == "boolean":
            answers[f.name] = raw.lower() in ("yes", "true", "1")
        elif f.type == "number":
            try:
                number = float(raw)
            except ValueError:
                answers[f.name] = raw  # the engine names the error
            else:
                answers[f.name] = int(number) if number.is_integer() else number
        elif f.type in ("codes", "staging"):
            parts = [p for p in raw.replace(";", ",").replace(" ", ",").split(",") if p]
            answers[f.name] = parts if f.type == "codes" or len(parts) > 1 else parts[0]
        else:
            answers[f.name] = raw
    return answers


@dataclass(frozen=True)
class CheckItem:
    id: str
    title: str
    value: str  # true, false, unknown
    label: str  # Met, Not met, Unknown
    cite: tuple[str, ...]
    depth: int
    outcome: str | None
    outcome_label: str | None
    deciding: bool


def checklist(determination: Mapping[str, Any]) -> list[CheckItem]:
    deciding = {c.get("id") for c in determination.get("deciding_criteria") or [] if isinstance(c, Mapping)}
    items = []
    for c in determination.get("criteria") or []:
        if not isinstance(c, Mapping):
            continue
        value = str(c.get("value"))
        outcome = c.get("outcome")
        items.append(
            CheckItem(
                id=str(c.get("id")),
                title=str(c.get("title")),
                value=value,
                label=VALUE_LABELS.get(value, value),
                cite=tuple(str(x) for x in c.get("cite") or ()),
                depth=int(c.get("depth") or 0),
                outcome=str(outcome) if outcome else None,
                outcome_label=OUTCOME_LABELS.get(str(outcome)) if outcome else None,
                deciding=c.get("id") in deciding,
            )
        )
    return items


# -- feedback for the policy analysts ---------------------------------------------------------------


@dataclass(frozen=True)
class CardFeedback:
    """What clinicians did with one CRD service's cards."""

    service_id: str
    accepted: int
    overridden: int
    reasons: tuple[tuple[str, int], ...]  # override reason code, count (most first)

    @property
    def override_rate(self) -> str:
        total = self.accepted + self.overridden
        return f"{100 * self.overridden / total:.0f}%" if total else "-"


def card_feedback(summary: Sequence[Mapping[str, Any]]) -> list[CardFeedback]:
    """``Store.summarize_cds_feedback`` rows, one entry per service (most feedback first)."""
    by_service: dict[str, dict[str, Any]] = {}
    for row in summary:
        entry = by_service.setdefault(row["service_id"], {"accepted": 0, "overridden": 0, "reasons": {}})
        if row["outcome"] == "accepted":
            entry["accepted"] += row["count"]
        else:
            entry["overridden"] += row["count"]
            code = row["override_code"] or "(no reason given)"
            entry["reasons"][code] = entry["reasons"].get(code, 0) + row["count"]
    rows = [
        CardFeedback(
            service_id=service,
            accepted=e["accepted"],
            overridden=e["overridden"],
            reasons=tuple(sorted(e["reasons"].items(), key=lambda kv: (-kv[1], kv[0]))),
        )
        for service, e in by_service.items()
    ]
    return sorted(rows, key=lambda r: (-(r.accepted + r.overridden), r.service_id))


@dataclass(frozen=True)
class QuestionnaireProblem:
    """One DTR ``$log-questionnaire-errors`` report, as the page shows it."""

    id: int
    received_at: Any
    client: str
    questionnaire: str
    policy_title: str | None  # when the questionnaire is one of ours
    issues: tuple[tuple[str, str, str, str], ...]  # severity, code, diagnostics, where


def questionnaire_problems(reports: Sequence[Mapping[str, Any]], policies: Any) -> list[QuestionnaireProblem]:
    from medpolicy.interop.dtr import policy_for_questionnaire

    out = []
    for r in reports:
        found = policy_for_questionnaire(r["questionnaire"], policies) if policies is not None else None
        issues = tuple(
            (
                str(i.get("severity", "")),
                str(i.get("code", "")),
                str(i.get("diagnostics") or (i.get("details") or {}).get("text") or ""),
                ", ".join(str(e) for e in i.get("expression") or i.get("location") or []),
            )
            for i in (r["outcome"].get("issue") or [])
            if isinstance(i, Mapping)
        )
        out.append(
            QuestionnaireProblem(
                id=r["id"],
                received_at=r["received_at"],
                client=r["client"],
                questionnaire=r["questionnaire"],
                policy_title=found[0].title if found else None,
                issues=issues,
            )
        )
    return out
