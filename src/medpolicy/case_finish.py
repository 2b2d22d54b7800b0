"""The second half of case parsing, replayed: ``_Parser.finish`` keyed by the facts it reads.

After each fact is checked, ``finish`` derives facts (a site from the diagnosis codes, a margin status
from the distance, recurrence and metastases from the staging and the codes), applies the TX rule,
checks the staging against the site's AJCC chapter and adds the code notes. What it does depends only
on a few facts; for the IORT policies those are the codes, the staging, the site, the margin, the
recurrence and metastasis flags, and not the date of service or the case's id. ``Finishes`` keeps, under
those facts' values, what ``finish`` changed (keys set and removed in each of the case's three
dictionaries, and its notes), and replays it on a case with the same values: a batch repeats a few
thousand combinations over and over.

The key is generated per policy from the parser's own tables (``_key_source``). A number that a
derivation reads is keyed by its value, except a zero (``-0.0`` and ``0.0`` are equal keys but
print differently); a margin distance whose band fills in an absent margin status is keyed by the band,
not the distance, since that is all ``finish`` then reads from it. A derivation by age reads its
reference date only when the birth date is known.

What is kept is checked when it is learnt: the delta is replayed on copies of the dictionaries
``finish`` started from and compared, items and order, with what ``finish`` gave; anything that differs
is not kept. A ``finish`` that raises (a staging outside the site's chapter) is never kept: the
reference runs again and says why. The table is bounded (``LIMITS.cache_finishes``). A combination is
learnt the second time it comes (three dictionary copies and a comparison); the first time costs its
key and a set insertion. If, over 4,096 misses, the replay hit less than a tenth of the time (keys
that hardly repeat, such as ages from distinct dates), it turns itself off for the policy and forgets
what it kept.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from medpolicy.limits import LIMITS

if TYPE_CHECKING:
    from medpolicy.case import Case, _Parser

__all__ = ["Finishes"]

#: Keys removed from one of the case's dictionaries, then the keys set (new ones in the order added).
Delta = tuple[tuple[str, ...], dict[str, Any]]

#: Calls between two looks at the hit rate once the table is full; the lowest hit rate worth keeping.
_WINDOW = 4096
_MIN_HIT_RATE = 0.1


#: Largest collection (codes, staging parts) and string a remembered key may hold: a typical case has a
#: few codes; a case at the input limits (50 codes a list) is finished by the reference every time, so
#: that 16,384 remembered keys stay small (issue 8: memory bounded by entries and bytes).
_SMALL_ITEMS = 8
_SMALL_CHARS = 64


def _small(key: tuple[Any, ...]) -> bool:
    """Whether every part of ``key`` (and of its nested tuples and sets) is small enough to keep."""
    stack: list[Any] = list(key)
    while stack:
        part = stack.pop()
        if isinstance(part, str):
            if len(part) > _SMALL_CHARS:
                return False
        elif isinstance(part, (tuple, frozenset, set, list)):
            if len(part) > _SMALL_ITEMS:
                return False
            stack.extend(part)
    return True


def _diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> Delta:
    """Keys removed, then keys set (new ones in the order they were added)."""
    removed = tuple(k for k in before if k not in after)
    changed = {k: v for k, v in after.items() if k not in before or v is not before[k]}
    return removed, changed


def _apply(d: dict[str, Any], delta: Delta) -> None:
    removed, changed = delta
    for k in removed:
        del d[k]
    d.update(changed)  # in order: an existing key keeps its place, a new one goes last


class Finishes:
    """``finish`` of one policy's parser, replayed by the values of the facts it reads."""

    def __init__(self, parser: _Parser) -> None:
        from medpolicy.case import Case  # the case module builds this one: import on use

        self.parser = parser
        self._case = Case
        self.table: dict[tuple[Any, ...], tuple[Delta, Delta, Delta, tuple[Any, ...]]] = {}
        #: Keys seen once: a combination is learnt the second time it comes.
        self.seen: set[tuple[Any, ...]] = set()
        self.enabled = True
        self.hits = self.misses = 0
        self._reviewed = (0, 0)  # hits and misses at the last look at the hit rate
        env: dict[str, Any] = {}
        exec(compile(_key_source(parser, env), "<medpolicy finish key>", "exec"), env)  # noqa: S102 -- generated from the loaded policy's fact names only
        self.key: Callable[[dict[str, Any], dict[str, Any]], tuple[Any, ...] | None] = env["key"]

    def finish(
        self,
        raw: Mapping[str, Any],
        values: dict[str, Any],
        display: dict[str, Any],
        src: dict[str, str],
        metadata: dict[str, Any],
    ) -> Case:
        if not self.enabled:
            return self.parser.finish(raw, values, display, src, metadata)
        key = self.key(values, display)
        hit = self.table.get(key) if key is not None else None
        if hit is not None:
            self.hits += 1
            (removed, dv), (_, dd), (_, ds), notes = hit
            if removed:
                for k in removed:
                    del values[k]
            if dv:
                values.update(dv)
                display.update(dd)
                src.update(ds)
            return self._case(values, display, src, notes, metadata)
        self.misses += 1
        if self.misses - self._reviewed[1] >= _WINDOW:
            self._review()
        table = self.table
        if key is None or len(table) >= LIMITS.cache_finishes:
            return self.parser.finish(raw, values, display, src, metadata)
        if not _small(key):  # large lists are never remembered: memory stays bounded per entry
            return self.parser.finish(raw, values, display, src, metadata)
        if key not in self.seen:  # a combination that never comes again costs one set insertion
            if len(self.seen) < LIMITS.cache_finishes:
                self.seen.add(key)
            return self.parser.finish(raw, values, display, src, metadata)
        v0, d0, s0 = dict(values), dict(display), dict(src)
        case = self.parser.finish(raw, values, display, src, metadata)
        entry = (_diff(v0, values), _diff(d0, display), _diff(s0, src), case.notes)
        # The replay removes only from values and sets display and sources only with values.
        if (
            entry[1][0]
            or entry[2][0]
            or (bool(entry[0][1]) != bool(entry[1][1]) or bool(entry[0][1]) != bool(entry[2][1]))
        ):
            return case
        for start, delta, got in ((v0, entry[0], values), (d0, entry[1], display), (s0, entry[2], src)):
            _apply(start, delta)
            if list(start.items()) != list(got.items()):
                return case  # not a replayable change (a key moved): never kept
        table[key] = entry
        return case

    def _review(self) -> None:
        """Turn the replay off when, over the last ``_WINDOW`` misses, it hit less than a tenth of the
        time: keys that hardly repeat (ages from distinct dates, distances given with a margin status)
        cost a key and a set insertion each, and what is kept would only hold memory."""
        hits, misses = self.hits - self._reviewed[0], self.misses - self._reviewed[1]
        if hits < _MIN_HIT_RATE * (hits + misses):
            self.enabled = False
            self.table.clear()
            self.seen.clear()
        self._reviewed = (self.hits, self.misses)


