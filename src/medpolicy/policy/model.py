"""The compiled policy objects the engine evaluates: `Policy` and `PolicySet`, a version's decision
list (`Version`, `Rule`), facts (`FactSpec`, `Derivation`), code lists (`CodeList`), rationale
sections and notes, the outcomes (`Outcome`) and `fold`, the white-space folding of citations.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from medpolicy.codes import normalize_procedure
from medpolicy.errors import PolicyNotFound
from medpolicy.language import Criterion

__all__ = [
    "CodeList",
    "Derivation",
    "FactSpec",
    "FactType",
    "Outcome",
    "Policy",
    "PolicyNote",
    "PolicySet",
    "RationaleSection",
    "Rule",
    "Version",
    "fold",
]


class Outcome(enum.StrEnum):
    MEDICALLY_NECESSARY = "medically_necessary"
    INVESTIGATIONAL = "investigational"
    NOT_MEDICALLY_NECESSARY = "not_medically_necessary"
    INFORMATION_NEEDED = "information_needed"
    NOT_APPLICABLE = "not_applicable"

    @property
    def label(self) -> str:
        return _OUTCOME_LABELS[self]


_OUTCOME_LABELS = {
    Outcome.MEDICALLY_NECESSARY: "Medically necessary",
    Outcome.INVESTIGATIONAL: "Investigational",
    Outcome.NOT_MEDICALLY_NECESSARY: "Not medically necessary",
    Outcome.INFORMATION_NEEDED: "Information needed",
    Outcome.NOT_APPLICABLE: "Not governed by this policy",
}

FactType = Literal["date", "codes", "enum", "number", "boolean", "staging"]


def fold(text: str) -> str:
    """Fold white space, the way citations are compared with the source document."""
    return " ".join(text.split())


# ----------------------------------------------------------------------------------------------------
# Compiled policy objects


@dataclass(frozen=True, slots=True)
class Derivation:
    """How a fact is derived from another when it is not given.

    kinds: ``by_code_list`` (a codes fact mapped to enum values through code lists, first list wins;
    ``None`` gives no value for that code, ``"ambiguous"`` makes the result unknown), ``bands`` (a number
    mapped to enum values by upper bounds; a given value is final; ``consistent`` lists, per band, the
    given values that do not conflict with it, such as R2 with a 0 mm margin),
    ``prefix_r`` (a staging with the ``r`` prefix means recurrent disease), ``m_category`` (M1 in a
    TNM staging means distant metastases, M0 none), ``age`` (whole years from a
    date of birth, ``source``, to another date fact, ``at``: the date of service).
    """

    kind: Literal["by_code_list", "bands", "prefix_r", "m_category", "age"]
    source: str
    label: str = ""  # "derived from <source>", the provenance of a derived value
    code_map: tuple[tuple[CodeList, str | None], ...] = ()
    bands: tuple[tuple[float | None, str], ...] = ()
    consistent: Mapping[str, frozenset[str]] = field(default_factory=dict)
    params: tuple[str, ...] = ()  # the parameters the derivation reads (its band bounds)
    at: str = ""  # ``age``: the date the age is taken at


@dataclass(frozen=True, slots=True)
class FactSpec:
    name: str
    type: FactType
    question: str
    description: str = ""
    values: tuple[str, ...] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    synonyms: Mapping[str, str] = field(default_factory=dict)
    rationale: Mapping[str, str] = field(default_factory=dict)
    minimum: float | None = None
    unit: str | None = None
    multiple: bool = False
    system: str | None = None
    derive: Derivation | None = None
    value_set: frozenset[str] = frozenset()
    #: enum value -> AJCC 8th edition chapter (``medpolicy.staging.AJCC8_T``) its stagings must follow
    ajcc: Mapping[str, str] = field(default_factory=dict)
    #: An open (non-exhaustive) enum: any other value is accepted as this one (``open: other``).
    open_value: str | None = None

    def label(self, value: str) -> str:
        return self.labels.get(value, value)


@dataclass(frozen=True, slots=True)
class CodeList:
    name: str
    system: str
    entries: tuple[str, ...]
    codes: frozenset[str]
    labels: Mapping[str, str] = field(default_factory=dict)
    since: Mapping[str, dt.date] = field(default_factory=dict)
    note: str | None = None
    latest_since: dt.date | None = None
    #: facts a code in this list implies (``{metastatic: true}``), derived when not given
    implies: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Rule:
    """One step of a version's decision list. ``when`` is None for the version's ``otherwise``."""

    outcome: Outcome
    when: Criterion | None
    criterion: Criterion  # ``when`` itself, or the ``otherwise`` leaf (id, title, cite)


@dataclass(frozen=True, slots=True)
class Version:
    id: str
    effective_from: dt.date
    effective_to: dt.date | None
    summary: str
    history: str
    rules: tuple[Rule, ...]
    otherwise: Rule

    @property
    def decision_list(self) -> tuple[Rule, ...]:
        return (*self.rules, self.otherwise)

    def criteria(self) -> Iterator[Criterion]:
        for r in self.decision_list:
            yield from r.criterion.walk()


@dataclass(frozen=True, slots=True)
class RationaleSection:
    id: str
    title: str
    heading: str
    text: str
    line: int
    #: the section's own conclusion, a verbatim sentence of the source (None: it draws none)
    conclusion: str | None = None


@dataclass(frozen=True, slots=True)
class PolicyNote:
    id: str
    code: str
    when: Criterion
    versions: frozenset[str] | None
    cite: tuple[str, ...]
    text: str
    #: the note bears on the member's rights: letters show it, not only the reviewer's screen
    letter: bool = False


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    id: str
    title: str
    publisher: str
    folder: Path
    source_title: str
    source_text: str
    last_updated: dt.date | None
    prior_authorization: bool
    parameters: Mapping[str, float]
    parameter_descriptions: Mapping[str, str]
    facts: tuple[FactSpec, ...]
    code_lists: Mapping[str, CodeList]
    governs: CodeList
    rationale: Mapping[str, RationaleSection]
    #: A boolean fact that, when true, puts a case in scope whatever its codes (the service given).
    governs_service: str | None
    notes: tuple[PolicyNote, ...]
    versions: tuple[Version, ...]

    fact_index: Mapping[str, FactSpec]
    #: the date by which the plan meant to review the policy again (``source.review_by``)
    review_by: dt.date | None = None
    #: criterion id -> the parameter its bound reads (``{param: name}``)
    criterion_params: Mapping[str, str] = field(default_factory=dict)

    def fact(self, name: str) -> FactSpec:
        return self.fact_index[name]

    def version_for(self, date_of_service: dt.date) -> Version | None:
        """The version in force on a date of service, or None before the first one."""
        found = None
        for v in self.versions:
            if v.effective_from <= date_of_service:
                found = v
        return found

    def governs_order(self, codes: Iterable[str], date_of_service: dt.date | str | None = None) -> bool:
        """Whether this policy governs an order: it requests one of the policy's procedure codes and,
        when the date is known, a version was in force on it. Malformed codes or dates govern nothing
        (deciding the case is what reports them)."""
        normalized = {normalize_procedure(c) for c in codes if isinstance(c, str)}
        if self.governs.codes.isdisjoint(normalized):
            return False
        if date_of_service is None:
            return True
        if isinstance(date_of_service, str):
            try:
                date_of_service = dt.date.fromisoformat(date_of_service.strip()[:10])
            except ValueError:
                return False
        return self.version_for(date_of_service) is not None

    def governs_case(self, case: Mapping[str, Any]) -> bool:
        """Whether a raw case is in scope: a governed procedure code, or the service the policy's
        ``governs_service`` fact states (true)."""
        if self.governs_service is not None and case.get(self.governs_service) is True:
            return True
        raw = case.get("procedure_codes")
        items = raw if isinstance(raw, list | tuple) else [raw] if raw else []
        return self.governs_order(items, None)

    def version(self, version_id: str) -> Version:
        for v in self.versions:
            if v.id == version_id:
                return v
        raise KeyError(version_id)

    @property
    def cases_dir(self) -> Path:
        return self.folder / "cases"


@dataclass(frozen=True, slots=True)
class PolicySet:
    policies: Mapping[str, Policy]
    #: The plan's routing configuration (``plan.yaml``; ``medpolicy.routing``), or None: codes choose.
    plan: Any = None

    def get(self, policy_id: str) -> Policy:
        try:
            return self.policies[policy_id]
        except KeyError:
            known = ", ".join(sorted(self.policies)) or "none"
            raise PolicyNotFound(f"no policy with id {policy_id!r} (known: {known})") from None

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies.values())

    def __len__(self) -> int:
        return len(self.policies)

    def governing(self, procedure_codes: set[str] | frozenset[str]) -> list[Policy]:
        return [p for p in self if not p.governs.codes.isdisjoint(procedure_codes)]

    def route(self, case: Mapping[str, Any]) -> Policy:
        """The policy that decides a raw case: the plan's routing by line of business and group
        (``medpolicy.routing``); raises ``NoPolicyApplies`` when none or several apply."""
        from medpolicy.routing import route_case

        return route_case(case, self)

    def for_order(
        self,
        codes: Iterable[str],
        date_of_service: dt.date | str | None = None,
        *,
        line_of_business: str | None = None,
        group: str | None = None,
    ) -> Policy | None:
        """The policy governing an order for this member (None: no policy governs its codes)."""
        from medpolicy.routing import route_order

        return route_order(list(codes), date_of_service, self, line_of_business=line_of_business, group=group)
