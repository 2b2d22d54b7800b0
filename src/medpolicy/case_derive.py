"""The derivations of a checked case (``_Parser.finish``): facts derived from other facts, the
resolution of facts several facts point to, and the check of a staging against the AJCC chapter of the
case's tumour site. See ``medpolicy.case`` for what each derivation does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from medpolicy.case_types import CONFLICT, Note, _show
from medpolicy.errors import FieldError
from medpolicy.measures import age_in_years
from medpolicy.policy import FactSpec
from medpolicy.staging import AJCC8_T, CHAPTER_TITLES, Staging, parse_staging

if TYPE_CHECKING:
    from medpolicy.case import _Parser


def _derive(
    parser: _Parser, values: dict[str, Any], display: dict[str, Any], src: dict[str, str], notes: list[Note]
) -> None:
    # boolean/enum facts other facts point to: fact -> [(value, provenance label, evidence)]
    pointers: dict[str, list[tuple[Any, str, str]]] = {}
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
                        CONFLICT,
                        f"{name} is given as {given!r}, but {d.source} point to {derived!r}; the given value "
                        "is used: a reviewer should confirm it",
                        fact=name,
                        alternative=derived,
                    )
                )
        elif d.kind == "bands":
            dist = values[d.source]
            band = next(v for bound, v in d.bands if bound is None or dist <= bound)
            if given is None:
                values[name] = display[name] = band
                src[name] = d.label
            elif given not in d.consistent.get(band, (band,)):
                # A given fact is final (a later answer must never flip a definite determination);
                # the disagreement is put in front of the reviewer instead.
                notes.append(
                    Note(
                        CONFLICT,
                        f"{name} is given as {given!r} but {d.source} {dist:g} classifies as {band!r} under "
                        f"this policy; the given {name} is used: a reviewer should confirm it",
                        fact=name,
                        alternative=band,
                    )
                )
        elif d.kind == "age":
            born, on = values[d.source], values.get(d.at)
            age = age_in_years(born, on) if on is not None else None
            if on is not None and age is None:
                notes.append(Note(CONFLICT, f"{d.source} is after {d.at}; {name} is not derived", fact=name))
            elif age is not None and given is None:
                values[name], display[name] = float(age), age
                src[name] = d.label
            elif age is not None and given is not None and int(given) != age:
                notes.append(
                    Note(
                        CONFLICT,
                        f"{name} is given as {given:g} but {d.source} gives {age} on {d.at}; the given value is used",
                        fact=name,
                        alternative=age,
                    )
                )
        elif d.kind == "prefix_r":
            # a shown staging is canonical: its prefix starts with r exactly when it is a recurrence
            recurrent = [s for s in display[d.source] if s[0] == "r"]
            if recurrent:
                pointers.setdefault(name, []).append(
                    (True, d.label, f"the recurrence staging {', '.join(recurrent)}")
                )
        elif d.kind == "m_category":
            with_m = [s for s in display[d.source] if "M" in s]  # shown stagings write M in capitals
            if not with_m:
                continue
            stated = [(s, m) for s in with_m if (m := _staging(s).metastatic) is not None]
            # once M1, always M1: a later M0 does not undo distant metastases
            value = any(m for _, m in stated)
            shown = [s for s, m in stated if m is value]
            if shown:
                pointers.setdefault(name, []).append((value, d.label, f"the staging {', '.join(shown)}"))
    if parser.implied:
        for fact_name in parser.implying_facts:
            codes = values.get(fact_name)
            if not codes or parser.implied_codes.isdisjoint(codes):
                continue
            for code in sorted(codes & parser.implied_codes):
                for fact, value in parser.implied.get(code, ()):
                    pointers.setdefault(fact, []).append((value, f"derived from {fact_name}", code))
    for name, found in pointers.items():
        _resolve(name, found, values, display, src, notes)


def _resolve(
    name: str,
    found: list[tuple[Any, str, str]],
    values: dict[str, Any],
    display: dict[str, Any],
    src: dict[str, str],
    notes: list[Note],
) -> None:
    """Settle a fact other facts point to: a given value is kept (a conflict note when they point
    elsewhere); pointers that agree give the value; pointers that disagree leave it unknown."""
    given = values.get(name)
    by_value: dict[Any, list[str]] = {}
    for value, _, why in found:
        by_value.setdefault(value, []).append(why)
    if given is not None:
        for value, whys in by_value.items():
            if value != given:
                notes.append(
                    Note(
                        CONFLICT,
                        f"{name} is given as {_word(given)}, but {' and '.join(whys)} point to "
                        f"{_word(value)}; the given value is used: a reviewer should confirm it",
                        fact=name,
                        alternative=value,
                    )
                )
        return
    if len(by_value) > 1:
        shown = "; ".join(f"{' and '.join(whys)} point to {_word(v)}" for v, whys in by_value.items())
        notes.append(Note(CONFLICT, f"{name} is left unknown: {shown}; a reviewer must settle it", fact=name))
        return
    ((value, whys),) = by_value.items()
    labels = sorted({label for _, label, _ in found})
    values[name] = display[name] = value
    src[name] = (
        labels[0]
        if len(labels) == 1
        else "derived from " + " and ".join(lbl.removeprefix("derived from ") for lbl in labels)
    )
    notes.append(Note("derived_fact", f"{name} is taken as {_word(value)} from {' and '.join(whys)}"))


def _word(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else repr(value)


def _staging(shown: str) -> Staging:
    st = parse_staging(shown)
    assert st is not None  # a display value is a parsed staging
    return st


def _check_chapters(
    parser: _Parser,
    raw: Mapping[str, Any],
    values: Mapping[str, Any],
    display: Mapping[str, Any],
    src: Mapping[str, str],
    errors: list[FieldError],
) -> None:
    """A staging must use the T categories of the AJCC chapter of the case's tumour site."""
    for site_fact in parser.site_facts:
        site = values.get(site_fact.name)
        chapter = site_fact.ajcc.get(site) if site is not None else None
        if chapter is None:
            continue
        allowed = AJCC8_T[chapter]
        for name in parser.staging_facts:
            for i, shown in enumerate(display.get(name) or ()):
                category = _staging(shown).category
                if category in allowed:
                    continue
                field_name = name if isinstance(raw.get(name), str) else f"{name}[{i}]"
                origin = "given" if src.get(site_fact.name) == "given" else src.get(site_fact.name, "")
                errors.append(
                    FieldError(
                        "t_category_not_in_site_chapter",
                        field_name,
                        _show(raw[name] if field_name == name else raw[name][i]),
                        f"{category} is not a T category of the AJCC 8th edition "
                        f"{CHAPTER_TITLES.get(chapter, chapter)} chapter, which applies because the "
                        f"{site_fact.name} is {site!r} ({origin}); its T categories are "
                        f"{', '.join(allowed)}",
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
