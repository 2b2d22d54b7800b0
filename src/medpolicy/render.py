"""Render determinations and policies for people (rich). A face: it only formats core results."""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from medpolicy.engine import CriterionResult, Determination
from medpolicy.language import Criterion, Tri
from medpolicy.policy import Outcome, Policy

__all__ = ["OUTCOME_STYLE", "determination_view", "explain_tree", "policy_view"]

OUTCOME_STYLE = {
    Outcome.MEDICALLY_NECESSARY: "bold green",
    Outcome.INVESTIGATIONAL: "bold red",
    Outcome.NOT_MEDICALLY_NECESSARY: "bold red",
    Outcome.INFORMATION_NEEDED: "bold yellow",
    Outcome.NOT_APPLICABLE: "bold blue",
}
_MARK = {True: ("met", "green"), False: ("not met", "red"), None: ("unknown", "yellow")}


def _mark(v: Tri) -> Text:
    word, style = _MARK[v]
    return Text(f"[{word}]", style=style)


def _block(text: Text, indent: int) -> RenderableType:
    """Text that wraps with every line at the indent (readable at 80 columns)."""
    return Padding(text, (0, 0, 0, indent), expand=False) if indent else text


def _cite(c: Criterion, indent: int) -> RenderableType:
    return _block(Text(f"\u201c{' / '.join(c.cite)}\u201d", style="italic"), indent)


def _bullets(items: list[Text], indent: int = 2) -> RenderableType:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for t in items:
        grid.add_row("•", t)
    return _block_grid(grid, indent)


def _block_grid(grid: Table, indent: int) -> RenderableType:
    return Padding(grid, (0, 0, 0, indent), expand=False)


def determination_view(d: Determination) -> RenderableType:
    """A determination as blocks (no tables of prose): every criterion and its cited sentence stay
    readable at 80 columns."""
    v = d.version
    head = Text.assemble((d.outcome.label.upper(), OUTCOME_STYLE[d.outcome]), "  ", (d.policy.title, "bold"))
    head.append(f"  version {v.id} (from {v.effective_from})" if v else "  (no version chosen)")
    parts: list[RenderableType] = [head, Text(d.summary)]
    if d.deciding:
        parts.append(Text("Deciding criteria", style="bold"))
        for c in d.deciding:
            indent = 2 + 2 * c.depth
            parts.append(_block(Text.assemble(_mark(c.value), " ", c.criterion.title), indent))
            parts.append(_cite(c.criterion, indent + 2))
    if d.missing_facts:
        parts.append(Text("Information needed (in the order to ask)", style="bold"))
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column()
        for m in d.missing_facts:
            grid.add_row(m.name, m.question)
        parts.append(_block_grid(grid, 2))
    if d.outcome is not Outcome.INFORMATION_NEEDED:
        exp = d.explanation()
        if exp["facts"]:
            parts.append(Text("The facts it rests on", style="bold"))
            parts.append(
                _bullets(
                    [
                        Text(f"{f['label']}: {_shown(f['value'], f['unit'])} ({f['source']})")
                        for f in exp["facts"]
                    ]
                )
            )
        if exp["parameters"]:
            parts.append(Text("Thresholds applied (policy parameters)", style="bold"))
            parts.append(
                _bullets(
                    [Text(f"{p['name']} = {p['value']:g}: {p['description']}") for p in exp["parameters"]]
                )
            )
    if d.notes:
        parts.append(Text("Notes", style="bold"))
        parts.append(_bullets([Text(f"[{n.code}] {n.message}") for n in d.notes]))
    if d.flags:
        parts.append(Text(f"Flags: {', '.join(d.flags)}", style="bold yellow"))
    if d.rationale:
        parts.append(
            Text(f"Rationale section: {d.rationale.title} (source line {d.rationale.line})", style="dim")
        )
    return Group(*parts)


def _shown(value: Any, unit: str | None) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value} {unit}" if unit else str(value)


def explain_tree(d: Determination) -> RenderableType:
    """The full criteria tree of the applied version with each value, as indented blocks: each
    criterion on its own lines with the sentence it cites beneath it (readable at 80 columns)."""
    parts: list[RenderableType] = [
        Text(f"{d.policy.id} version {d.version.id if d.version else '-'}: {d.outcome.value}", style="bold")
    ]
    for c in d.trace:
        indent = 2 * c.depth
        parts.append(_block(_node_label(c), indent))
        parts.append(_cite(c.criterion, indent + 4))
    return Group(*parts)


def _node_label(c: CriterionResult) -> Text:
    t = Text.assemble(_mark(c.value), " ", (c.criterion.id, "cyan"), f"  {c.criterion.title}")
    if c.outcome is not None:
        t.append(f"  → {c.outcome.value}", style="bold")
    return t


def policy_view(p: Policy) -> RenderableType:
    parts: list[RenderableType] = [
        Text(f"{p.title} ({p.id})", style="bold"),
        Text(f"{p.publisher}; source: {p.source_title}, last updated {p.last_updated}"),
        Text(
            f"Prior authorization: {'required' if p.prior_authorization else 'not required'} "
            "(the plan's configuration, not the policy's words)"
            + (f"; policy review due {p.review_by}" if p.review_by else "")
        ),
    ]
    vt = Table(title="Versions", expand=True)
    for col in ("version", "in force", "statement"):
        vt.add_column(col)
    for v in p.versions:
        vt.add_row(v.id, f"{v.effective_from} to {v.effective_to or 'today'}", v.summary)
    parts.append(vt)
    ct = Table(title="Billing codes governed", expand=True)
    ct.add_column("code")
    ct.add_column("our label")
    ct.add_column("since")
    for code in p.governs.entries:
        since = p.governs.since.get(code)
        ct.add_row(code, p.governs.labels.get(code, ""), str(since) if since else "")
    parts.append(ct)
    ft = Table(title="Facts", expand=True)
    for col in ("fact", "type", "question"):
        ft.add_column(col)
    for f in p.facts:
        ft.add_row(f.name, f.type + (f" ({', '.join(f.values)})" if f.values else ""), f.question)
    parts.append(ft)
    for v in p.versions:
        tree = Tree(Text(f"criteria of version {v.id}", style="bold"))
        for rule in v.decision_list:
            _add_criterion(tree, rule.criterion, rule.outcome.value)
        parts.append(tree)
    params = Table(title="Parameters", expand=True)
    for col in ("parameter", "value", "meaning"):
        params.add_column(col)
    for k, val in p.parameters.items():
        params.add_row(k, f"{val:g}", p.parameter_descriptions.get(k, ""))
    parts.append(params)
    return Group(*parts)


def _add_criterion(tree: Tree, c: Criterion, outcome: str | None) -> None:
    label = Text.assemble((c.id, "cyan"), f"  {c.title}")
    if outcome:
        label.append(f"  → {outcome}", style="bold")
    node = tree.add(label)
    for k in c.children():
        _add_criterion(node, k, None)
