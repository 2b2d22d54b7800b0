"""Structured denial reasons: the pick-list a physician chooses from, generated from the policy.

Each reason has a stable code (carried by the PAS response as ``reviewAction.reasonCode``, system
``medpolicy.interop.pas.DENIAL_REASON_SYSTEM``) and a label the letter quotes, followed by the
physician's own words:

* ``criterion_not_met:<criterion id>``: each criterion of the applied version that is not met;
* ``investigational``: the policy calls the service investigational for this condition;
* ``not_medically_necessary``: the criteria for medical necessity are not met (in general);
* ``information_not_received``: the information needed to decide was not received in time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["DenialReason", "denial_reasons"]


@dataclass(frozen=True)
class DenialReason:
    code: str
    label: str


def denial_reasons(determination: Mapping[str, Any]) -> list[DenialReason]:
    """The reasons a physician may give for denying this request, most specific first."""
    reasons: list[DenialReason] = []
    outcome = determination.get("outcome")
    if outcome == "investigational":
        reasons.append(
            DenialReason(
                "investigational",
                "The service is investigational for this condition under the medical policy",
            )
        )
    seen: set[str] = set()
    for c in determination.get("criteria") or []:
        if not isinstance(c, Mapping) or str(c.get("value")) != "false":
            continue
        if c.get("outcome") not in (None, "medically_necessary"):
            continue  # a rule that would make it investigational is not a failed criterion
        cid = str(c.get("id"))
        if cid in seen:
            continue
        seen.add(cid)
        title = str(c.get("title") or cid).rstrip(".")
        reasons.append(
            DenialReason(f"criterion_not_met:{cid}", f"The policy's criterion is not met: {title}")
        )
    reasons.append(
        DenialReason(
            "not_medically_necessary",
            "The records do not show that the policy's criteria for medical necessity are met",
        )
    )
    reasons.append(
        DenialReason(
            "information_not_received",
            "The information needed to decide was not received in time",
        )
    )
    return reasons
