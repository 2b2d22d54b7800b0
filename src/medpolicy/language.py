"""The policy language's criteria: a small closed vocabulary of frozen objects.

Composite criteria: ``AllOf``, ``AnyOf``, ``Not``. Atoms read exactly one fact:

=============  ===========================  ============================================
YAML key       fact type                    true when
=============  ===========================  ============================================
``in``         enum                         the value is one of the listed values
``equals``     enum                         the value is the given value
``is``         boolean                      the value is the given boolean
``any_in``     codes                        any code is in the named code list
``t_category`` staging                      any staging's T category is listed
``at_most``    number                       value <= bound (a number or ``{param: name}``)
``at_least``   number                       value >= bound
``less_than``  number                       value <  bound
``more_than``  number                       value >  bound
=============  ===========================  ============================================

Every criterion carries a stable ``id``, a ``title`` and ``cite``: the exact words of the source that
it implements. Truth values are three-valued (Kleene): ``True``, ``False`` and ``None`` for unknown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AllOf",
    "AnyOf",
    "Atom",
    "Criterion",
    "Not",
    "Tri",
    "kleene_and",
    "kleene_not",
    "kleene_or",
    "tri_label",
]

Tri = bool | None


def kleene_and(values: list[Tri]) -> Tri:
    if any(v is False for v in values):
        return False
    if all(v is True for v in values):
        return True
    return None


def kleene_or(values: list[Tri]) -> Tri:
    if any(v is True for v in values):
        return True
    if all(v is False for v in values):
        return False
    return None


def kleene_not(value: Tri) -> Tri:
    return None if value is None else not value


def tri_label(value: Tri) -> str:
    return "unknown" if value is None else ("true" if value else "false")


@dataclass(frozen=True, slots=True, eq=False)
class Criterion:
    id: str
    title: str
    cite: tuple[str, ...]
    line: int | None = field(default=None, compare=False)

    def children(self) -> tuple[Criterion, ...]:
        return ()

    def facts(self) -> frozenset[str]:
        out: set[str] = set()
        for c in self.walk():
            if isinstance(c, Atom):
                out.add(c.fact)
        return frozenset(out)

    def walk(self) -> Iterator[Criterion]:
        yield self
        for c in self.children():
            yield from c.walk()

    def evaluate(self, atom_value: Callable[[Atom], Tri], out: dict[str, Tri] | None = None) -> Tri:
        """Kleene evaluation; ``atom_value`` gives each atom's value. Records every node in ``out``."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True, eq=False)
class AllOf(Criterion):
    items: tuple[Criterion, ...] = ()

    def children(self) -> tuple[Criterion, ...]:
        return self.items

    def evaluate(self, atom_value: Callable[[Atom], Tri], out: dict[str, Tri] | None = None) -> Tri:
        v = kleene_and([c.evaluate(atom_value, out) for c in self.items])
        if out is not None:
            out[self.id] = v
        return v

    def __repr__(self) -> str:
        return f"all of ({', '.join(map(repr, self.items))})"


@dataclass(frozen=True, slots=True, eq=False)
class AnyOf(Criterion):
    items: tuple[Criterion, ...] = ()

    def children(self) -> tuple[Criterion, ...]:
        return self.items

    def evaluate(self, atom_value: Callable[[Atom], Tri], out: dict[str, Tri] | None = None) -> Tri:
        v = kleene_or([c.evaluate(atom_value, out) for c in self.items])
        if out is not None:
            out[self.id] = v
        return v

    def __repr__(self) -> str:
        return f"any of ({', '.join(map(repr, self.items))})"


@dataclass(frozen=True, slots=True, eq=False)
class Not(Criterion):
    item: Criterion | None = None

    def children(self) -> tuple[Criterion, ...]:
        return (self.item,) if self.item is not None else ()

    def evaluate(self, atom_value: Callable[[Atom], Tri], out: dict[str, Tri] | None = None) -> Tri:
        assert self.item is not None
        v = kleene_not(self.item.evaluate(atom_value, out))
        if out is not None:
            out[self.id] = v
        return v

    def __repr__(self) -> str:
        return f"not {self.item!r}"


@dataclass(frozen=True, slots=True, eq=False)
class Atom(Criterion):
    """A test of one fact. ``op`` is the YAML key; ``operand`` is resolved at load time (code lists to
    frozen sets of codes, parameters to numbers)."""

    fact: str = ""
    op: str = ""
    operand: Any = None

    def test(self, value: Any) -> bool:
        """The atom's value for a known, normalised fact value."""
        op, x = self.op, self.operand
        if op in ("in", "equals", "is"):
            return bool(value in x)
        if op in ("any_in", "t_category"):
            return not x.isdisjoint(value)
        if op == "at_most":
            return bool(value <= x)
        if op == "at_least":
            return bool(value >= x)
        if op == "less_than":
            return bool(value < x)
        if op == "more_than":
            return bool(value > x)
        raise ValueError(f"unknown operator {op!r}")  # the loader admits no other operator

    def evaluate(self, atom_value: Callable[[Atom], Tri], out: dict[str, Tri] | None = None) -> Tri:
        v = atom_value(self)
        if out is not None:
            out[self.id] = v
        return v

    def __repr__(self) -> str:
        shown = sorted(self.operand) if isinstance(self.operand, frozenset) else self.operand
        if isinstance(shown, list) and len(shown) > 6:
            shown = [*shown[:6], "..."]
        return f"{self.fact} {self.op.replace('_', ' ')} {shown}"
