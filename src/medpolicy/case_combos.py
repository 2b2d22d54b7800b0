"""The validated path in one step: a raw case to its determination, by the combination of its values.

``decider(policies)`` (what the CLI, the benchmarks and batch callers use) routes a raw case, parses it
and decides it. Nearly everything that costs time there is a pure function of a few values that a batch
repeats over and over: the codes, the stagings, the enums and flags, which together choose the policy,
the derivations and notes of ``finish`` and the engine's classes. What differs from case to case is
the id, the date of service and perhaps a number.

``Combos`` generates, for each case shape (its keys, in order) seen twice, a function that checks the
per-case values inline (an id or label is a short string; a date is found in the date handler's memo of
valid dates, or goes through that handler; a number passes the number handler's checks) and looks the
rest up, raw, in a table of *templates*: a tuple of the other values (lists as tuples) -> the policy,
the parts of the case's three dictionaries around the per-case facts, its notes, and the engine's
result for a date on or after the latest version. The case and its determination are then built as
``Case.__init__`` and ``Engine.decide`` build them.

A value is per-case only when ``finish`` does not read it in any of the policies (``finish_reads``);
a number whose band fills in an absent fact (a margin distance without a margin status) is per-case with
its band in the key. A per-case fact the engine reads (other than the date of service, which only picks
the version) turns the engine's part off: the engine decides the case. Everything else is in the key,
with the keys routing reads (procedure codes, line of business, group, the service facts): the policy is
a function of the key.

A template is learnt the second time its key comes, from the reference parser (``_Parser.reference``)
and the engine, and kept only if the template rebuilds that very case identically (values, display,
sources, notes, metadata, items and order; the same engine result). Anything else (an invalid value, a
null in a per-case fact, an integer id, a key too large to keep, a full table) goes the ordinary way
(``slow``): the reference's checks say why. If, every 4,096 keys seen once, fewer than a tenth of
them came again (combinations that hardly repeat), the decider turns the templates off. Bounded: 256 shapes per decider, ``LIMITS.cache_finishes``
templates, and as many hashes of keys seen once and of keys that do not template (errors); keys with
large parts (``case_finish._small``: over 8 items or 64 characters) are never kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from medpolicy.case_finish import _small, finish_reads
from medpolicy.limits import LIMITS
from medpolicy.routing import ROUTING_KEYS

if TYPE_CHECKING:
    from medpolicy.case import _Parser
    from medpolicy.engine import Determination
    from medpolicy.policy import Policy

__all__ = ["Combos"]

DOS = "date_of_service"
_METADATA = frozenset({"id", "label"})
#: Shapes compiled per decider, and shapes counted before compiling (a shape is compiled when seen twice).
_MAX_SHAPES = 256
_MAX_COUNTED = 4096
#: Every ``_WINDOW`` keys seen once, the share of them learnt (seen again) is looked at; under
#: ``_MIN_REPEATS`` the decider turns the templates off (cases whose combinations hardly repeat).
_WINDOW = 4096
_MIN_REPEATS = 0.1
_INT_BOUND = 2**63

Decide = Callable[[Mapping[str, Any]], "Determination"]


class _Fallback(Exception):  # not an error: the ordinary path takes the case
    """A value the inline checks do not take: the ordinary path decides the case."""


def _other(x: Any) -> Any:
    """A key part for a value that is not a string, list, bool or null: numbers tagged by type (1, 1.0
    and True are equal keys but not the same input; 0.0 and -0.0 print differently, so a zero is never
    keyed); anything else is left to the ordinary path."""
    t = type(x)
    if t is int:
        return ("int", x)
    if t is float and x != 0:
        return ("float", x)
    raise _Fallback


class Combos:
    """The templates of one decider, by shape and by the combination of the values ``finish``, routing
    and the engine read."""

    def __init__(
        self,
        policies: Sequence[Policy],
        route: Callable[[Mapping[str, Any]], Policy],
        slow: Decide,
        route_keys: frozenset[str],
    ) -> None:
        from medpolicy.case import Case, parser_for
        from medpolicy.engine import Determination, engine_for

        self.parsers: list[_Parser] = [parser_for(p) for p in policies]
        self.reads = [finish_reads(p) for p in self.parsers]
        self.route = route
        self.slow = slow
        self.route_keys = route_keys | ROUTING_KEYS
        self.known = frozenset(k for p in self.parsers for k in p.specs) | _METADATA | ROUTING_KEYS
        self.shapes: dict[tuple[str, ...], Decide] = {}
        self.counted: dict[tuple[str, ...], int] = {}
        #: Templates, keys seen once and keys refused, over all shapes (each bounded by the same limit).
        self.kept = self.seen = self.refused = 0
        self.interned: dict[Any, Any] = {}
        self.enabled = True
        self.on = [True]  # ``enabled``, as the decider's closure reads it
        self._case, self._det, self._parser_for, self._engine_for = (
            Case,
            Determination,
            parser_for,
            engine_for,
        )

    # -- the entry point

    def decider(self) -> Decide:
        """The decider: a raw case to its determination (the ordinary path for anything unusual)."""
        shapes_get, slow, unseen, on = self.shapes.get, self.slow, self._unseen, self.on

        def one(raw: Mapping[str, Any]) -> Determination:
            if on[0] and type(raw) is dict:
                try:
                    fn = shapes_get(tuple(raw))
                except TypeError:  # an unhashable key (not from JSON)
                    return slow(raw)
                if fn is not None:
                    return fn(raw)
                return unseen(raw)
            return slow(raw)

        one.combos = self  # type: ignore[attr-defined]  # for tests and profiles: what was learnt
        return one

    def disable(self) -> None:
        """Decide every case the ordinary way from now on, and forget what was learnt."""
        self.enabled = self.on[0] = False
        self.shapes.clear()
        self.counted.clear()
        self.interned.clear()

    def _unseen(self, raw: dict[str, Any]) -> Determination:
        if not self.enabled:
            return self.slow(raw)
        shape = tuple(raw)
        if (
            len(self.shapes) < _MAX_SHAPES
            and len(shape) <= LIMITS.max_case_fields
            and all(type(k) is str and k in self.known for k in shape)  # unknown keys: never remembered
        ):
            n = self.counted.get(shape, 0) + 1
            if n >= 2:
                self.shapes[shape] = self._compile(shape)
                return self.shapes[shape](raw)
            if len(self.counted) < _MAX_COUNTED:
                self.counted[shape] = n
        return self.slow(raw)

    # -- what each key of a shape is

    def _per_case(self, key: str, shape: tuple[str, ...]) -> tuple[str, Any] | None:
        """("date", a date handler) or ("number", (minimum, band bounds or None)) when ``key`` is a
        per-case fact in every policy (``finish`` does not read it, or reads only its band and the
        fact the band fills in is not in the shape, or it is the reference date of an age whose birth
        date is not in the shape); None: the key is part of the template's key."""
        if key in self.route_keys:
            return None
        specs = [p.specs.get(key) for p in self.parsers]
        if any(s is None for s in specs):
            return None
        types = {s.type for s in specs if s is not None}
        if types == {"date"}:
            for read, _, ages in self.reads:
                if key in read or any(at == key and born in shape for born, at in ages):
                    return None
            return "date", self.parsers[0].handlers[key]
        if types == {"number"}:
            minimums = {s.minimum for s in specs if s is not None}
            bounds: set[tuple[float | None, ...]] = set()
            for read, by_band, ages in self.reads:
                if key in read or any(at == key and born in shape for born, at in ages):
                    return None
                if key in by_band:
                    target, b = by_band[key]
                    if target in shape:
                        return None
                    bounds.add(b)
            if len(minimums) != 1 or len(bounds) > 1:
                return None
            return "number", (minimums.pop(), bounds.pop() if bounds else None)
        return None

    def _date_checked(self, handler: Callable[[Any, list[Any]], Any]) -> Callable[[Any], Any]:
        """The date handler's full checks, for a date the inline test does not settle."""

        def checked(value: Any) -> Any:
            got = handler(value, [])
            if got is None:
                raise _Fallback
            return got

        return checked

    # -- the generated function of a shape

    def _compile(self, shape: tuple[str, ...]) -> Decide:
        env: dict[str, Any] = {
            "_Fallback": _Fallback,
            "_other": _other,
            "_slow": self.slow,
            "_new": object.__new__,
            "_Case": self._case,
            "_D": self._det,
            "_max_chars": LIMITS.max_string_chars,
            "_inf": float("inf"),
            "_B": _INT_BOUND,
            "_fromiso": dt.date.fromisoformat,
            "_today": dt.date.today(),
        }
        table: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        env["_get"] = table.get
        body: list[str] = []
        parts: list[str] = []  # the template's key
        metadata: list[str] = []
        per_case: list[tuple[str, str, str]] = []  # (key, value expression, display expression)
        for i, key in enumerate(shape):
            x = f"x{i}"
            body.append(f"{x} = raw[{key!r}]")
            if key in _METADATA:
                body.append(f"if type({x}) is not str or len({x}) > _max_chars:\n    raise _Fallback")
                metadata.append(f"{key!r}: {x}")
                continue
            kind = self._per_case(key, shape)
            if kind is None:
                if key in ROUTING_KEYS:
                    metadata.append(f"{key!r}: {x}")
                # A string, flag or null is its own key part; a list, its tuple; a number, tagged by
                # type (``_other``). Lists are tested first for keys some policy holds lists in.
                listed = any(
                    (sp := p.specs.get(key)) is not None and sp.type in ("codes", "staging")
                    for p in self.parsers
                )
                plain = f"ty is str or ty is bool or {x} is None"
                tests = [("ty is list", f"tuple({x})"), (plain, x)]
                body.append(
                    f"ty = type({x})\n"
                    + "\n".join(
                        f"{'if' if n == 0 else 'elif'} {test}:\n    k{i} = {part}"
                        for n, (test, part) in enumerate(tests if listed else tests[::-1])
                    )
                    + f"\nelse:\n    k{i} = _other({x})"
                )
                parts.append(f"k{i}")
                continue
            what, detail = kind
            if what == "date":
                # As the date handler: ten characters that ``date.fromisoformat`` reads (a ValueError
                # falls back), on or before a day known to be within the horizon (the day this was
                # generated: the horizon is today or later); anything else through the handler. Of the
                # ten-character forms it reads, only YYYY-MM-DD has a hyphen at [7]: it is its own
                # ISO form (YYYY-Www-D is not).
                env[f"_dh{i}"] = self._date_checked(detail)
                body.append(
                    f"if type({x}) is str and len({x}) == 10:\n"
                    f"    a{i} = _fromiso({x})\n"
                    f"    if a{i} <= _today:\n        b{i} = {x} if {x}[7] == '-' else a{i}.isoformat()\n"
                    f"    else:\n        a{i}, b{i} = _dh{i}({x})\n"
                    f"else:\n    a{i}, b{i} = _dh{i}({x})"
                )
                per_case.append((key, f"a{i}", f"b{i}"))
            else:
                low, bounds = detail
                env[f"_low{i}"] = low if low is not None else float("-inf")
                body.append(
                    f"ty{i} = type({x})\n"
                    f"if not ((ty{i} is float or (ty{i} is int and -_B < {x} < _B)) and _low{i} <= {x} < _inf):\n"
                    "    raise _Fallback"
                )
                per_case.append((key, f"({x} if ty{i} is float else float({x}))", x))
                if bounds is not None:
                    lines = []
                    for j, bound in enumerate(bounds):
                        if bound is None:
                            lines.append(f"else:\n    k{i} = {j}")
                            break
                        env[f"_bound{i}_{j}"] = bound
                        lines.append(f"{'if' if j == 0 else 'elif'} {x} <= _bound{i}_{j}:\n    k{i} = {j}")
                    body.append("\n".join(lines))
                    parts.append(f"k{i}")
        learner = _Learner(self, shape, per_case, table, body, parts, metadata, env)
        return learner.compile()

    def intern(self, value: Any, key: Any = None) -> Any:
        """One object for equal parts of many templates (codes, sources, notes): what a case is built
        from stays in a few hot objects instead of one copy per combination."""
        k = value if key is None else key
        try:
            got = self.interned.get(k)
        except TypeError:  # an unhashable part (a note's alternative value): not shared
            return value
        if got is not None:
            return got
        if len(self.interned) < _MAX_INTERNED:
            self.interned[k] = value
        return value


