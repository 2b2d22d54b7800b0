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

The plan's identity and contacts, the member and providers, the reviewer's credentials, the
authorization block of an approval, the peer-to-peer discussion, the notices and the signature are
the letter's `frame` (`medpolicy.web.letter_parts`), from the plan's configuration and the request's
casework. The PDF has page numbers ("Page n of m") and the same text as the HTML.
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
from medpolicy.web.letter_parts import LetterFrame, build_frame, reviewer_line
from medpolicy.web.plan import PlanConfig, load_plan

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
    frame: LetterFrame | None = None
    denial_code: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.request_id}-{self.kind}-letter"

    def text(self) -> str:
        """The whole letter as plain text (for tests and for a screen reader's summary)."""
        lines = [self.title]
        for s in self.sections:
            lines.append(s.heading)
            lines.extend(s.paragraphs)
            lines.extend(f"- {b}" for b in s.bullets)
        if self.frame is not None:
            lines.append(self.frame.text())
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
    casework: Any = None,
    plan_config: PlanConfig | None = None,
) -> Letter:
    """The letter for an approved or denied request (raises LetterError otherwise).

    `policy` is the `medpolicy.Policy` the request was decided under (for the codes' labels and the
    publisher), or None. `names` maps reviewers' usernames (the audit's actors) to their full names.
    `casework` (`medpolicy.store.casework.Casework`) gives the member, providers, structured denial
    reason and peer-to-peer; `plan_config` the plan's identity and texts (default: `load_plan()`).
    """
    config = plan_config or load_plan()
    if pa.state not in (State.APPROVED.value, State.DENIED.value):
        raise LetterError(f"a request that is {pa.state.replace('_', ' ')} has no determination letter")
    event = _decision_event(events)
    det: dict[str, Any] = pa.determination.determination if pa.determination else {}
    outcome = str(det.get("outcome") or pa.recommendation or "")
    pol = det.get("policy") or {}
    plan_name = plan or config.name
    approved = pa.state == State.APPROVED.value
    basis: Basis | None = None
    if not approved:
        basis = "investigational" if outcome == "investigational" else "not_medically_necessary"
    case = pa.case
    dos = str(case.get("date_of_service") or "not given")
    diagnoses = ", ".join(str(c) for c in case.get("diagnosis_codes") or []) or "none given"
    service = _service_lines(case, policy)
    reviewer_name = (names or {}).get(event.actor, event.actor)
    reviewer = (
        _role_words(event.role)
        if event.role == "system"
        else f"{reviewer_line(config, event.actor, reviewer_name, event.role)}, {_role_words(event.role)}"
    )
    parties = casework.parties if casework is not None else None
    member_words = (
        parties.member.label() if parties is not None and parties.member else (pa.subject or "not named")
    )
    requester = parties.requesting.label() if parties is not None and parties.requesting else pa.submitter
    service_name = str(pol.get("title") or "the requested service")
    decided = config.local(event.at).strftime("%d %B %Y")

    publisher = policy.publisher if policy is not None else plan_name
    policy_line = (
        f"{pol.get('title', 'the medical policy')} ({pol.get('id', pa.policy_id or '')}), "
        f"version {pol.get('version', 'unknown')} in force from {pol.get('effective_from', 'unknown')}, "
        f"published by {publisher}"
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
                f"{pa.urgency} review. Requested by {requester} for member {member_words}.",
                f"Planned date of service: {dos}. Diagnosis codes: {diagnoses}.",
            ),
            bullets=tuple(service) or ("No procedure code was given.",),
        )
    ]
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
                    (
                        f"The specific reason for this patient: {stated}."
                        + (
                            f" (Reason code {casework.denial_code}.)"
                            if casework is not None and casework.denial_code
                            else ""
                        )
                    )
                    if stated
                    else "",
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
                    f"support the request to {', '.join(config.appeals.address)} (fax "
                    f"{config.appeals.fax or 'not available'}, phone {config.appeals.phone}); a physician "
                    "who did not take "
                    "part in this decision will review it. An urgent (expedited) appeal is decided within "
                    "72 hours.",
                    "Peer-to-peer discussion: the requesting provider may ask to discuss this decision "
                    f"with the physician reviewer ({reviewer_name}) before or instead of an appeal: call "
                    f"{config.peer_to_peer.phone}"
                    + (f" or fax {config.peer_to_peer.fax}" if config.peer_to_peer.fax else "")
                    + ".",
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
    names_map = dict(names or {})
    governed_labels: Mapping[str, str] = policy.governs.labels if policy is not None else {}
    governed_codes = policy.governs.codes if policy is not None else frozenset()
    approved_codes = [
        (str(c), governed_labels.get(str(c), ""))
        for c in case.get("procedure_codes") or []
        if policy is None or str(c) in governed_codes
    ]
    from medpolicy.parties import Parties

    frame = build_frame(
        plan=config,
        kind="approval" if approved else "denial",
        request_id=pa.id,
        decided_on=event.at.date().isoformat(),
        parties=parties or Parties(),
        submitter=pa.submitter,
        case=case,
        approved_codes=approved_codes,
        reviewer=reviewer,
        p2p=dict(casework.peer_to_peer) if casework is not None else {},
        names=names_map,
    )
    return Letter(
        frame=frame,
        denial_code=casework.denial_code if casework is not None and not approved else None,
        kind="approval" if approved else "denial",
        basis=basis,
        request_id=pa.id,
        decided_at=event.at,
        decided_by=reviewer_name,
        decided_by_role=event.role,
        plan=plan_name,
        member=member_words,
        provider=requester,
        title=title,
        sections=tuple(sections),
    )


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
    """The letter as a PDF (reportlab, letter size), with "Page n of m" on every page."""
    from reportlab.lib.pagesizes import LETTER
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import inch
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import ListFlowable, ListItem, Paragraph, SimpleDocTemplate, Spacer

    styles = getSampleStyleSheet()
    font = _unicode_font(pdfmetrics, TTFont)
    if font is not None:
        for name, style in styles.byName.items():
            if hasattr(style, "fontName"):
                bold = name.startswith(("Heading", "Title"))
                style.fontName = font + "-Bold" if bold else font

    class NumberedCanvas(Canvas):  # type: ignore[misc]
        """Draws "Page n of m" once the page count is known."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - reportlab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont(font or "Helvetica", 8)
                self.drawRightString(
                    LETTER[0] - 0.9 * inch,
                    0.5 * inch,
                    f"Request {letter.request_id} · Page {self._pageNumber} of {total}",
                )
                super().showPage()
            super().save()

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

    def para(text: str, style: str = "BodyText") -> Any:
        return Paragraph(escape(text), styles[style])

    def section(heading: str, paragraphs: Sequence[str], bullets: Sequence[str]) -> list[Any]:
        out: list[Any] = [para(heading, "Heading2")]
        out += [para(p) for p in paragraphs]
        if bullets:
            out.append(
                ListFlowable(
                    [ListItem(para(b)) for b in bullets],
                    bulletType="bullet",
                    leftIndent=14,
                )
            )
        return out

    frame = letter.frame
    story: list[Any] = []
    if frame is not None:
        story += [para(line, "Normal") for line in frame.letterhead]
    else:
        story.append(para(letter.plan, "Normal"))
    story += [
        Spacer(1, 6),
        para(load_plan().local(letter.decided_at).strftime("%d %b %Y"), "Normal"),
        Spacer(1, 8),
    ]
    story.append(para(f"To: {letter.provider} (requesting provider) and member {letter.member}", "Normal"))
    if frame is not None:
        story += [para(line, "Normal") for line in (*frame.recipients, *frame.reference)]
    story += [Spacer(1, 8), para(letter.title, "Title")]
    for s in letter.sections:
        story += section(s.heading, s.paragraphs, s.bullets)
        if frame is not None and s.heading == "Our decision" and frame.authorization is not None:
            a = frame.authorization
            story += section(a.heading, a.paragraphs, a.bullets)
    if frame is not None:
        for n in (frame.peer_to_peer, frame.contacts):
            if n is not None:
                story += section(n.heading, n.paragraphs, n.bullets)
        story.append(Spacer(1, 10))
        story += [para(line, "Normal") for line in frame.signature]
        for n in frame.notices:
            story += section(n.heading, n.paragraphs, n.bullets)
    doc.build(story, canvasmaker=NumberedCanvas)
    return buffer.getvalue()


_FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
)


def _unicode_font(pdfmetrics: Any, ttfont: Any) -> str | None:
    """A TrueType font with the taglines' scripts when the system has one (DejaVu Sans), else None
    (reportlab's Helvetica, which shows Latin text only)."""
    from pathlib import Path

    for candidate in _FONT_CANDIDATES:
        bold = candidate.replace("DejaVuSans.ttf", "DejaVuSans-Bold.ttf")
        if Path(candidate).is_file() and Path(bold).is_file():
            try:
                pdfmetrics.registerFont(ttfont("LetterSans", candidate))
                pdfmetrics.registerFont(ttfont("LetterSans-Bold", bold))
            except Exception:  # noqa: S112  # pragma: no cover - an unreadable font file
                continue
            return "LetterSans"
    return None
