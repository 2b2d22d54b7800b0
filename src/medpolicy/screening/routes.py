"""Which policy screens each claim line: routed as ``decide`` routes a case.

A line's policy is a function of what routing reads (``medpolicy.routing``): its procedure code, its
``line_of_business`` (NULL: the plan's default), and the service facts of the policies that scope by the
service given (``governs_service``: true in the line's facts-table row puts the line in that policy's
scope whatever its code, as ``Policy.governs_case`` says). All take few values, so every combination of
a governed code (or any other code), a line of business and the service facts stated true is routed
here once, with the plan's own ``route_order``, and the SQL generator turns the answers into one
``CASE`` expression: the policy id, or ``!<n>`` naming the error ``decide`` raises for such a case (no
policy, several, an unknown line of business).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from medpolicy.errors import MedpolicyError, NoPolicyApplies
from medpolicy.policy import Policy, PolicySet
from medpolicy.routing import LINES_OF_BUSINESS, route_order

_ANY: tuple[str | None, ...] = (None, *LINES_OF_BUSINESS)

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
    #: the service facts (``governs_service``) some policy scopes by, in a stable order
    services: tuple[str, ...] = ()
    #: ``(code or None for any other code, line of business, services stated true)`` -> route, for every
    #: non-empty set of services (a subset of ``services``, in their order)
    by_service: dict[tuple[str | None, str | None, tuple[str, ...]], str] = field(default_factory=dict)
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
        svc = (single.governs_service,) if single.governs_service else ()
        r = Routes(tuple(sorted(single.governs.codes)), policies=[single], services=svc)
        for code in r.codes:
            for lob in _ANY:
                r.by[(code, lob)] = single.id
        if svc:  # the service stated true: every line is in scope, whatever its code
            for c in (*r.codes, None):
                for lob in _ANY:
                    r.by_service[(c, lob, svc)] = single.id
        r._invalid()
        return r
    assert isinstance(policies, PolicySet)
    codes = sorted({c for p in policies for c in p.governs.codes})
    services = tuple(sorted({p.governs_service for p in policies if p.governs_service}))
    r = Routes(tuple(codes), services=services)
    chosen: dict[str, Policy] = {}

    def route(code: str | None, lob: str | None, stated: tuple[str, ...]) -> str | None:
        case = dict.fromkeys(stated, True)
        try:
            p = route_order([code] if code else [], None, policies, line_of_business=lob, case=case)
        except NoPolicyApplies as e:
            return r.error(RouteError(e.code, "procedure_codes", str(e)))
        except MedpolicyError as e:  # pragma: no cover - route_order raises NoPolicyApplies only
            return r.error(RouteError("no_policy_applies", "procedure_codes", str(e)))
        if p is None:  # pragma: no cover - the code (or a service stated) is governed by some policy
            return None
        chosen.setdefault(p.id, p)
        return p.id

    for code in codes:
        for lob in _ANY:
            found = route(code, lob, ())
            if found is not None:
                r.by[(code, lob)] = found
    for stated in _subsets(services):
        for c in (*codes, None):
            for lob in _ANY:
                found = route(c, lob, stated)
                if found is not None:
                    r.by_service[(c, lob, stated)] = found
    r.policies = [chosen[k] for k in sorted(chosen)]
    r._invalid()
    return r


def _subsets(items: tuple[str, ...]) -> list[tuple[str, ...]]:
    """The non-empty subsets of ``items``, each in their order."""
    out: list[tuple[str, ...]] = []
    for mask in range(1, 1 << len(items)):
        out.append(tuple(x for k, x in enumerate(items) if mask >> k & 1))
    return out
