"""The engine's classification of each distinct value, and the key → result table, for bulk engines.

A screened line's case is: its procedure code, its date of service, its diagnosis codes, and the facts
the facts table holds for its claim or member. Raw columns whose facts interact are classified together
(``Group``): a derivation joins its source and target (the tumour site from the diagnosis codes or
given; the margin status from the margin distance or given), a code list implying a fact joins the
codes column, and the AJCC chapter cross-check joins the site and staging facts. An age derived from a
birth date at the date of service is computed in SQL (whole years) and joins the age's group as an
``age@<column>`` pseudo column, so that combinations do not multiply by dates.

Each distinct combination of a group's values is classified here, once, by the engine itself: the
values are parsed exactly as ``decide`` parses a case holding them (``parse_case``), and the engine's
classifier gives the class of each fact the group determines. A combination ``decide`` would reject is
an error row (code, field, reason; the AJCC cross-check after field errors, as ``parse_case`` makes it),
and the lines holding it are reported, not screened. The conflicts the parse notes (a given value
against the value other facts point to) are kept as a signature, from which the result table computes
``rests_on_conflict`` exactly as ``Determination.flags`` does.

A line's key is the engine's key, ``(version class, class of each fact that version reads, ...)``,
numbered as one integer (``KeyLayout``) so that SQL joins it to the result table on one column.
"""

from __future__ import annotations

import bisect
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medpolicy.case import CONFLICT, parser_for
from medpolicy.engine import KeySpace, key_space
from medpolicy.errors import CaseError
from medpolicy.policy import Outcome, Policy
from medpolicy.screening.dispositions import Disposition, disposition_for

__all__ = [
    "CLAIM_COLUMNS",
    "TRUE_TEXTS",
    "Group",
    "KeyLayout",
    "Plan",
    "parse_date",
    "plan_for",
]

#: Raw columns a claim line itself carries (the rest come from the facts table).
CLAIM_COLUMNS = {"procedure_codes": "procedure_code", "date_of_service": "date_of_service"}
DX = "diagnosis_codes"

_MONTHS = {
    m: i + 1
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}
_DMY = re.compile(r"^(\d{1,2})-([A-Za-z]{3})-(\d{4})$")


def parse_date(raw: str) -> str | None:
    """ISO text of a claim date: ``YYYY-MM-DD`` (a timestamp's date part too), X12's ``CCYYMMDD`` or the
    RIF's ``DD-Mon-YYYY``; ``None`` when it is not a date."""
    s = raw.strip()
    try:
        if len(s) == 8 and s.isdigit():
            return dt.date(int(s[:4]), int(s[4:6]), int(s[6:])).isoformat()
        if len(s) >= 10 and s[4] == "-" and (len(s) == 10 or s[10] in " T"):
            return dt.date.fromisoformat(s[:10]).isoformat()
        m = _DMY.match(s)
        if m and m.group(2).lower() in _MONTHS:
            return dt.date(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1))).isoformat()
    except ValueError:
        return None
    return None


def split_codes(raw: str) -> list[str]:
    """``'C20|Z85.048'`` (or comma-separated) -> ``['C20', 'Z85.048']``."""
    return [c for c in re.split(r"[|,]", raw) if c.strip()]


_TRUE = {"true", "t", "yes", "y", "1"}
#: The texts (lower case, trimmed) a boolean fact column gives ``decide`` as true.
TRUE_TEXTS = frozenset(_TRUE)
_FALSE = {"false", "f", "no", "n", "0"}


def raw_fact(kind: str, raw: str) -> Any:
    """The JSON value ``decide`` would be given for a fact column's text (the facts table is read as
    text). Text that is not of the type is passed on as text: parsing then rejects it as ``decide`` does."""
    s = raw.strip()
    if kind in ("codes", "staging"):
        return split_codes(s)
    if kind == "number":
        try:
            return float(s)
        except ValueError:
            return s
    if kind == "boolean":
        low = s.lower()
        return True if low in _TRUE else False if low in _FALSE else s
    return s


#: A pseudo column: the age (whole years, -1 when the date of service precedes the birth date) that SQL
#: computes from a birth-date column and the date of service, for ``age`` derivations at the date of service.
AGE_PREFIX = "age@"
DOS = "date_of_service"
#: Errors ``parse_case`` reports only when every field parses (a line with another error reports that).
CROSS_CHECKS = frozenset({"t_category_not_in_site_chapter"})


