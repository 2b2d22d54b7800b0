"""Policy test coverage: did the cases beside a policy drive every criterion true, false and unknown?

``opa test --coverage`` reports which Rego lines the tests reached; here the unit is a criterion of a
version (and the condition of each note that applies to it), and a criterion is fully covered when
some case made it true, some case made it false and some case left it unknown. Cases that are
rejected as invalid input cover nothing.

The threshold a policy must reach is set in its folder, ``policies/<id>/coverage.yaml``::

    minimum: 100        # percent of (criterion, value) pairs the cases must reach

Without that file the minimum is 0: the report is shown but never fails. Reading it is reading a
policy file: this module stays in the pure core.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import yaml

from medpolicy.checking import PolicyCase, load_cases
from medpolicy.deciding import decide
from medpolicy.engine import Determination
from medpolicy.errors import CaseError, PolicyLoadError, PolicyProblem
from medpolicy.language import Atom, Criterion, Tri, tri_label
from medpolicy.policy import Policy

__all__ = ["VALUES", "CoverageReport", "CriterionCoverage", "coverage", "coverage_minimum"]

#: The three values a criterion can take, in report order.
VALUES = ("true", "false", "unknown")
COVERAGE_FILE = "coverage.yaml"


@dataclass(frozen=True, slots=True)
class CriterionCoverage:
    """One criterion of one version: the values the cases drove it to."""

    version: str
    criterion: Criterion
    depth: int
    seen: frozenset[str]
    note: str | None = None  # the note's id, for the condition of a note

    @property
    def missing(self) -> tuple[str, ...]:
        return tuple(v for v in VALUES if v not in self.seen)


@dataclass(frozen=True, slots=True)
class CoverageReport:
    policy_id: str
    rows: tuple[CriterionCoverage, ...]
    minimum: float
    cases: int
    decided: int

    @property
    def total(self) -> int:
        return len(self.rows) * len(VALUES)

    @property
    def covered(self) -> int:
        return sum(len(r.seen) for r in self.rows)

    @property
    def percent(self) -> float:
        return 100.0 * self.covered / self.total if self.total else 100.0

    @property
    def ok(self) -> bool:
        return self.percent + 1e-9 >= self.minimum

    def gaps(self) -> list[CriterionCoverage]:
        return [r for r in self.rows if r.missing]

    def to_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy_id,
            "percent": round(self.percent, 2),
            "minimum": self.minimum,
            "ok": self.ok,
            "cases": self.cases,
            "decided": self.decided,
            "criteria": [
                {
                    "version": r.version,
                    "criterion": r.criterion.id,
                    **({"note": r.note} if r.note else {}),
                    **{v: v in r.seen for v in VALUES},
                }
                for r in self.rows
            ],
        }


def coverage_minimum(policy: Policy) -> float:
    """The policy folder's coverage threshold (percent); 0 when the folder sets none."""
    path = policy.folder / COVERAGE_FILE
    if not path.exists():
        return 0.0
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise PolicyLoadError([PolicyProblem(str(path), None, f"cannot read coverage file: {e}")]) from None
    minimum = data.get("minimum") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or set(data) != {"minimum"}
        or isinstance(minimum, bool)
        or not isinstance(minimum, int | float)
        or not 0 <= minimum <= 100
    ):
        raise PolicyLoadError(
            [PolicyProblem(str(path), None, "a coverage file holds exactly `minimum: <percent 0-100>`")]
        )
    return float(minimum)


def coverage(policy: Policy, cases: Iterable[PolicyCase] | None = None) -> CoverageReport:
    """Decide the policy's cases and report, per version, what each criterion was driven to."""
    seen: dict[tuple[str, str, str | None], set[str]] = {}
    n_cases = n_decided = 0
    for pc in load_cases(policy) if cases is None else cases:
        n_cases += 1
        try:
            d = decide(pc.case, policy)
        except CaseError:
            continue
        n_decided += 1
        _record(policy, d, seen)
    rows: list[CriterionCoverage] = []
    for v in policy.versions:
        for rule in v.decision_list:
            for c, depth in _walk(rule.criterion, 0):
                rows.append(CriterionCoverage(v.id, c, depth, frozenset(seen.get((v.id, c.id, None), ()))))
        for n in policy.notes:
            if n.versions is not None and v.id not in n.versions:
                continue
            for c, depth in _walk(n.when, 0):
                rows.append(
                    CriterionCoverage(v.id, c, depth, frozenset(seen.get((v.id, c.id, n.id), ())), n.id)
                )
    return CoverageReport(policy.id, tuple(rows), coverage_minimum(policy), n_cases, n_decided)


def _record(policy: Policy, d: Determination, seen: dict[tuple[str, str, str | None], set[str]]) -> None:
    v = d.version
    if v is None:
        return
    for c in d.trace:
        seen.setdefault((v.id, c.criterion.id, None), set()).add(tri_label(c.value))
    values = d.case.values

    def atom_value(a: Atom) -> Tri:
        x = values.get(a.fact)
        return None if x is None else a.test(x)

    for n in policy.notes:
        if n.versions is not None and v.id not in n.versions:
            continue
        out: dict[str, Tri] = {}
        n.when.evaluate(atom_value, out)
        for cid, val in out.items():
            seen.setdefault((v.id, cid, n.id), set()).add(tri_label(val))


def _walk(c: Criterion, depth: int) -> Iterable[tuple[Criterion, int]]:
    yield c, depth
    for k in c.children():
        yield from _walk(k, depth + 1)


def report_lines(report: CoverageReport, *, width: int = 80) -> list[str]:
    """The report as plain text lines (at most ``width`` columns): one line per criterion with a mark
    for each value reached (``T F U``, ``-`` where no case reached it), then the total."""
    lines = [f"{report.policy_id}: criteria coverage by the policy's cases", "  T F U  criterion"]
    version = None
    for r in report.rows:
        if r.version != version:
            version = r.version
            lines.append(f"version {version}")
        marks = " ".join(v[0].upper() if v in r.seen else "-" for v in VALUES)
        label = "  " * r.depth + r.criterion.id + (f"  (note {r.note})" if r.note and not r.depth else "")
        line = f"  {marks}  {label}"
        lines.append(line if len(line) <= width else line[: width - 1] + "…")
    lines.append(f"  ({report.decided} of {report.cases} cases decided; rejected cases reach nothing)")
    lines.append(
        f"{report.policy_id}: {report.covered}/{report.total} criterion values reached "
        f"({report.percent:.1f}%; minimum {report.minimum:g}%)"
    )
    return lines
