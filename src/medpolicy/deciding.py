"""Deciding raw cases: validate a case against its policy (chosen by the plan's routing when there are
several) and decide it with the policy's engine. ``decide`` does one case; ``decider`` binds the choice
and the parsers once for a batch, and decides cases seen before from what it learnt
(``medpolicy.case_combos``). The engine itself (``medpolicy.engine``) decides validated cases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from medpolicy.case import Case, parse_case, parser_for
from medpolicy.case_combos import Combos
from medpolicy.determination import Determination
from medpolicy.engine import engine_for
from medpolicy.policy import Policy, PolicySet

__all__ = ["decide", "decider"]


def decide(
    case: Mapping[str, Any],
    policies: PolicySet | Policy,
    *,
    policy_id: str | None = None,
    sources: Mapping[str, str] | None = None,
) -> Determination:
    """Validate a raw case and decide it.

    With several policies and no ``policy_id`` the policy is chosen by the plan's routing (line of
    business, group, procedure codes: ``medpolicy.routing``); raises ``CaseError`` for invalid input,
    ``PolicyNotFound`` or ``NoPolicyApplies``.
    """
    if isinstance(policies, Policy):
        policy = policies
    elif policy_id is not None:
        policy = policies.get(policy_id)
    elif len(policies) == 1:
        policy = next(iter(policies))
    else:
        policy = _route(case, policies)
    return engine_for(policy).decide(parse_case(case, policy, sources=sources))


def decider(
    policies: PolicySet | Policy, *, policy_id: str | None = None
) -> Callable[[Mapping[str, Any]], Determination]:
    """``decide`` bound to its policy once, for batches: the same answers, without per-case routing
    when there is one policy (or ``policy_id`` names it). Cases of a shape and a combination of values
    seen before are decided from what was learnt from them (``medpolicy.case_combos``)."""
    if isinstance(policies, Policy) or policy_id is not None or len(policies) == 1:
        policy = (
            policies
            if isinstance(policies, Policy)
            else policies.get(policy_id)
            if policy_id is not None
            else next(iter(policies))
        )
        parse = parser_for(policy).parse
        fast = engine_for(policy).decide

        def one(case: Mapping[str, Any]) -> Determination:
            return fast(parse(case, None))

        chosen = policy
        return Combos([chosen], lambda case: chosen, one, frozenset()).decider()
    services = frozenset(p.governs_service for p in policies if p.governs_service is not None)
    route = _remembered_routes(policies)
    return Combos(
        list(policies), route, _routed_decider(policies, route), services | {"procedure_codes"}
    ).decider()


def _remembered_routes(policies: PolicySet) -> Callable[[Mapping[str, Any]], Policy]:
    """``policies.route``, remembered by what routing reads (codes, line of business, group, the
    policies' service facts): a batch routes each distinct combination once. Raises what ``route``
    raises, and AttributeError or TypeError for a case that is not a mapping or whose routing values
    cannot be a key (``decide`` then says why)."""
    services = tuple({p.governs_service for p in policies if p.governs_service is not None})
    routes: dict[tuple[Any, ...], Policy] = {}
    service = services[0] if len(services) == 1 else None  # the common plan: at most one service fact

    def route(case: Mapping[str, Any]) -> Policy:
        g = case.get
        codes = g("procedure_codes")
        codes_key = tuple(codes) if type(codes) is list else codes
        if service is not None:
            key: tuple[Any, ...] = (codes_key, g("line_of_business"), g("group"), g(service) is True)
        else:
            key = (codes_key, g("line_of_business"), g("group"), *[g(f) is True for f in services])
        hit = routes.get(key)
        if hit is None:
            hit = _route(case, policies)
            if len(routes) < 4096:
                routes[key] = hit
        return hit

    return route


def _routed_decider(
    policies: PolicySet, route: Callable[[Mapping[str, Any]], Policy]
) -> Callable[[Mapping[str, Any]], Determination]:
    """Per-case routing (``route``, remembered), then the chosen policy's parser and engine."""
    paths: dict[str, tuple[Callable[..., Case], Callable[[Case], Determination]]] = {}

    def one(case: Mapping[str, Any]) -> Determination:
        try:
            policy = route(case)
        except (AttributeError, TypeError):  # not a mapping, or unhashable values: decide says why
            return decide(case, policies)
        hit = paths.get(policy.id)
        if hit is None:
            hit = paths[policy.id] = (parser_for(policy).parse, engine_for(policy).decide)
        parse, fast = hit
        return fast(parse(case, None))

    return one


def _route(case: Mapping[str, Any], policies: PolicySet) -> Policy:
    """The plan's routing (``medpolicy.routing``): line of business, group, procedure codes."""
    return policies.route(case)
