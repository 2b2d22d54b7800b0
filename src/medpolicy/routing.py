"""Which policy applies: a function of the plan's configuration and the case.

Several policies may govern one procedure code (three IORT policies govern 77425). A plan chooses among
them by the member's **line of business** (``commercial``, ``medicare_advantage``, ``medicaid``) and
sometimes by **group**. The plan says how in ``plan.yaml`` beside the policy folders::

    plan: Example Health Plan (fictional)
    default_line_of_business: commercial     # a case that names none is decided as this
    routes:
      - {policy: bluekc-iort, line_of_business: [commercial]}
      - {policy: example-iort-commercial, line_of_business: [commercial], groups: [EX-PPO-2026]}
      - {policy: example-iort-medicare-advantage, line_of_business: [medicare_advantage]}

A case carries ``line_of_business`` and ``group`` beside its facts (the faces read them from the FHIR
``Coverage``). Routing: the policies *in force* for the member are those with a route for the line of
business whose ``groups`` list the member's group or, when none does, those whose route names no groups
(the most specific route wins). Among those in force, the one governing the case's procedure codes
applies. When none governs them but exactly one is in force, that one decides (its determination says
``not_applicable``). No policy, or several: ``NoPolicyApplies`` saying which. Loading refuses a plan
whose routes can send one case to two policies, so "several" only arises without a plan file.

Without ``plan.yaml`` the procedure codes alone choose (one policy, or exactly one governing them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from medpolicy.codes import normalize_procedure
from medpolicy.errors import FieldError, NoPolicyApplies, PolicyLoadError, PolicyProblem

if TYPE_CHECKING:
    from medpolicy.policy import Policy, PolicySet

__all__ = [
    "LINES_OF_BUSINESS",
    "ROUTING_KEYS",
    "PlanConfig",
    "Route",
    "SeveralPoliciesApply",
    "check_routing_keys",
    "load_plan",
    "route_case",
    "route_order",
]

LINES_OF_BUSINESS = ("commercial", "medicare_advantage", "medicaid")
#: Keys a case may carry beside its facts that choose the policy (they are not facts of any policy).
ROUTING_KEYS = frozenset({"line_of_business", "group"})
PLAN_FILE = "plan.yaml"


class SeveralPoliciesApply(NoPolicyApplies):
    """More than one policy applies to a case (only possible without a plan configuration)."""

    code = "several_policies_apply"


@dataclass(frozen=True, slots=True)
class Route:
    policy: str
    lines: frozenset[str]
    groups: frozenset[str] | None  # None: every group not named by a more specific route
    line: int | None = None


@dataclass(frozen=True, slots=True)
class PlanConfig:
    plan: str
    default_line_of_business: str | None
    routes: tuple[Route, ...]
    file: str = PLAN_FILE

    def in_force(self, line_of_business: str, group: str | None) -> list[str]:
        """Policy ids in force for a member (most specific route wins, per policy set of the line)."""
        lines = [r for r in self.routes if line_of_business in r.lines]
        specific = [
            r.policy for r in lines if r.groups is not None and group is not None and group in r.groups
        ]
        general = [r.policy for r in lines if r.groups is None]
        # A group-specific route replaces the general routes whose policies govern the same codes; the
        # caller intersects with the governing policies, so both are returned, specific first.
        return list(dict.fromkeys([*specific, *general]))


class _Route(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    policy: str
    line_of_business: list[str] = Field(min_length=1)
    groups: list[str] | None = None


class _Plan(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    plan: str
    default_line_of_business: str | None = None
    routes: list[_Route] = Field(min_length=1)


def load_plan(root: Path, policies: Mapping[str, Policy]) -> PlanConfig | None:
    """Read and check ``root/plan.yaml`` (None when there is none); problems name the file and line."""
    path = root / PLAN_FILE
    if not path.exists():
        return None
    file = str(path)
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise PolicyLoadError([PolicyProblem(file, None, f"cannot read plan file: {e}")]) from None
    route_lines: list[int | None] = []
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == "routes" and isinstance(v, yaml.SequenceNode):
                route_lines = [item.start_mark.line + 1 for item in v.value]
    try:
        raw = _Plan.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            loc = tuple(err["loc"])
            line = (
                route_lines[loc[1]]
                if len(loc) > 1
                and loc[0] == "routes"
                and isinstance(loc[1], int)
                and loc[1] < len(route_lines)
                else None
            )
            problems.append(
                PolicyProblem(file, line, f"{'.'.join(map(str, loc)) or 'file'}: {err['msg'].lower()}")
            )
        raise PolicyLoadError(problems) from None
    problems = []
    if raw.default_line_of_business is not None and raw.default_line_of_business not in LINES_OF_BUSINESS:
        problems.append(
            PolicyProblem(
                file,
                None,
                f"default_line_of_business {raw.default_line_of_business!r} is not one of {', '.join(LINES_OF_BUSINESS)}",
            )
        )
    routes = []
    for i, r in enumerate(raw.routes):
        line = route_lines[i] if i < len(route_lines) else None
        if r.policy not in policies:
            problems.append(
                PolicyProblem(
                    file,
                    line,
                    f"route names unknown policy {r.policy!r} (known: {', '.join(sorted(policies))})",
                )
            )
        bad = [x for x in r.line_of_business if x not in LINES_OF_BUSINESS]
        if bad:
            problems.append(
                PolicyProblem(file, line, f"{bad} are not lines of business ({', '.join(LINES_OF_BUSINESS)})")
            )
        routes.append(
            Route(
                r.policy,
                frozenset(r.line_of_business),
                frozenset(r.groups) if r.groups is not None else None,
                line,
            )
        )
    # Two routes that can both put one case in front of two policies governing the same code.
    for i, a in enumerate(routes):
        for b in routes[i + 1 :]:
            if a.policy not in policies or b.policy not in policies or a.policy == b.policy:
                continue
            lines = a.lines & b.lines
            same_level = (a.groups is None) == (b.groups is None)
            groups_meet = a.groups is None or b.groups is None or bool(a.groups & b.groups)
            codes = policies[a.policy].governs.codes & policies[b.policy].governs.codes
            if lines and same_level and groups_meet and codes:
                problems.append(
                    PolicyProblem(
                        file,
                        b.line,
                        f"routes to {a.policy!r} (line {a.line}) and {b.policy!r} both apply to "
                        f"{', '.join(sorted(lines))} members{' of the same group' if a.groups else ''} for "
                        f"{', '.join(sorted(codes))}: a case must have one policy",
                    )
                )
    if problems:
        raise PolicyLoadError(problems)
    return PlanConfig(raw.plan, raw.default_line_of_business, tuple(routes), file)


def check_routing_keys(raw: Mapping[str, Any], errors: list[FieldError]) -> None:
    """Validate ``line_of_business`` and ``group`` when a case carries them."""
    lob = raw.get("line_of_business")
    if lob is not None and lob not in LINES_OF_BUSINESS:
        errors.append(
            FieldError(
                "invalid_value",
                "line_of_business",
                lob if isinstance(lob, str | int | float | bool) else repr(lob),
                f"not one of: {', '.join(LINES_OF_BUSINESS)}",
            )
        )
    group = raw.get("group")
    if group is not None and (not isinstance(group, str) or not group.strip() or len(group) > 200):
        errors.append(
            FieldError(
                "invalid_type",
                "group",
                group if isinstance(group, str | int | float | bool) else repr(group),
                "expected a group identifier (a non-empty string of at most 200 characters)",
            )
        )


def _codes(raw: Any) -> set[str]:
    items = raw if isinstance(raw, list | tuple) else [raw] if raw else []
    return {normalize_procedure(c) for c in items if isinstance(c, str)}


def route_case(case: Mapping[str, Any], policies: PolicySet) -> Policy:
    """The policy that decides a raw case (see the module docstring); raises ``CaseError`` for a bad
    ``line_of_business``/``group`` and ``NoPolicyApplies`` when none or several apply."""
    from medpolicy.errors import CaseError

    if not isinstance(case, Mapping):
        return next(iter(policies))  # parsing reports it
    errors: list[FieldError] = []
    check_routing_keys(case, errors)
    if errors:
        raise CaseError(errors)
    found = route_order(
        _codes(case.get("procedure_codes")),
        None,
        policies,
        line_of_business=case.get("line_of_business"),
        group=case.get("group"),
        fallback=True,
        case=case,
    )
    assert found is not None  # with fallback, route_order raises instead
    return found


def route_order(
    codes: Sequence[str] | set[str],
    date_of_service: Any,
    policies: PolicySet,
    *,
    line_of_business: str | None = None,
    group: str | None = None,
    fallback: bool = False,
    case: Mapping[str, Any] | None = None,
) -> Policy | None:
    """The policy governing an order for this member, or None when no policy governs its codes.

    ``fallback``: when no policy in force governs the codes but exactly one is in force, return it
    (deciding under it says ``not_applicable``) instead of None. Raises ``NoPolicyApplies`` when
    policies govern the codes but none is in force for the member, or several are."""
    normalized = {normalize_procedure(c) for c in codes if isinstance(c, str)}

    def governs(p: Policy) -> bool:
        if case is not None and p.governs_service is not None and case.get(p.governs_service) is True:
            return True
        return p.governs_order(normalized, date_of_service)

    plan: PlanConfig | None = getattr(policies, "plan", None)
    all_policies = list(policies)
    if plan is None:
        candidates = [p for p in all_policies if governs(p)]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise SeveralPoliciesApply(
                f"{len(candidates)} policies govern procedure codes {sorted(normalized)} "
                f"({', '.join(p.id for p in candidates)}); name one with policy_id"
            )
        if fallback and len(all_policies) == 1:
            return all_policies[0]
        if fallback:
            raise NoPolicyApplies(
                f"no policy governs procedure codes {sorted(normalized)}; name one with policy_id"
            )
        return None
    lob = line_of_business or plan.default_line_of_business
    any_governs = [p for p in all_policies if governs(p)]
    if lob is None:
        if not any_governs and not fallback:
            return None
        raise NoPolicyApplies(
            "the case names no line_of_business and the plan configures no default: give "
            f"line_of_business ({', '.join(LINES_OF_BUSINESS)})"
        )
    in_force = [policies.get(pid) for pid in plan.in_force(lob, group)]
    # The most specific route wins: a group route shadows general routes governing the same codes.
    governing: list[Policy] = []
    for p in in_force:
        if governs(p) and not any(not q.governs.codes.isdisjoint(p.governs.codes) for q in governing):
            governing.append(p)
    if len(governing) == 1:
        return governing[0]
    if len(governing) > 1:  # pragma: no cover - load_plan refuses such routes
        raise SeveralPoliciesApply(
            f"several policies apply to {lob} members for {sorted(normalized)}: "
            f"{', '.join(p.id for p in governing)}"
        )
    who = f"{lob} members" + (f" of group {group!r}" if group else "")
    if any_governs:
        raise NoPolicyApplies(
            f"no policy in force for {who} governs procedure codes {sorted(normalized)} "
            f"(governed by {', '.join(p.id for p in any_governs)}, which the plan does not apply to them)"
        )
    if not fallback:
        return None
    general = list(dict.fromkeys(p.id for p in in_force))
    if len(general) == 1:
        return in_force[0]
    raise NoPolicyApplies(
        f"no policy in force for {who} governs procedure codes {sorted(normalized)}"
        + (f" (in force: {', '.join(general)})" if general else "")
    )
