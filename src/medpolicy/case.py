"""Case facts, checked at the door.

``parse_case(raw, policy)`` turns a JSON-like mapping into a validated, normalised ``Case`` or raises
``CaseError`` listing every problem (field, value, why, stable code). An absent or ``null`` fact is
unknown; a bad value is an error, never unknown.

After validation the policy's derivations run: a tumour site from the diagnosis codes, a margin status
from the margin distance, recurrence from an ``r``-prefixed staging. Each derived value records where
it came from, and derivations add notes (ambiguous codes, conflicting inputs) to the case.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from medpolicy.codes import PROCEDURE_CODE_RE, icd10cm, normalize_icd10, normalize_procedure
from medpolicy.errors import CaseError, FieldError
from medpolicy.policy import FactSpec, Policy

__all__ = ["METADATA_KEYS", "Case", "Note", "Staging", "parse_case", "parse_staging"]

#: Keys a case may carry that are not facts: they are passed through untouched.
METADATA_KEYS = frozenset({"id", "label"})

_STAGING_RE = re.compile(r"^(yc|yp|rc|rp|c|p|r|a)?t(x|0|is|[1-4][a-d]?)(\(m\))?$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Note:
    code: str
    message: str
    cite: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.cite:
            d["cite"] = list(self.cite)
        return d


@dataclass(frozen=True, slots=True)
class Staging:
    prefix: str  # "", "c", "p", "yc", "yp", "r", "rc", "rp", "a"
    category: str  # "TX", "T0", "Tis", "T1" ... "T4b"
    multiple: bool = False

    def __str__(self) -> str:
        return f"{self.prefix}{self.category}{'(m)' if self.multiple else ''}"


def parse_staging(raw: str) -> Staging | None:
    """``'pT4b'`` -> Staging('p', 'T4b'); ``None`` when it is not an AJCC 8th edition T category."""
    m = _STAGING_RE.match("".join(raw.split()))
    if not m:
        return None
    prefix, cat, mult = m.groups()
    cat = cat.lower()
    category = "TX" if cat == "x" else ("Tis" if cat == "is" else f"T{cat}")
    return Staging((prefix or "").lower(), category, bool(mult))


class Case:
    """A validated case. ``values`` holds the decision-ready value of each known fact (enums as their
    canonical value, codes as frozen sets, staging as a frozen set of T categories); ``display`` the
    normalised value as a person reads it; ``sources`` says where each value came from.

    Treat a case as immutable: determinations and caches share its parts. (A plain slotted class
    rather than a frozen dataclass, which costs a microsecond per case to build.)"""

    __slots__ = ("display", "metadata", "notes", "sources", "values")

    def __init__(
        self,
        values: Mapping[str, Any],
        display: Mapping[str, Any],
        sources: Mapping[str, str],
        notes: tuple[Note, ...] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.values = values
        self.display = display
        self.sources = sources
        self.notes = notes
        self.metadata: Mapping[str, Any] = metadata if metadata is not None else {}

    def __repr__(self) -> str:
        return f"Case({dict(self.display)!r})"

    def get(self, name: str) -> Any:
        return self.values.get(name)

    def to_dict(self) -> dict[str, Any]:
        """The normalised case as JSON (known facts only), with metadata."""
        return {**self.metadata, **{k: v for k, v in self.display.items() if self.sources.get(k) == "given"}}


def parse_case(raw: Mapping[str, Any], policy: Policy, *, sources: Mapping[str, str] | None = None) -> Case:
    """Validate and normalise a raw case against the facts ``policy`` declares.

    ``sources`` optionally names where given facts came from (``"ehr"``, ``"questionnaire"``...);
    the default is ``"given"``.
    """
    return parser_for(policy).parse(raw, sources)


class _Parser:
    """A policy's case parser, with the indexes the hot path needs built once."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.specs = policy.fact_index
        self.known = ", ".join(f.name for f in policy.facts)
        self.derived = [f for f in policy.facts if f.derive is not None]
        # code -> notes, for every code list that carries a note
        self.code_notes: dict[str, list[str]] = {}
        for cl in policy.code_lists.values():
            if cl.note:
                for code in cl.codes:
                    self.code_notes.setdefault(code, []).append(cl.note.replace("{code}", code))
        self.noted_facts = [f.name for f in policy.facts if f.type == "codes" and f.system == "ICD-10-CM"]
        # derived fact -> (code -> site | None | "ambiguous"), first list wins
        self.site_index: dict[str, dict[str, str | None]] = {}
        for f in self.derived:
            if f.derive is not None and f.derive.kind == "by_code_list":
                index: dict[str, str | None] = {}
                for cl, site in f.derive.code_map:
                    for code in cl.codes:
                        index.setdefault(code, site)
                self.site_index[f.name] = index
        self.handlers = {f.name: _handler(f) for f in policy.facts}

    def parse(self, raw: Mapping[str, Any], sources: Mapping[str, str] | None) -> Case:
        if not isinstance(raw, Mapping):
            raise CaseError(
                [FieldError("invalid_type", "case", _show(raw), "a case is a JSON object of facts")]
            )
        errors: list[FieldError] = []
        values: dict[str, Any] = {}
        display: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        handlers = self.handlers
        for key, value in raw.items():
            handle = handlers.get(key)
            if handle is None:
                if key in METADATA_KEYS:
                    metadata[key] = value
                    continue
                errors.append(
                    FieldError(
                        "unknown_field",
                        str(key),
                        _show(value),
                        f"unknown fact {key!r}; the policy's facts are: {self.known}",
                    )
                )
                continue
            if value is None:
                continue
            parsed = handle(value, errors)
            if parsed is not None:
                values[key], display[key] = parsed
        src: dict[str, str] = (
            {k: sources.get(k, "given") for k in values} if sources else dict.fromkeys(values, "given")
        )
        if errors:
            raise CaseError(errors)
        notes: list[Note] = []
        if self.derived:
            _derive(self, values, display, src, notes)
        for name in self.noted_facts:
            codes = values.get(name)
            if codes:
                for code in sorted(codes):
                    for text in self.code_notes.get(code, ()):
                        notes.append(Note("code_note", text))
        return Case(values, display, src, tuple(notes), metadata)