@dataclass(frozen=True, slots=True)
class Group:
    """Raw columns whose values interact (a derivation, a conflict or the AJCC chapter cross-check joins
    them): each distinct combination is classified once, by parsing it as ``decide`` parses a case.

    ``columns``: ``procedure_code``, ``diagnosis_codes``, facts-table columns (named after the policy's
    facts) and ``age@<birth date column>`` pseudo columns; ``engine``: the engine facts (indexes into
    ``KeySpace.facts``) the group gives a class for; ``dated``: columns whose parsed date (ISO) the map
    carries, for an age computed in SQL."""

    n: int
    columns: tuple[str, ...]
    engine: tuple[int, ...]
    dated: tuple[str, ...] = ()

    @property
    def class_columns(self) -> list[str]:
        return [f"c{i}" for i in self.engine]

    @property
    def iso_columns(self) -> list[str]:
        return [f"iso{j}" for j in range(len(self.dated))]

    @property
    def ages(self) -> list[str]:
        """The birth-date columns of this group's age pseudo columns."""
        return [c.removeprefix(AGE_PREFIX) for c in self.columns if c.startswith(AGE_PREFIX)]


class _Union:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def _fact_of(column: str) -> str:
    return {"procedure_code": "procedure_codes"}.get(column, column)


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Engine keys numbered as integers: ``offset[v] + sum((class + 1) * stride)`` over the facts
    version class ``v`` reads."""

    offsets: Mapping[int, int]
    strides: Mapping[int, tuple[tuple[int, int], ...]]  # vclass -> ((fact index, stride), ...)

    @classmethod
    def of(cls, ks: KeySpace) -> KeyLayout:
        offsets: dict[int, int] = {}
        strides: dict[int, tuple[tuple[int, int], ...]] = {}
        at = 0
        for v in range(-1, len(ks.starts) + 1):
            read = ks.version_reads[v + 1]
            s, pairs = 1, []
            for i in reversed(read):
                pairs.append((i, s))
                s *= ks.class_counts[i] + 1
            offsets[v], strides[v] = at, tuple(reversed(pairs))
            at += s
        return cls(offsets, strides)

    def key(self, key_id: int) -> tuple[int, ...]:
        """The engine key an integer stands for."""
        v = max(c for c, off in self.offsets.items() if off <= key_id)
        rest = key_id - self.offsets[v]
        out = [v]
        for _, stride in self.strides[v]:
            out.append(rest // stride - 1)
            rest %= stride
        return tuple(out)


class Plan:
    """A policy's screening plan: which raw columns interact (``groups``), how each distinct combination
    of a group's values is classified, and the result rows of the keys that occur."""

    def __init__(self, policy: Policy, fact_columns: Iterable[str] = (), *, force_version: str | None = None):
        self.policy = policy
        self.ks = key_space(policy)
        self.layout = KeyLayout.of(self.ks)
        self.parse = parser_for(policy).parse
        self.forced: int | None = None
        if force_version is not None:
            ids = [v.id for v in policy.versions]
            if force_version not in ids:
                raise KeyError(force_version)
            self.forced = ids.index(force_version) + 1
        # Raw columns: the claim's own, then the facts table's (named by the policy's facts).
        raw = ["procedure_code", DX]
        for name in fact_columns:
            if (
                name in policy.fact_index
                and _fact_of(name) not in ("procedure_codes", DX, DOS)
                and name not in raw
            ):
                raw.append(name)
        self.fact_columns = raw[2:]
        self.dx_facts = {DX} | {
            f.name for f in policy.facts if f.derive is not None and f.derive.source == DX
        }
        # Which facts interact: a derivation joins its source and target (an age at the date of service
        # is computed in SQL instead: a pseudo column joins the age's group), a code list implying a fact
        # joins the codes column, and the AJCC cross-check joins site and staging facts.
        u = _Union()
        ages: dict[str, str] = {}  # birth-date fact -> age fact
        for f in policy.facts:
            d = f.derive
            if d is None:
                continue
            if d.kind == "age" and d.at == DOS:
                ages[d.source] = f.name
                continue
            u.union(f.name, d.source)
            if d.kind == "age" and d.at:
                u.union(f.name, d.at)
        governed = policy.governs.codes
        for cl in policy.code_lists.values():
            for implied in cl.implies:
                u.union(implied, DX)
                if not governed.isdisjoint(cl.codes):
                    u.union(implied, "procedure_codes")
        site_facts = [f.name for f in policy.facts if f.ajcc]
        if site_facts:
            for name in site_facts + [f.name for f in policy.facts if f.type == "staging"]:
                u.union(name, site_facts[0])
        members: dict[str, list[str]] = {}
        for column in raw:
            members.setdefault(u.find(_fact_of(column)), []).append(column)
        for born, age in ages.items():
            if born in raw:
                members.setdefault(u.find(age), []).append(AGE_PREFIX + born)
        engine_of: dict[str, list[int]] = {}
        for i, name in enumerate(self.ks.facts):
            engine_of.setdefault(u.find(name), []).append(i)
        dated = set(ages) & set(raw)
        groups = [
            (cols, tuple(engine_of.get(root, ())), tuple(c for c in cols if c in dated))
            for root, cols in members.items()
        ]
        # groups holding an age pseudo column come last: their key reads other groups' dates
        groups.sort(key=lambda g: any(c.startswith(AGE_PREFIX) for c in g[0]))
        self.groups = [Group(n, tuple(c), e, d) for n, (c, e, d) in enumerate(groups)]
        #: conflict signatures: text -> ((engine fact index or -1, class of the other value), ...)
        self.signatures: dict[str, tuple[tuple[int, int], ...]] = {}

    # -- per distinct combination

    def _case(self, group: Group, values: Sequence[str | None]) -> dict[str, Any]:
        case: dict[str, Any] = {}
        for column, value in zip(group.columns, values, strict=True):
            if value is None:
                continue
            if column.startswith(AGE_PREFIX):
                # The engine derives the age: a birth date and a date of service that many years apart.
                age = int(value)
                base = dt.date(1000, 6, 15)
                born = base if age >= 0 else base + dt.timedelta(days=1)
                case[column.removeprefix(AGE_PREFIX)] = born.isoformat()
                case[DOS] = base.replace(year=base.year + max(age, 0)).isoformat()
                continue
            fact = _fact_of(column)
            if fact == "procedure_codes":
                case[fact] = [value.strip()]
            elif fact == DX:
                codes = split_codes(value)
                if codes:
                    case[fact] = codes
            else:
                case[fact] = raw_fact(self.policy.fact(fact).type, value)
        return case

    def classify(self, group: Group, combos: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
        """Rows ``(key, error code, error field, error reason, late, conflict signature, *classes, *iso
        dates)``
        for distinct ``(key, *values)`` of a group (classes in ``group.class_columns`` order, -1 unknown;
        the signature names each conflict ``decide`` would note, NULL when none)."""
        rows: list[tuple[Any, ...]] = []
        width = len(group.engine) + len(group.dated)
        for key, *values in combos:
            if key is None:
                continue
            try:
                case = self.parse(self._case(group, values), None)
            except CaseError as e:
                err = e.errors[0]
                # a cross-check error arises only when every field parses: other errors come first
                late = int(all(x.code in CROSS_CHECKS for x in e.errors))
                rows.append((key, err.code, err.field, err.message, late, None, *([None] * width)))
                continue
            got = case.values
            classes = [self.ks.classify(i, got.get(self.ks.facts[i])) for i in group.engine]
            isos = [got[d].isoformat() if isinstance(got.get(d), dt.date) else None for d in group.dated]
            rows.append((key, None, None, None, 0, self._signature(case), *classes, *isos))
        return rows

    def _signature(self, case: Any) -> str | None:
        """The conflicts ``Determination.conflicts`` weighs, as text: ``fact:class`` of the other value
        (-1: left unknown) for each conflicting-facts note, in order; facts no version reads are -1."""
        index = {f: i for i, f in enumerate(self.ks.facts)}
        parts = []
        for note in case.notes:
            if note.code != CONFLICT or note.fact is None:
                continue
            i = index.get(str(note.fact), -1)
            alt = self.ks.classify(i, note.alternative) if i >= 0 else -1
            parts.append((i, alt))
        if not parts:
            return None
        text = ";".join(f"{i}:{c}" for i, c in parts)
        self.signatures[text] = tuple(parts)
        return text

    def classify_dates(self, values: Iterable[str | None]) -> list[tuple[Any, ...]]:
        """Rows ``(value, error code, error field, error reason, version class, ISO date)``."""
        starts = list(self.ks.starts)
        rows: list[tuple[Any, ...]] = []
        for value in values:
            if value is None:
                continue
            iso = parse_date(value)
            if iso is None:
                rows.append((value, "invalid_date", "date_of_service", "not a date", None, None))
                continue
            v = (
                self.forced
                if self.forced is not None
                else bisect.bisect_right(starts, dt.date.fromisoformat(iso))
            )
            rows.append((value, None, None, None, v, iso))
        return rows

    @property
    def unknown_date_class(self) -> int:
        return self.forced if self.forced is not None else -1

    # -- results

    def _rests_on_conflict(self, key: tuple[int, ...], signature: str) -> bool:
        """``rests_on_conflict`` as ``Determination.flags`` computes it: a conflict is decisive when the
        other value (alone, or with all the other conflicts' values) gives another outcome."""
        notes = self.signatures.get(signature) or tuple(
            (int(i), int(c)) for i, c in (p.split(":") for p in signature.split(";") if p)
        )
        if not notes:
            return False
        read = self.ks.version_reads[key[0] + 1]
        outcome = self.ks.result(key).outcome

        def outcome_with(chosen: Sequence[tuple[int, int]]) -> Outcome:
            classes = dict(zip(read, key[1:], strict=True))
            for i, c in chosen:
                if i in classes:
                    classes[i] = c
            return self.ks.result((key[0], *(classes[i] for i in read))).outcome

        together = outcome_with(notes) != outcome if len(notes) > 1 else False
        return together or any(outcome_with([n]) != outcome for n in notes)

    def result_rows(self, keys: Iterable[tuple[int, str]]) -> Iterator[tuple[Any, ...]]:
        """The engine's answer for each ``(key id, conflict signature)`` that occurs: ``(key id,
        signature, key text, outcome, version, missing facts, deciding criteria, disposition, carc, rarc,
        carc without diagnosis, rarc without diagnosis, rests on conflict (1/0))``; facts and criteria
        comma-separated. A line resting on a conflict is never passed: it is referred to review."""
        for key_id, signature in keys:
            key = self.layout.key(key_id)
            r = self.ks.result(key)
            rests = self._rests_on_conflict(key, signature or "")
            d = _reviewed(disposition_for(r.outcome), r.outcome, rests)
            # CARC 16 / RARC M76 only where a diagnosis would settle what is missing.
            dx_settles = any(m.name in self.dx_facts for m in r.missing)
            nodx = _reviewed(disposition_for(r.outcome, diagnosis_missing=dx_settles), r.outcome, rests)
            crit = dict.fromkeys(c.criterion.id for c in r.deciding)
            yield (
                key_id,
                signature or "",
                key_text(self.ks.facts, self.ks.version_reads[key[0] + 1], key),
                r.outcome.value,
                r.version.id if r.version else None,
                ",".join(m.name for m in r.missing),
                ",".join(crit),
                d.disposition,
                d.carc,
                d.rarc,
                nodx.carc,
                nodx.rarc,
                int(rests),
            )


def _reviewed(d: Disposition, outcome: Outcome, rests_on_conflict: bool) -> Disposition:
    """A governed line that would pass but rests on conflicting facts goes to a reviewer (the life cycle
    approves nothing that does)."""
    if rests_on_conflict and d.disposition == "pass" and outcome is not Outcome.NOT_APPLICABLE:
        return Disposition("refer_to_review", None, None)
    return d


def key_text(facts: Sequence[str], read: Sequence[int], key: Sequence[int]) -> str:
    """``'v4;tumor_site=0;margin_status=-1'``: the engine key, readable (-1: unknown)."""
    return ";".join([f"v{key[0]}", *(f"{facts[i]}={c}" for i, c in zip(read, key[1:], strict=True))])


def plan_for(policy: Policy, fact_columns: Iterable[str] = (), *, version: str | None = None) -> Plan:
    return Plan(policy, fact_columns, force_version=version)


OUTCOMES = tuple(o.value for o in Outcome)