def finish_reads(
    parser: _Parser,
) -> tuple[frozenset[str], dict[str, tuple[str, tuple[float | None, ...]]], tuple[tuple[str, str], ...]]:
    """What ``finish`` reads, as ``_key_source`` keys it: the facts read by value (or through their
    codes); the numbers read only through the band they fall in (source -> the fact the band fills in
    when it is absent, and the bands' upper bounds); and the (birth date, reference date) of each age,
    whose reference date is read only when the birth date is known. A fact in none of them is never read
    by ``finish``. Mirrors the classification in ``_key_source`` (the tests compare both paths with the
    reference)."""
    read: set[str] = set(parser.implying_facts)
    bands: list[tuple[str, str, tuple[float | None, ...]]] = []
    ages: list[tuple[str, str]] = []
    for spec in parser.derived:
        d = spec.derive
        assert d is not None
        read.add(spec.name)
        if d.kind == "bands":
            bands.append((d.source, spec.name, tuple(b for b, _ in d.bands)))
        elif d.kind == "age":
            read.add(d.source)
            ages.append((d.source, d.at))
        else:
            read.add(d.source)
    for targets in parser.implied.values():
        read.update(fact for fact, _ in targets)
    read.update([*parser.staging_facts, *(f.name for f in parser.site_facts), *parser.noted_facts])
    sources = [s for s, _, _ in bands]
    by_band = {s: (t, b) for s, t, b in bands if s not in read and sources.count(s) == 1}
    read.update(s for s in sources if s not in by_band)
    return frozenset(read), by_band, tuple(ages)


