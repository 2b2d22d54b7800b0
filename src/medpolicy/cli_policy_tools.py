"""Tools for the people who write policies: ``medpolicy policy new`` and ``medpolicy policy diff``.

``policy new ID`` scaffolds a policy folder (a ``policy.yaml`` skeleton that loads, an empty
``source.txt`` to paste the published text into, a first case file). ``policy diff ID --from V1 --to
V2`` lists the criteria added, removed and changed between two versions, and which outcomes change on
the policy's cases (or on any case file: YAML cases, a JSON case, JSON lines). The comparison of
outcomes decides each case under each version as if that version were in force on its date of
service. Registered into ``medpolicy policy`` by one line in ``cli.py``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from medpolicy.checking import load_cases
from medpolicy.deciding import decide
from medpolicy.errors import MedpolicyError, PolicyLoadError
from medpolicy.language import Atom, Criterion
from medpolicy.policy import Policy, Version, default_policies_dir

__all__ = ["criteria_diff", "outcome_changes", "register", "scaffold", "under_version"]

PoliciesOpt = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        help="Folder of policy folders (default: the repository's policies/).",
        show_default=False,
    ),
]

_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")

_POLICY_SKELETON = """\
# {title}: encoded as medpolicy policy language v1 (docs/policy-language.md; docs/policy-authoring.md
# walks through writing one). Paste the published text into source.txt first: every `cite` below must
# then appear in it verbatim (white space folded), and `medpolicy policy check` fails otherwise.
language: medpolicy/v1
id: {id}
title: {title}
publisher: {publisher}
source:
  file: source.txt
  title: {title}
prior_authorization: true
governs: governed_procedures

facts:
  procedure_codes:
    type: codes
    system: CPT/HCPCS
    multiple: true
    question: Which procedure codes (CPT/HCPCS) are requested?
  date_of_service:
    type: date
    question: What is the planned date of service?
  diagnosis_codes:
    type: codes
    system: ICD-10-CM
    multiple: true
    question: Which ICD-10-CM diagnosis codes apply?

code_lists:
  governed_procedures:
    system: CPT
    codes:
      "{code}": {{label: "our own plain-language label (no AMA descriptor text)"}}

definitions:
  governed:
    id: governed
    title: The request includes a procedure code this policy governs
    cite: TODO cite the billing section's words
    fact: procedure_codes
    any_in: governed_procedures

versions:
  - id: "{today}"
    effective_from: {today}
    summary: TODO one sentence in plain words
    history: TODO the history line, cited verbatim
    rules:
      - outcome: not_applicable
        when: {{id: not-governed, title: No procedure code this policy governs, cite: TODO cite the billing section, not: {{ref: governed}}}}
    otherwise:
      id: otherwise
      title: TODO what the policy says about everything its rules do not cover
      outcome: investigational
      cite: TODO cite the policy statement
"""

_FIRST_CASES = """\
# Cases beside the policy: `medpolicy policy check` runs them (docs/policy-language.md, "Cases").
- name: a request without a governed code is not governed
  case: {{date_of_service: {today}, procedure_codes: ["99213"], diagnosis_codes: [C20]}}
  expect: {{outcome: not_applicable, deciding: []}}
- name: a governed request falls to the otherwise
  case: {{date_of_service: {today}, procedure_codes: ["{code}"], diagnosis_codes: [C20]}}
  expect: {{outcome: investigational, deciding: [otherwise]}}
