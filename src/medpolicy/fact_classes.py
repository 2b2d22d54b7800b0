"""How a fact's values fall into *classes* under the atoms that read it (see ``medpolicy.engine``).

Two values are in one class when no atom of the policy can tell them apart: ``fact_classes`` gives a
fact's classes (each as the vector of its atoms' answers) and a function from a value to its class;
``SetClasses`` remembers the class of each set-valued fact's values seen so far, bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from medpolicy.language import Atom
from medpolicy.policy import FactSpec

#: Distinct values of one set-valued fact whose class ``Engine.decide`` keeps.
MAX_SETS = 4096


class SetClasses(dict[Any, int]):
    """Class of each value of a set-valued fact seen so far (``None``: ``unknown``, the index of the
    unknown class in ``Engine.decide``'s tables), computed on a miss; at most ``MAX_SETS`` are kept,
    so arbitrary input cannot grow it without bound."""

    def __init__(self, classify: Callable[[Any], int], unknown: int) -> None:
        super().__init__({None: unknown})
        self._classify = classify

    def __missing__(self, value: Any) -> int:
        c = self._classify(value)
        if len(self) < MAX_SETS:
            self[value] = c
        return c


def fact_classes(
    spec: FactSpec, atoms: Sequence[Atom]
) -> tuple[list[tuple[bool, ...]], Callable[[Any], int]]:
    """The classes of a fact's values under its atoms, and a function from a value to its class."""
    if spec.type in ("enum", "boolean"):
        domain: list[Any] = list(spec.values or ()) if spec.type == "enum" else [True, False]
        vecs: list[tuple[bool, ...]] = []
        table: dict[Any, int] = {}
        for val in domain:
            vec = tuple(a.test(val) for a in atoms)
            if vec not in vecs:
                vecs.append(vec)
            table[val] = vecs.index(vec)

        def by_table(v: Any) -> int:
            return table.get(v, -1)

        by_table.table = table  # type: ignore[attr-defined]
        return vecs, by_table
    if spec.type in ("codes", "staging"):
        # A set can hold members of any combination of the atoms' sets: class = bit pattern.
        sets = [a.operand for a in atoms]
        vecs = [tuple(bool(bits >> k & 1) for k in range(len(sets))) for bits in range(2 ** len(sets))]

        def by_bits(v: Any) -> int:
            bits = 0
            for k, s in enumerate(sets):
                if not s.isdisjoint(v):
                    bits |= 1 << k
            return bits

        by_bits.sets = sets  # type: ignore[attr-defined]
        return vecs, by_bits
    if spec.type == "number":
        bounds = sorted({float(a.operand) for a in atoms})
        lo = spec.minimum if spec.minimum is not None else -1e18
        points = sorted(
            {lo, *bounds, *(b + 1e-9 for b in bounds), *(b - 1e-9 for b in bounds if b - 1e-9 >= lo)}
        )
        vecs = []
        for p in points:
            vec = tuple(a.test(p) for a in atoms)
            if vec not in vecs:
                vecs.append(vec)

        def by_test(v: Any) -> int:
            return vecs.index(tuple(a.test(v) for a in atoms))

        return vecs, by_test
    raise ValueError(f"criteria cannot test a {spec.type} fact ({spec.name})")