Handler = Callable[[Any, list[FieldError]], "tuple[Any, Any] | None"]


def _handler(spec: FactSpec) -> Handler:
    """The parser of one fact: a fast path for values already in canonical form, the full checks
    (``_parse_fact``) for anything else. Dates, codes and stagings are pure functions of the raw value,
    so their valid results are kept (bounded): batches repeat them."""

    def slow(value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
        return _parse_fact(spec, value, errors)

    if spec.type == "boolean":

        def boolean(value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
            return (value, value) if value is True or value is False else slow(value, errors)

        return boolean
    if spec.type == "enum":
        canonical: dict[str, tuple[Any, Any]] = {v: (v, v) for v in spec.value_set}

        def enum(value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
            hit = canonical.get(value) if type(value) is str else None
            if hit is None:
                hit = slow(value, errors)
                if hit is not None and len(canonical) < 1_000:  # synonyms and spellings, once each
                    canonical[value] = hit
            return hit

        return enum
    if spec.type == "number":
        low = spec.minimum if spec.minimum is not None else float("-inf")

        def number(value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
            t = type(value)
            if (t is float or t is int) and low <= value < float("inf"):
                return float(value), value
            return slow(value, errors)

        return number
    if spec.type in ("date", "codes", "staging"):
        memo: dict[Any, tuple[Any, Any]] = {}

        def remembered(value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
            key = value if type(value) is str else tuple(value) if type(value) is list else None
            if key is None:
                return slow(value, errors)
            try:
                hit = memo.get(key)
            except TypeError:  # a list holding something unhashable: not valid; the full checks say why
                return slow(value, errors)
            if hit is not None:
                return hit
            got = slow(value, errors)
            if got is not None and len(memo) < 50_000:
                memo[key] = got
            return got

        return remembered
    return slow


_parsers: dict[int, _Parser] = {}


def parser_for(policy: Policy) -> _Parser:
    p = _parsers.get(id(policy))
    if p is None or p.policy is not policy:
        p = _parsers[id(policy)] = _Parser(policy)
    return p


def _show(value: Any) -> Any:
    """The offending value as JSON can show it."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple):
        return [_show(v) for v in value]
    return repr(value)


def _parse_fact(spec: FactSpec, value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
    name, t = spec.name, spec.type
    n_before = len(errors)
    if t == "date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value, value.isoformat()
        if isinstance(value, str):
            try:
                d = dt.date.fromisoformat(value.strip())
            except ValueError:
                d = None
            if d is not None and len(value.strip()) == 10:
                return d, d.isoformat()
        errors.append(FieldError("invalid_date", name, _show(value), "not an ISO date (YYYY-MM-DD)"))
        return None
    if t in ("codes", "staging"):
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            errors.append(FieldError("invalid_type", name, _show(value), "expected a list of strings"))
            return None
        if t == "codes":
            return _parse_codes(spec, items, errors)
        stagings = []
        for i, item in enumerate(items):
            st = parse_staging(item) if isinstance(item, str) else None
            if st is None:
                errors.append(
                    FieldError(
                        "invalid_t_category",
                        f"{name}[{i}]",
                        _show(item),
                        "not an AJCC 8th edition T category (TX, T0, Tis, T1-T4 with a-d), optionally with a "
                        "prefix c, p, yc, yp, r or a: for example pT4b",
                    )
                )
            else:
                stagings.append(st)
        if len(errors) > n_before:
            return None
        return frozenset(s.category for s in stagings), [str(s) for s in stagings]
    if t == "enum":
        if not isinstance(value, str):
            errors.append(FieldError("invalid_type", name, _show(value), "expected a string"))
            return None
        canon = _canon_enum(spec, value)
        if canon is None:
            allowed = ", ".join([*(spec.values or ()), *spec.synonyms])
            errors.append(FieldError("invalid_value", name, value, f"not one of: {allowed}"))
            return None
        return canon, canon
    if t == "number":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            errors.append(FieldError("invalid_type", name, _show(value), "expected a finite number"))
            return None
        if spec.minimum is not None and value < spec.minimum:
            errors.append(FieldError("out_of_range", name, value, f"must be at least {spec.minimum:g}"))
            return None
        return float(value), value
    if t == "boolean":
        if not isinstance(value, bool):
            errors.append(FieldError("invalid_type", name, _show(value), "expected true or false"))
            return None
        return value, value
    raise AssertionError(t)  # the loader admits no other type


def _canon_enum(spec: FactSpec, value: str) -> str | None:
    v = value.strip()
    values = spec.values or ()
    if v in values:
        return v
    for syn, target in spec.synonyms.items():
        if v.upper() == syn.upper():
            return target
    key = re.sub(r"[\s\-]+", "_", v.lower())
    return key if key in values else None


def _parse_codes(
    spec: FactSpec, items: list[Any] | tuple[Any, ...], errors: list[FieldError]
) -> tuple[Any, Any] | None:
    n_before = len(errors)
    out: list[str] = []
    icd = spec.system == "ICD-10-CM"
    table = icd10cm() if icd else None
    for i, item in enumerate(items):
        field_name = f"{spec.name}[{i}]"
        if not isinstance(item, str):
            errors.append(FieldError("invalid_type", field_name, _show(item), "expected a code as a string"))
            continue
        if table is not None:
            kind = table.kinds.get(item)
            code = item if kind == "billable" else normalize_icd10(item)
            kind = kind if kind == "billable" else table.kinds.get(code)
            if kind is None:
                errors.append(FieldError("unknown_code", field_name, item, "not an ICD-10-CM code"))
                continue
            if kind != "billable":
                errors.append(
                    FieldError(
                        "non_billable_code",
                        field_name,
                        item,
                        f"{code} is an ICD-10-CM {'block' if kind == 'block' else 'category header'}, not a "
                        "billable code: give the full code",
                    )
                )
                continue
        else:
            code = normalize_procedure(item)
            if not PROCEDURE_CODE_RE.match(code):
                errors.append(FieldError("unknown_code", field_name, item, "not a CPT or HCPCS code"))
                continue
        if code not in out:
            out.append(code)
    if len(errors) > n_before:
        return None
    return frozenset(out), sorted(out)


# ----------------------------------------------------------------------------------------------------
# Derivations


def _derive(
    parser: _Parser, values: dict[str, Any], display: dict[str, Any], src: dict[str, str], notes: list[Note]
) -> None:
    for spec in parser.derived:
        d = spec.derive
        if d is None or d.source not in values:
            continue
        name, given = spec.name, values.get(spec.name)
        if d.kind == "by_code_list":
            derived, why = _site_from_codes(spec, display[d.source], parser.site_index[name])
            if given is None:
                if derived is not None:
                    values[name] = display[name] = derived
                    src[name] = d.label
                if why:
                    notes.append(Note("review_site", why))
            elif derived is not None and derived != given:
                notes.append(
                    Note(
                        "conflicting_facts",
                        f"{name} is given as {given!r}, but {d.source} point to {derived!r}; the given value is used",
                    )
                )
        elif d.kind == "bands":
            dist = values[d.source]
            band = next(v for bound, v in d.bands if bound is None or dist <= bound)
            if given is None:
                values[name] = display[name] = band
                src[name] = d.label
            elif band != given:
                # A given fact is final (a later answer must never flip a definite determination);
                # the disagreement is put in front of the reviewer instead.
                notes.append(
                    Note(
                        "conflicting_facts",
                        f"{name} is given as {given!r} but {d.source} {dist:g} classifies as {band!r} under "
                        f"this policy; the given {name} is used: a reviewer should confirm it",
                    )
                )
        elif d.kind == "prefix_r" and given is None:
            recurrent = [s for s in display[d.source] if s.startswith("r")]
            if recurrent:
                values[name] = display[name] = True
                src[name] = d.label
                notes.append(
                    Note(
                        "derived_fact",
                        f"{name} is taken as true from the recurrence staging {', '.join(recurrent)}",
                    )
                )


def _site_from_codes(
    spec: FactSpec, codes: list[str], index: Mapping[str, str | None]
) -> tuple[str | None, str | None]:
    """(site, why-it-needs-review). The first code list that holds a code decides that code's site."""
    if len(codes) == 1:
        site = index.get(codes[0])
        if site != "ambiguous":
            return site, None
    sites: dict[str, list[str]] = {}
    ambiguous: list[str] = []
    for code in codes:
        site = index.get(code)
        if site == "ambiguous":
            ambiguous.append(code)
        elif site is not None:
            sites.setdefault(site, []).append(code)
    if ambiguous:
        return None, (
            f"{', '.join(sorted(ambiguous))} does not settle whether the cancer is rectal: a reviewer must "
            f"confirm the {spec.name}"
        )
    if len(sites) > 1:
        shown = "; ".join(f"{spec.label(s)} ({', '.join(sorted(c))})" for s, c in sorted(sites.items()))
        return None, f"the diagnosis codes point to more than one site: {shown}; confirm the {spec.name}"
    if sites:
        return next(iter(sites)), None
    return None, None
