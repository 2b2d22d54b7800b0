"""What the engine answers: a ``Determination`` for one case, the ``EvalResult`` it shares with every
case of the same key (outcome, version, trace, deciding criteria, missing facts), and its JSON.

``Determination.to_json`` renders the ``DeterminationV1`` shape (docs/api.md) without re-rendering
what cases share: the parts that depend only on the key are rendered once, and a compact line is kept
around a hole for the case's metadata. ``_build_dict`` is the reference construction tests check it
against. ``summarize`` writes the one-sentence summary of a result.

Pure: everything comes from the case, the policy and the engine's result (``medpolicy.engine``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from medpolicy import __version__
from medpolicy.case import CONFLICT, Case, Note
from medpolicy.explanation import REST_ON_CONFLICT, REVIEW_OVERDUE, conflicts, explanation, flags
from medpolicy.language import AllOf, AnyOf, Criterion, Not, Tri, tri_label
from medpolicy.policy import Outcome, Policy, RationaleSection, Version

__all__ = ["DOS", "CriterionResult", "Determination", "EvalResult", "MissingFact", "summarize"]

DOS = "date_of_service"


@dataclass(frozen=True, slots=True)
class CriterionResult:
    criterion: Criterion
    value: Tri
    depth: int = 0
    outcome: Outcome | None = None  # for the top of a rule: the outcome it leads to

    def to_dict(self) -> dict[str, Any]:
        c = self.criterion
        d: dict[str, Any] = {
            "id": c.id,
            "title": c.title,
            "value": tri_label(self.value),
            "facts": sorted(c.facts()),
            "cite": list(c.cite),
        }
        if self.outcome is not None:
            d["outcome"] = self.outcome.value
        return d


@dataclass(frozen=True, slots=True)
class MissingFact:
    name: str
    question: str
    type: str
    values: tuple[str, ...] | None
    unit: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "question": self.question, "type": self.type}
        if self.values:
            d["values"] = list(self.values)
        if self.unit:
            d["unit"] = self.unit
        return d


@dataclass(frozen=True, slots=True)
class EvalResult:
    """Everything about a determination that depends only on the case's key (shared between cases)."""

    outcome: Outcome
    version: Version | None
    trace: tuple[CriterionResult, ...]
    deciding: tuple[CriterionResult, ...]
    missing: tuple[MissingFact, ...]
    notes: tuple[Note, ...]
    possible: frozenset[Outcome]
    summary: str = ""
    #: JSON fragments rendered once per key and reused for every case with that key (see to_json).
    rendered: dict[str, Any] = field(default_factory=dict, compare=False)


# ----------------------------------------------------------------------------------------------------
# Determinations


