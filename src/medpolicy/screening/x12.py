"""A streaming reader of ASC X12 837P and 837I (5010) claim files: claim lines out, malformed input reported.

Why hand-written: a validating parser such as pyx12 walks the implementation guide's loop tree for every
segment and costs about 15 ms a claim (4 hours per million claims). Screening needs only a few segments
(NM1*IL, CLM, HI, DTP, LX, SV1/SV2), so this reader splits the file at the segment terminator, groups the
segments into transactions (ST..SE) and reads those few: tens of microseconds a claim, the file read in
chunks (never whole). pyx12 stays the judge of validity: the test suite checks the fixtures with it, and
``medpolicy screen --validate`` runs it first (``validate``).

What is read from each claim (CLM):

* diagnoses from HI: ICD-10-CM qualifiers ABK (principal) and ABF (other); ICD-9 qualifiers (BK, BF) are
  passed on marked ``ICD9:`` so that a governed line with them is reported, not guessed at;
* 837P lines: SV101 (``HC:code:modifiers``), SV102 charge, SV107 diagnosis pointers (1-based into the
  claim's diagnoses; a line without pointers gets all of them), DTP*472 line date;
* 837I lines: SV202 (``HC:code:modifiers``), SV203 charge, DTP*472 line date, falling back to the claim's
  statement period (DTP*434, its first day); every line gets all the claim's diagnoses;
* 837I ICD-10-PCS procedures (HI qualifiers BBR principal, BBQ other) become lines numbered -1, -2, ...
  (claim-level procedures, with the procedure date, else the statement date; no charge of their own).

A transaction that cannot be read (bytes that are not UTF-8, an SE count that does not match, a
segment that does not begin with an identifier and the element separator, no SE before the file ends)
is reported with its byte position and skipped; the other transactions go on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medpolicy.screening.records import Emit, ReadError, Report

__all__ = ["looks_like_x12", "read_x12", "validate"]

CHUNK = 1 << 22
_DX = {"ABK", "ABF"}
_DX9 = {"BK", "BF"}
_PCS = {"BBR", "BBQ"}
_WANTED = frozenset({"LX", "SV1", "SV2", "DTP", "HI", "CLM", "NM1", "HL"})


def _flat(b: bytes) -> bytes:
    """Drop line breaks (files often put one after each segment terminator)."""
    return b.replace(b"\r", b"").replace(b"\n", b"") if b"\n" in b or b"\r" in b else b


def segs_before(segs: list[str], offset: int) -> int:
    """The 0-based number of the segment at ``offset`` of the joined text (with a leading terminator)."""
    n, at = 0, 1
    for s in segs:
        if at > offset:
            return n
        at += len(s) + 1
        n += 1
    return n


def looks_like_x12(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(3) == b"ISA"


def read_x12(path: Path, emit: Emit, report: Report) -> int:
    """Read one file: ``emit`` each claim line (a staged row), ``report`` what cannot be read. Returns the
    number of claims read."""
    name = path.name
    with open(path, "rb") as fh:
        head = fh.read(106)
        if len(head) < 106 or not head.startswith(b"ISA"):
            report(
                ReadError(
                    name, "byte 0", "not_x12", "the file does not begin with a 106-character ISA segment"
                )
            )
            return 0
        elem, comp, term = head[3:4], head[104:105], head[105:106]
        if head[:105].count(elem) != 16 or elem.isalnum() or term.isalnum() or len({elem, comp, term}) < 3:
            report(
                ReadError(
                    name,
                    "byte 0",
                    "wrong_delimiter",
                    "the ISA segment does not have 16 elements with distinct element, component and segment "
                    "separators",
                )
            )
            return 0
        return _Reader(name, elem, comp, term, emit, report).run(head + fh.read(CHUNK), fh)


class _Reader:
    def __init__(self, name: str, elem: bytes, comp: bytes, term: bytes, emit: Emit, report: Report) -> None:
        self.name, self.emit, self.report = name, emit, report
        self.elem_b, self.term = elem, term
        self.elem, self.comp = elem.decode("latin-1"), comp.decode("latin-1")
        self.claims = 0
        self.version = ""
        t = re.escape(term.decode("latin-1"))
        #: A segment that does not begin with an identifier (2-3 capitals or digits) and the separator.
        self._bad_id = re.compile(f"{t}(?![A-Z0-9]{{2,3}}{re.escape(self.elem)})")
        self._stray = self._stray_at = self._stray_lines = 0
        self._open_isa = False

    def run(self, buf: bytes, fh: Any) -> int:
        """Find each transaction (ST..SE) with ``bytes.find`` and hand it over whole: the per-segment
        work happens only inside ``_transaction``. Line breaks between segments are dropped first (no
        X12 data element may hold one). Positions are segment numbers, counted from 1."""
        term, elem = self.term, self.elem_b
        st_at, se_at = term + b"ST" + elem, term + b"SE" + elem
        data, pos, seg_no = _flat(buf), 0, 0
        self._stray, self._stray_at, self._stray_lines, self._open_isa = 0, 0, 0, False
        more = True
        while True:
            i = data.find(st_at, pos)
            j = data.find(se_at, i + 1) if i >= 0 else -1
            k = data.find(term, j + 1) if j >= 0 else -1
            if k < 0 and more:  # the next transaction is not whole in the buffer: read on
                chunk = fh.read(CHUNK)
                more = bool(chunk)
                data, pos = data[pos:] + _flat(chunk), 0
                continue
            if k < 0:
                break
            seg_no = self._envelope(data[pos : i + 1], seg_no)
            segs = data[i + 1 : k].split(term)
            self._transaction(segs, seg_no + 1)
            seg_no += len(segs)
            pos = k  # the SE's terminator may be the one before the next ST
        if i >= 0:  # ST without SE at the end of the file
            seg_no = self._envelope(data[pos : i + 1], seg_no)
            tx = data[i + 1 :].split(term)
            self.report(
                ReadError(
                    self.name,
                    f"segment {seg_no + 1}",
                    "truncated_transaction",
                    "the file ends inside a transaction (ST without SE)",
                    lines=sum(s.startswith(b"LX") for s in tx),
                )
            )
        else:
            seg_no = self._envelope(data[pos:], seg_no)
            if self._open_isa:
                self.report(
                    ReadError(
                        self.name, f"segment {seg_no}", "truncated_envelope", "the interchange has no IEA"
                    )
                )
        if self._stray:
            self.report(
                ReadError(
                    self.name,
                    f"segment {self._stray_at}",
                    "wrong_delimiter",
                    f"{self._stray} segments outside any ST/SE transaction: the element separator is not "
                    f"{self.elem!r} or the envelope is broken",
                    lines=self._stray_lines,
                )
            )
        return self.claims

    def _envelope(self, gap: bytes, seg_no: int) -> int:
        """The segments between transactions: ISA/IEA/GS/GE, anything else is out of place."""
        elem = self.elem_b
        for seg in gap.split(self.term):
            seg = seg.strip()
            if not seg:
                continue
            seg_no += 1
            sid = seg.split(elem, 1)[0]
            if sid == b"ISA":
                self._open_isa = True
            elif sid == b"IEA":
                self._open_isa = False
            elif sid == b"GS":
                parts = seg.split(elem)
                self.version = parts[8].decode("latin-1") if len(parts) > 8 else ""
            elif sid != b"GE":
                if not self._stray:
                    self._stray_at = seg_no
                self._stray += 1
                self._stray_lines += seg.startswith(b"LX")
        return seg_no

    def _fail(self, tx: list[bytes], at: int, ctrl: str, code: str, reason: str) -> None:
        lines = sum(s.startswith(b"LX") for s in tx)
        self.report(ReadError(self.name, f"segment {at} (ST {ctrl})", code, reason, lines=lines))

    def _transaction(self, tx: list[bytes], at: int) -> None:
        elem, comp = self.elem, self.comp
        try:
            segs = self.term.join(tx).decode("utf-8").split(self.term.decode("latin-1"))
        except UnicodeDecodeError as exc:
            bad = next(i for i, s in enumerate(tx) if not _utf8(s))
            self._fail(
                tx, at, "?", "not_utf8", f"segment {at + bad} holds a byte that is not UTF-8 ({exc.reason})"
            )
            return
        head = segs[0].split(elem)
        ctrl = head[2] if len(head) > 2 else "?"
        trailer = segs[-1].split(elem)
        if len(trailer) < 2 or trailer[1] != str(len(segs)):
            count = trailer[1] if len(trailer) > 1 else ""
            self._fail(
                tx,
                at,
                ctrl,
                "segment_count",
                f"SE01 says {count!r} segments, the transaction has {len(segs)}",
            )
            return
        bad_seg = self._bad_id.search(self.term.decode("latin-1") + self.term.decode("latin-1").join(segs))
        if bad_seg is not None:
            n = segs_before(segs, bad_seg.start())
            self._fail(
                tx,
                at,
                ctrl,
                "wrong_delimiter",
                f"segment {at + n} does not begin with a segment identifier and {elem!r}",
            )
            return
        version = head[3] if len(head) > 3 else self.version
        institutional = "X223" in version
        where = f"segment {at} (ST {ctrl})"
        emit = self.emit
        member: str | None = None
        claim: list[Any] | None = None  # [id, diagnoses, statement date, pcs codes]
        line: list[Any] | None = None  # [lx, code, modifiers, charge, pointers, date]
        lines: list[list[Any]] = []

        def flush() -> None:
            if claim is None:
                return
            if line is not None:
                lines.append(line)
            cid, dx, stmt, pcs = claim
            all_dx = "|".join(dx)
            for lx, code, mods, charge, ptrs, date in lines:
                if ptrs and not institutional:
                    picked = [dx[p - 1] for p in ptrs if 0 < p <= len(dx)]
                    dxs = "|".join(picked)
                else:
                    dxs = all_dx
                emit(
                    (
                        cid,
                        lx,
                        member,
                        code,
                        mods,
                        dxs,
                        date or (stmt if institutional else None),
                        charge,
                        where,
                    )
                )
            for k, (code, date) in enumerate(pcs):
                emit((cid, -(k + 1), member, code, None, all_dx, date or stmt, None, where))
            self.claims += 1

        wanted = _WANTED
        for s in segs[1:-1]:
            sid = s[:3].rstrip(elem)
            if sid not in wanted:
                continue
            e = s.split(elem)
            if sid == "LX":
                if claim is not None:
                    if line is not None:
                        lines.append(line)
                    line = [e[1], None, None, None, None, None]
            elif sid == "SV1" or sid == "SV2":
                if line is None:
                    continue
                if sid == "SV1":
                    proc = e[1].split(comp) if len(e) > 1 else []
                    line[3] = e[2] if len(e) > 2 else None
                    if len(e) > 7 and e[7]:
                        line[4] = [int(p) for p in e[7].split(comp) if p.isdigit()]
                else:
                    proc = e[2].split(comp) if len(e) > 2 else []
                    line[3] = e[3] if len(e) > 3 else None
                line[1] = proc[1] if len(proc) > 1 else None
                line[2] = ":".join(m for m in proc[2:] if m) or None
            elif sid == "DTP":
                if len(e) > 3:
                    if line is not None:
                        if e[1] == "472":
                            line[5] = e[3][:8]
                    elif claim is not None and e[1] == "434":
                        claim[2] = e[3][:8]
            elif sid == "HI":
                if claim is None:
                    continue
                for el in e[1:]:
                    parts = el.split(comp)
                    if len(parts) < 2:
                        continue
                    q = parts[0]
                    if q in _DX:
                        claim[1].append(parts[1])
                    elif q in _DX9:
                        claim[1].append("ICD9:" + parts[1])
                    elif q in _PCS:
                        claim[3].append(
                            (parts[1], parts[3][:8] if len(parts) > 3 and parts[2] == "D8" else None)
                        )
            elif sid == "CLM":
                flush()
                lines, line = [], None
                claim = [e[1], [], None, []]
            elif sid == "NM1":
                if len(e) > 1 and e[1] == "IL":
                    member = e[9] if len(e) > 9 else None
            elif sid == "HL":
                flush()
                claim, line, lines = None, None, []
        flush()


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def validate(path: Path) -> list[str]:
    """Check a file against the X12 implementation guide with pyx12 (the ``x12`` extra): its error
    messages, empty when valid."""
    import io

    try:
        import pyx12.params
        import pyx12.x12n_document
    except ImportError as e:  # pragma: no cover - depends on the installed extras
        raise RuntimeError("--validate needs pyx12: pip install 'medpolicy[x12]'") from e
    params = pyx12.params.params()
    out: list[str] = []
    # pyx12 ships the maps of the base 5010 guides (837P X222A1, 837I X223A2); the errata versions the
    # files declare (X222A2, X223A3) change a few code lists only, so they are checked against those maps.
    text = path.read_text(encoding="ascii", errors="replace")
    text = text.replace("005010X222A2", "005010X222A1").replace("005010X223A3", "005010X223A2")
    ok = pyx12.x12n_document.x12n_document(params, io.StringIO(text), None, None)
    if not ok:
        out.append(f"{path.name}: not valid against the X12 5010 implementation guide (pyx12)")
    return out
