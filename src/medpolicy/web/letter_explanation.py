"""The patient's reason in a letter: the determination's explanation (``medpolicy.explanation``) as
short parts a letter shows (HTML through ``templates/_letter_explanation.html``, PDF through
``explanation_flowables``).

Each deciding fact with its value and where it came from; each threshold (policy parameter) the decision
used with its value; for an investigational denial, the rationale section for the site and the policy's
own conclusion; the notes that bear on the member's rights (a contradiction in the policy text, wording
broader than the statement applied).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

__all__ = ["Part", "explanation_flowables", "explanation_parts", "part_lines"]

_SOURCE_WORDS = {"given": "as given in the request", "unknown": "not known"}
_NAMES = {"t_stage": "T stage", "margin_distance_mm": "Margin distance"}


@dataclass(frozen=True)
class Part:
    heading: str
    paragraphs: tuple[str, ...] = ()
    bullets: tuple[str, ...] = ()


def _name(name: str) -> str:
    return _NAMES.get(name, name.replace("_", " ").capitalize())


def _value(value: Any, unit: str | None) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).replace("_", " ")
    return f"{text} {unit}" if unit else text


def _source(source: str) -> str:
    if source in _SOURCE_WORDS:
        return _SOURCE_WORDS[source]
    if source.startswith("derived from "):
        return "worked out from the " + " and the ".join(
            _name(s).lower() for s in source.removeprefix("derived from ").split(" and ")
        )
    return f"from the {source.replace('_', ' ')}"


def explanation_parts(det: Mapping[str, Any]) -> tuple[Part, ...]:
    """The parts of a letter that give the patient's reason; empty for a determination stored before
    determinations carried an explanation."""
    exp = det.get("explanation")
    if not isinstance(exp, Mapping):
        return ()
    parts: list[Part] = []
    statement = str(exp.get("statement") or "")
    rationale = exp.get("rationale") if isinstance(exp.get("rationale"), Mapping) else None
    why: list[str] = [statement] if statement and exp.get("basis") != "exclusion" else []
    if rationale and exp.get("basis") != "investigational" and rationale.get("title"):
        why.append(f"The section of the policy's rationale for this site: \u201c{rationale['title']}\u201d.")
    if why:
        parts.append(Part("Why, in the policy's words", tuple(why)))
    facts = [f for f in exp.get("facts") or [] if isinstance(f, Mapping)]
    if facts:
        parts.append(
            Part(
                "The facts this decision rests on",
                ("Each fact the decision used, its value, and where it came from:",),
                tuple(
                    f"{f.get('label') or _name(str(f.get('name')))}: {_value(f.get('value'), f.get('unit'))} "
                    f"({_source(str(f.get('source') or 'unknown'))})"
                    for f in facts
                ),
            )
        )
    params = [p for p in exp.get("parameters") or [] if isinstance(p, Mapping)]
    if params:
        parts.append(
            Part(
                "The thresholds applied",
                ("The policy's thresholds the decision used, with their values:",),
                tuple(
                    f"{_name(str(p.get('name')))}: {_value(p.get('value'), None)}. {p.get('description') or ''}".strip()
                    for p in params
                ),
            )
        )
    notes = [n for n in exp.get("notes") or [] if isinstance(n, Mapping) and n.get("message")]
    if notes:
        parts.append(
            Part(
                "About the policy's text",
                ("What the reviewer weighed about the policy's own wording, which you may raise on appeal:",),
                tuple(str(n["message"]) for n in notes),
            )
        )
    return tuple(parts)


def part_lines(parts: Sequence[Part]) -> list[str]:
    lines: list[str] = []
    for p in parts:
        lines.append(p.heading)
        lines.extend(p.paragraphs)
        lines.extend(f"- {b}" for b in p.bullets)
    return lines


def explanation_flowables(parts: Sequence[Part], styles: Any) -> list[Any]:
    """The parts as reportlab flowables, in the letter's styles."""
    from reportlab.platypus import ListFlowable, ListItem, Paragraph

    story: list[Any] = []
    for p in parts:
        story.append(Paragraph(escape(p.heading), styles["Heading2"]))
        story.extend(Paragraph(escape(t), styles["BodyText"]) for t in p.paragraphs)
        if p.bullets:
            story.append(
                ListFlowable(
                    [ListItem(Paragraph(escape(b), styles["BodyText"])) for b in p.bullets],
                    bulletType="bullet",
                    leftIndent=14,
                )
            )
    return story