class Determination:
    """The answer for one case: outcome, version, trace, deciding criteria with citations, notes,
    rationale section and, when information is needed, the missing facts in asking order.

    Everything that depends only on the case's key lives in the shared ``EvalResult``; the case adds
    its facts, notes and rationale section."""

    __slots__ = ("_conflicts", "_flags", "_notes", "case", "policy", "result", "trace")

    def __init__(self, policy: Policy, case: Case, result: EvalResult) -> None:
        self.policy = policy
        self.case = case
        self.result = result
        #: Every criterion of the version with its three-valued result, in order (``result.trace``,
        #: kept here because nearly every reader wants it).
        self.trace: tuple[CriterionResult, ...] = result.trace
        # ``_notes``, ``_conflicts`` and ``_flags`` are computed on first use; until then they are unset
        # (``Engine.decide`` builds determinations without calling this: keep the two alike).

    @property
    def outcome(self) -> Outcome:
        return self.result.outcome

    @property
    def version(self) -> Version | None:
        return self.result.version

    @property
    def deciding(self) -> tuple[CriterionResult, ...]:
        return self.result.deciding

    @property
    def missing_facts(self) -> tuple[MissingFact, ...]:
        return self.result.missing

    @property
    def summary(self) -> str:
        return self.result.summary

    @property
    def notes(self) -> tuple[Note, ...]:
        notes: tuple[Note, ...] | None = getattr(self, "_notes", None)
        if notes is None:
            notes = self.case.notes + self.result.notes
            since = self.policy.governs.since
            latest = self.policy.governs.latest_since
            dos = self.case.values.get(DOS)
            if latest is not None and dos is not None and dos < latest:
                procs = self.case.values.get("procedure_codes") or frozenset()
                notes += tuple(
                    Note(
                        "code_not_yet_in_effect",
                        f"procedure code {code} took effect {since[code].isoformat()}, after the date of service",
                    )
                    for code in sorted(procs & since.keys())
                    if dos < since[code]
                )
            self._notes = notes
        return notes

    @property
    def conflicts(self) -> list[dict[str, Any]]:
        """The case's conflicting facts (a given value against one other facts point to), each with
        ``decisive``: whether the other value changes the outcome (a fresh list each call)."""
        found: list[dict[str, Any]] | None = getattr(self, "_conflicts", None)
        if found is None:
            if not self.case.notes:
                found = []
            else:
                from medpolicy.engine import engine_for  # the engine builds determinations: import on use

                engine = engine_for(self.policy)
                found = conflicts(self, lambda c: engine.decide(c).outcome)
            self._conflicts = found
        return [dict(c) for c in found]

    @property
    def flags(self) -> list[str]:
        """Marks for the life cycle and reviewers: ``rests_on_conflict`` (a decisive conflict: approve
        nothing automatically), ``policy_review_overdue`` (the service is after the policy's review date)."""
        marks: list[str] | None = getattr(self, "_flags", None)
        if marks is None:
            review_by = self.policy.review_by
            if self.case.notes:
                marks = flags(self, self.conflicts)
            elif review_by is not None and (dos := self.case.values.get(DOS)) is not None and dos > review_by:
                marks = [REVIEW_OVERDUE]
            else:
                marks = []
            self._flags = marks
        return list(marks)

    @property
    def rests_on_conflict(self) -> bool:
        return REST_ON_CONFLICT in self.flags

    def explanation(self) -> dict[str, Any]:
        """The patient's reason: deciding facts with values and sources, parameters used, the basis
        and the notes letters show (``medpolicy.explanation``)."""
        return explanation(self)

    @property
    def rationale(self) -> RationaleSection | None:
        site = self.case.values.get("tumor_site")
        spec = self.policy.fact_index.get("tumor_site")
        if site is None or spec is None:
            return None
        sid = spec.rationale.get(site)
        return self.policy.rationale.get(sid) if sid else None

    def to_dict(self, *, detail: str = "full") -> dict[str, Any]:
        """The ``DeterminationV1`` JSON shape (docs/api.md). ``detail="compact"`` gives the trace as
        ``{criterion id: value}``, the rationale without its text and only the derived facts (batch
        output); the rest is the same. A fresh object each call (read back from ``to_json``, whose
        shared parts are rendered once per key: much cheaper than building the dicts again)."""
        loaded: dict[str, Any] = orjson.loads(self.to_json(detail=detail))
        return loaded

    def _build_dict(self, *, detail: str = "full") -> dict[str, Any]:
        """The reference construction of ``to_dict``, field by field (tests check ``to_json`` against it)."""
        d = _head(self.policy, self.result)
        d["notes"] = [n.to_dict() for n in self.notes]
        d["flags"] = self.flags
        d["conflicts"] = self.conflicts
        d["facts"] = self._facts(detail)
        if detail == "full":
            d["explanation"] = self.explanation()
        if self.case.metadata:
            d["case"] = dict(self.case.metadata)
        d["criteria"] = _criteria(self.result, detail)
        d["rationale"] = _rationale(self.rationale, detail)
        return d

    def to_json(self, *, detail: str = "full") -> str:
        """``json.dumps(self.to_dict(detail=detail))`` in compact form, without re-rendering what the
        case shares with other cases: the parts that depend only on the key are rendered once, and in
        compact form the whole line is kept around a hole for the case's metadata."""
        r = self.result
        case = self.case
        quick: tuple[Any, ...] | None = None
        if detail == "compact":
            # A case's line is fixed by its key's result, its notes, the facts the rationale and the
            # date-dependent notes and flags read, its derived facts and its conflicting facts' given
            # values (see _quick_key): looked up before any of them is computed. (This runs once per
            # line of `medpolicy decide`: the key is built, hashed and looked up once.)
            quick = self._quick_key(r, case)
            if quick is not None:
                try:
                    cached = _QUICK.get(quick)
                except TypeError:  # a derived list value: render this one in full
                    quick = cached = None
                if cached is not None and cached[2] is r:
                    meta = case.metadata
                    if not meta:
                        return cached[0] + cached[1]
                    if type(meta) is not dict:
                        meta = dict(meta)
                    return f'{cached[0]},"case":{_orjson_dumps(meta).decode()}{cached[1]}'
        line_key: tuple[Any, ...] | None = None
        if detail == "compact":
            display = case.display
            rat = self.rationale
            try:
                line_key = (
                    id(r),
                    self.notes,
                    tuple(self.flags),
                    rat.id if rat else None,
                    *((k, display[k], s) for k, s in case.sources.items() if s != "given"),
                )
                cached = _LINES.get(line_key)
            except TypeError:  # a derived list value: render this one in full
                line_key = cached = None
            if cached is not None and cached[2] is r:
                before, after, _ = cached
                meta = case.metadata
                if not meta:
                    return before + after
                return f'{before},"case":{_dumps(meta if type(meta) is dict else dict(meta))}{after}'
        first, last, _ = self._line(detail)
        if line_key is not None and len(_LINES) < 50_000:
            _LINES[line_key] = (first, last, r)
        if quick is not None and len(_QUICK) < 50_000:
            _QUICK[quick] = (first, last, r)
        meta = case.metadata
        return f'{first},"case":{_dumps(dict(meta))}{last}' if meta else first + last

    def to_json_and_canonical(self) -> tuple[str, bytes]:
        """``(self.to_json(), orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS))``, the full
        detail, each part computed once and neither parsed back: the text answers and is stored, the
        sorted-key bytes are what the store's audit chain hashes (`medpolicy.store.audit_chain`).
        The parts that depend only on the key are rendered sorted once per key too."""
        first, last, parts = self._line("full")
        r = self.result
        head_parts: dict[str, Any] | None = r.rendered.get("sorted")
        if head_parts is None:  # the head's fields and the criteria, each as sorted-key JSON
            head_parts = {k: orjson.Fragment(_sorted(v)) for k, v in _head(self.policy, r).items()}
            head_parts["criteria"] = orjson.Fragment(_sorted(_criteria(r, "full")))
            r.rendered["sorted"] = head_parts
        meta = self.case.metadata
        canonical = {**head_parts, **parts}
        if meta:
            meta_dict = dict(meta)
            canonical["case"] = meta_dict
            text = f'{first},"case":{_dumps(meta_dict)}{last}'
        else:
            text = first + last
        return text, orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)

    def _line(self, detail: str) -> tuple[str, str, dict[str, Any]]:
        """The line ``to_json(detail=detail)`` renders, around the hole for the case's metadata
        (``first``, ``last``), and the values its per-case parts were rendered from (notes, flags,
        conflicts, facts, the explanation in full detail, the rationale). The parts that depend only on
        the key (the head, the criteria) are rendered once per key and kept in ``result.rendered``."""
        r = self.result
        rendered = r.rendered
        head = rendered.get("head")
        if head is None:
            head = rendered["head"] = _dumps(_head(self.policy, r))[1:-1]
        crit = rendered.get(detail)
        if crit is None:
            crit = rendered[detail] = _dumps(_criteria(r, detail))
        notes = self.notes
        flags = self.flags
        parts: dict[str, Any] = {
            "notes": [n.to_dict() for n in notes] if notes else [],
            "flags": flags,
            "conflicts": self.conflicts if notes else [],
            "facts": self._facts(detail),
        }
        if detail == "full":
            parts["explanation"] = self.explanation()
        parts["rationale"] = _rationale(self.rationale, detail)
        first = "".join(
            [
                "{",
                head,
                ',"notes":',
                _dumps(parts["notes"]) if notes else "[]",
                ',"flags":',
                _dumps(flags) if flags else "[]",
                ',"conflicts":',
                _dumps(parts["conflicts"]) if notes else "[]",
                ',"facts":',
                _dumps(parts["facts"]),
                ',"explanation":' + _dumps(parts["explanation"]) if detail == "full" else "",
            ]
        )
        return first, f',"criteria":{crit},"rationale":{_dumps(parts["rationale"])}}}', parts

    def _quick_key(self, r: EvalResult, case: Case) -> tuple[Any, ...] | None:
        """What the compact line of a case depends on besides its metadata (see ``notes``, ``flags``,
        ``conflicts`` and ``rationale``), or None when it cannot be known without deciding again. The
        key may hold a value that is a list: the caller's lookup then raises TypeError.

        Conflicting facts: whether a conflict is decisive is the outcome of the case with the fact's
        alternative put in (``explanation.conflicts``), which is fixed by the key's result (one per
        key: the date's version and the class of each fact it reads) and the note (the fact and its
        alternative), unless the fact is the date of service (another version reads other facts).
        The conflict list also shows the given value: it joins the key."""
        notes = case.notes
        given: tuple[Any, ...] = ()
        if notes:
            for n in notes:
                if n.code == CONFLICT and n.fact is not None:
                    if n.fact == DOS:
                        return None
                    given += (n.fact, case.display.get(n.fact))
        policy = self.policy
        values = case.values
        dos = values.get(DOS)
        not_yet: tuple[str, ...] = ()
        if dos is not None:
            latest = policy.governs.latest_since
            if latest is not None and dos < latest:
                # The requested codes that took effect after the date of service (usually one code
                # is requested: a loop beats intersecting and sorting sets).
                since = policy.governs.since
                for code in values.get("procedure_codes") or ():
                    took_effect = since.get(code)
                    if took_effect is not None and dos < took_effect:
                        not_yet += (code,)
                if len(not_yet) > 1:
                    not_yet = tuple(sorted(not_yet))
            review_by = policy.review_by
            overdue = review_by is not None and dos > review_by
        else:
            overdue = False
        key: tuple[Any, ...] = (id(r), notes, not_yet, values.get("tumor_site"), overdue, given)
        display = case.display
        for k, s in case.sources.items():
            if s != "given":
                key += ((k, display[k], s),)
        return key

    def _facts(self, detail: str) -> dict[str, Any]:
        """Every known fact with its source; compact output lists only derived facts (the caller has
        the ones it gave)."""
        src = self.case.sources
        if detail == "full":
            return {k: {"value": v, "source": src[k]} for k, v in self.case.display.items()}
        return {
            k: {"value": v, "source": s} for k, v in self.case.display.items() if (s := src[k]) != "given"
        }


