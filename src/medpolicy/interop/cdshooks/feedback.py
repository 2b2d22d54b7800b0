"""The feedback endpoint's body (CDS Hooks 2.0 ``feedback[]``) checked: :func:`validate_feedback`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from medpolicy.interop.cdshooks.request import CdsRequestError, Problem


@dataclass(frozen=True)
class Feedback:
    """One feedback item (CDS Hooks 2.0 ``feedback[]``)."""

    card: str
    outcome: Literal["accepted", "overridden"]
    accepted_suggestions: tuple[str, ...]
    override_reason: Mapping[str, Any] | None
    outcome_timestamp: str


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value


def validate_feedback(body: Any) -> list[Feedback]:
    """Check a feedback body ``{"feedback": [...]}``.

    Raises:
        CdsRequestError: 400 when not a JSON object, 422 for missing or invalid fields.
    """
    if not isinstance(body, Mapping):
        raise CdsRequestError(
            400, [Problem("invalid_request", "$", "the request body must be a JSON object")]
        )
    items = body.get("feedback")
    if not isinstance(items, list) or not items:
        raise CdsRequestError(422, [Problem("missing_field", "feedback", "must be a non-empty array")])
    problems: list[Problem] = []
    out: list[Feedback] = []
    for i, item in enumerate(items):
        path = f"feedback[{i}]"
        if not isinstance(item, Mapping):
            problems.append(Problem("invalid_field", path, "must be an object"))
            continue
        card = item.get("card")
        outcome = item.get("outcome")
        if not isinstance(card, str) or not card:
            problems.append(Problem("missing_field", f"{path}.card", "is required (the card uuid)"))
        if outcome not in ("accepted", "overridden"):
            problems.append(Problem("invalid_field", f"{path}.outcome", "must be 'accepted' or 'overridden'"))
        accepted: list[str] = []
        raw_accepted = item.get("acceptedSuggestions")
        if outcome == "accepted" and (not isinstance(raw_accepted, list) or not raw_accepted):
            problems.append(
                Problem("missing_field", f"{path}.acceptedSuggestions", "is required for an accepted outcome")
            )
        elif raw_accepted is not None:
            if not isinstance(raw_accepted, list):
                problems.append(Problem("invalid_field", f"{path}.acceptedSuggestions", "must be an array"))
            else:
                for j, s in enumerate(raw_accepted):
                    if isinstance(s, Mapping) and isinstance(s.get("id"), str) and s["id"]:
                        accepted.append(s["id"])
                    else:
                        problems.append(
                            Problem("invalid_field", f"{path}.acceptedSuggestions[{j}].id", "is required")
                        )
        reason = item.get("overrideReason")
        if reason is not None:
            if not isinstance(reason, Mapping):
                problems.append(Problem("invalid_field", f"{path}.overrideReason", "must be an object"))
            elif reason.get("reason") is not None:
                coding = reason["reason"]
                if not (
                    isinstance(coding, Mapping)
                    and isinstance(coding.get("code"), str)
                    and isinstance(coding.get("system"), str)
                ):
                    problems.append(
                        Problem(
                            "invalid_field",
                            f"{path}.overrideReason.reason",
                            "must be a Coding (code, system)",
                        )
                    )
            if outcome == "accepted":
                problems.append(
                    Problem("invalid_field", f"{path}.overrideReason", "only an overridden card has a reason")
                )
        stamp = item.get("outcomeTimestamp")
        if not _is_timestamp(stamp):
            problems.append(
                Problem("invalid_field", f"{path}.outcomeTimestamp", "must be an ISO 8601 timestamp")
            )
        if not problems:
            out.append(
                Feedback(
                    card=str(card),
                    outcome="accepted" if outcome == "accepted" else "overridden",
                    accepted_suggestions=tuple(accepted),
                    override_reason=reason if isinstance(reason, Mapping) else None,
                    outcome_timestamp=str(stamp),
                )
            )
    if problems:
        raise CdsRequestError(422, problems)
    return out
