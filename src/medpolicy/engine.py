"""The decision engine: a pure function from (policy, case) to a determination.

How it works
------------
Every atom of a policy reads one fact. For each fact the atoms that read it split its values into a
few *classes* (values no atom can tell apart): for the IORT policy ``tumor_site`` has three (rectum,
sarcoma, anything else), ``margin_status`` two, and so on. The date of service falls into one class
per version, plus "before the first version". A case is therefore summed up by a short *key*: one class
per fact, or -1 for unknown.

For a key the engine

1. evaluates the version's decision list with Kleene logic (unknown stays unknown), recording every
   criterion's value: the trace;
2. enumerates every way of filling in the unknown facts (by class, so the enumeration is small and
   exact) to get the set of possible outcomes. One possible outcome: the determination is definite,
   even where Kleene logic alone could not see it. Several: ``information_needed``;
3. lists as missing exactly the unknown facts that can change the outcome: those for which two
   fillings that differ only in that fact give different outcomes. Filling all of them always gives a
   definite outcome, and no fact that cannot change the outcome is ever asked for.

The result for a key depends on nothing else, so it is computed once and kept (the key space of a
policy is small and bounded). Deciding a case is then: classify its facts, look the classes up in the
version's table (nested lists indexed by class, filled on first use), wrap.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from medpolicy import search
from medpolicy.case import Case, Note
from medpolicy.determination import (  # re-exported: the engine's answer types live there
    DOS,
    CriterionResult,
    Determination,
    EvalResult,
    MissingFact,
    explain_trace,
    summarize,
    walk_trace,
)
from medpolicy.fact_classes import SetClasses, fact_classes
from medpolicy.language import AnyOf, Atom, Criterion, Not, Tri, kleene_and
from medpolicy.policy import FactSpec, Outcome, Policy, Version

__all__ = [
    "CriterionResult",
    "Determination",
    "Engine",
    "EvalResult",
    "KeySpace",
    "MissingFact",
    "decide_case",
    "engine_for",
    "key_space",
]

#: Most fillings of a case's unknown facts ``_evaluate`` enumerates; above it, ``medpolicy.search``.
_MAX_ENUMERATION = 4096

#: Largest lookup table (product of each fact's class count + 1) a version gets in ``Engine.decide``.
_MAX_TABLE = 1 << 16

#: The end of ``Engine.decide``: wrap the result ``r`` in a ``Determination`` as its ``__init__``
#: would, without the call (a Python ``__init__`` costs a frame per case; the lazy slots stay unset).
_WRAP = (
    "o = _new(_D)",
    "o.policy = _policy",
    "o.case = case",
    "o.result = r",
    "o.trace = r.trace",
    "return o",
)


def _nested(dims: Sequence[int]) -> list[Any]:
    """Nested lists of ``None`` with the given dimensions (the leaves are filled on first use)."""
    if len(dims) <= 1:
        return [None] * (dims[0] if dims else 1)
    return [_nested(dims[1:]) for _ in range(dims[0])]


class Engine:
    """A policy compiled for deciding. Thread-safe; build once per policy (see ``engine_for``)."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        atoms: dict[str, list[Atom]] = {}
        seen: set[tuple[str, str, Any]] = set()
        roots = [r.criterion for v in policy.versions for r in v.decision_list] + [
            n.when for n in policy.notes
        ]
        for root in roots:
            for c in root.walk():
                if isinstance(c, Atom) and (c.fact, c.op, c.operand) not in seen:
                    seen.add((c.fact, c.op, c.operand))
                    atoms.setdefault(c.fact, []).append(c)
        # Decision facts in the policy's asking order; the date of service selects the version.
        self.facts: tuple[str, ...] = tuple(f.name for f in policy.facts if f.name in atoms)
        self.atoms = {f: tuple(atoms[f]) for f in self.facts}
        self.atom_pos = {
            (a.fact, a.op, a.operand): (i, j)
            for i, f in enumerate(self.facts)
            for j, a in enumerate(self.atoms[f])
        }
        self.classes: list[list[tuple[bool, ...]]] = []
        self.classifiers: list[Callable[[Any], int]] = []
        for f in self.facts:
            vecs, fn = fact_classes(policy.fact(f), self.atoms[f])
            self.classes.append(vecs)
            self.classifiers.append(fn)
        self.starts = [v.effective_from for v in policy.versions]
        self.version_facts: list[frozenset[int]] = [frozenset()]  # class 0: before the first version
        for v in policy.versions:
            read = set().union(*(r.criterion.facts() for r in v.decision_list))
            self.version_facts.append(frozenset(i for i, f in enumerate(self.facts) if f in read))
        #: Per version class, per rule of its decision list: the indexes of the facts the rule reads.
        self._rule_facts: list[list[tuple[int, ...]]] = [[]] + [
            [tuple(i for i, f in enumerate(self.facts) if f in r.criterion.facts()) for r in v.decision_list]
            for v in policy.versions
        ]
        #: Per version class: (outcome, its criterion as a function of the classes, facts it reads).
        self._rules: list[list[tuple[Outcome, Callable[[Sequence[int]], Tri] | None, tuple[int, ...]]]] = [[]]
        for v, facts in zip(policy.versions, self._rule_facts[1:], strict=True):
            self._rules.append(
                [
                    (r.outcome, None if r.when is None else self._tri(r.when), f)
                    for r, f in zip(v.decision_list, facts, strict=True)
                ]
            )
        self._memo: dict[tuple[int, ...], EvalResult] = {}
        self._full: dict[tuple[int, ...], Outcome] = {}
        self._lock = threading.Lock()
        #: Decide a validated case: the hot path (classify, then a table lookup once seen).
        self.decide: Callable[[Case], Determination]
        self.key, self.decide = self._compile()

    # -- keys

    def _compile(
        self,
    ) -> tuple[Callable[[Mapping[str, Any]], tuple[int, ...]], Callable[[Case], Determination]]:
        """Generate the key function and the deciding function as straight-line Python (the hot path).

        The date of service is classified first; then only the facts that version (and the notes that
        apply to it) read are classified, so a fact a version ignores costs nothing. A key is
        ``(version class, class of each fact read, ...)``; ``_evaluate`` expands it.

        ``decide`` classifies the same way, then finds the result in a table indexed by the classes
        (nested lists, unknown = the last index, filled from ``result`` on first use): list indexing instead
        of building and hashing a key tuple. A version whose table would be large uses ``result``'s
        dictionary instead. A value outside a fact's classes (a case not made by ``parse_case``) is
        unknown, as in ``key``."""
        env: dict[str, Any] = {
            "_bisect": bisect.bisect_right,
            "_starts": self.starts,
            "_result": self.result,
            "_D": Determination,
            "_new": object.__new__,
            "_policy": self.policy,
        }
        self.key_facts: list[tuple[int, ...]] = []
        key_branches: list[tuple[int, str]] = []
        decide_branches: list[tuple[int, list[str]]] = []
        for vclass in [-1, *range(len(self.starts) + 1)]:
            read = sorted(self._facts_for(vclass))
            self.key_facts.append(tuple(read))
            exprs = [self._class_expr(i, env) for i in read]
            key_branches.append((vclass, "(" + ", ".join([str(vclass), *exprs]) + ",)"))
            strict = [self._class_expr(i, env, strict=True) for i in read]
            decide_branches.append((vclass, self._decide_branch(vclass, read, strict, env)))
        # Every name the functions use is bound as a default argument (a fast local, not a global);
        # a date on or after the latest version (the common case) skips the bisection; the newest
        # version's branch is tested first.
        latest = len(self.starts)
        env["_latest_start"] = self.starts[-1]
        bound = ", ".join(f"{name}={name}" for name in sorted(env))
        head = [
            "    g = values.get",
            "    d = g('date_of_service')",
            f"    vc = -1 if d is None else {latest} if d >= _latest_start else _bisect(_starts, d)",
        ]
        key_lines = [f"def key(values, {bound}):", *head]
        for vclass, expr in sorted(key_branches, key=lambda b: -b[0]):
            key_lines.append(f"    if vc == {vclass}:\n        return {expr}")
        key_lines.append("    raise AssertionError(vc)")
        src = "\n".join(key_lines) + "\n"
        exec(compile(src, f"<medpolicy key {self.policy.id}>", "exec"), env)  # noqa: S102 -- generated from the loaded policy's own fact names, no outside input
        key: Callable[[Mapping[str, Any]], tuple[int, ...]] = env["key"]
        env["_key"] = key
        bound = ", ".join(f"{name}={name}" for name in sorted(env) if name not in ("key", "__builtins__"))
        # decide: the latest version first, straight from the date (no version class to compare).
        branches = dict(decide_branches)
        decide_lines = [
            f"def decide(case, {bound}):",
            "    g = case.values.get",
            "    d = g('date_of_service')",
            "    try:",
            "        if d is not None and d >= _latest_start:",
            *("            " + line for line in branches[latest]),
            "        vc = -1 if d is None else _bisect(_starts, d)",
        ]
        for vclass, body in sorted(decide_branches, key=lambda b: -b[0]):
            if vclass != latest:
                decide_lines.append(f"        if vc == {vclass}:")
                decide_lines.extend("            " + line for line in body)
        decide_lines += [
            "    except (KeyError, IndexError, TypeError):  # a value outside its classes: unknown, as in key",
            "        pass",
            "    r = _result(_key(case.values))",
            *("    " + line for line in _WRAP),
        ]
        src = "\n".join(decide_lines) + "\n"
        exec(compile(src, f"<medpolicy decide {self.policy.id}>", "exec"), env)  # noqa: S102 -- as above
        decide: Callable[[Case], Determination] = env["decide"]
        return key, decide

    def _decide_branch(
        self, vclass: int, read: Sequence[int], exprs: Sequence[str], env: dict[str, Any]
    ) -> list[str]:
        """Lines of ``decide`` for one version class: classify, look up, fill on first use."""
        names = [f"c{n}" for n in range(len(read))]
        lines = [f"{name} = {expr}" for name, expr in zip(names, exprs, strict=True)]
        dims = [len(self.classes[i]) + 1 for i in read]  # the last index: unknown (class -1)
        if math.prod(dims) > _MAX_TABLE:
            return ["r = _result(_key(case.values))", *_WRAP]
        table = f"_table{vclass + 1}"
        env[table] = _nested(dims)
        if not names:
            node, last = table, "0"
        else:
            node = table + "".join(f"[{name}]" for name in names[:-1])
            last = names[-1]
        return [
            *lines,
            f"node = {node}",
            f"r = node[{last}]",
            "if r is None:",
            f"    r = node[{last}] = _result(_key(case.values))",
            *_WRAP,
        ]

    def _facts_for(self, vclass: int) -> frozenset[int]:
        """Indexes of the facts a version class reads, its notes included (-1: any version)."""
        if vclass == 0:
            return frozenset()
        if vclass < 0:
            return frozenset(range(len(self.facts)))
        version = self.policy.versions[vclass - 1]
        names = {f for r in version.decision_list for f in r.criterion.facts()}
        for n in self.policy.notes:
            if n.versions is None or version.id in n.versions:
                names |= n.when.facts()
        return frozenset(i for i, f in enumerate(self.facts) if f in names)

    def _class_expr(self, i: int, env: dict[str, Any], *, strict: bool = False) -> str:
        """Python for the class of fact ``i`` (-1: unknown). ``strict``: a value outside the fact's
        classes raises KeyError (``decide`` then falls back to ``key``) instead of counting as unknown,
        and unknown is the class count (the last index of ``decide``'s tables: a non-negative index
        keeps CPython's specialised list subscript); a subscript is cheaper than ``dict.get``."""
        f, fn = self.facts[i], self.classifiers[i]
        table = getattr(fn, "table", None)
        if table is not None and strict:
            env[f"_u{i}"] = {**table, None: len(self.classes[i])}
            return f"_u{i}[g({f!r})]"
        if table is not None:
            env[f"_t{i}"] = table
            return f"_t{i}.get(g({f!r}), -1)"
        sets = getattr(fn, "sets", None)
        if sets is not None and strict:
            # Parsing hands out one frozenset per distinct input (its hash is cached), so a dictionary
            # of the sets seen is cheaper than testing each atom's set.
            env[f"_m{i}"] = SetClasses(fn, len(self.classes[i]))
            return f"_m{i}[g({f!r})]"
        if sets is not None:
            # A set-valued fact: its class is the bit pattern of the atoms' sets it meets.
            bits = []
            for k, st in enumerate(sets):
                env[f"_s{i}_{k}"] = st
                bits.append(
                    f"((not _s{i}_{k}.isdisjoint(v)) << {k})" if k else f"(not _s{i}_{k}.isdisjoint(v))"
                )
            return f"(-1 if (v := g({f!r})) is None else ({' | '.join(bits)}))"
        env[f"_c{i}"] = fn
        return f"(-1 if (v := g({f!r})) is None else _c{i}(v))"

    def result(self, key: tuple[int, ...]) -> EvalResult:
        r = self._memo.get(key)
        if r is None:
            r = self._evaluate(key)
            with self._lock:
                self._memo[key] = r
        return r

    # -- evaluation

    def _atom_values(self, classes: Sequence[int]) -> Callable[[Atom], Tri]:
        def value(a: Atom) -> Tri:
            i, j = self.atom_pos[(a.fact, a.op, a.operand)]
            c = classes[i]
            return None if c < 0 else self.classes[i][c][j]

        return value

    def _outcome(self, vclass: int, classes: Sequence[int]) -> Outcome:
        """The outcome for a complete assignment (no unknown the version reads). There are few such
        assignments (the product of the classes of the facts a version reads), so each is kept."""
        full = (vclass, *(classes[i] for i in sorted(self.version_facts[vclass])))
        o = self._full.get(full)
        if o is not None:
            return o
        if vclass == 0:
            o = Outcome.NOT_APPLICABLE
        else:
            value = self._atom_values(classes)
            o = next(
                r.outcome
                for r in self.policy.versions[vclass - 1].decision_list
                if r.when is None or r.when.evaluate(value) is True
            )
        self._full[full] = o
        return o

    def _evaluate(self, key: tuple[int, ...]) -> EvalResult:
        vclass = key[0]
        # Facts the key leaves out are not read by this version: they stay unknown and irrelevant.
        classes = [-1] * len(self.facts)
        for i, c in zip(self.key_facts[vclass + 1], key[1:], strict=True):
            classes[i] = c
        vclasses = [vclass] if vclass >= 0 else list(range(len(self.starts) + 1))
        read = frozenset().union(*(self.version_facts[v] for v in vclasses))
        dims = [i for i in sorted(read) if classes[i] < 0]
        if math.prod(len(self.classes[i]) for i in dims) * len(vclasses) > _MAX_ENUMERATION:
            return self._evaluated(vclass, classes, *self._search(vclass, classes, dims))
        # Enumerate every completion of the unknown facts (and of the version when the date is unknown).
        table: dict[tuple[int, ...], Outcome] = {}
        ranges = [range(len(self.classes[i])) for i in dims]
        for vc in vclasses:
            for combo in itertools.product(*ranges):
                filled = list(classes)
                for i, c in zip(dims, combo, strict=True):
                    filled[i] = c
                # A point names the version only when the date is unknown (then it is a dimension too).
                table[(vc, *combo) if vclass < 0 else combo] = self._outcome(vc, filled)
        possible = frozenset(table.values())
        outcome = next(iter(possible)) if len(possible) == 1 else Outcome.INFORMATION_NEEDED
        missing: list[str] = []
        if outcome is Outcome.INFORMATION_NEEDED:
            names = ([DOS] if vclass < 0 else []) + [self.facts[i] for i in dims]
            for pos, name in enumerate(names):
                groups: dict[tuple[int, ...], set[Outcome]] = {}
                for point, o in table.items():
                    groups.setdefault(point[:pos] + point[pos + 1 :], set()).add(o)
                if any(len(s) > 1 for s in groups.values()):
                    missing.append(name)
        return self._evaluated(vclass, classes, possible, missing)

    def _evaluated(
        self, vclass: int, classes: Sequence[int], possible: frozenset[Outcome], missing: list[str]
    ) -> EvalResult:
        outcome = next(iter(possible)) if len(possible) == 1 else Outcome.INFORMATION_NEEDED
        order = {f.name: i for i, f in enumerate(self.policy.facts)}
        missing.sort(key=order.__getitem__)
        version = self.policy.versions[vclass - 1] if vclass > 0 else None
        trace, deciding = self._trace(version, classes, outcome) if version else ((), ())
        notes = self._notes(vclass, version, classes)
        result = EvalResult(
            outcome=outcome,
            version=version,
            trace=trace,
            deciding=deciding,
            missing=tuple(_missing(self.policy.fact(n)) for n in missing),
            notes=notes,
            possible=possible,
        )
        return replace(result, summary=summarize(self.policy, result, dated=vclass >= 0))

    def _search(
        self, vclass: int, classes: Sequence[int], dims: Sequence[int]
    ) -> tuple[frozenset[Outcome], list[str]]:
        """Possible outcomes and missing facts by search (``medpolicy.search``) instead of enumeration:
        the same answers, for cases whose fillings are too many to enumerate."""
        unknown = ([-1] if vclass < 0 else []) + list(dims)
        sizes = {i: len(self.classes[i]) for i in dims}
        sizes[-1] = len(self.starts) + 1

        def settle(assign: dict[int, int]) -> tuple[Outcome | None, int | None]:
            vc = assign.get(-1, -1) if vclass < 0 else vclass
            if vc < 0:
                return None, -1
            filled = list(classes)
            for i, c in assign.items():
                if i >= 0:
                    filled[i] = c
            return self._settle(vc, filled)

        found = frozenset(search.possible(unknown, sizes, settle))
        if len(found) == 1:
            return found, []
        missing = [
            DOS if f < 0 else self.facts[f] for f in unknown if search.can_change(f, unknown, sizes, settle)
        ]
        return found, missing

    def _settle(self, vclass: int, classes: Sequence[int]) -> tuple[Outcome | None, int | None]:
        """The outcome of a partial assignment when Kleene logic settles it, else None and an unknown
        fact of the first open rule."""
        if vclass == 0:
            return Outcome.NOT_APPLICABLE, None
        pending: set[Outcome] = set()
        hint: int | None = None
        for outcome, test, facts in self._rules[vclass]:
            v = True if test is None else test(classes)
            if v is False:
                continue
            pending.add(outcome)
            if v is True:
                break
            if hint is None:
                hint = next((i for i in facts if classes[i] < 0), None)
        if len(pending) == 1:
            return next(iter(pending)), None
        return None, hint

    def _tri(self, c: Criterion) -> Callable[[Sequence[int]], Tri]:
        """A criterion as a function of the facts' classes (-1: unknown), Kleene logic: what
        ``Criterion.evaluate`` computes, without a call per atom through a dictionary (the search
        settles thousands of partial fillings)."""
        if isinstance(c, Atom):
            i, j = self.atom_pos[(c.fact, c.op, c.operand)]
            column = tuple(vec[j] for vec in self.classes[i])

            def atom(cl: Sequence[int]) -> Tri:
                k = cl[i]
                return None if k < 0 else column[k]

            return atom
        kids = [self._tri(k) for k in c.children()]
        if isinstance(c, Not):
            (kid,) = kids

            def not_(cl: Sequence[int]) -> Tri:
                v = kid(cl)
                return None if v is None else not v

            return not_
        stop = isinstance(c, AnyOf)  # the value that settles the whole: True for any_of, False for all_of

        def junction(cl: Sequence[int]) -> Tri:
            unknown = False
            for kid in kids:
                v = kid(cl)
                if v is stop:
                    return stop
                if v is None:
                    unknown = True
            return None if unknown else not stop

        return junction

    def _trace(
        self, version: Version, classes: Sequence[int], outcome: Outcome
    ) -> tuple[tuple[CriterionResult, ...], tuple[CriterionResult, ...]]:
        value = self._atom_values(classes)
        values: dict[str, Tri] = {}
        rule_values: list[Tri] = []
        earlier: list[Tri] = []
        for rule in version.decision_list:
            if rule.when is None:
                # The otherwise is reached when every earlier rule is false.
                v = kleene_and([e is False if e is not None else None for e in earlier])
                values[rule.criterion.id] = v
            else:
                v = rule.when.evaluate(value, values)
            rule_values.append(v)
            earlier.append(v)
        trace: list[CriterionResult] = []
        for rule in version.decision_list:
            walk_trace(rule.criterion, values, 0, trace, rule.outcome)
        deciding: list[CriterionResult] = []
        pairs = list(zip(version.decision_list, rule_values, strict=True))
        if outcome is Outcome.INFORMATION_NEEDED:
            # The rules still open, with the unknown criteria that keep them open.
            for rule, v in pairs:
                if v is None and rule.when is not None:
                    explain_trace(rule.criterion, values, deciding, rule.outcome)
            return tuple(trace), tuple(deciding)
        fired = next((rule for rule, v in pairs if v is True), None)
        for rule, v in pairs:
            if rule is fired:
                break
            # Rules leading elsewhere that are ruled out explain why the outcome is not theirs.
            if v is False and rule.outcome is not outcome and rule.outcome is not Outcome.NOT_APPLICABLE:
                explain_trace(rule.criterion, values, deciding, rule.outcome)
        if fired is None:
            # Kleene logic alone leaves a rule open, yet every filling gives this outcome: the
            # version's default stands for it.
            fired = version.otherwise
        if fired.outcome is outcome:
            deciding.insert(0, CriterionResult(fired.criterion, values.get(fired.criterion.id), 0, outcome))
            if fired.when is not None:
                tail: list[CriterionResult] = []
                explain_trace(fired.criterion, values, tail, outcome)
                deciding[:1] = tail
        return tuple(trace), tuple(deciding)

    def _notes(self, vclass: int, version: Version | None, classes: Sequence[int]) -> tuple[Note, ...]:
        if vclass == 0:
            first = self.policy.versions[0]
            return (
                Note(
                    "no_version_in_force",
                    f"no version of the policy was in force on the date of service; the first took effect "
                    f"{first.effective_from.isoformat()}",
                ),
            )
        if version is None:
            return ()
        value = self._atom_values(classes)
        return tuple(
            Note(n.code, n.text, n.cite, letter=n.letter)
            for n in self.policy.notes
            if (n.versions is None or version.id in n.versions) and n.when.evaluate(value) is True
        )