_orjson_dumps = orjson.dumps


def _sorted(value: Any) -> bytes:
    """Compact JSON with every object's keys sorted (what the store's audit chain hashes)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _dumps(value: Any) -> str:
    """Compact JSON (orjson: the same text as ``json.dumps(value, separators=(",", ":"),
    ensure_ascii=False)`` for our values, many times faster)."""
    return orjson.dumps(value).decode()


#: Compact output lines around the metadata hole, by (key result, notes, rationale, derived facts); bounded.
_LINES: dict[tuple[Any, ...], tuple[str, str, EvalResult]] = {}
#: The same for cases without notes of their own, by ``Determination._quick_key``; bounded.
_QUICK: dict[tuple[Any, ...], tuple[str, str, EvalResult]] = {}


def _head(p: Policy, r: EvalResult) -> dict[str, Any]:
    v = r.version
    return {
        "schema": "medpolicy.determination.v1",
        "outcome": r.outcome.value,
        "outcome_label": r.outcome.label,
        "summary": r.summary,
        "policy": {
            "id": p.id,
            "title": p.title,
            "version": v.id if v else None,
            "effective_from": v.effective_from.isoformat() if v else None,
            "effective_to": v.effective_to.isoformat() if v and v.effective_to else None,
            "version_summary": v.summary if v else None,
        },
        "engine_version": __version__,
        "deciding_criteria": [c.to_dict() for c in r.deciding],
        "missing_facts": [m.to_dict() for m in r.missing],
    }


def _criteria(r: EvalResult, detail: str) -> Any:
    if detail == "full":
        return [{**c.to_dict(), "depth": c.depth} for c in r.trace]
    return {c.criterion.id: tri_label(c.value) for c in r.trace}


def _rationale(rat: RationaleSection | None, detail: str) -> dict[str, Any] | None:
    if rat is None:
        return None
    if detail == "full":
        return {"section": rat.id, "title": rat.title, "text": rat.text}
    return {"section": rat.id, "title": rat.title}


def summarize(p: Policy, r: EvalResult, *, dated: bool) -> str:
    """One or two sentences in plain words, built from the deciding criteria."""
    if r.outcome is Outcome.INFORMATION_NEEDED:
        asked = ", ".join(m.name.replace("_", " ") for m in r.missing)
        return f"Information needed to decide under {p.title}: {asked}."
    if r.version is None:
        if r.outcome is Outcome.NOT_APPLICABLE and dated:
            return f"Not governed: no version of {p.title} was in force on the date of service."
        return f"{r.outcome.label} under every version of {p.title}."
    if r.outcome is Outcome.NOT_APPLICABLE:
        codes = ", ".join(sorted(p.governs.codes))
        return f"Not governed by {p.title}: none of its procedure codes ({codes}) is requested."
    tops = [c for c in r.deciding if c.depth == 0]
    fired = next((c for c in tops if c.outcome is r.outcome), None)
    text = f"{r.outcome.label} under {p.title} (version {r.version.id})"
    if fired is not None:
        text += f": {fired.criterion.title}"
    if r.outcome in (Outcome.INVESTIGATIONAL, Outcome.NOT_MEDICALLY_NECESSARY):
        # Say which favourable rule is not met, and the leaves that fail it.
        current: CriterionResult | None = None
        unmet: dict[str, list[str]] = {}
        for c in r.deciding:
            if c.depth == 0:
                current = c if c.outcome is Outcome.MEDICALLY_NECESSARY and c.value is False else None
                if current is not None:
                    unmet[current.criterion.title] = []
            elif (
                current is not None
                and c.value is False
                and (not c.criterion.children() or isinstance(c.criterion, Not))
            ):
                unmet[current.criterion.title].append(c.criterion.title)
        for title, leaves in unmet.items():
            text += f". Not met: {title}" + (f" ({'; '.join(leaves)})" if leaves else "")
    return text + "."


def walk_trace(
    c: Criterion, values: Mapping[str, Tri], depth: int, out: list[CriterionResult], outcome: Outcome | None
) -> None:
    """Add a criterion and all its descendants (the whole trace of a rule)."""
    out.append(CriterionResult(c, values.get(c.id), depth, outcome))
    for k in c.children():
        walk_trace(k, values, depth + 1, out, None)


def explain_trace(
    c: Criterion,
    values: Mapping[str, Tri],
    out: list[CriterionResult],
    outcome: Outcome | None,
    depth: int = 0,
) -> None:
    """Add a criterion and the children that account for its value (the trace a reader is shown)."""
    v = values.get(c.id)
    out.append(CriterionResult(c, v, depth, outcome))
    kids = c.children()
    if isinstance(c, AllOf):
        pick = kids if v is True else [k for k in kids if values.get(k.id) is v]
    elif isinstance(c, AnyOf):
        pick = kids if v is False else [k for k in kids if values.get(k.id) is v]
    elif isinstance(c, Not):
        pick = kids
    else:
        pick = ()
    for k in pick:
        explain_trace(k, values, out, None, depth + 1)
