"""Code sets: ICD-10-CM (the real code set, from a table generated from simple-icd-10-cm) and the
shape of CPT/HCPCS procedure codes.

Everything here is pure: the ICD-10-CM table ships inside the package and is read once per process.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

__all__ = [
    "ICD10CM",
    "PCS_CODE_RE",
    "PROCEDURE_CODE_RE",
    "CodeKind",
    "icd10cm",
    "normalize_icd10",
    "normalize_procedure",
]

#: CPT (5 digits, or 4 digits and a letter for category II/III codes) or HCPCS Level II (a letter and 4 digits).
PROCEDURE_CODE_RE = re.compile(r"^(?:\d{5}|\d{4}[FTU]|[A-V]\d{4})$")

#: ICD-10-PCS (inpatient procedures): seven characters, digits and letters other than I and O.
PCS_CODE_RE = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")

CodeKind = str  # "billable" | "header" | "block"


def normalize_icd10(raw: str) -> str:
    """Upper-case, drop spaces and dots, then put the dot back after the category: ``' c20 '`` -> ``C20``,
    ``c49a5`` -> ``C49.A5``. Ranges such as ``C00-C14`` pass through upper-cased."""
    s = "".join(raw.split()).upper()
    if "-" in s:
        return s
    s = s.replace(".", "")
    return s if len(s) <= 3 else f"{s[:3]}.{s[3:]}"


def normalize_procedure(raw: str) -> str:
    """Upper-case and strip a CPT/HCPCS code: ``' 77425 '`` -> ``77425``."""
    return "".join(raw.split()).upper()


#: One letter per row of the compact table: the row's kind.
KIND_LETTERS = {"billable": "b", "header": "h", "block": "k"}
_KIND_OF_LETTER = {letter: kind for kind, letter in KIND_LETTERS.items()}


@dataclass(frozen=True, slots=True)
class ICD10CM:
    """The ICD-10-CM code set: every code (billable or not) and block, with its depth in the tree, in
    the code set's own order (a pre-order walk of its tree: each code comes after its parent, and a
    code's descendants are the rows after it that lie deeper, without a break)."""

    source: str
    kinds: dict[str, CodeKind]
    order: tuple[str, ...]
    #: Each row's depth in the tree (0: a block or category hung under a chapter), one byte per row.
    depths: bytes
    #: The row of each code that has descendants (headers and blocks; a billable code is a leaf).
    branch_rows: dict[str, int]
    #: Every category (a three-character code that is not a block), sorted: ranges are read from it.
    categories: tuple[str, ...] = ()

    @property
    def parents(self) -> tuple[str, ...]:
        """Each row's parent ("" at depth 0), rebuilt from the depths on each call (for checks and
        tools: deciding never needs it)."""
        out: list[str] = []
        path: list[str] = []
        for code, depth in zip(self.order, self.depths, strict=True):
            del path[depth:]
            out.append(path[-1] if path else "")
            path.append(code)
        return tuple(out)

    def kind(self, code: str) -> CodeKind | None:
        return self.kinds.get(code)

    def is_billable(self, code: str) -> bool:
        return self.kinds.get(code) == "billable"

    def descendants(self, code: str) -> list[str]:
        """The code's descendants in the hierarchy: the run of rows after it that lie deeper. Raises
        KeyError for a code that is not in the code set."""
        start = self.branch_rows.get(code)
        if start is None:
            if code in self.kinds:
                return []  # billable: a leaf
            raise KeyError(code)
        depths, order = self.depths, self.order
        top = depths[start]
        end = start + 1
        while end < len(order) and depths[end] > top:
            end += 1
        return list(order[start + 1 : end])

    def billable_under(self, entry: str) -> frozenset[str]:
        """Billable codes covered by a group entry: a code (itself and its descendants), a block, or a
        range of categories such as ``C00-C14`` (every category from C00 to C14 and its descendants).
        Raises KeyError for an entry that is not in the code set."""
        entry = normalize_icd10(entry)
        roots: list[str]
        if "-" in entry:
            # A range, or a block (whose rows need not sit under it): every category from lo to hi.
            lo, hi = entry.split("-", 1)
            if lo not in self.kinds or hi not in self.kinds:
                raise KeyError(entry)
            cats = self.categories
            roots = list(cats[bisect.bisect_left(cats, lo) : bisect.bisect_right(cats, hi)])
        elif entry in self.kinds:
            roots = [entry]
        else:
            raise KeyError(entry)
        return frozenset(
            c for root in roots for c in [root, *self.descendants(root)] if self.kinds[c] == "billable"
        )


@cache
def icd10cm() -> ICD10CM:
    """Load the packaged ICD-10-CM table (its compact form, ``compact.COMPACT``: about 30 ms, once per
    process)."""
    from medpolicy.codes.compact import COMPACT, from_compact

    return from_compact(resources.files("medpolicy.codes").joinpath(COMPACT).read_bytes())
