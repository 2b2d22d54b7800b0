"""The policy browser's model: the source text with every criterion's cited sentence marked and linked.

Citations are compared with the source with white space folded (as the policy loader checks them), so
a cited sentence may run over several lines of the source. A short citation ("T4 lesions") is placed
inside the longer one that contains it when there is one, so the marks nest the way the criteria do.
Each mark starts with a small numbered link ("[3]") to its criterion; links are never nested.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

__all__ = ["CitedCriterion", "PolicyView", "build_policy_view", "criterion_anchor"]


@dataclass
class CitedCriterion:
    anchor: str  # id of the criterion's entry in the list
    id: str
    title: str
    version: str
    cite: tuple[str, ...]
    outcome: str | None
    depth: int
    marks: list[str] = field(default_factory=list)  # ids of the marks of its citations


@dataclass
class PolicyView:
    source_html: Markup
    criteria: list[CitedCriterion]
    unplaced: list[str]  # citations not found in the source (the loader's check should prevent any)


def criterion_anchor(version: str, criterion_id: str) -> str:
    return "criterion-" + re.sub(r"[^A-Za-z0-9_-]", "-", f"{version}-{criterion_id}")


def _walk(criterion: Any, depth: int = 0) -> Iterable[tuple[Any, int]]:
    yield criterion, depth
    for child in criterion.children():
        yield from _walk(child, depth + 1)


def _criteria(policy: Any) -> list[CitedCriterion]:
    found: list[CitedCriterion] = []
    for version in policy.versions:
        seen: set[str] = set()
        for rule in version.decision_list:
            for criterion, depth in _walk(rule.criterion):
                cid = str(criterion.id)
                if cid in seen:
                    continue
                seen.add(cid)
                found.append(
                    CitedCriterion(
                        anchor=criterion_anchor(version.id, cid),
                        id=cid,
                        title=str(criterion.title),
                        version=version.id,
                        cite=tuple(criterion.cite),
                        outcome=rule.outcome.value if depth == 0 else None,
                        depth=depth,
                    )
                )
    return found


def _pattern(cite: str) -> re.Pattern[str]:
    words = cite.split()
    return re.compile(r"\s+".join(re.escape(w) for w in words))


def build_policy_view(policy: Any) -> PolicyView:
    text: str = policy.source_text
    criteria = _criteria(policy)
    # cite -> criteria that cite it
    by_cite: dict[str, list[CitedCriterion]] = {}
    for c in criteria:
        for cite in c.cite:
            by_cite.setdefault(" ".join(cite.split()), []).append(c)
    spans: list[tuple[int, int, str]] = []  # (start, end, cite)
    unplaced: list[str] = []
    for cite in sorted(by_cite, key=len, reverse=True):
        pattern = _pattern(cite)
        placed = None
        for start, end, _ in spans:  # inside a longer citation first
            m = pattern.search(text, start, end)
            if m:
                placed = (m.start(), m.end())
                break
        if placed is None:
            m = pattern.search(text)
            if m:
                placed = (m.start(), m.end())
        if placed is None:
            unplaced.append(cite)
            continue
        s, e = placed
        if any(
            s < e2 and s2 < e and not (s2 <= s and e <= e2) and not (s <= s2 and e2 <= e)
            for s2, e2, _ in spans
        ):
            unplaced.append(cite)  # would cross another mark: listed, not highlighted
            continue
        spans.append((s, e, cite))
    # give marks ids in text order
    spans.sort(key=lambda t: (t[0], -(t[1] - t[0])))
    mark_ids: dict[str, str] = {}
    for i, (_, _, cite) in enumerate(spans, start=1):
        mark_ids[cite] = f"cite-{i}"
        for c in by_cite[cite]:
            c.marks.append(f"cite-{i}")
    # render with nested marks
    opens: dict[int, list[tuple[int, str]]] = {}
    closes: dict[int, int] = {}
    for s, e, cite in spans:
        opens.setdefault(s, []).append((e, cite))
        closes[e] = closes.get(e, 0) + 1
    out: list[str] = []
    boundaries = sorted(set(opens) | set(closes) | {0, len(text)})
    prev = 0
    for pos in boundaries:
        out.append(str(escape(text[prev:pos])))
        for _ in range(closes.get(pos, 0)):
            out.append("</mark>")
        for _end, cite in sorted(opens.get(pos, []), key=lambda t: -t[0]):
            targets = by_cite[cite]
            title = "; ".join(f"{t.title} (version {t.version})" for t in targets)
            number = mark_ids[cite].removeprefix("cite-")
            out.append(
                f'<mark id="{mark_ids[cite]}" class="cite"><a class="cite-link" href="#{targets[-1].anchor}" '
                f'aria-label="Criterion: {escape(title)}" title="{escape(title)}">[{number}]</a>'
            )
        prev = pos
    return PolicyView(Markup("".join(out)), criteria, unplaced)  # noqa: S704 - every piece of text is escaped above
