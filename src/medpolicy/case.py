"""Case facts, checked at the door.

``parse_case(raw, policy)`` turns a JSON-like mapping into a validated, normalised ``Case`` or raises
``CaseError`` listing every problem (field, value, why, stable code). An absent or ``null`` fact is
unknown; a bad value is an error, never unknown.

After validation the policy's derivations run: a tumour site from the diagnosis codes, a margin status
from the margin distance, recurrence from an ``r``-prefixed staging, distant metastases from M in a
TNM staging and from code lists that imply a fact (C78-C79). Each derived value records where it came
from, and derivations add notes (ambiguous codes, conflicting inputs) to the case. A given value that a
derivation contradicts is kept, with a ``conflicting_facts`` note naming the fact and the alternative
value (the engine then says whether the determination rests on it). Staging is then checked against
the AJCC chapter of the tumour site, when the policy names one. An empty list is unknown, never
evidence of absence. Staging notation itself is read in ``medpolicy.staging``.

Here: the parser (each fact's checks and memos) and ``finish``. Beside it: ``case_types`` (``Case``,
``Note``), ``case_derive`` (the derivations and the AJCC chapter check), ``case_shapes`` and
``case_finish`` (the shapes' parsers and the replay of ``finish``), ``case_combos`` (the batch
decider's templates: a raw case to its determination).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from time import time as _time
from typing import Any

from medpolicy.case_derive import _check_chapters, _derive
from medpolicy.case_finish import Finishes
from medpolicy.case_shapes import Shapes
from medpolicy.case_types import _INT_BOUND, CONFLICT, Case, Note, _clip, _show
from medpolicy.codes import PCS_CODE_RE, PROCEDURE_CODE_RE, icd10cm, normalize_icd10, normalize_procedure
from medpolicy.errors import CaseError, FieldError
from medpolicy.limits import LIMITS
from medpolicy.measures import LENGTH_MM, parse_length
from medpolicy.policy import FactSpec, Policy
from medpolicy.routing import ROUTING_KEYS, check_routing_keys
from medpolicy.staging import Staging, parse_staging

__all__ = ["CONFLICT", "METADATA_KEYS", "Case", "Note", "Staging", "parse_case", "parse_staging"]

#: Keys a case may carry that are not facts: they are passed through (the routing keys are checked).
METADATA_KEYS = frozenset({"id", "label"}) | ROUTING_KEYS


_TX_ONLY = frozenset({"TX"})
_HAS_UNIT = re.compile(r"[A-Za-z]").search  # "1.8 cm": a length with its unit (a bare "18" is not a number)


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
        # code -> [(fact, value)] for code lists that imply a fact
        self.implied: dict[str, list[tuple[str, Any]]] = {}
        for cl in policy.code_lists.values():
            for fact, value in cl.implies.items():
                if fact in self.specs:
                    for code in cl.codes:
                        self.implied.setdefault(code, []).append((fact, value))
        self.implying_facts = [f.name for f in policy.facts if f.type == "codes" and self.implied]
        self.implied_codes = frozenset(self.implied)
        self.site_facts = [f for f in policy.facts if f.ajcc]
        self.staging_facts = [f.name for f in policy.facts if f.type == "staging"]
        #: ``finish`` replayed by the facts it reads (``medpolicy.case_finish``); None: always run it.
        self.finishes: Finishes | None = Finishes(self)
        #: Straight-line parsers of the case shapes seen (``medpolicy.case_shapes``).
        self.shapes = Shapes(self)

    def parse(self, raw: Mapping[str, Any], sources: Mapping[str, str] | None) -> Case:
        """Validate ``raw``: each fact through its handler, then ``finish`` (derivations, staging,
        notes), replayed from ``self.finishes`` when the facts it reads were seen before. A plain
        dictionary of a shape seen before goes through that shape's straight-line parser
        (``medpolicy.case_shapes``), which falls back here on anything but the common case."""
        if sources is None and type(raw) is dict:
            case = self.shapes.parse(raw)
            if case is not None:
                return case
        return self.checked(raw, sources, self.finishes)

    def reference(self, raw: Mapping[str, Any], sources: Mapping[str, str] | None = None) -> Case:
        """``parse`` without the shapes' parsers or the replay of ``finish``: what ``parse`` must
        always equal (tests and benchmarks compare them)."""
        return self.checked(raw, sources, None)

    def checked(
        self, raw: Mapping[str, Any], sources: Mapping[str, str] | None, finishes: Finishes | None
    ) -> Case:
        """Each fact through its handler, every problem collected, then ``finish`` (or its replay)."""
        if type(raw) is not dict and not isinstance(raw, Mapping):
            raise CaseError(
                [FieldError("invalid_type", "case", _show(raw), "a case is a JSON object of facts")]
            )
        if len(raw) > LIMITS.max_case_fields:
            raise CaseError([_too_many("case", len(raw), LIMITS.max_case_fields, "fields")])
        errors: list[FieldError] = []
        values: dict[str, Any] = {}
        display: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        empty: list[str] | None = None
        handlers, max_chars = self.handlers, LIMITS.max_string_chars
        for key, value in raw.items():
            handle = handlers.get(key)
            if handle is None:
                if key in METADATA_KEYS:
                    if (type(value) is str and len(value) <= max_chars) or _metadata_ok(key, value, errors):
                        metadata[key] = value
                    continue
                errors.append(
                    FieldError(
                        "unknown_field",
                        _clip(str(key)),
                        _show(value),
                        f"unknown fact {key!r}; the policy's facts are: {self.known}",
                    )
                )
                continue
            if value is None:
                continue
            if type(value) is list and not value:  # an empty list is unknown: no evidence of absence
                (empty := empty or []).append(key)
                continue
            parsed = handle(value, errors)
            if parsed is not None:
                values[key], display[key] = parsed
        src: dict[str, str] = (
            {k: sources.get(k, "given") for k in values} if sources else dict.fromkeys(values, "given")
        )
        if metadata and not ROUTING_KEYS.isdisjoint(metadata):
            check_routing_keys(metadata, errors)
        if errors:
            raise CaseError(errors)
        if empty is None and not sources and finishes is not None:
            return finishes.finish(raw, values, display, src, metadata)
        return self.finish(raw, values, display, src, metadata, empty)

    def finish(
        self,
        raw: Mapping[str, Any],
        values: dict[str, Any],
        display: dict[str, Any],
        src: dict[str, str],
        metadata: dict[str, Any],
        empty: list[str] | None = None,
    ) -> Case:
        """Derivations, the TX rule, the AJCC chapter check and the code notes, on the checked facts."""
        notes: list[Note] = (
            [
                Note("empty_list", f"{k} is an empty list: taken as unknown, not as evidence of none")
                for k in empty
            ]
            if empty
            else []
        )
        if self.derived or self.implied:
            _derive(self, values, display, src, notes)
        staged = [name for name in self.staging_facts if name in values]
        if staged:
            for name in staged:
                if values[name] == _TX_ONLY:  # TX: the primary tumour cannot be assessed, so T is unknown
                    notes.append(
                        Note("unassessed_t", f"{name} {', '.join(display[name])} cannot be assessed: unknown")
                    )
                    del values[name]
            if self.site_facts:
                errors: list[FieldError] = []
                _check_chapters(self, raw, values, display, src, errors)
                if errors:
                    raise CaseError(errors)
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
                if (  # synonyms and spellings, once each; only short ones, and a bounded number
                    hit is not None
                    and len(value) <= LIMITS.cache_value_chars
                    and len(canonical) < LIMITS.cache_entries
                ):
                    canonical[value] = hit
            return hit

        return enum
    if spec.type == "number":
        low = spec.minimum if spec.minimum is not None else float("-inf")

        def number(value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
            t = type(value)
            if (t is float or (t is int and -_INT_BOUND < value < _INT_BOUND)) and low <= value < float(
                "inf"
            ):
                return float(value), value
            return slow(value, errors)

        return number
    if spec.type == "date":
        dates: dict[str, tuple[dt.date, str]] = {}
        fromiso, cache_chars, cache_entries = (
            dt.date.fromisoformat,
            LIMITS.cache_value_chars,
            LIMITS.cache_dates,
        )

        def date(value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
            if type(value) is not str:
                return slow(value, errors)
            hit = dates.get(value)
            if hit is not None:
                return hit
            text = value.strip()
            if len(text) != 10 or len(value) > LIMITS.max_string_chars:
                return slow(value, errors)
            try:
                d = fromiso(text)
            except ValueError:
                return slow(value, errors)
            if d > date_horizon():
                return slow(value, errors)
            got = (d, d.isoformat())
            # Only dates up to today: they stay valid whatever the horizon is (a deployment may shorten it).
            if len(dates) < cache_entries and len(value) <= cache_chars and d <= date_horizon(0):
                dates[value] = got
            return got

        return date
    if spec.type in ("codes", "staging"):
        memo: dict[Any, tuple[Any, Any]] = {}
        cache_chars, cache_items, cache_entries = (
            LIMITS.cache_value_chars,
            LIMITS.cache_list_items,
            LIMITS.cache_entries,
        )

        def remembered(value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
            t = type(value)
            if t is str:
                key: Any = value if len(value) <= cache_chars else None
            elif t is list and len(value) <= cache_items:
                key = tuple(value)
            else:
                key = None
            if key is None:  # only small values are worth keeping: a cache must not hold a client's input
                return slow(value, errors)
            try:
                hit = memo.get(key)
            except TypeError:  # a list holding something unhashable: not valid; the full checks say why
                return slow(value, errors)
            if hit is not None:
                return hit
            got = slow(value, errors)
            if (
                got is not None
                and len(memo) < cache_entries
                and (
                    t is str or sum(len(v) if type(v) is str else cache_chars for v in key) <= cache_chars * 4
                )
            ):
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


#: (local midnight after which to look again, days ahead, the horizon) for each horizon asked for.
_HORIZONS: dict[int, tuple[float, dt.date]] = {}


def date_horizon(days: int | None = None) -> dt.date:
    """Today plus ``days`` (default: ``LIMITS.date_horizon_days``), the latest date a case may carry.
    Computed once a day: the clock is read on every call, the calendar only after midnight (a server
    that runs for days sees each new day)."""
    if days is None:
        days = LIMITS.date_horizon_days
    cached = _HORIZONS.get(days)
    now = _time()
    if cached is not None and now < cached[0]:
        return cached[1]
    today = dt.date.fromtimestamp(now)
    horizon = today + dt.timedelta(days=days)
    midnight = dt.datetime.combine(today + dt.timedelta(days=1), dt.time()).timestamp()
    if len(_HORIZONS) > 8:
        _HORIZONS.clear()
    _HORIZONS[days] = (midnight, horizon)
    return horizon


def _too_many(field: str, count: int, limit: int, what: str) -> FieldError:
    return FieldError(
        "limit_exceeded", field, f"{count} {what}", f"holds {count} {what}; the limit is {limit} {what}"
    )


def _too_long(field: str, value: str) -> FieldError | None:
    limit = LIMITS.max_string_chars
    if len(value) <= limit:
        return None
    return FieldError(
        "limit_exceeded", field, _clip(value), f"is {len(value)} characters long; the limit is {limit}"
    )


def _metadata_ok(key: str, value: Any, errors: list[FieldError]) -> bool:
    """``id`` and ``label`` are a string, a whole number (64-bit) or null: nothing a store or JSON
    writer cannot carry, and nothing stored as something else."""
    if value is None or (type(value) is int and -_INT_BOUND <= value < 2 * _INT_BOUND):
        return True
    if isinstance(value, str):
        problem = _too_long(key, value)
        if problem is None:
            return True
        errors.append(problem)
        return False
    errors.append(
        FieldError(
            "invalid_type", key, _show(value), "expected a string or a whole number (at most 20 digits)"
        )
    )
    return False


def _parse_fact(spec: FactSpec, value: Any, errors: list[FieldError]) -> tuple[Any, Any] | None:
    name, t = spec.name, spec.type
    n_before = len(errors)
    if t == "date":
        d = None
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            d = value
        elif isinstance(value, str) and len(value) <= LIMITS.max_string_chars:
            try:
                d = dt.date.fromisoformat(value.strip())
            except ValueError:
                d = None
            if d is not None and len(value.strip()) != 10:
                d = None
        if d is None:
            errors.append(FieldError("invalid_date", name, _show(value), "not an ISO date (YYYY-MM-DD)"))
            return None
        horizon = date_horizon()
        if d > horizon:
            errors.append(
                FieldError(
                    "date_beyond_horizon",
                    name,
                    d.isoformat(),
                    f"lies more than {LIMITS.date_horizon_days} days ahead (after {horizon.isoformat()}): "
                    "a date this far out is a typing error, not a planned date",
                )
            )
            return None
        return d, d.isoformat()
    if t in ("codes", "staging"):
        # One staging may come as a bare string (a T category is one value); codes are always a list.
        items = [value] if isinstance(value, str) and t == "staging" else value
        if not isinstance(items, list | tuple):
            errors.append(FieldError("invalid_type", name, _show(value), "expected a list of strings"))
            return None
        if len(items) > LIMITS.max_list_items:
            errors.append(_too_many(name, len(items), LIMITS.max_list_items, "items"))
            return None
        for i, item in enumerate(items):
            long = _too_long(f"{name}[{i}]", item) if isinstance(item, str) else None
            if long is not None:
                errors.append(long)
        if len(errors) > n_before:
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
                        "not an AJCC 8th edition T category (TX, T0, Tis, T1-T4 with a-d) or TNM string, "
                        "optionally with a prefix c, p, y (yc, yp), r (rc, rp, ryp) or a: for example pT4b, "
                        "rpT3 or cT4N1M0",
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
        long = _too_long(name, value)
        if long is not None:
            errors.append(long)
            return None
        canon = _canon_enum(spec, value)
        if canon is None and spec.open_value is not None and value.strip():
            canon = spec.open_value  # a non-exhaustive list: anything else is "other"
        if canon is None:
            allowed = ", ".join([*(spec.values or ()), *spec.synonyms])
            errors.append(FieldError("invalid_value", name, _clip(value), f"not one of: {allowed}"))
            return None
        return canon, canon
    if t == "number":
        if spec.unit in LENGTH_MM and (
            isinstance(value, dict) or (isinstance(value, str) and _HAS_UNIT(value))
        ):
            length, why = parse_length(value, spec.unit)
            if length is None:
                errors.append(FieldError("invalid_value", name, _show(value), why))
                return None
            value = length
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, int) and not -_INT_BOUND < value < _INT_BOUND)
            or not math.isfinite(value)
        ):
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
    pcs = spec.system is not None and "ICD-10-PCS" in spec.system  # inpatient procedure codes too
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
            if not PROCEDURE_CODE_RE.match(code) and not (pcs and PCS_CODE_RE.match(code)):
                what = "a CPT, HCPCS or ICD-10-PCS code" if pcs else "a CPT or HCPCS code"
                errors.append(FieldError("unknown_code", field_name, item, f"not {what}"))
                continue
        if code not in out:
            out.append(code)
    if len(errors) > n_before:
        return None
    return frozenset(out), sorted(out)
