"""The parts of a determination letter that come from the plan and the request's casework.

A regulator's checklist: the plan's identity and contacts (address, phone, the fax for appeals and
for peer-to-peer), the member (id, date of birth, plan, group) and the providers (with NPI), the
reviewer's credentials and specialty, for an approval the authorization number, validity period and
the approved codes and units, the peer-to-peer discussion when one was offered or held, the
non-discrimination notice and the language-assistance taglines, and a signature. Texts come from the
plan's configuration (`medpolicy.web.plan`). `build_frame` is pure: the HTML and the PDF both render
the `LetterFrame` it returns, so they say the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from medpolicy.parties import Parties, Provider
from medpolicy.web.plan import PlanConfig

__all__ = ["LetterFrame", "Notice", "build_frame", "reviewer_line"]


@dataclass(frozen=True)
class Notice:
    heading: str
    paragraphs: tuple[str, ...] = ()
    bullets: tuple[str, ...] = ()


@dataclass(frozen=True)
class LetterFrame:
    letterhead: tuple[str, ...]
    recipients: tuple[str, ...]
    reference: tuple[str, ...]
    authorization: Notice | None
    peer_to_peer: Notice | None
    contacts: Notice
    signature: tuple[str, ...]
    notices: tuple[Notice, ...]

    def text(self) -> str:
        lines = [*self.letterhead, *self.recipients, *self.reference]
        for n in (self.authorization, self.peer_to_peer, self.contacts, *self.notices):
            if n is not None:
                lines += [n.heading, *n.paragraphs, *(f"- {b}" for b in n.bullets)]
        return "\n".join([*lines, *self.signature])


def _provider_line(role: str, p: Provider | None, fallback: str) -> str:
    if p is None:
        return f"{role}: {fallback}"
    parts = [p.name or p.organization or fallback]
    if p.npi:
        parts.append(f"NPI {p.npi}")
    if p.name and p.organization:
        parts.append(p.organization + (f" (NPI {p.organization_npi})" if p.organization_npi else ""))
    elif p.organization_npi and not p.npi:
        parts.append(f"NPI {p.organization_npi}")
    if p.tin:
        parts.append(f"TIN {p.tin}")
    return f"{role}: " + ", ".join(parts)


def reviewer_line(plan: PlanConfig, username: str, name: str, role: str) -> str:
    """``Dr. Paula Physician, MD, Radiation oncology, board certified``."""
    if role == "system":
        return "automated review against the policy's criteria"
    info = plan.reviewer(username)
    out = name
    if info.credentials and not name.rstrip().endswith(info.credentials):
        out += f", {info.credentials}"
    if info.specialty:
        out += f" ({info.specialty})"
    return out


def _contact_lines(plan: PlanConfig) -> tuple[str, ...]:
    a, p = plan.appeals, plan.peer_to_peer
    lines = [
        f"Appeals: write to {', '.join(a.address)}; phone {a.phone}"
        + (f"; fax {a.fax}" if a.fax else "")
        + ".",
        f"Peer-to-peer discussion with the physician reviewer: phone {p.phone}"
        + (f"; fax {p.fax}" if p.fax else "")
        + (f" ({p.hours})" if p.hours else "")
        + ".",
        f"Member services: {plan.phone}" + (f"; {plan.website}" if plan.website else "") + ".",
    ]
    return tuple(lines)


def _p2p_notice(p2p: Mapping[str, Any], names: Mapping[str, str], plan: PlanConfig) -> Notice | None:
    status = p2p.get("status")
    if not status:
        return None
    lines = []
    if p2p.get("offered_at"):
        offered_by = str(p2p.get("offered_by") or "")
        lines.append(
            f"A peer-to-peer discussion with {names.get(offered_by, offered_by)} was offered to the "
            f"requesting provider on {_day(str(p2p['offered_at']))}."
        )
    if p2p.get("scheduled_for"):
        lines.append(
            f"It was scheduled for {str(p2p['scheduled_for']).replace('T', ' at ')} with {p2p.get('contact')}."
        )
    if status == "held":
        outcome = {"upheld": "the decision was upheld", "overturned": "the decision was overturned"}.get(
            str(p2p.get("outcome")), str(p2p.get("outcome"))
        )
        lines.append(
            f"The discussion was held on {_day(str(p2p.get('held_at') or ''))}: {outcome}."
            + (f" {p2p['note']}" if p2p.get("note") else "")
        )
    elif status in ("offered", "scheduled"):
        lines.append(f"To hold it, call {plan.peer_to_peer.phone}.")
    return Notice("Peer-to-peer discussion", paragraphs=tuple(lines))


def _day(iso: str) -> str:
    try:
        return date.fromisoformat(iso[:10]).strftime("%d %B %Y")
    except ValueError:
        return iso


def build_frame(
    *,
    plan: PlanConfig,
    kind: str,
    request_id: str,
    decided_on: str,
    parties: Parties,
    submitter: str,
    case: Mapping[str, Any],
    approved_codes: Sequence[tuple[str, str]],
    reviewer: str,
    p2p: Mapping[str, Any],
    names: Mapping[str, str],
) -> LetterFrame:
    """The letter's frame for one decided request (`approved_codes`: (code, label) of an approval)."""
    m = parties.member
    if m is not None:
        member = f"Member: {m.name or 'name not given'}, member id {m.member_id}"
        member += f", date of birth {m.birth_date}" if m.birth_date else ", date of birth not given"
        if m.plan:
            member += f", plan {m.plan}"
        if m.group:
            member += f", group {m.group}"
    else:
        member = "Member: not identified in the request"
    recipients = (
        member,
        _provider_line("Requesting provider", parties.requesting, f"{submitter} (submitting system)"),
        _provider_line("Servicing provider", parties.servicing, "not named in the request"),
    )
    reference = [f"Authorization number: {request_id}" if kind == "approval" else f"Reference: {request_id}"]
    authorization = None
    if kind == "approval":
        dos_raw = str(case.get("date_of_service") or "")
        try:
            start = date.fromisoformat(dos_raw)
        except ValueError:
            start = date.fromisoformat(decided_on)
        end = start + timedelta(days=plan.valid_days - 1)
        authorization = Notice(
            "Authorization",
            paragraphs=(
                f"Authorization number {request_id}. Valid from {start:%d %B %Y} through {end:%d %B %Y}.",
                "Approved services:",
            ),
            bullets=tuple(
                f"Procedure code {code}{': ' + label if label else ''}, {plan.units_per_code} "
                f"unit{'s' if plan.units_per_code != 1 else ''}"
                for code, label in approved_codes
            )
            or ("The service listed above, 1 unit.",),
        )
    contacts = Notice("How to reach us", bullets=_contact_lines(plan))
    notices = (
        Notice("Non-discrimination notice", paragraphs=(plan.non_discrimination,)),
        Notice("Language assistance", bullets=plan.taglines),
    )
    signature = (plan.closing, reviewer, plan.department, plan.name)
    return LetterFrame(
        letterhead=(
            plan.name,
            *plan.address,
            f"Phone {plan.phone}",
            *((plan.website,) if plan.website else ()),
        ),
        recipients=recipients,
        reference=tuple(reference),
        authorization=authorization,
        peer_to_peer=_p2p_notice(p2p, names, plan),
        contacts=contacts,
        signature=signature,
        notices=notices,
    )
