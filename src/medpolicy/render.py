"""Render determinations and policies for people (rich). A face: it only formats core results."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
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


def determination_view(d: Determination) -> RenderableType:
    v = d.version
    head = Text.assemble((d.outcome.label.upper(), OUTCOME_STYLE[d.outcome]), "  ", (d.policy.title, "bold"))
    head.append(f"  version {v.id} (from {v.effective_from})" if v else "  (no version chosen)")
    parts: list[RenderableType] = [head, Text(d.summary)]
    if d.deciding:
        t = Table(title="Deciding criteria", show_header=True, header_style="bold", expand=True)
        t.add_column("criterion")
        t.add_column("value", no_wrap=True)
        t.add_column("policy text", ratio=2)
        for c in d.deciding:
            t.add_row(
                "  " * c.depth + c.criterion.title,
                _mark(c.value),
                Text(" / ".join(c.criterion.cite), style="italic"),
            )
        parts.append(t)
    if d.missing_facts:
        t = Table(title="Information needed (in the order to ask)", expand=True)
        t.add_column("fact", no_wrap=True)
        t.add_column("question")
        t.add_column("answers")
        for m in d.missing_facts:
            t.add_row(m.name, m.question, ", ".join(m.values or ()) or m.type)
        parts.append(t)
    if d.notes:
        parts.append(Text("Notes", style="bold"))
        for n in d.notes:
            parts.append(Text(f"  • [{n.code}] {n.message}"))
    if d.rationale:
        parts.append(
            Text(f"Rationale section: {d.rationale.title} (source line {d.rationale.line})", style="dim")
        )
    return Panel(Group(*parts), expand=True)


def explain_tree(d: Determination) -> RenderableType:
    """The full criteria tree of the applied version with each value."""
    root = Tree(
        Text(f"{d.policy.id} version {d.version.id if d.version else '-'}: {d.outcome.value}", style="bold")
    )
    stack: list[Tree] = [root]
    for c in d.trace:
        del stack[c.depth + 1 :]
        label = _node_label(c)
        stack.append(stack[-1].add(label))
    return root


def _node_label(c: CriterionResult) -> Text:
    t = Text.assemble(_mark(c.value), " ", (c.criterion.id, "cyan"), f"  {c.criterion.title}")
    if c.outcome is not None:
        t.append(f"  → {c.outcome.value}", style="bold")
    t.append(f'\n    "{" / ".join(c.criterion.cite)}"', style="italic dim")
    return t


def policy_view(p: Policy) -> RenderableType:
    parts: list[RenderableType] = [
        Text(f"{p.title} ({p.id})", style="bold"),
        Text(f"{p.publisher}; source: {p.source_title}, last updated {p.last_updated}"),
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
