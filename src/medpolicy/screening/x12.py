"""A streaming reader of ASC X12 837P and 837I (5010) claim files: claim lines out, malformed input reported.

Why hand-written: a validating parser such as pyx12 walks the implementation guide's loop tree for every
segment and costs about 15 ms a claim (4 hours per million claims). Screening needs only a few segments
(NM1*IL, CLM, HI, DTP, LX, SV1/SV2), so this reader splits the file at the segment terminator, groups the
segments into transactions (ST..SE) and reads those few: tens of microseconds a claim, the file read in
chunks (never whole). pyx12 stays the judge of validity: the test suite checks the fixtures with it, and
``medpolicy screen --validate`` runs it first (``validate``).

What is read from each claim (CLM):

* the line of business, from SBR09 (claim filing indicator code) of the subscriber loop (2000B), through
  the table in ``mappings/line-of-business.yaml`` (``lob.py``): None when the code is not in it;
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

from medpolicy.screening.lob import from_filing_indicator
from medpolicy.screening.records import Emit, Progress, ReadError, Report

__all__ = ["looks_like_x12", "read_x12", "validate"]

CHUNK = 1 << 22
_DX = {"ABK", "ABF"}
_DX9 = {"BK", "BF"}
_PCS = {"BBR", "BBQ"}
#: The segments screening reads (NM1 only for the subscriber, NM1*IL), most frequent first.
_WANTED = ("LX", "SV1", "DTP", "CLM", "HI", "HL", "SBR", "SV2", "NM1")


def _flat(b: bytes) -> bytes:
    """Drop line breaks (files often put one after each segment terminator)."""
    return b.replace(b"\r", b"").replace(b"\n", b"") if b"\n" in b or b"\r" in b else b


def looks_like_x12(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(3) == b"ISA"


def read_x12(path: Path, emit: Emit, report: Report, progress: Progress | None = None) -> int:
    """Read one file: ``emit`` each claim line (a staged row), ``report`` what cannot be read, and
    ``progress`` the bytes read as they are (the whole file once done). Returns the number of claims
    read."""
    name = path.name
    with _Counted(path, progress) as fh:
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
        self.term_s = term.decode("latin-1")
        t, e = re.escape(self.term_s), re.escape(self.elem)
        #: A segment that does not begin with an identifier (2-3 capitals or digits) and the separator.
        self._bad_id = re.compile(f"{t}(?![A-Z0-9]{{2,3}}{e})")
        #: The wanted segments: (identifier, the rest after its element separator).
        ids = "|".join(f"NM1(?={e}IL{e})" if s == "NM1" else s for s in _WANTED)
        self._wanted = re.compile(f"{t}({ids}){e}([^{t}]*)")
        self._lob = from_filing_indicator
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
            self._transaction(data[i + 1 : k], seg_no + 1)
            seg_no += data.count(term, i + 1, k) + 1
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

    def _fail(self, raw: bytes, at: int, ctrl: str, code: str, reason: str) -> None:
        lines = sum(s.startswith(b"LX") for s in raw.split(self.term))
        self.report(ReadError(self.name, f"segment {at} (ST {ctrl})", code, reason, lines=lines))

    def _transaction(self, raw: bytes, at: int) -> None:
        """One transaction (ST..SE, without terminators at its ends), its first segment numbered ``at``.

        Where the time goes, and why it is written this way (about 3x a bare ``split`` of the file into
        segments and elements; bench/screen_bench.py measures it): the transaction is decoded once, its
        checks (SE count, segment identifiers) are one ``count`` and one regex scan in C, and the
        segments screening needs are picked out by one compiled regex (``findall``), so the segments it
        does not need (BHT, PER, N3, N4, REF, the other NM1s...) never reach Python code. The loop
        below then sees about 3 segments a claim line, most frequent first."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            tx = raw.split(self.term)
            bad = next(i for i, s in enumerate(tx) if not _utf8(s))
            self._fail(
                raw, at, "?", "not_utf8", f"segment {at + bad} holds a byte that is not UTF-8 ({exc.reason})"
            )
            return
        elem, comp, term = self.elem, self.comp, self.term_s
        first = text.find(term)
        head = text[: first if first >= 0 else len(text)].split(elem)
        ctrl = head[2] if len(head) > 2 else "?"
        count = text.count(term) + 1
        trailer = text[text.rfind(term) + 1 :].split(elem)
        if len(trailer) < 2 or trailer[1] != str(count):
            said = trailer[1] if len(trailer) > 1 else ""
            self._fail(
                raw, at, ctrl, "segment_count", f"SE01 says {said!r} segments, the transaction has {count}"
            )
            return
        joined = term + text
        bad_seg = self._bad_id.search(joined)
        if bad_seg is not None:
            n = joined.count(term, 0, bad_seg.start() + 1) - 1
            self._fail(
                raw,
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
        lob_of = self._lob
        member: str | None = None
        lob: str | None = None
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
                    dxs = "|".join([dx[p - 1] for p in ptrs if 0 < p <= len(dx)])
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
                        lob,
                    )
                )
            for k, (code, date) in enumerate(pcs):
                emit((cid, -(k + 1), member, code, None, all_dx, date or stmt, None, where, lob))
            self.claims += 1

        # f: the segment's elements after its identifier (f[0] is element 01).
        for sid, rest in self._wanted.findall(text):
            f = rest.split(elem)
            if sid == "LX":
                if claim is not None:
                    if line is not None:
                        lines.append(line)
                    line = [f[0], None, None, None, None, None]
            elif sid == "SV1":
                if line is None:
                    continue
                proc = f[0].split(comp)
                n = len(f)
                line[3] = f[1] if n > 1 else None
                if n > 6 and f[6]:
                    line[4] = [int(p) for p in f[6].split(comp) if p.isdigit()]
                line[1] = proc[1] if len(proc) > 1 else None
                line[2] = (":".join([m for m in proc[2:] if m]) or None) if len(proc) > 2 else None
            elif sid == "DTP":
                if len(f) > 2:
                    if line is not None:
                        if f[0] == "472":
                            line[5] = f[2][:8]
                    elif claim is not None and f[0] == "434":
                        claim[2] = f[2][:8]
            elif sid == "CLM":
                flush()
                lines, line = [], None
                claim = [f[0], [], None, []]
            elif sid == "HI":
                if claim is None:
                    continue
                for el in f:
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
            elif sid == "HL":
                flush()
                claim, line, lines = None, None, []
            elif sid == "NM1":  # NM1*IL only (the regex): the subscriber, our member id
                member = f[8] if len(f) > 8 else None
            elif sid == "SBR":
                # Loop 2000B's SBR (before any CLM): SBR09, the claim filing indicator code, gives the
                # line of business. An SBR after CLM is loop 2320's (another payer's): not ours.
                if claim is None:
                    lob = lob_of(f[8]) if len(f) > 8 else None
            elif sid == "SV2":
                if line is None:
                    continue
                proc = f[1].split(comp) if len(f) > 1 else []
                line[3] = f[2] if len(f) > 2 else None
                line[1] = proc[1] if len(proc) > 1 else None
                line[2] = (":".join([m for m in proc[2:] if m]) or None) if len(proc) > 2 else None
        flush()


class _Counted:
    """The file, its reads reported to ``progress`` (and what was not read, at the end)."""

    def __init__(self, path: Path, progress: Progress | None) -> None:
        self.fh = open(path, "rb")  # noqa: SIM115 -- closed in __exit__
        self.progress, self.done, self.size = progress, 0, path.stat().st_size

    def read(self, n: int) -> bytes:
        b = self.fh.read(n)
        if self.progress is not None and b:
            self.done += len(b)
            self.progress(len(b))
        return b

    def __enter__(self) -> _Counted:
        return self

    def __exit__(self, *exc: object) -> None:
        self.fh.close()
        if self.progress is not None and self.size > self.done:
            self.progress(self.size - self.done)


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
