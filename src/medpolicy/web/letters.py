"""Determination letters: what a notice of approval or denial must say, as HTML and as PDF.

An adverse-determination notice (ERISA 29 CFR 2560.503-1(g) with the ACA additions) states the
specific reason; the plan provision (policy and version) and the criteria relied on; the clinical
rationale as applied to this patient; what information would change the decision; the right to appeal
(at least 180 days), to a peer-to-peer discussion and to external review; that the codes and their
meanings are available on request; and where to find consumer assistance.

"Investigational" and "not medically necessary" are different denials: they take different wording
and different external-review tracks, and a letter never mixes the two.

Procedure codes are described with the policy's own labels (`Policy.governs.labels`), never with the
AMA's CPT descriptors.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from xml.sax.saxutils import escape

from medpolicy.store.lifecycle import State
from medpolicy.store.records import AuditEvent, PARequest
from medpolicy.web.letter_explanation import Part, explanation_flowables, explanation_parts, part_lines

__all__ = ["APPEAL_DAYS", "Letter", "LetterError", "Section", "build_letter", "letter_pdf"]

APPEAL_DAYS = 180
VALUE_WORDS = {"true": "met", "false": "not met", "unknown": "unknown"}
Basis = Literal["investigational", "not_medically_necessary"]


class LetterError(ValueError):
    """No letter for this request (it is not approved or denied)."""


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...] = ()
    bullets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Letter:
    kind: Literal["approval", "denial"]
    basis: Basis | None
    request_id: str
    decided_at: datetime
    decided_by: str
    decided_by_role: str
    plan: str
    member: str
    provider: str
    title: str
    sections: tuple[Section, ...] = field(default=())
    #: the patient's reason (facts, thresholds, rationale, notes): ``letter_explanation``
    explanation: tuple[Part, ...] = field(default=())

    @property
    def filename(self) -> str:
        return f"{self.request_id}-{self.kind}-letter"

    def text(self) -> str:
        """The whole letter as plain text (for tests and for a screen reader's summary)."""
        lines = [self.title]
        reason = part_lines(self.explanation)  # placed as in the HTML and PDF letters
        for s in self.sections:
            if reason and s.heading.startswith("What would change"):
                lines.extend(reason)
                reason = []
            lines.append(s.heading)
            lines.extend(s.paragraphs)
            lines.extend(f"- {b}" for b in s.bullets)
        lines.extend(reason)
        return "\n".join(lines)


def _humanize(name: str) -> str:
    return {"t_stage": "T stage"}.get(name, name.replace("_", " ").capitalize())


def _decision_event(events: Sequence[AuditEvent]) -> AuditEvent:
    for event in reversed(events):
        if (
            event.to_state in (State.APPROVED.value, State.DENIED.value)
            and event.from_state != event.to_state
        ):
            return event
    raise LetterError("the request has no approval or denial in its audit trail")


def _service_lines(case: Mapping[str, Any], policy: Any) -> list[str]:
    labels: Mapping[str, str] = policy.governs.labels if policy is not None else {}
    governed = policy.governs.codes if policy is not None else frozenset()
    lines = []
    for code in case.get("procedure_codes") or []:
        code = str(code)
        if code in labels:
            lines.append(f"Procedure code {code}: {labels[code]}")
        elif code in governed:
            lines.append(f"Procedure code {code}")
        else:
            lines.append(f"Procedure code {code} (not governed by this policy)")
    return lines


def build_letter(
    pa: PARequest,
    events: Sequence[AuditEvent],
    policy: Any,
    *,
    plan: str | None = None,
    names: Mapping[str, str] | None = None,
    corrections: Sequence[str] = (),
) -> Letter:
    """The letter for an approved or denied request (raises LetterError otherwise).

    `policy` is the `medpolicy.Policy` the request was decided under (for the codes' labels and the
    publisher), or None. `names` maps registered reviewers' usernames (the audit's actors) to their
    names and credentials: a reviewer is named only from there, never from the audit's free text.
    `corrections`: one sentence per fact a reviewer corrected (listed with the request's facts).
    """
    if pa.state not in (State.APPROVED.value, State.DENIED.value):
        raise LetterError(f"a request that is {pa.state.replace('_', ' ')} has no determination letter")
    event = _decision_event(events)
    det: dict[str, Any] = pa.determination.determination if pa.determination else {}
    outcome = str(det.get("outcome") or pa.recommendation or "")
    pol = det.get("policy") or {}
    plan_name = plan or (policy.publisher if policy is not None else "the health plan")
    approved = pa.state == State.APPROVED.value
    basis: Basis | None = None
    if not approved:
        basis = "investigational" if outcome == "investigational" else "not_medically_necessary"
    case = pa.case
    dos = str(case.get("date_of_service") or "not given")
    diagnoses = ", ".join(str(c) for c in case.get("diagnosis_codes") or []) or "none given"
    service = _service_lines(case, policy)
    reviewer_name = (names or {}).get(event.actor) or _unregistered(event.role)
    reviewer = f"{reviewer_name} ({_role_words(event.role)})"
    service_name = str(pol.get("title") or "the requested service")
    decided = event.at.strftime("%d %B %Y")

    policy_line = (
        f"{pol.get('title', 'the medical policy')} ({pol.get('id', pa.policy_id or '')}), "
        f"version {pol.get('version', 'unknown')} in force from {pol.get('effective_from', 'unknown')}, "
        f"published by {plan_name}"
    )
    deciding = [c for c in det.get("deciding_criteria") or [] if isinstance(c, Mapping)]
    criteria_lines = [
        f"{c.get('title')}: {VALUE_WORDS.get(str(c.get('value')), str(c.get('value')))}. "
        f"The policy says: \u201c{' '.join(c.get('cite') or [])}\u201d"
        for c in deciding
    ]

    sections: list[Section] = [
        Section(
            "The request",
            paragraphs=(
                f"Request {pa.id}, received {pa.received_at.strftime('%d %B %Y')}, "
                f"{pa.urgency} review. Requested by {pa.submitter} for member {pa.subject or 'not named'}.",
                f"Planned date of service: {dos}. Diagnosis codes: {diagnoses}.",
            ),
            bullets=tuple(service) or ("No procedure code was given.",),
        )
    ]
    if corrections:
        sections.append(
            Section(
                "Facts corrected in review",
                paragraphs=("The reviewer corrected these facts of the request as submitted:",),
                bullets=tuple(corrections),
            )
        )
    if approved:
        title = f"Prior authorization approved: {service_name}"
        sections.append(
            Section(
                "Our decision",
                paragraphs=(
                    f"We approve the service listed above as medically necessary for the planned date of "
                    f"service {dos}. Decided on {decided} by {reviewer}.",
                    "The reason: " + (pa.decision_reason or "the policy's criteria are met") + ".",
                ),
            )
        )
        sections.append(
            Section(
                "The policy and the criteria we relied on",
                paragraphs=(f"We applied {policy_line}.",),
                bullets=tuple(criteria_lines),
            )
        )
        sections.append(
            Section(
                "Good to know",
                paragraphs=(
                    "This approval covers the service, codes and date of service above. It is not a "
                    "guarantee of payment: the member must be eligible on the date of service and the "
                    "claim must match this request.",
                    "Upon request and free of charge, we will send the diagnosis and procedure codes and "
                    "their meanings, and copies of the policy and criteria used.",
                ),
            )
        )
    else:
        assert basis is not None
        stated = (pa.decision_reason or "").strip().rstrip(".")
        if basis == "investigational":
            title = "Prior authorization denied: investigational service"
            plain = (
                f"Under the plan's medical policy, {service_name} is considered investigational "
                "(experimental) for this patient's condition: the published evidence has not shown that "
                "it improves health outcomes for this use. The plan does not cover investigational "
                "services."
            )
            review_track = (
                "Because this denial is based on a finding that the service is experimental or "
                "investigational, you may ask for an external review of that finding by an independent "
                "review organization. The request for external review of an experimental or "
                "investigational treatment should include a statement from the treating physician that "
                "standard treatments are not effective or appropriate, or that the service is likely to "
                "be more beneficial than them."
            )
        else:
            title = "Prior authorization denied: not medically necessary"
            plain = (
                "The plan's physician reviewer found that the service is not medically necessary for "
                "this patient: the records we received do not show that the policy's criteria for "
                "medical necessity are met."
            )
            exp = det.get("explanation") or {}
            if isinstance(exp, Mapping) and exp.get("basis") == "exclusion":
                plain = "The service is not medically necessary for this patient. " + str(
                    exp.get("statement")
                )
            review_track = (
                "Because this denial is based on medical necessity, you may ask for an external review "
                "of the medical-necessity decision by an independent review organization, which is not "
                "part of the plan and whose decision the plan must follow."
            )
        sections.append(
            Section(
                "Our decision",
                paragraphs=(
                    f"We deny prior authorization of the service listed above. Decided on {decided} by "
                    f"{reviewer}.",
                    plain,
                    f"The specific reason for this patient: {stated}." if stated else "",
                ),
            )
        )
        sections.append(
            Section(
                "The policy and the criteria we relied on",
                paragraphs=(
                    f"We applied {policy_line}. How each criterion applied to this patient's records:",
                ),
                bullets=tuple(criteria_lines),
            )
        )
        sections.append(Section("What would change this decision", bullets=tuple(_would_change(det))))
        sections.append(
            Section(
                "Your rights",
                bullets=(
                    f"Appeal: you, or the provider on your behalf, may appeal this decision within "
                    f"{APPEAL_DAYS} days of receiving this letter. Send the appeal with any records that "
                    "support the request to the plan's Appeals department; a physician who did not take "
                    "part in this decision will review it. An urgent (expedited) appeal is decided within "
                    "72 hours.",
                    "Peer-to-peer discussion: the requesting provider may ask to discuss this decision "
                    f"with the physician reviewer ({reviewer_name}) before or instead of an appeal.",
                    "External review: " + review_track,
                    "Codes and documents: upon request and free of charge, we will send the diagnosis and "
                    "procedure codes and their meanings, and copies of all documents, records and criteria "
                    "relevant to this decision, including the medical policy.",
                    "Help: you may contact your state's consumer assistance program or department of "
                    "insurance for help with an appeal or external review.",
                ),
            )
        )
    sections = [
        Section(s.heading, tuple(p for p in s.paragraphs if p), s.bullets)
        for s in sections
        if s.paragraphs or s.bullets
    ]
    return Letter(
        kind="approval" if approved else "denial",
        basis=basis,
        request_id=pa.id,
        decided_at=event.at,
        decided_by=reviewer_name,
        decided_by_role=event.role,
        plan=plan_name,
        member=pa.subject or "not named",
        provider=pa.submitter,
        title=title,
        sections=tuple(sections),
        explanation=explanation_parts(det),
    )


def _unregistered(role: str) -> str:
    """The reviewer line when the deciding actor is not a registered user (the engine, or old data)."""
    return "medpolicy" if role == "system" else f"the plan's {_role_words(role)}"


def _role_words(role: str) -> str:
    return {
        "physician": "physician reviewer",
        "nurse": "nurse reviewer",
        "system": "automated review against the policy's criteria",
        "submitter": "submitter",
    }.get(role, role)


def _would_change(det: Mapping[str, Any]) -> list[str]:
    """What information would change an adverse decision, from the determination's trace."""
    lines: list[str] = []
    deciding = [c for c in det.get("deciding_criteria") or [] if isinstance(c, Mapping)]
    unmet = [
        c
        for c in deciding
        if c.get("value") in ("false", "unknown") and c.get("outcome") in (None, "medically_necessary")
    ]
    if unmet:
        lines.append(
            "Records showing that the policy's criteria for medical necessity are met, in particular: "
            + "; ".join(str(c.get("title")).rstrip(".") for c in unmet)
            + "."
        )
    for missing in det.get("missing_facts") or []:
        if isinstance(missing, Mapping) and missing.get("question"):
            lines.append(f"An answer to: {missing['question']}")
    lines.append(
        "Any other clinical information (operative and pathology reports, imaging, staging) that shows "
        "the request meets the policy."
    )
    return lines


def letter_pdf(letter: Letter) -> bytes:
    """The letter as a PDF (reportlab, letter size)."""
    from reportlab.lib.pagesizes import LETTER
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import inch
    from reportlab.platypus import ListFlowable, ListItem, Paragraph, SimpleDocTemplate, Spacer

    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=LETTER,
        leftMargin=0.9 * inch,
        rightMargin=0.9 * inch,
        topMargin=0.8 * inch,
        bottomMargin=0.8 * inch,
        title=letter.title,
        author=letter.plan,
        subject=f"Determination letter for request {letter.request_id}",
    )
    styles = getSampleStyleSheet()
    story: list[Any] = [
        Paragraph(escape(letter.plan), styles["Normal"]),
        Paragraph(escape(f"{letter.decided_at.strftime('%d %B %Y')}"), styles["Normal"]),
        Spacer(1, 8),
        Paragraph(
            escape(f"To: {letter.provider} (requesting provider) and member {letter.member}"),
            styles["Normal"],
        ),
        Spacer(1, 8),
        Paragraph(escape(letter.title), styles["Title"]),
    ]
    shown = False
    for section in letter.sections:
        if not shown and section.heading.startswith("What would change"):
            story.extend(explanation_flowables(letter.explanation, styles))
            shown = True
        story.append(Paragraph(escape(section.heading), styles["Heading2"]))
        for paragraph in section.paragraphs:
            story.append(Paragraph(escape(paragraph), styles["BodyText"]))
        if section.bullets:
            story.append(
                ListFlowable(
                    [ListItem(Paragraph(escape(b), styles["BodyText"])) for b in section.bullets],
                    bulletType="bullet",
                    leftIndent=14,
                )
            )
    if not shown:
        story.extend(explanation_flowables(letter.explanation, styles))
    doc.build(story)
    return buffer.getvalue()