"""


def scaffold(root: Path, policy_id: str, *, title: str, publisher: str, code: str) -> Path:
    """Create ``root/policy_id`` with a skeleton that loads and passes its first cases."""
    if not _ID.match(policy_id):
        raise ValueError(f"policy id {policy_id!r}: use lower-case letters, digits and hyphens (3-64)")
    folder = root / policy_id
    if folder.exists():
        raise FileExistsError(f"{folder} already exists")
    today = dt.date.today().isoformat()
    (folder / "cases").mkdir(parents=True)
    fill = {"id": policy_id, "title": title, "publisher": publisher, "code": code, "today": today}
    (folder / "policy.yaml").write_text(_POLICY_SKELETON.format(**fill), encoding="utf-8")
    (folder / "source.txt").write_text("", encoding="utf-8")
    (folder / "cases" / "first.yaml").write_text(_FIRST_CASES.format(**fill), encoding="utf-8")
    return folder


# ---------------------------------------------------------------------------------------------- diff


def _shape(c: Criterion) -> tuple[Any, ...]:
    """What a criterion tests (not its children): compared between versions."""
    if isinstance(c, Atom):
        operand = sorted(c.operand) if isinstance(c.operand, frozenset) else c.operand
        if isinstance(operand, list) and len(operand) > 12:
            operand = [f"{len(operand)} codes", hash(tuple(operand))]
        return ("atom", c.fact, c.op, repr(operand))
    return (type(c).__name__, tuple(k.id for k in c.children()))


def _describe(c: Criterion) -> str:
    if isinstance(c, Atom) or not c.children():
        return repr(c) if isinstance(c, Atom) else "(otherwise)"
    kind = {"AllOf": "all of", "AnyOf": "any of", "Not": "not"}.get(type(c).__name__, type(c).__name__)
    return f"{kind}: {', '.join(k.id for k in c.children())}"


def _criteria(v: Version) -> dict[str, tuple[Criterion, str | None]]:
    out: dict[str, tuple[Criterion, str | None]] = {}
    for rule in v.decision_list:
        for c in rule.criterion.walk():
            out.setdefault(c.id, (c, rule.outcome.value if c is rule.criterion else None))
    return out


def criteria_diff(old: Version, new: Version) -> dict[str, list[dict[str, Any]]]:
    """Criteria added, removed and changed (title, citation, what it tests, the outcome it leads to)."""
    a, b = _criteria(old), _criteria(new)
    added = [{"id": k, "title": b[k][0].title, "test": _describe(b[k][0])} for k in b if k not in a]
    removed = [{"id": k, "title": a[k][0].title, "test": _describe(a[k][0])} for k in a if k not in b]
    changed = []
    for k in a.keys() & b.keys():
        (ca, oa), (cb, ob) = a[k], b[k]
        what = []
        if ca.title != cb.title:
            what.append("title")
        if ca.cite != cb.cite:
            what.append("cite")
        if _shape(ca) != _shape(cb):
            what.append("test")
        if oa != ob:
            what.append("outcome")
        if what:
            changed.append({"id": k, "changed": what, "from": _describe(ca), "to": _describe(cb)})
    order = list(b) + [k for k in a if k not in b]
    changed.sort(key=lambda d: order.index(str(d["id"])))
    return {"added": added, "removed": removed, "changed": changed}


def under_version(policy: Policy, version_id: str) -> Policy:
    """The policy with only ``version_id``, in force on every date (to decide a case under it)."""
    v = policy.version(version_id)
    only = dataclasses.replace(v, effective_from=dt.date.min, effective_to=None)
    return dataclasses.replace(policy, versions=(only,))


def outcome_changes(
    policy: Policy, old: str, new: str, cases: Sequence[tuple[str, Mapping[str, Any]]]
) -> list[dict[str, Any]]:
    """Each case decided under both versions: name, outcome before and after, changed or not."""
    before, after = under_version(policy, old), under_version(policy, new)
    out = []
    for name, case in cases:
        results = []
        for p in (before, after):
            try:
                results.append(decide(case, p).outcome.value)
            except MedpolicyError as e:
                results.append(f"error: {e.code}")
        out.append({"case": name, "from": results[0], "to": results[1], "changed": results[0] != results[1]})
    return out


def _case_file(path: Path) -> list[tuple[str, Mapping[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".jsonl", ".ndjson"):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return [(str(r.get("id", f"line {i}")), r) for i, r in enumerate(rows, 1) if isinstance(r, dict)]
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    items = data if isinstance(data, list) else [data]
    out: list[tuple[str, Mapping[str, Any]]] = []
    for i, item in enumerate(items, 1):
        if isinstance(item, dict) and "case" in item and isinstance(item["case"], dict):
            out.append((str(item.get("name", f"case {i}")), _iso(item["case"])))
        elif isinstance(item, dict):
            out.append((str(item.get("id", f"case {i}")), _iso(item)))
    return out


def _iso(case: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in case.items()}


def register(policy_app: typer.Typer) -> None:
    """Add ``new`` and ``diff`` to the ``medpolicy policy`` command group."""
    from medpolicy.cli import EXIT_BAD_INPUT, _load, err, out

    @policy_app.command("new")
    def policy_new(
        policy_id: Annotated[str, typer.Argument(help="The new policy's id (lower case, hyphens).")],
        title: Annotated[str, typer.Option("--title", help="The policy's title.")] = "New medical policy",
        publisher: Annotated[str, typer.Option("--publisher", help="Who publishes it.")] = "TODO publisher",
        code: Annotated[str, typer.Option("--code", help="A procedure code it governs.")] = "99199",
        policies_dir: PoliciesOpt = None,
    ) -> None:
        """Scaffold a policy folder: policy.yaml skeleton, empty source.txt, a first case file."""
        root = policies_dir or default_policies_dir()
        try:
            folder = scaffold(root, policy_id, title=title, publisher=publisher, code=code)
        except (ValueError, FileExistsError) as e:
            err.print(f"[bold red]cannot create policy[/] {e}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        out.print(
            f"created {folder}/policy.yaml, source.txt (empty: paste the published text) and cases/first.yaml"
        )
        out.print(f"next: medpolicy policy check --policies {root}")

    @policy_app.command("diff")
    def policy_diff(
        policy_id: str,
        old: Annotated[str, typer.Option("--from", help="The earlier version id.")],
        new: Annotated[str, typer.Option("--to", help="The later version id.")],
        cases: Annotated[
            Path | None,
            typer.Option(
                "--cases", help="Cases to compare on (YAML cases, JSON, JSON lines); default: the policy's."
            ),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the diff as JSON.")] = False,
        policies_dir: PoliciesOpt = None,
    ) -> None:
        """Criteria added, removed and changed between two versions, and the outcomes that change."""
        from rich.table import Table

        policies = _load(policies_dir)
        try:
            policy = policies.get(policy_id)
            old_v, new_v = policy.version(old), policy.version(new)
        except MedpolicyError as e:
            err.print(f"[bold red]{e.code}[/] {e}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except KeyError as e:
            known = ", ".join(v.id for v in policies.get(policy_id).versions)
            err.print(f"[bold red]unknown_version[/] {e.args[0]!r} (versions: {known})", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        try:
            named = (
                _case_file(cases)
                if cases is not None
                else [(c.name, c.case) for c in load_cases(policy) if "errors" not in c.expect]
            )
        except (OSError, ValueError, yaml.YAMLError, PolicyLoadError) as e:
            err.print(f"[bold red]cannot read cases[/] {e}", highlight=False)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        crit = criteria_diff(old_v, new_v)
        outcomes = outcome_changes(policy, old, new, named)
        if as_json:
            print(
                json.dumps(
                    {"policy": policy.id, "from": old, "to": new, "criteria": crit, "outcomes": outcomes},
                    indent=2,
                )
            )
            return
        out.print(f"[bold]{policy.title}[/]: version {old} -> {new}")
        for kind in ("added", "removed", "changed"):
            rows = crit[kind]
            t = Table(
                "criterion",
                "title" if kind != "changed" else "what changed",
                "test",
                title=f"criteria {kind} ({len(rows)})",
            )
            for r in rows:
                if kind == "changed":
                    t.add_row(r["id"], ", ".join(r["changed"]), f"{r['from']}\n-> {r['to']}")
                else:
                    t.add_row(r["id"], r["title"], r["test"])
            if rows:
                out.print(t)
            else:
                out.print(f"criteria {kind}: none")
        moved = [o for o in outcomes if o["changed"]]
        t = Table(
            "case",
            f"under {old}",
            f"under {new}",
            title=f"outcomes that change: {len(moved)} of {len(outcomes)} cases",
        )
        for o in moved:
            t.add_row(o["case"], o["from"], o["to"])
        out.print(t)