#: Equal parts shared between templates, per decider; case layouts (the order of a case's keys) per shape.
_MAX_INTERNED = 4096
_MAX_LAYOUTS = 64

#: A template is (head, values..., displays...): the head (layout number, sources (shared: a case is
#: treated as immutable), notes, policy, engine result, latest version's start, the engine's decide,
#: whether the engine's result may be kept (it reads no per-case fact but the date of service)) is
#: shared by many templates; then the values of the facts that are not per-case and those of their
#: displays that are not the value itself.


class _Learner:
    """Learns the templates of one shape (the second time a key comes, from the reference) and
    generates the shape's function, its case layouts inlined (regenerated when a layout is added)."""

    def __init__(
        self,
        combos: Combos,
        shape: tuple[str, ...],
        per_case: list[tuple[str, str, str]],
        table: dict[tuple[Any, ...], tuple[Any, ...]],
        body: list[str],
        parts: list[str],
        metadata: list[str],
        env: dict[str, Any],
    ) -> None:
        self.combos, self.shape, self.table = combos, shape, table
        #: (key, value expression, display expression) of each per-case fact, in shape order.
        self.per_case_code = per_case
        self.per_case = [k for k, _, _ in per_case]
        self.body, self.parts, self.metadata, self.env = body, parts, metadata, env
        env["_learn"], env["_engine_result"] = self.learn, self.engine_result
        self.seen: set[int] = set()
        self.refused: set[int] = set()
        #: The order of the keys of a case's values and display, by layout number.
        self.layouts: dict[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], int] = {}
        self.fn: Decide | None = None

    def compile(self) -> Decide:
        dos_value = next((v for k, v, _ in self.per_case_code if k == DOS), None)
        src = [
            "def fn(raw):",
            "    try:",
            *("        " + line for b in self.body for line in b.split("\n")),
            f"        key = ({''.join(p + ', ' for p in self.parts)})",
            "        t = _get(key)",
            "    except (_Fallback, TypeError, ValueError):  # a value to check in full, or an unhashable part",
            "        return _slow(raw)",
            "    if t is None:",
            "        return _learn(raw, key)",
            "    c = _new(_Case)",
        ]
        src.append("    h = t[0]")
        for n, (vkeys, dkeys, same) in enumerate(self.layouts):
            values, shown = self._display(vkeys, dkeys, same)
            src += [
                f"    {'if' if n == 0 else 'elif'} h[0] == {n}:",
                f"        c.values = v = {values}",
                *("        " + line for line in shown),
            ]
        src += [
            "    c.sources = h[1]",
            "    c.notes = h[2]",
            f"    c.metadata = {{{', '.join(self.metadata)}}}",
            "    r = h[4]",
        ]
        if dos_value is None:
            src += ["    if r is None:", "        return h[6](c)"]
        else:  # a template learnt from a date before the latest version learns its result later
            src += [
                f"    if r is None or {dos_value} < h[5]:",
                "        o = h[6](c)",
                f"        if r is None and h[7] and not {dos_value} < h[5]:",
                "            _engine_result(key, t, o.result)",
                "        return o",
            ]
        src += [
            "    o = _new(_D)",
            "    o.policy = h[3]",
            "    o.case = c",
            "    o.result = r",
            "    o.trace = r.trace",
            "    return o",
        ]
        env = self.env
        exec(compile("\n".join(src) + "\n", "<medpolicy case combination>", "exec"), env)  # noqa: S102 -- keys are repr()'d literals; the code is built from the policies' facts
        fn: Decide = env["fn"]
        self.fn = fn
        if self.combos.enabled:
            self.combos.shapes[self.shape] = fn
        return fn

    def _display(
        self, vkeys: tuple[str, ...], dkeys: tuple[str, ...], same: tuple[str, ...]
    ) -> tuple[str, list[str]]:
        """A dictionary display of a case's values in a layout, and the lines that build its display:
        the per-case facts from the case, the rest from the template (after its head: values, then
        the displays that are not the value itself). A display with the values' keys in their order
        starts as a copy of the values (one block copy, cheaper than inserting each key) with the
        displays that are not the value itself written over them."""
        at = 1
        code = {k: (v, d) for k, v, d in self.per_case_code}
        where: dict[str, int] = {}
        items = []
        for k in vkeys:
            items.append(f"{k!r}: {code[k][0] if k in code else f't[{at}]'}")
            if k not in code:
                where[k] = at
                at += 1
        values = "{" + ", ".join(items) + "}"
        shown: list[tuple[str, str]] = []
        for k in dkeys:
            if k in code:
                shown.append((k, code[k][1]))
            elif k in same:
                shown.append((k, f"t[{where[k]}]"))
            else:
                shown.append((k, f"t[{at}]"))
                at += 1
        if dkeys != vkeys:
            return values, ["c.display = {" + ", ".join(f"{k!r}: {e}" for k, e in shown) + "}"]
        # the same keys in the same order: overwrite the items whose display is not the value
        return values, [
            "c.display = w = v.copy()",
            *(f"w[{k!r}] = {e}" for k, e in shown if k not in same),
        ]

    def learn(self, raw: dict[str, Any], key: tuple[Any, ...]) -> Determination:
        combos, table = self.combos, self.table
        limit = LIMITS.cache_finishes
        # Keys seen and refused are kept by their hash: a few bytes each, whatever the case holds (two
        # keys with one hash only cost a learning that the check below refuses, or a lost template).
        h = hash(key)
        if h in self.refused or combos.kept >= limit:
            return combos.slow(raw)
        if h not in self.seen:  # a combination that never comes again costs a set insertion
            if combos.seen < limit:
                self.seen.add(h)
                combos.seen += 1
                if combos.seen % _WINDOW == 0 and combos.kept < _MIN_REPEATS * combos.seen:
                    combos.disable()  # combinations that hardly repeat: the templates do not pay
            return combos.slow(raw)
        if not _small(key):  # large lists are never remembered: memory stays bounded per entry
            self._refuse(key)
            return combos.slow(raw)
        try:
            policy = combos.route(raw)
            case = combos._parser_for(policy).reference(raw, None)
        except Exception:  # the ordinary path raises it again, as the caller expects
            self._refuse(key)
            return combos.slow(raw)
        engine = combos._engine_for(policy)
        det = engine.decide(case)
        template = self._template(case, policy, engine, det)
        if template is None:
            self._refuse(key)
            return det
        key = tuple(combos.intern(p) if type(p) is tuple else p for p in key)
        table[key] = template
        assert self.fn is not None
        again = self.fn(raw)
        if not _same(again, det):  # not a template that rebuilds this case: never kept
            del table[key]
            self._refuse(key)
        else:
            combos.kept += 1
        return det

    def _refuse(self, key: tuple[Any, ...]) -> None:
        if self.combos.refused < LIMITS.cache_finishes:
            self.refused.add(hash(key))
            self.combos.refused += 1

    def _head(self, head: tuple[Any, ...]) -> tuple[Any, ...]:
        """Many combinations share a head: one object, kept hot (the ids are of objects it holds)."""
        layout, src, notes, policy, r, latest, decide, cacheable = head
        key = ("head", layout, id(src), id(notes), id(policy), id(r), latest, id(decide), cacheable)
        shared: tuple[Any, ...] = self.combos.intern(head, key)
        return shared

    def engine_result(self, key: tuple[Any, ...], template: tuple[Any, ...], r: Any) -> None:
        """The engine's result for the latest version, learnt after the template (which was learnt
        from a case dated before it)."""
        if self.table.get(key) is template:
            self.table[key] = (self._head((*template[0][:4], r, *template[0][5:])), *template[1:])

    def _template(self, case: Any, policy: Policy, engine: Any, det: Determination) -> tuple[Any, ...] | None:
        """The template of ``case``, or None when its per-case facts are not where the shape puts them
        (missing, moved or not given) or the shape has too many layouts."""
        per_case = self.per_case
        vkeys, dkeys = tuple(case.values), tuple(case.display)
        if [k for k in vkeys if k in per_case] != per_case or [k for k in dkeys if k in per_case] != per_case:
            return None
        if any(case.sources.get(k) != "given" for k in per_case):
            return None
        values, display = case.values, case.display
        # display items that are the value itself (enums, flags, derived facts): read from the value
        same = tuple(k for k in dkeys if k not in per_case and k in values and display[k] is values[k])
        layout = self.layouts.get((vkeys, dkeys, same))
        if layout is None:
            if len(self.layouts) >= _MAX_LAYOUTS:
                return None
            layout = self.layouts[vkeys, dkeys, same] = len(self.layouts)
            self.compile()
        # The engine's result serves every case of this key on or after the latest version, unless the
        # engine reads a per-case fact other than the date of service.
        reads_per_case = any(k in engine.facts for k in per_case if k != DOS)
        dos = values.get(DOS)
        latest = engine.starts[-1] if engine.starts else None
        r = None
        if (
            not reads_per_case
            and latest is not None
            and (DOS not in per_case or (dos is not None and dos >= latest))
        ):
            r = det.result
        intern = self.combos.intern
        src = intern(dict(case.sources), ("sources", tuple(case.sources.items())))
        notes = intern(case.notes) if case.notes else ()
        head = self._head((layout, src, notes, policy, r, latest, engine.decide, not reads_per_case))
        return (
            head,
            *(intern(v) if type(v) is frozenset else v for k, v in values.items() if k not in per_case),
            *(
                intern(v, ("list", tuple(v))) if type(v) is list else v
                for k, v in display.items()
                if k not in per_case and k not in same
            ),
        )


def _same(a: Determination, b: Determination) -> bool:
    ca, cb = a.case, b.case
    return (
        a.result is b.result
        and a.policy is b.policy
        and list(ca.values.items()) == list(cb.values.items())
        and list(ca.display.items()) == list(cb.display.items())
        and list(ca.sources.items()) == list(cb.sources.items())
        and list(ca.metadata.items()) == list(cb.metadata.items())
        and ca.notes == cb.notes
    )
