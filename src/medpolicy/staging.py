"""AJCC 8th edition staging as clinicians and systems write it.

``parse_staging`` reads a T category with its prefixes (``pT4b``, ``ycT3``, ``rpT2``, ``rypT3``) or a
whole TNM string (``cT4N1M0``, ``T4b N2``, ``ypT3 N1a M0``) into a ``Staging``: prefix, T category,
and the N and M categories when given. Pure functions and reference data; no I/O.

Prefixes (AJCC 8): ``c`` clinical, ``p`` pathological, ``y`` after neoadjuvant therapy (``yc``,
``yp``), ``r`` recurrence after a disease-free interval (``r``, ``rc``, ``rp``, with ``y``: ``ryc``,
``ryp``; ``yr...`` is read the same), ``a`` autopsy. The suffix ``(m)`` (or ``(2)``...) marks multiple
primary tumours.

``AJCC8_T`` holds the T categories of the chapters a policy may name for a tumour site; a T category
outside the site's chapter (``T4c`` on a rectal cancer) is an input error. ``t_family`` expands a
category a policy names to its whole family (``T4`` -> T4, T4a, T4b, T4c, T4d).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = [
    "AJCC8_T",
    "CHAPTER_TITLES",
    "T_CATEGORIES",
    "Staging",
    "parse_staging",
    "t_family",
]

#: Every T category the notation admits (any chapter).
T_CATEGORIES = ("TX", "T0", "Tis", *(f"T{n}{s}" for n in "1234" for s in ("", "a", "b", "c", "d")))

#: T categories of AJCC 8th edition chapters, by chapter id.
AJCC8_T: dict[str, tuple[str, ...]] = {
    "colorectal": ("TX", "T0", "Tis", "T1", "T2", "T3", "T4", "T4a", "T4b"),
    "anus": ("TX", "T0", "Tis", "T1", "T2", "T3", "T4"),
    "stomach": ("TX", "T0", "Tis", "T1", "T1a", "T1b", "T2", "T3", "T4", "T4a", "T4b"),
    "pancreas": ("TX", "T0", "Tis", "T1", "T1a", "T1b", "T1c", "T2", "T3", "T4"),
}
CHAPTER_TITLES = {
    "colorectal": "colon and rectum",
    "anus": "anus",
    "stomach": "stomach",
    "pancreas": "exocrine pancreas",
}

_N_PREFIX = r"(?:yc|yp|c|p|y)?"
# Components may be separated by a space ("yp T3", "T4b N2"), never split inside. The subcategory letter is
# lazy: in "cT4cN1" the second c is read as the clinical prefix of N1 (T4 cN1), the one reading a
# colorectal staging can have.
_STAGING_RE = re.compile(
    r"^(?P<pre>a|(?:ry|yr|r|y)?[cp]?)"
    r" ?t(?P<t>x|0|is|[1-4][a-d]??)(?P<mult>\((?:m|\d{1,2})\))?"
    rf"(?: ?{_N_PREFIX}n(?P<n>x|[0-3](?:mi|[a-c])?)(?:\((?:sn|f)\))?)?"
    rf"(?: ?{_N_PREFIX}m(?P<m>x|0|1[a-d]?)(?:\((?:i\+|mol\+)\))?)?$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Staging:
    """One staging. ``prefix`` in canonical order (``r``, then ``y``, then ``c``/``p``; or ``a``);
    ``n`` and ``m`` are ``None`` when the staging gives no N or M."""

    prefix: str
    category: str  # "TX", "T0", "Tis", "T1" ... "T4d"
    multiple: bool = False
    n: str | None = None  # "N0", "N1a", "NX" ...
    m: str | None = None  # "M0", "M1b", "MX" ...

    def __str__(self) -> str:
        return f"{self.prefix}{self.category}{'(m)' if self.multiple else ''}{self.n or ''}{self.m or ''}"

    @property
    def recurrence(self) -> bool:
        """An ``r`` prefix: the tumour is staged as a recurrence."""
        return "r" in self.prefix

    @property
    def metastatic(self) -> bool | None:
        """M1 -> True, M0 -> False, no M (or MX) -> None."""
        if self.m is None or self.m == "MX":
            return None
        return self.m.startswith("M1")


@functools.lru_cache(maxsize=4096)
def parse_staging(raw: str) -> Staging | None:
    """``'pT4b'`` -> Staging('p', 'T4b'); ``'cT4N1M0'`` -> Staging('c', 'T4', n='N1', m='M0');
    ``None`` when it is not an AJCC 8th edition T category or TNM string."""
    m = _STAGING_RE.match(" ".join(raw.split()))
    if not m:
        return None
    pre = m.group("pre").lower()
    prefix = ("r" if "r" in pre else "") + ("y" if "y" in pre else "") + pre.replace("r", "").replace("y", "")
    cat = m.group("t").lower()
    category = "TX" if cat == "x" else ("Tis" if cat == "is" else f"T{cat}")
    n, mm = m.group("n"), m.group("m")
    return Staging(
        prefix,
        category,
        bool(m.group("mult")),
        f"N{n.upper() if n.lower() == 'x' else n.lower()}" if n else None,
        f"M{mm.upper() if mm.lower() == 'x' else mm.lower()}" if mm else None,
    )


def t_family(category: str) -> frozenset[str]:
    """A category and its subcategories: ``T4`` -> {T4, T4a, T4b, T4c, T4d}; ``T4a`` -> {T4a}."""
    if len(category) == 2 and category[1] in "1234":
        return frozenset(c for c in T_CATEGORIES if c.startswith(category))
    return frozenset({category})
