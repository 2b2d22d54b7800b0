"""The result of reading one document: proposed facts, the words each came from, confidence, warnings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FACT_NAMES", "Evidence", "Extraction", "ExtractionWarning"]

#: The facts extraction proposes, in the IORT policy's case vocabulary (``policies/bluekc-iort``).
FACT_NAMES = ("tumor_site", "t_stage", "margin_status", "margin_distance_mm", "recurrent", "metastatic")


@dataclass(frozen=True, slots=True)
class Evidence:
    """A span of the document (character offsets into the text as given) and the section it is in."""

    start: int
    end: int
    text: str
    section: str

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "text": self.text, "section": self.section}


@dataclass(frozen=True, slots=True)
class ExtractionWarning:
    """Something a reviewer should know: a stable code, a message (never the document's text beyond the
    few words of a finding), and the fact it concerns, if any."""

    code: str
    message: str
    fact: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fact:
            d["fact"] = self.fact
        return d


@dataclass(slots=True)
class Extraction:
    """Facts proposed from one document. A fact the document does not state is ``None``.

    ``detail`` holds what the policy's vocabulary cannot say (``site``: the five-way site a reader
    distinguishes, e.g. ``rectosigmoid``, which the policy leaves to a reviewer). ``engine`` names the
    assertion engine that judged negation and context (``medspacy`` or ``builtin``)."""

    facts: dict[str, Any] = field(default_factory=lambda: dict.fromkeys(FACT_NAMES))
    evidence: dict[str, list[Evidence]] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    warnings: list[ExtractionWarning] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)
    engine: str = "builtin"

    def set(self, name: str, value: Any, evidence: list[Evidence], confidence: float) -> None:
        self.facts[name] = value
        self.evidence[name] = evidence
        self.confidence[name] = round(confidence, 2)

    def warn(self, code: str, message: str, fact: str | None = None) -> None:
        w = ExtractionWarning(code, message, fact)
        if w not in self.warnings:
            self.warnings.append(w)

    def to_dict(self) -> dict[str, Any]:
        return {
            "facts": dict(self.facts),
            "source": "extracted",
            "evidence": {k: [e.to_dict() for e in v] for k, v in self.evidence.items()},
            "confidence": dict(self.confidence),
            "warnings": [w.to_dict() for w in self.warnings],
            "detail": dict(self.detail),
            "engine": self.engine,
        }
