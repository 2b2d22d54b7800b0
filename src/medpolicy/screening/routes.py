"""Which policy screens each claim line: routed as ``decide`` routes a case.

A line's policy is a function of what routing reads (``medpolicy.routing``): its procedure code and its
``line_of_business`` (NULL: the plan's default). Both take few values, so every combination of a
governed code and a line of business is routed here once, with the plan's own ``route_order``, and the
SQL generator turns the answers into one ``CASE`` expression: the policy id, or ``!<n>`` naming the
error ``decide`` raises for such a case (no policy, several, an unknown line of business).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from medpolicy.errors import MedpolicyError, NoPolicyApplies
from medpolicy.policy import Policy, PolicySet
from medpolicy.routing import LINES_OF_BUSINESS, route_order

__all__ = ["RouteError", "Routes", "routes_for"]


@dataclass(frozen=True, slots=True)
class RouteError:
    code: str
    field: str
    reason: str


@dataclass(slots=True)
class Routes:
    """``by[(code, line of business or None)]``: a policy id or ``!<n>`` (``errors[n]``); ``policies``
    the policies some line can route to, in a stable order."""

    codes: tuple[str, ...]
    by: dict[tuple[str, str | None], str] = field(default_factory=dict)
    errors: list[RouteError] = field(default_factory=list)
    policies: list[Policy] = field(default_factory=list)
    #: the tag of a line whose line of business is not one ``decide`` knows
    invalid: str = ""

    def error(self, e: RouteError) -> str:
        if e not in self.errors:
            self.errors.append(e)
        return f"!{self.errors.index(e)}"

    def _invalid(self) -> None:
        self.invalid = self.error(
            RouteError("invalid_value", "line_of_business", f"not one of: {', '.join(LINES_OF_BUSINESS)}")
        )


def routes_for(policies: PolicySet | Sequence[Policy], single: Policy | None) -> Routes:
    """Route every governed code under every line of business (``single``: one policy screens every
    line, as ``decide`` with a policy id; only an unknown line of business is an error)."""
    if single is not None:
        r = Routes(tuple(sorted(single.governs.codes)), policies=[single])
        for code in r.codes:
            for lob in (None, *LINES_OF_BUSINESS):
                r.by[(code, lob)] = single.id
        r._invalid()
        return r
    assert isinstance(policies, PolicySet)
    codes = sorted({c for p in policies for c in p.governs.codes})
    r = Routes(tuple(codes))
    chosen: dict[str, Policy] = {}
    for code in codes:
        for lob in (None, *LINES_OF_BUSINESS):
            try:
                p = route_order([code], None, policies, line_of_business=lob)
            except NoPolicyApplies as e:
                r.by[(code, lob)] = r.error(RouteError(e.code, "procedure_codes", str(e)))
                continue
            except MedpolicyError as e:  # pragma: no cover - route_order raises NoPolicyApplies only
                r.by[(code, lob)] = r.error(RouteError("no_policy_applies", "procedure_codes", str(e)))
                continue
            if p is None:  # pragma: no cover - the code is governed by some policy
                continue
            chosen.setdefault(p.id, p)
            r.by[(code, lob)] = p.id
    r.policies = [chosen[k] for k in sorted(chosen)]
    r._invalid()
    return r
