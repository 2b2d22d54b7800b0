"""Sections and sentences of a report, found on the raw text (offsets preserved).

A section starts at a line whose title is a known report heading ("CLINICAL HISTORY:", "Final
Diagnosis", "Findings:"...). Headings that name history (clinical history, indication, history of present
illness...) make a ``history`` section: what is written there is what someone said before this document,
not a finding of it. Field labels of a synoptic report ("Tumor Site:", "Margins:") are not headings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Section", "Sentence", "blank_heading_colons", "sections", "sentences"]

_HISTORY = {
    "clinical history", "history", "clinical information", "clinical", "clinical data", "indication",
    "indications", "clinical indication", "reason for consultation", "reason for referral",
    "history of present illness", "hpi", "past medical history", "past surgical history", "pmh",
    "oncologic history", "pertinent history", "clinical notes", "clinical info", "brief history",
}  # fmt: skip
_FINDING = {
    "diagnosis", "diagnoses", "final diagnosis", "final pathologic diagnosis", "pathologic diagnosis",
    "final pathological diagnosis", "synoptic report", "synoptic", "synoptic summary", "gross description",
    "gross", "microscopic description", "microscopic", "comment", "comments", "note", "impression",
    "findings", "finding", "specimen", "specimens", "specimen(s)",
    "preoperative diagnosis", "postoperative diagnosis", "pre-operative diagnosis", "post-operative diagnosis",
    "operative findings", "intraoperative findings", "assessment", "assessment and plan", "plan",
    "pathologic stage", "stage summary", "addendum", "description of procedure", "technique", "pathology",
    "summary", "interval", "results", "conclusion", "conclusions", "operation", "operations performed",
    "frozen section", "intraoperative consultation", "final report", "interpretation", "recommendations",
}  # fmt: skip

_HEADING = re.compile(r"(?m)^[ \t]*([A-Za-z][A-Za-z /&()'-]{0,60}?)[ \t]*(?::|$)")


@dataclass(frozen=True, slots=True)
class Section:
    title: str  # as written, e.g. "CLINICAL HISTORY"; "Report" before the first heading
    kind: str  # "history" or "finding"
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Sentence:
    start: int
    end: int
    section: Section


def _norm_title(raw: str) -> str:
    return " ".join(raw.lower().replace("_", " ").split())


def sections(text: str) -> list[Section]:
    """The document cut at known headings; at least one section."""
    marks: list[tuple[int, str, str]] = [(0, "Report", "finding")]
    for m in _HEADING.finditer(text):
        title = _norm_title(m.group(1))
        kind = "history" if title in _HISTORY else "finding" if title in _FINDING else None
        if kind is None:
            continue
        marks.append((m.start(1), m.group(1).strip(), kind))
    out: list[Section] = []
    for i, (start, title, kind) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else len(text)
        if end > start or i == len(marks) - 1:
            out.append(Section(title, kind, start, end))
    return out


# A sentence ends at a full stop or semicolon followed by a capital, at a blank line, at a new list item
# or a new "Label:" line. A line broken in the middle of a sentence (a wrapped line, OCR) stays whole.
_BREAK = re.compile(
    r"(?<=[.;])[ \t]+(?=[A-Z(]|[a-z]{1,2}T\d)"
    r"|(?<=[.;])[ \t]*\n"
    r"|\n[ \t]*\n"
    r"|\n(?=[ \t]*(?:[-•*]|\d{1,2}[.)]\s|[A-Z]\.|[A-Z][A-Za-z ()/,'-]{0,60}:|[A-Z][A-Z ,/()-]{3,}$))",
    re.MULTILINE,
)


def sentences(text: str, secs: list[Section]) -> list[Sentence]:
    """Sentences within sections (a sentence never crosses a heading)."""
    out: list[Sentence] = []
    for sec in secs:
        pos = sec.start
        for m in _BREAK.finditer(text, sec.start, sec.end):
            if m.start() > pos and text[pos : m.start()].strip():
                out.append(Sentence(pos, m.start(), sec))
            pos = m.end()
        if sec.end > pos and text[pos : sec.end].strip():
            out.append(Sentence(pos, sec.end, sec))
    return out


_LEADING_LABEL = re.compile(r"^([ \t]*)([A-Za-z][A-Za-z /&()'-]{0,60}?)[ \t]*:")


def blank_heading_colons(chunk: str) -> str:
    """The sentence with the colon after a leading heading ("Findings: No liver metastases") made a
    space, same length: ConText reads "X: no" as an answer that negates X, which a heading is not."""
    m = _LEADING_LABEL.match(chunk)
    if m and _norm_title(m.group(2)) in _HISTORY | _FINDING:
        return chunk[: m.end() - 1] + " " + chunk[m.end() :]
    return chunk
