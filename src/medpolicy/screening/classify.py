"""The engine's classification of each distinct value, and the key → result table, for bulk engines.

A screened line's case is: its procedure code, its date of service, its diagnosis codes, and the facts
the facts table holds for its claim or member. Every decision fact the engine reads gets its class from
one raw column: given (the facts table names it), or derived by the policy from another column (the
tumour site from the diagnosis codes, the margin status from the margin distance). As in ``parse_case``,
a given value is final: the SQL takes ``COALESCE(given class, derived class, -1)``.

Each distinct raw value of a column is classified here, once, by the engine itself: the value is parsed
exactly as ``decide`` parses it (``parse_case`` on a case holding that one fact), and the engine's
classifier gives the class of the parsed value and of every value the policy derives from it. A value
``decide`` would reject is an error row (code, field, reason), and the lines holding it are reported,
not screened.

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

from medpolicy.case import parser_for
from medpolicy.engine import KeySpace, key_space
from medpolicy.errors import CaseError
from medpolicy.policy import Outcome, Policy
from medpolicy.screening.dispositions import disposition_for

__all__ = [
    "CLAIM_COLUMNS",
    "ColumnPlan",
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


@dataclass(frozen=True, slots=True)
class ColumnPlan:
    """How one raw column is classified: ``given`` the engine facts it gives, ``derived`` the engine facts
    the policy derives from it (indexes into ``KeySpace.facts``)."""

    column: str
    fact: str  # the policy fact the column holds
    given: tuple[int, ...]
    derived: tuple[int, ...]

    @property
    def class_columns(self) -> list[str]:
        return [f"g{i}" for i in self.given] + [f"d{i}" for i in self.derived]


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
    """A policy's screening plan: which raw column gives each engine fact, how each distinct value is
    classified, and the result rows of the keys that occur."""

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
        index = {f: i for i, f in enumerate(self.ks.facts)}
        # Raw columns: the claim's own, then the facts table's (named by the policy's facts).
        raw: dict[str, str] = {"procedure_codes": "procedure_code", DX: DX}
        for name in fact_columns:
            if name in policy.fact_index and name not in raw and name != "date_of_service":
                raw[name] = name
        self.columns: list[ColumnPlan] = []
        self.dx_facts = {DX} | {
            f.name for f in policy.facts if f.derive is not None and f.derive.source == DX
        }
        # fact -> the raw columns it is derived from: its `derive` source, and the codes column when a
        # code list implies it (C78-C79: distant metastases). Two sources that disagree leave it
        # unknown, as `parse_case` does (sqlgen combines them).
        derived_from: dict[str, set[str]] = {}
        for f in policy.facts:
            if f.derive is not None and f.name in index:
                derived_from.setdefault(f.name, set()).add(f.derive.source)
        for cl in policy.code_lists.values():
            for implied in cl.implies:
                if implied in index:
                    derived_from.setdefault(implied, set()).add(DX)
        for fact, column in raw.items():
            given = (index[fact],) if fact in index else ()
            derived = tuple(index[d] for d, sources in derived_from.items() if fact in sources)
            self.columns.append(ColumnPlan(column, fact, given, derived))

    # -- per distinct value

    def classify(self, column: ColumnPlan, values: Iterable[str | None]) -> list[tuple[Any, ...]]:
        """Rows ``(value, error code, error field, error reason, *classes)`` for distinct values of a
        column (classes in ``column.class_columns`` order; -1 unknown)."""
        spec = self.policy.fact(column.fact)
        rows: list[tuple[Any, ...]] = []
        width = len(column.given) + len(column.derived)
        for value in values:
            if value is None:
                continue
            if column.fact == "procedure_codes":
                fact_value: Any = [value.strip()]
            elif column.fact == DX:
                fact_value = split_codes(value)
                if not fact_value:
                    rows.append((value, None, None, None, *([-1] * width)))
                    continue
            else:
                fact_value = raw_fact(spec.type, value)
            try:
                case = self.parse({column.fact: fact_value}, None)
            except CaseError as e:
                err = e.errors[0]
                rows.append((value, err.code, err.field, err.message, *([None] * width)))
                continue
            got = case.values
            classes = [self.ks.classify(i, got.get(self.ks.facts[i])) for i in column.given]
            classes += [self.ks.classify(i, got.get(self.ks.facts[i])) for i in column.derived]
            rows.append((value, None, None, None, *classes))
        return rows

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

    def result_rows(self, key_ids: Iterable[int]) -> Iterator[tuple[Any, ...]]:
        """The engine's answer for each key that occurs: ``(key id, key text, outcome, version, missing
        facts, deciding criteria, disposition, carc, rarc, carc without diagnosis, rarc without
        diagnosis)``; facts and criteria comma-separated."""
        for key_id in key_ids:
            key = self.layout.key(key_id)
            r = self.ks.result(key)
            d = disposition_for(r.outcome)
            # CARC 16 / RARC M76 only where a diagnosis would settle what is missing.
            dx_settles = any(m.name in self.dx_facts for m in r.missing)
            nodx = disposition_for(r.outcome, diagnosis_missing=dx_settles)
            crit = dict.fromkeys(c.criterion.id for c in r.deciding)
            yield (
                key_id,
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
            )


def key_text(facts: Sequence[str], read: Sequence[int], key: Sequence[int]) -> str:
    """``'v4;tumor_site=0;margin_status=-1'``: the engine key, readable (-1: unknown)."""
    return ";".join([f"v{key[0]}", *(f"{facts[i]}={c}" for i, c in zip(read, key[1:], strict=True))])


def plan_for(policy: Policy, fact_columns: Iterable[str] = (), *, version: str | None = None) -> Plan:
    return Plan(policy, fact_columns, force_version=version)


OUTCOMES = tuple(o.value for o in Outcome)
