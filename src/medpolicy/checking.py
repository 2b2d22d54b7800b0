"""Cases beside the policy: ``policies/<id>/cases/*.yaml``, run by ``medpolicy policy check`` and pytest.

A case file holds a list of cases::

    - name: rectal T4 positive margin, current version
      case: {date_of_service: 2024-03-01, procedure_codes: [77425], diagnosis_codes: [C20], ...}
      expect:
        outcome: medically_necessary
        version: "2009-10-06"          # optional
        deciding: [rectal-cancer, t4-lesion]   # each must be among the deciding criteria
        missing: [t_stage, recurrent]  # exactly these, in this order (information_needed)
        notes: [source_contradiction]  # each note code must be present
        no_notes: [conflicting_facts]  # none of these note codes may be present
        derived: {tumor_site: rectum}  # derived facts (null: the fact stays unknown)
        flags: [rests_on_conflict]     # exactly these flags
        conflicts: {recurrent: true}   # exactly these conflicting facts, each with whether it is decisive
        explanation:                   # the patient's reason; each key optional
          basis: exclusion
          facts: {margin_distance_mm: given, margin_status: derived from margin_distance_mm}
          parameters: [close_margin_max_mm]           # exactly these
          rationale: {section: colorectal, conclusion: true}
          letter_notes: [policy_text_broader]          # exactly these
    - name: unknown diagnosis code
      case: {...}
      expect:
        errors: [{code: unknown_code, field: "diagnosis_codes[0]"}]   # exactly these errors

Reading these files is reading policy files: this module stays in the pure core.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from medpolicy.deciding import decide
from medpolicy.errors import CaseError, PolicyLoadError, PolicyProblem
from medpolicy.policy import Outcome, Policy

__all__ = ["CaseResult", "PolicyCase", "load_cases", "run_case", "run_cases"]

_EXPECT_KEYS = {
    "outcome",
    "version",
    "deciding",
    "missing",
    "notes",
    "no_notes",
    "derived",
    "errors",
    "flags",
    "conflicts",
    "explanation",
}


@dataclass(frozen=True, slots=True)
class PolicyCase:
    name: str
    case: Mapping[str, Any]
    expect: Mapping[str, Any]
    file: str
    line: int


@dataclass(frozen=True, slots=True)
class CaseResult:
    case: PolicyCase
    failures: tuple[str, ...]
    outcome: str

    @property
    def ok(self) -> bool:
        return not self.failures


def _jsonable(v: Any) -> Any:
    """YAML reads bare dates as dates; a case is JSON, so turn them back into ISO strings."""
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v


def load_cases(policy: Policy) -> list[PolicyCase]:
    out: list[PolicyCase] = []
    problems: list[PolicyProblem] = []
    for path in sorted(policy.cases_dir.glob("*.yaml")):
        try:
            node = yaml.compose(path.read_text(encoding="utf-8"))
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            problems.append(PolicyProblem(str(path), None, f"cannot read case file: {e}"))
            continue
        if not isinstance(data, list) or node is None or not isinstance(node, yaml.SequenceNode):
            problems.append(PolicyProblem(str(path), None, "a case file is a list of cases"))
            continue
        names: set[str] = set()
        for item, n in zip(data, node.value, strict=True):
            line = n.start_mark.line + 1
            if not isinstance(item, dict) or set(item) - {"name", "case", "expect"} or "expect" not in item:
                problems.append(
                    PolicyProblem(str(path), line, "a case needs name, case and expect, nothing else")
                )
                continue
            bad = set(item["expect"]) - _EXPECT_KEYS
            if bad:
                problems.append(PolicyProblem(str(path), line, f"unknown expect keys {sorted(bad)}"))
            if item["name"] in names:
                problems.append(PolicyProblem(str(path), line, f"duplicate case name {item['name']!r}"))
            names.add(item["name"])
            out.append(
                PolicyCase(
                    str(item["name"]), _jsonable(item.get("case") or {}), item["expect"], str(path), line
                )
            )
    if problems:
        raise PolicyLoadError(problems)
    return out


def run_case(policy: Policy, pc: PolicyCase) -> CaseResult:
    fails: list[str] = []
    exp = pc.expect
    try:
        d = decide(pc.case, policy)
    except CaseError as e:
        got = [{"code": fe.code, "field": fe.field} for fe in e.errors]
        if "errors" not in exp:
            return CaseResult(pc, (f"rejected: {e}",), "error")
        want = [{"code": w["code"], "field": w["field"]} for w in exp["errors"]]
        if got != want:
            fails.append(f"errors: expected {want}, got {got}")
        return CaseResult(pc, tuple(fails), "error")
    if "errors" in exp:
        return CaseResult(
            pc, (f"expected errors {exp['errors']}, but it was decided: {d.outcome}",), d.outcome.value
        )
    if "outcome" in exp and d.outcome != Outcome(exp["outcome"]):
        fails.append(f"outcome: expected {exp['outcome']}, got {d.outcome.value} ({d.summary})")
    if "version" in exp:
        got_v = d.version.id if d.version else None
        if got_v != exp["version"]:
            fails.append(f"version: expected {exp['version']}, got {got_v}")
    deciding = [c.criterion.id for c in d.deciding]
    for cid in exp.get("deciding", []):
        if cid not in deciding:
            fails.append(f"deciding: {cid!r} not among {deciding}")
    if "missing" in exp:
        got_m = [m.name for m in d.missing_facts]
        if got_m != list(exp["missing"]):
            fails.append(f"missing: expected {exp['missing']}, got {got_m}")
    codes = [n.code for n in d.notes]
    for code in exp.get("notes", []):
        if code not in codes:
            fails.append(f"notes: {code!r} not among {codes}")
    for code in exp.get("no_notes", []):
        if code in codes:
            fails.append(f"no_notes: {code!r} is among {codes}")
    for name, value in (exp.get("derived") or {}).items():
        got_d = d.case.get(name)
        if got_d != value:
            fails.append(f"derived {name}: expected {value!r}, got {got_d!r}")
    if "flags" in exp and d.flags != list(exp["flags"] or []):
        fails.append(f"flags: expected {exp['flags']}, got {d.flags}")
    if "conflicts" in exp:
        got_c = {c["fact"]: c["decisive"] for c in d.conflicts}
        if got_c != dict(exp["conflicts"] or {}):
            fails.append(f"conflicts (fact: decisive): expected {exp['conflicts']}, got {got_c}")
    if "explanation" in exp:
        fails += _check_explanation(d.explanation(), exp["explanation"] or {})
    return CaseResult(pc, tuple(fails), d.outcome.value)


def _check_explanation(got: Mapping[str, Any], want: Mapping[str, Any]) -> list[str]:
    fails: list[str] = []
    if "basis" in want and got["basis"] != want["basis"]:
        fails.append(f"explanation basis: expected {want['basis']}, got {got['basis']}")
    sources = {f["name"]: f["source"] for f in got["facts"]}
    for name, source in (want.get("facts") or {}).items():
        if sources.get(name) != source:
            fails.append(f"explanation fact {name}: expected source {source!r}, got {sources.get(name)!r}")
    if "parameters" in want:
        params = [p["name"] for p in got["parameters"]]
        if params != list(want["parameters"] or []):
            fails.append(f"explanation parameters: expected {want['parameters']}, got {params}")
    if "rationale" in want:
        rat, w = got["rationale"], want["rationale"]
        if w is None or rat is None:
            if w != rat:
                fails.append(f"explanation rationale: expected {w}, got {rat}")
        else:
            if rat["section"] != w.get("section", rat["section"]):
                fails.append(f"explanation rationale: expected section {w['section']}, got {rat['section']}")
            if "conclusion" in w and bool(rat["conclusion"]) != bool(w["conclusion"]):
                fails.append(
                    f"explanation rationale conclusion: expected {w['conclusion']}, got {rat['conclusion']}"
                )
    if "letter_notes" in want:
        notes = [n["code"] for n in got["notes"]]
        if notes != list(want["letter_notes"] or []):
            fails.append(f"explanation letter notes: expected {want['letter_notes']}, got {notes}")
    return fails


def run_cases(policy: Policy) -> list[CaseResult]:
    return [run_case(policy, pc) for pc in load_cases(policy)]
