"""Is a finding affirmed? Negation, uncertainty, hypothetical and historical context (ConText).

Two engines, same interface: :class:`MedspacyContext` runs medspaCy's ConText (its packaged rule set
plus the few pathology phrases below) over spaCy's blank English tokenizer, on the sentences that hold a
candidate finding only; :class:`BuiltinContext` is a small pure-Python NegEx/ConText for an install
without the ``nlp`` extra. Neither loads a model or reads the network. :func:`default_engine` picks
medspaCy when it is installed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Assertion", "BuiltinContext", "ContextEngine", "MedspacyContext", "Target", "default_engine"]


@dataclass(frozen=True, slots=True)
class Target:
    """A candidate finding: its label and where it is, relative to the sentence text it sits in."""

    label: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Assertion:
    negated: bool = False
    uncertain: bool = False
    hypothetical: bool = False
    historical: bool = False

    @property
    def affirmed(self) -> bool:
        return not (self.negated or self.uncertain or self.hypothetical)


class ContextEngine(Protocol):
    name: str

    def assess(self, items: Sequence[tuple[str, Sequence[Target]]]) -> list[list[Assertion]]:
        """For each (sentence text, targets in it): one assertion per target."""
        ...


# Pathology and operative phrasing the general ConText lists lack: (phrase, category, direction).
_EXTRA_RULES: tuple[tuple[str, str, str], ...] = (
    ("negative for", "NEGATED_EXISTENCE", "FORWARD"),
    ("free of", "NEGATED_EXISTENCE", "FORWARD"),
    ("not identified", "NEGATED_EXISTENCE", "BACKWARD"),
    ("not seen", "NEGATED_EXISTENCE", "BACKWARD"),
    ("is not seen", "NEGATED_EXISTENCE", "BACKWARD"),
    ("not present", "NEGATED_EXISTENCE", "BACKWARD"),
    ("cannot be excluded", "POSSIBLE_EXISTENCE", "BACKWARD"),
    ("cannot be ruled out", "POSSIBLE_EXISTENCE", "BACKWARD"),
    ("can not be excluded", "POSSIBLE_EXISTENCE", "BACKWARD"),
    ("indeterminate", "POSSIBLE_EXISTENCE", "BIDIRECTIONAL"),
    ("suspicious for", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("concerning for", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("would require", "HYPOTHETICAL", "BIDIRECTIONAL"),
    ("would be", "HYPOTHETICAL", "FORWARD"),
    ("should", "HYPOTHETICAL", "FORWARD"),
    ("if", "HYPOTHETICAL", "FORWARD"),
    ("rule out", "POSSIBLE_EXISTENCE", "FORWARD"),
    ("risk of", "HYPOTHETICAL", "FORWARD"),
)

# The builtin engine's triggers (lower case), by category. Pre: the trigger comes before the finding.
_PRE = {
    "neg": r"\b(?:no|not|without|negative for|free of|absence of|absent|no evidence of|no sign of|"
    r"no signs of|never|denies|none|nor|unremarkable for)\b",
    "unc": r"\b(?:possible|possibly|probable|probably|suspicious for|suspected|suspect|concerning for|"
    r"questionable|equivocal|may represent|might|likely|rule out|r/o|versus|vs\.?|indeterminate)\b",
    "hyp": r"\b(?:if|should|would|in case of|in the event of|risk of|to exclude|consider|considered|"
    r"may develop)\b",
    "hist": r"\b(?:history of|h/o|previous|previously|prior|remote)\b",
}
_POST = {
    "neg": r"\b(?:not identified|not seen|is not seen|not present|absent|ruled out|excluded|negative)\b",
    "unc": r"\b(?:cannot be excluded|can ?not be excluded|cannot be ruled out|not excluded|"
    r"is suspected|questionable|indeterminate|uncertain|possible)\b",
    "hyp": r"\b(?:will be considered|would be considered|is considered|would require|would be required|"
    r"would need|would mean)\b",
    "hist": r"$^",
}
_TERMINATE = re.compile(r"\b(?:but|however|although|though|except|which|whereas|aside from|with)\b|[;:()]")
_WINDOW = 6  # words a trigger reaches, as NegEx
_PRE_RE = {k: re.compile(v) for k, v in _PRE.items()}
_POST_RE = {k: re.compile(v) for k, v in _POST.items()}


class BuiltinContext:
    """NegEx-style: a trigger modifies a finding in its direction until the sentence ends or a
    terminating word ("but", "however", a semicolon) intervenes."""

    name = "builtin"

    def assess(self, items: Sequence[tuple[str, Sequence[Target]]]) -> list[list[Assertion]]:
        return [[self._one(text.lower(), t) for t in targets] for text, targets in items]

    def _one(self, low: str, t: Target) -> Assertion:
        pre = low[: t.start]
        cut = [m.end() for m in _TERMINATE.finditer(pre)]
        pre = pre[cut[-1] :] if cut else pre
        pre = " ".join(pre.split()[-_WINDOW:])
        post = low[t.end :]
        stop = _TERMINATE.search(post)
        post = post[: stop.start()] if stop else post
        post = " ".join(post.split()[:_WINDOW])
        hit = {k: bool(_PRE_RE[k].search(pre)) or bool(_POST_RE[k].search(post)) for k in _PRE}
        if _POST_RE["unc"].search(post):  # "cannot be excluded" is doubt, not the negation "excluded"
            hit["neg"] = bool(_PRE_RE["neg"].search(pre))
        return Assertion(hit["neg"], hit["unc"], hit["hyp"], hit["hist"])


class MedspacyContext:
    """medspaCy's ConText on a spaCy blank English pipeline (no model). Built once per process."""

    name = "medspacy"

    def __init__(self) -> None:
        import logging
        import warnings

        with warnings.catch_warnings():  # spaCy's CLI module imports click's deprecated parser helpers
            warnings.simplefilter("ignore", DeprecationWarning)
            import medspacy.context  # noqa: F401  (registers the medspacy_context factory)
            import spacy
            from medspacy.context import ConTextRule

        for noisy in ("medspacy", "PyRuSH"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        nlp = spacy.blank("en")
        nlp.add_pipe("sentencizer")
        ctx: Any = nlp.add_pipe("medspacy_context", config={"rules": "default"})
        ctx.add([ConTextRule(p, c, direction=d) for p, c, d in _EXTRA_RULES])
        self._nlp = nlp
        self._ctx = ctx
        self._trigger = _trigger_prefilter(ctx.rules)

    def assess(self, items: Sequence[tuple[str, Sequence[Target]]]) -> list[list[Assertion]]:
        from spacy.tokens import Span

        out: list[list[Assertion]] = []
        for text, targets in items:
            if self._trigger is not None and not self._trigger.search(text):
                out.append([Assertion() for _ in targets])  # no ConText rule can match here
                continue
            doc = self._nlp.make_doc(text)
            spans: list[Span | None] = []
            for t in targets:
                spans.append(doc.char_span(t.start, t.end, label=t.label, alignment_mode="expand"))
            chosen = [s for s in spans if s is not None]
            keep: list[Span] = []
            for s in sorted(chosen, key=lambda s: (s.start, -s.end)):
                if not keep or s.start >= keep[-1].end:
                    keep.append(s)
            doc.ents = keep
            for _, proc in self._nlp.pipeline:
                doc = proc(doc)
            by_pos = {(e.start, e.end): e for e in doc.ents}
            row: list[Assertion] = []
            for target, span in zip(targets, spans, strict=True):
                e = by_pos.get((span.start, span.end)) if span is not None else None
                if e is None:  # overlapping another target: judged by the builtin rules
                    row.append(_FALLBACK._one(text.lower(), target))
                    continue
                row.append(
                    Assertion(
                        bool(e._.is_negated),
                        bool(e._.is_uncertain),
                        bool(e._.is_hypothetical),
                        bool(e._.is_historical),
                    )
                )
            out.append(row)
        return out


def _trigger_prefilter(rules: Sequence[Any]) -> re.Pattern[str] | None:
    """A regular expression that finds a word every rule needs (a rule matches no sentence without
    it), so that sentences with no trigger word skip the matcher: an exact shortcut, not a heuristic.
    ``None`` when a rule has a pattern whose words cannot be listed."""
    words: set[str] = set()
    for rule in rules:
        if rule.pattern is None:
            words.add(rule.literal.lower().split()[0] if rule.literal.split() else rule.literal.lower())
            continue
        needed = [t for t in rule.pattern if t.get("OP") not in ("?", "*")]
        if not needed:
            return None
        first = needed[0].get("LOWER", needed[0].get("TEXT", needed[0].get("ORTH")))
        if isinstance(first, str):
            words.add(first.lower())
        elif isinstance(first, dict) and isinstance(first.get("IN"), list):
            words.update(str(w).lower() for w in first["IN"])
        else:
            return None
    alternatives = "|".join(sorted((re.escape(w) for w in words if w), key=len, reverse=True))
    return re.compile(rf"(?i)(?<![a-z0-9])(?:{alternatives})(?![a-z0-9])")


_FALLBACK = BuiltinContext()
_engine: ContextEngine | None = None


def default_engine() -> ContextEngine:
    """medspaCy's ConText when the ``nlp`` extra is installed, else the builtin rules."""
    global _engine
    if _engine is None:
        try:
            _engine = MedspacyContext()
        except ImportError:
            _engine = BuiltinContext()
    return _engine
