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

from pathlib import Path
from typing import Any

from medpolicy.screening.records import Emit, ReadError, Report

__all__ = ["looks_like_x12", "read_x12", "validate"]

CHUNK = 1 << 22
_DX = {"ABK", "ABF"}
_DX9 = {"BK", "BF"}
_PCS = {"BBR", "BBQ"}


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
            report(ReadError(name, "byte 0", "not_x12", "the file does not begin with a 106-character ISA segment"))
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

    def run(self, buf: bytes, fh: Any) -> int:
        term, elem = self.term, self.elem_b
        st, se, gs, isa, iea = b"ST" + elem, b"SE" + elem, b"GS" + elem, b"ISA" + elem, b"IEA" + elem
        envelope = (gs, b"GE" + elem)
        offset = 0
        tx: list[bytes] | None = None
        tx_at = 0
        stray, stray_at, stray_lines = 0, 0, 0
        open_isa = False
        while True:
            segs = buf.split(term)
            more = fh.read(CHUNK)
            rest = segs.pop() if more or not buf.endswith(term) else b""
            for raw in segs:
                seg = raw.strip()
                at = offset
                offset += len(raw) + 1
                if not seg:
                    continue
                if tx is not None:
                    tx.append(seg)
                    if seg.startswith(se):
                        self._transaction(tx, tx_at)
                        tx = None
                    continue
                if seg.startswith(st):
                    tx, tx_at = [seg], at
                elif seg.startswith(isa):
                    open_isa = True
                elif seg.startswith(iea):
                    open_isa = False
                elif seg.startswith(envelope):
                    if seg.startswith(gs):
                        parts = seg.split(elem)
                        self.version = parts[8].decode("latin-1") if len(parts) > 8 else ""
                else:
                    if not stray:
                        stray_at = at
                    stray += 1
                    stray_lines += seg.startswith(b"LX")
            if not more:
                rest = rest.strip()
                if rest:
                    if tx is not None:
                        tx.append(rest)
                    else:
                        stray += 1
                break
            buf = rest + more
        if stray:
            self.report(
                ReadError(
                    self.name,
                    f"byte {stray_at}",
                    "wrong_delimiter",
                    f"{stray} segments outside any ST/SE transaction: the element separator is not "
                    f"{self.elem!r} or the envelope is broken",
                    lines=stray_lines,
                )
            )
        if tx is not None:
            self.report(
                ReadError(
                    self.name,
                    f"byte {tx_at}",
                    "truncated_transaction",
                    "the file ends inside a transaction (ST without SE)",
                    lines=sum(s.startswith(b"LX") for s in tx),
                )
            )
        elif open_isa:
            self.report(
                ReadError(self.name, f"byte {offset}", "truncated_envelope", "the interchange has no IEA")
            )
        return self.claims

    def _fail(self, tx: list[bytes], at: int, ctrl: str, code: str, reason: str) -> None:
        lines = sum(s.startswith(b"LX") for s in tx)
        self.report(ReadError(self.name, f"byte {at} (ST {ctrl})", code, reason, lines=lines))

    def _transaction(self, tx: list[bytes], at: int) -> None:
        elem, comp = self.elem, self.comp
        try:
            segs = [s.decode("utf-8") for s in tx]
        except UnicodeDecodeError as e:
            bad = next(i for i, s in enumerate(tx) if not _utf8(s))
            self._fail(tx, at, "?", "not_utf8", f"segment {bad + 1} holds a byte that is not UTF-8 ({e.reason})")
            return
        head = segs[0].split(elem)
        ctrl = head[2] if len(head) > 2 else "?"
        trailer = segs[-1].split(elem)
        if len(trailer) < 2 or trailer[1] != str(len(segs)):
            count = trailer[1] if len(trailer) > 1 else ""
            self._fail(tx, at, ctrl, "segment_count", f"SE01 says {count!r} segments, the transaction has {len(segs)}")
            return
        for i, s in enumerate(segs):
            sid = s.split(elem, 1)[0]
            if not (2 <= len(sid) <= 3 and sid.isalnum() and sid.isupper()):
                self._fail(
                    tx, at, ctrl, "wrong_delimiter",
                    f"segment {i + 1} does not begin with a segment identifier and {elem!r}",
                )
                return
        version = head[3] if len(head) > 3 else self.version
        institutional = "X223" in version
        where = f"byte {at} (ST {ctrl})"
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
                emit((cid, lx, member, code, mods, dxs, date or (stmt if institutional else None), charge, where))
            for k, (code, date) in enumerate(pcs):
                emit((cid, -(k + 1), member, code, None, all_dx, date or stmt, None, where))
            self.claims += 1

        for s in segs[1:-1]:
            e = s.split(elem)
            sid = e[0]
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
                        claim[3].append((parts[1], parts[3][:8] if len(parts) > 3 and parts[2] == "D8" else None))
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
