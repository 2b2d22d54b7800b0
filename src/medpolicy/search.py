"""Exact outcome search for cases with many unknown facts (pure; used by ``medpolicy.engine``).

The engine enumerates every filling of a case's unknown facts when there are few. A policy with many
indications (a breast branch alone reads a dozen facts) can leave millions of fillings, so above a
bound the engine searches instead, with the same answers:

* ``possible``: branch on an unknown fact only while the decision list is still open under Kleene
  logic; a partial filling whose outcome is already settled is a leaf for all its completions.
* ``can_change(f)``: is there a filling of the *other* unknown facts under which two values of ``f``
  give different outcomes? The same search, run on all values of ``f`` side by side: a branch where
  every value's outcome is settled and equal is pruned; settled and different answers yes.

``settle(assignment)`` gives the settled outcome of a partial assignment, or ``None`` and the index of
an unknown fact worth branching on next. A complete assignment is always settled.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["can_change", "possible"]

T = TypeVar("T")
#: (settled outcome or None, a fact to branch on when not settled)
Settle = Callable[[dict[int, int]], "tuple[T | None, int | None]"]


def possible(
    unknown: Sequence[int],
    sizes: dict[int, int],
    settle: Callable[[dict[int, int]], tuple[T | None, int | None]],
) -> set[T]:
    """Every outcome some filling of ``unknown`` (fact index -> number of classes) can give."""
    found: set[T] = set()
    free = set(unknown)

    def walk(assign: dict[int, int]) -> None:
        o, hint = settle(assign)
        if o is not None:
            found.add(o)
            return
        f = hint if hint is not None and hint in free and hint not in assign else _next(unknown, assign)
        for c in range(sizes[f]):
            assign[f] = c
            walk(assign)
            del assign[f]

    walk({})
    return found


def can_change(
    fact: int,
    unknown: Sequence[int],
    sizes: dict[int, int],
    settle: Callable[[dict[int, int]], tuple[T | None, int | None]],
) -> bool:
    """Whether some filling of the other unknown facts lets ``fact``'s value change the outcome."""
    others = [f for f in unknown if f != fact]
    free = set(others)

    def walk(assign: dict[int, int]) -> bool:
        settled: list[T] = []
        hint: int | None = None
        for c in range(sizes[fact]):
            assign[fact] = c
            o, h = settle(assign)
            if o is None:
                if hint is None and h is not None and h in free and h not in assign:
                    hint = h
            else:
                settled.append(o)
        del assign[fact]
        if len(set(settled)) > 1:
            return True
        if len(settled) == sizes[fact]:
            return False
        f = hint if hint is not None else _next(others, assign)
        for c in range(sizes[f]):
            assign[f] = c
            if walk(assign):
                del assign[f]
                return True
            del assign[f]
        return False

    return walk({})


def _next(order: Sequence[int], assign: dict[int, int]) -> int:
    return next(f for f in order if f not in assign)