def _key_source(parser: _Parser, env: dict[str, Any]) -> str:
    """Source of ``key(values, display)``: a tuple of what ``finish`` reads, or None (run it)."""
    specs = parser.specs
    plain: list[str] = []  # facts read by value

    def read(name: str) -> None:
        if name not in plain:
            plain.append(name)

    bands: list[tuple[str, str, int]] = []  # (source, derived fact, index of its bands in env)
    ages: list[tuple[str, str]] = []  # (birth date, reference date)
    for spec in parser.derived:
        d = spec.derive
        assert d is not None
        read(spec.name)
        if d.kind == "bands":
            env[f"_bands{len(bands)}"] = [v for _, v in d.bands]
            env[f"_bounds{len(bands)}"] = [b for b, _ in d.bands]
            bands.append((d.source, spec.name, len(bands)))
        elif d.kind == "age":
            read(d.source)
            ages.append((d.source, d.at))
        else:
            read(d.source)
    for targets in parser.implied.values():
        for fact, _ in targets:
            read(fact)
    for name in [*parser.staging_facts, *(f.name for f in parser.site_facts), *parser.noted_facts]:
        read(name)
    implying_only = [n for n in parser.implying_facts if n not in plain]
    band_sources = [s for s, _, _ in bands]
    # A bands source also read otherwise (or by two bands) is keyed by value.
    by_band = [b for b in bands if b[0] not in plain and band_sources.count(b[0]) == 1]
    for s, _, _ in bands:
        if all(s != b[0] for b in by_band):
            read(s)
    env["_implied"] = parser.implied_codes
    lines = ["def key(values, display):", "    g = values.get"]
    parts: list[str] = []
    for i, name in enumerate(plain):
        var = f"v{i}"
        lines.append(f"    {var} = g({name!r})")
        if specs[name].type == "number":
            lines.append(f"    if {var} == 0:\n        return None")
        if specs[name].type == "staging":
            parts.append(f"({var}, None if {var} is None else tuple(display[{name!r}]))")
        else:
            parts.append(var)
    for name in implying_only:
        lines.append(f"    c = g({name!r})")
        parts.append("(c & _implied) if c else None")
    for s, t, i in by_band:
        # The band is all finish reads when the derived fact is absent; otherwise the distance.
        lines += [
            f"    s = g({s!r})",
            f"    if s is None:\n        b{i} = None",
            f"    elif g({t!r}) is not None:",
        ]
        lines += [f"        if s == 0:\n            return None\n        b{i} = ('value', s)"]
        # the first band whose bound the value does not pass (a None bound: the rest), unrolled
        for j, bound in enumerate(env[f"_bounds{i}"]):
            test = "else:" if bound is None else f"elif s <= _bounds{i}[{j}]:"
            lines.append(f"    {test}\n        b{i} = _bands{i}[{j}]")
            if bound is None:
                break
        parts.append(f"b{i}")
    for born, at in ages:
        if at not in plain:
            parts.append(f"(None if g({born!r}) is None else g({at!r}))")
    lines.append("    return (" + "".join(f"{p}, " for p in parts) + ")")
    return "\n".join(lines) + "\n"