def _missing(spec: FactSpec) -> MissingFact:
    return MissingFact(spec.name, spec.question, spec.type, spec.values, spec.unit)


# ----------------------------------------------------------------------------------------------------
# Public entry points

_engines: dict[int, Engine] = {}
_engines_lock = threading.Lock()


def engine_for(policy: Policy) -> Engine:
    """The compiled engine for a policy (built once per policy object)."""
    e = _engines.get(id(policy))
    if e is None or e.policy is not policy:
        with _engines_lock:
            e = Engine(policy)
            _engines[id(policy)] = e
    return e


@dataclass(frozen=True, slots=True)
class KeySpace:
    """The engine's key space of a policy, for engines that decide in bulk (``medpolicy.screening``).

    A key is ``(version class, class of each fact that version class reads, ...)``: ``version_reads[v +
    1]`` lists the indexes (into ``facts``) read by version class ``v`` (-1: date unknown, 0: before the
    first version, ``n``: ``starts[n - 1]`` onwards). ``classify(i, value)`` is the engine's class of a
    decision-ready value of fact ``i`` (``Case.values``), ``class_counts[i]`` how many there are, and
    ``result(key)`` the engine's own answer for a key (memoised)."""

    facts: tuple[str, ...]
    class_counts: tuple[int, ...]
    starts: tuple[dt.date, ...]
    version_reads: tuple[tuple[int, ...], ...]
    engine: Engine

    def classify(self, i: int, value: Any) -> int:
        return -1 if value is None else self.engine.classifiers[i](value)

    def result(self, key: tuple[int, ...]) -> EvalResult:
        return self.engine.result(key)

    def keys(self, vclass: int) -> Iterator[tuple[int, ...]]:
        """Every key of a version class (each read fact over its classes and unknown)."""
        read = self.version_reads[vclass + 1]
        for combo in itertools.product(*(range(-1, self.class_counts[i]) for i in read)):
            yield (vclass, *combo)


def key_space(policy: Policy) -> KeySpace:
    """The key space of a policy's engine (see ``KeySpace``)."""
    e = engine_for(policy)
    return KeySpace(
        facts=e.facts,
        class_counts=tuple(len(c) for c in e.classes),
        starts=tuple(e.starts),
        version_reads=tuple(e.key_facts),
        engine=e,
    )


def decide_case(case: Case, policy: Policy) -> Determination:
    """Decide an already-validated case."""
    return engine_for(policy).decide(case)
