"""``extract(text)``: a report's text in, proposed case facts out. Pure: no I/O, no clock, no network."""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass

from medpolicy.extract import rules as rx
from medpolicy.extract.context import Assertion, BuiltinContext, ContextEngine, Target, default_engine
from medpolicy.extract.model import Evidence, Extraction
from medpolicy.extract.sections import Sentence, blank_heading_colons, sections, sentences

__all__ = ["extract"]

POLICY_SITE = {
    "rectum": "rectum", "colon": "colon", "anus": "anus", "rectosigmoid": None, "stomach": "stomach",
    "pancreas": "pancreas", "retroperitoneal_sarcoma": "retroperitoneal_sarcoma",
    "soft_tissue_sarcoma": "soft_tissue_sarcoma", "breast": "breast", "gynecologic": "gynecologic",
    "kidney": "kidney",
}  # fmt: skip
_NEOADJUVANT = re.compile(
    r"(?i)neoadjuvant|chemoradiation|chemoradiotherapy|treatment effect|tumou?r regression|post-?treatment|"
    r"after (?:chemo|radiation)|total neoadjuvant|short-course|long-course"
)
_PATHOLOGY = re.compile(r"(?i)\b(?:surgical pathology|pathology report|final diagnosis|diagnosis|specimen)\b")
#: An operative note: a surgeon's "adherent to the bladder" is not a pathologist's T4b (adhesion may be
#: inflammatory), so narrative T categories are read from pathology reports only.
_OPERATIVE = re.compile(
    r"(?i)operative (?:report|note)|description of (?:the )?procedure|estimated blood loss|\bEBL\b"
)
_IMAGING = re.compile(r"(?i)^\W*(?:MRI|MR|CT|PET|ultrasound|radiology)\b.{0,80}$", re.MULTILINE)


@dataclass(slots=True)
class _Hit:
    label: str
    start: int  # absolute
    end: int
    sent: Sentence
    judge: _Judge | None = None
    judged: Assertion | None = None

    @property
    def assertion(self) -> Assertion:
        """Judged on first use, with the other candidates of its sentence: most sentences never need
        ConText (the facts are settled before their candidates are asked about)."""
        if self.judged is None:
            if self.judge is None:
                return Assertion()
            self.judge.run(self.sent.start, self.label in _STRUCTURED)
        assert self.judged is not None
        return self.judged


#: Candidates on structured lines (T categories, margin lines): the builtin rules judge them (a
#: hypothetical "if the margin is positive", a "would require pT4a"), which keeps medspaCy's matcher for
#: the sentences that need it (recurrence, metastasis, malignancy, invasion). Measured: docs/extraction.md.
_STRUCTURED = frozenset({"T", "MARGIN"})
_REACH = 90  # characters either side of the candidates that ConText sees (about 12 words)
_BUILTIN = BuiltinContext()


class _Judge:
    def __init__(self, norm: str, engine: ContextEngine) -> None:
        self.norm = norm
        self.engine = engine
        self.by_sentence: dict[int, list[_Hit]] = {}

    def add(self, h: _Hit) -> None:
        h.judge = self
        self.by_sentence.setdefault(h.sent.start, []).append(h)

    def run(self, key: int, structured: bool) -> None:
        """Judge the candidates of one sentence: those on structured lines with the builtin rules, the
        others with the engine (each group only when one of its candidates is asked about)."""
        hs = self.by_sentence[key]
        group = [h for h in hs if (h.label in _STRUCTURED) == structured]
        engine = _BUILTIN if structured else self.engine
        text = blank_heading_colons(self.norm[hs[0].sent.start : hs[0].sent.end])
        # ConText's reach, like NegEx's, is a few words: a window around the candidates, cut at white
        # space, instead of a long run-on "sentence" of a synoptic block.
        lo = min(h.start for h in group) - key
        hi = max(h.end for h in group) - key
        a = max(0, text.rfind(" ", 0, max(0, lo - _REACH)) + 1) if lo > _REACH else 0
        b = text.find(" ", hi + _REACH)
        b = len(text) if b < 0 else b
        targets = [Target(h.label, h.start - key - a, h.end - key - a) for h in group]
        for h, judged in zip(group, engine.assess([(text[a:b], targets)])[0], strict=True):
            h.judged = judged

    def in_sentence(self, key: int, label: str) -> list[_Hit]:
        return [h for h in self.by_sentence.get(key, ()) if h.label == label]


def extract(
    text: str,
    *,
    engine: ContextEngine | None = None,
    positive_margin_max_mm: float = 1.0,
    close_margin_max_mm: float = 2.0,
) -> Extraction:
    """Propose the IORT case facts a report states. A fact the report does not state is ``None``.

    Margin status bands follow the policy's defaults (at most 1 mm positive, at most 2 mm close); pass the
    plan's parameters to use others."""
    eng = engine or default_engine()
    result = Extraction(engine=eng.name)
    if not text.strip():
        result.warn("empty_document", "the document has no text")
        return result
    norm = rx.ocr_normalize(text)
    secs = sections(norm)
    sents = sentences(norm, secs)
    locate = _Locator(sents)
    hits = _find(norm, rx.ascii_lower(norm), locate)
    judge = _judge(norm, hits, eng)
    by_label: dict[str, list[_Hit]] = {}
    for h in hits:
        by_label.setdefault(h.label, []).append(h)
    stagings = _t_stage(text, norm, by_label, result)
    _metastatic(text, norm, by_label, result)
    _recurrent(text, norm, by_label, stagings, result)
    _margins(text, norm, sents, by_label, result, positive_margin_max_mm, close_margin_max_mm)
    _site(text, norm, locate, by_label, result, judge)
    return result


def _ev(text: str, h: _Hit | tuple[int, int, Sentence]) -> Evidence:
    start, end, sent = (h.start, h.end, h.sent) if isinstance(h, _Hit) else h
    return Evidence(start, end, text[start:end], sent.section.title)


# --- finding candidates and judging them in context ---


class _Locator:
    """The sentence a position falls in (patterns run once over the whole text, not per sentence)."""

    def __init__(self, sents: Sequence[Sentence]) -> None:
        self.sents = sents
        self.starts = [s.start for s in sents]

    def __call__(self, start: int, end: int) -> Sentence | None:
        i = bisect.bisect_right(self.starts, start) - 1
        if i < 0:
            return None
        s = self.sents[i]
        return s if end <= s.end else None


def _find(norm: str, low: str, locate: _Locator) -> list[_Hit]:
    hits: list[_Hit] = []
    for m in rx.T_STAGE.finditer(norm):
        got = rx.staging_of(norm, m)
        s = locate(got[2], m.end()) if got is not None else None
        if got is not None and s is not None:
            hits.append(_Hit("T", got[2], m.end(), s))
    for m in rx.M_STAGE.finditer(norm):
        s = locate(m.start(), m.end())
        if s is not None and rx.is_m_stage(norm, m):
            hits.append(_Hit("M", m.start(), m.end(), s))
    scans: list[tuple[str, re.Pattern[str], bool]] = [
        ("RECUR", rx.RECURRENCE, True), ("MET", rx.METASTASIS, True), ("MALIG", rx.MALIGNANCY, False),
        ("MARGIN", rx.MARGIN_WORD, True), *(("NARR_" + cat, p, True) for cat, p in rx.T_NARRATIVE),
    ]  # fmt: skip
    for label, pattern, bounded in scans:
        for m in pattern.finditer(low):
            if bounded and not rx.at_word_start(low, m.start()):
                continue
            s = locate(m.start(), m.end())
            if s is not None:
                hits.append(_Hit(label, m.start(), m.end(), s))
    return hits


def _judge(norm: str, hits: list[_Hit], eng: ContextEngine) -> _Judge:
    judge = _Judge(norm, eng)
    for h in hits:
        if h.label != "M":
            judge.add(h)
    return judge


def _findings(hs: Sequence[_Hit]) -> list[_Hit]:
    return [h for h in hs if h.sent.section.kind == "finding"]


# --- T category ---


def _t_stage(text: str, norm: str, by: dict[str, list[_Hit]], res: Extraction) -> list[str]:
    found: list[tuple[int, int, str, _Hit]] = []
    history: list[str] = []
    for h in by.get("T", []):
        m = rx.T_STAGE.search(norm, h.start, h.end)
        got = rx.staging_of(norm, m) if m else None
        if got is None:
            continue
        pre, cat, _ = got
        if cat in ("T3a", "T3b", "T3c", "T3d", "T1a", "T1b", "T1c", "T2a", "T2b", "T2c"):
            res.warn(
                "substage_dropped", f"{pre}{cat} is not an AJCC 8 colorectal category; read as {cat[:2]}"
            )
            cat = cat[:2]
        value = pre + cat
        if h.sent.section.kind == "history":
            history.append(value)
            continue
        if h.assertion.hypothetical or h.assertion.negated:
            continue
        line_start = norm.rfind("\n", 0, h.start) + 1
        line = norm[line_start : h.start].lower()
        rank = 0 if ("primary tumor" in line or "(pt)" in line or "t category" in line) else 1
        found.append((rank, h.start, value, h))
    if not found:
        narrative = [
            h for k in ("NARR_T4b", "NARR_T4a", "NARR_T3", "NARR_T2", "NARR_T1") for h in by.get(k, [])
        ]
        narrative = [h for h in _findings(narrative) if h.assertion.affirmed]
        if narrative and _PATHOLOGY.search(norm) and not _OPERATIVE.search(norm):
            h = narrative[0]
            pre = "yp" if _NEOADJUVANT.search(norm) else "p"
            value = pre + h.label.removeprefix("NARR_")
            res.set("t_stage", [value], [_ev(text, h)], 0.75)
            res.warn(
                "t_stage_from_narrative",
                f"no T category is written; {value} is read from the described extent of the tumour",
                "t_stage",
            )
            return [value]
        if history:
            res.warn(
                "t_stage_in_history",
                f"T categories appear only in a history section ({', '.join(dict.fromkeys(history))}); "
                "not taken as a finding of this report",
                "t_stage",
            )
        return []
    found.sort(key=lambda f: (f[0], f[1]))
    values: list[str] = []
    evidence: list[Evidence] = []
    for _, _, value, h in found:
        if value not in values:
            values.append(value)
        evidence.append(_ev(text, h))
    cats = {v.lstrip("ycpra") for v in values}
    conf = 0.97 if len(cats) == 1 else 0.7
    if len(cats) > 1:
        res.warn("t_stage_several", f"several T categories are stated: {', '.join(values)}", "t_stage")
    res.set("t_stage", values, evidence, conf)
    return values


# --- distant metastasis ---


def _context_window(norm: str, h: _Hit) -> str:
    """The sentence, with the specimen line before it when that line ends in a colon
    ("Liver, segment 7, core biopsy:")."""
    head_end = h.sent.start
    prev_start = norm.rfind("\n", 0, max(0, head_end - 1))
    prev_start = norm.rfind("\n", 0, prev_start) + 1 if prev_start >= 0 else 0
    prev = norm[prev_start:head_end].strip()
    body = norm[h.sent.start : h.sent.end]
    return (prev + "\n" + body) if prev.endswith(":") else body


def _metastatic(text: str, norm: str, by: dict[str, list[_Hit]], res: Extraction) -> None:
    pos: list[_Hit] = []
    neg: list[_Hit] = []
    unc: list[_Hit] = []
    for h in _findings(by.get("M", [])):
        cat = norm[h.start : h.end].lstrip("yYpPcC")[1:]
        (pos if cat.startswith("1") else neg).append(h)
    for h in by.get("MET", []):
        line_start = norm.rfind("\n", 0, h.start) + 1
        if rx.M_LINE.search(norm[line_start : h.end + 8]):
            continue  # the CAP pM line: its category (above) says it, "not applicable" is not a finding
        window = _context_window(norm, h)
        local = norm[max(h.sent.start, h.start - 60) : min(h.sent.end, h.end + 80)]
        if rx.NODE_WORDS.search(local) and not rx.DISTANT_WORDS.search(local):
            continue  # nodal metastases are regional (N), not distant (M)
        if not rx.DISTANT_WORDS.search(window) and not re.search(r"(?i)metastatic disease|metastases", local):
            continue
        a = h.assertion
        if a.negated:
            neg.append(h)
        elif a.uncertain:
            unc.append(h)
        elif a.hypothetical:
            continue
        elif h.sent.section.kind == "finding":
            pos.append(h)
    if pos:
        res.set("metastatic", True, [_ev(text, h) for h in pos[:3]], 0.9)
    elif unc:
        res.warn(
            "metastasis_uncertain",
            "the report says distant metastasis cannot be excluded or is uncertain; left unknown",
            "metastatic",
        )
    elif neg:
        res.set("metastatic", False, [_ev(text, h) for h in neg[:3]], 0.85)


# --- recurrence ---


def _recurrent(text: str, norm: str, by: dict[str, list[_Hit]], stagings: list[str], res: Extraction) -> None:
    local: list[_Hit] = []
    distant: list[_Hit] = []
    negated: list[_Hit] = []
    for h in by.get("RECUR", []):
        after = norm[h.end : min(h.sent.end, h.end + 40)]
        if rx.NOT_CANCER.match(after):
            continue
        window = norm[max(h.sent.start, h.start - 40) : min(h.sent.end, h.end + 50)]
        if not rx.LOCAL_RECURRENCE.search(window) and not rx.MALIGNANCY.search(
            norm[h.sent.start : h.sent.end].lower()
        ):
            continue
        a = h.assertion
        if a.hypothetical or a.uncertain:
            continue
        if a.negated:
            negated.append(h)
            continue
        if h.sent.section.kind != "finding":
            continue
        is_distant = rx.DISTANT_RECURRENCE.search(window) and not re.search(
            r"(?i)local|pelvi|presacral|anastomo|sacr|sidewall", window
        )
        (distant if is_distant else local).append(h)
    r_staged = [s for s in stagings if s.startswith("r")]
    if local or r_staged:
        ev = [_ev(text, h) for h in local[:3]]
        res.set("recurrent", True, ev, 0.9 if local else 0.85)
        return
    if distant:
        res.warn(
            "distant_relapse_only",
            "the report describes a distant relapse only, which is not a locoregional recurrence",
            "recurrent",
        )
    if negated:
        res.set("recurrent", False, [_ev(text, h) for h in negated[:2]], 0.8)
    elif stagings:
        ev = res.evidence.get("t_stage", [])[:1]
        res.set("recurrent", False, ev, 0.75)


# --- margins ---


def _margins(
    text: str,
    norm: str,
    sents: Sequence[Sentence],
    by: dict[str, list[_Hit]],
    res: Extraction,
    pos_max: float,
    close_max: float,
) -> None:
    if _is_imaging(norm):
        return
    statuses: list[tuple[str, _Hit]] = []
    distances: list[tuple[float, bool, tuple[int, int, Sentence]]] = []  # mm, radial?, span
    seen: set[int] = set()
    for h in _findings(by.get("MARGIN", [])):
        if h.sent.start in seen or (not h.assertion.affirmed and not h.assertion.negated):
            continue
        seen.add(h.sent.start)
        s = h.sent
        chunk = norm[s.start : s.end]
        if rx.IMAGING_MARGIN.search(chunk) or rx.DISTANT_SPECIMEN.search(_context_window(norm, h)):
            continue
        if h.assertion.hypothetical:
            continue
        if rx.MARGIN_CLOSE.search(chunk) and not rx.DISTANCE.search(chunk):
            statuses.append(("close", h))
        elif rx.MARGIN_NEGATIVE.search(chunk):
            statuses.append(("negative", h))
        elif rx.MARGIN_POSITIVE.search(chunk):
            statuses.append(("positive", h))
        for m in rx.DISTANCE.finditer(chunk):
            tail = chunk[m.end() : m.end() + 30].lower()
            head = chunk[max(0, m.start() - 30) : m.start()].lower()
            if "verge" in tail or re.search(r"size|measur|dimension|length|diameter|depth", head):
                continue
            value = float(m.group(1).replace(",", "."))
            mm = value * 10 if m.group(2).lower() == "cm" else value
            kinds = [k.group(1).lower() for k in rx.MARGIN_KIND.finditer(chunk[: m.start()])]
            kinds += [k.group(1).lower() for k in rx.MARGIN_KIND.finditer(chunk[m.end() :])][:1]
            radial = bool(kinds) and kinds[-1] in rx.RADIAL_KINDS
            distances.append((mm, radial, (s.start + m.start(), s.start + m.end(), s)))
    r_classes: list[tuple[str, _Hit]] = []
    for s in sents:
        if s.section.kind != "finding":
            continue
        chunk = norm[s.start : s.end]
        for m in rx.R_CLASS.finditer(chunk):
            r_classes.append((m.group(1), _Hit("R", s.start + m.start(), s.start + m.end(), s)))
        for m in rx.GROSS_RESIDUAL.finditer(chunk):
            r_classes.append(("2", _Hit("R", s.start + m.start(), s.start + m.end(), s)))
    chosen = [d for d in distances if d[1]] or distances
    closest = min(chosen, key=lambda d: d[0]) if chosen else None
    status: str | None = None
    evidence: list[Evidence] = []
    conf = 0.9
    if any(r == "2" for r, _ in r_classes):
        status = "gross_residual"
        evidence = [_ev(text, h) for r, h in r_classes if r == "2"][:2]
    elif any(st == "positive" for st, _ in statuses):
        status = "positive"
        evidence = [_ev(text, (h.sent.start, h.sent.end, h.sent)) for st, h in statuses if st == "positive"][
            :2
        ]
        if closest is not None and closest[0] > pos_max:
            res.warn(
                "margin_distance_conflict",
                f"a margin is reported involved, and the closest distance given is {closest[0]:g} mm "
                "(probably another margin); the distance is not taken",
                "margin_distance_mm",
            )
            closest = None
    elif closest is not None:
        mm = closest[0]
        status = "positive" if mm <= pos_max else "close" if mm <= close_max else "negative"
        evidence = [_ev(text, closest[2])]
    elif any(st == "close" for st, _ in statuses):
        status = "close"
        evidence = [_ev(text, (h.sent.start, h.sent.end, h.sent)) for st, h in statuses if st == "close"][:1]
        conf = 0.8
    elif any(r == "1" for r, _ in r_classes):
        status = "positive"
        evidence = [_ev(text, h) for r, h in r_classes if r == "1"][:1]
    elif statuses or any(r == "0" for r, _ in r_classes):
        status = "negative"
        evidence = [_ev(text, (h.sent.start, h.sent.end, h.sent)) for st, h in statuses if st == "negative"][
            :2
        ]
        evidence += [_ev(text, h) for r, h in r_classes if r == "0"][:1]
        conf = 0.85
    if status is not None:
        res.set("margin_status", status, evidence, conf)
    if closest is not None:
        res.set("margin_distance_mm", round(closest[0], 2), [_ev(text, closest[2])], 0.9)


def _is_imaging(norm: str) -> bool:
    head = norm[:300]
    return bool(_IMAGING.search(head)) and "specimen" not in norm.lower()


# --- tumour site ---


def _site(
    text: str,
    norm: str,
    locate: _Locator,
    by: dict[str, list[_Hit]],
    res: Extraction,
    judge: _Judge,
) -> None:
    def affirmed(h: _Hit) -> bool:
        return h.assertion.affirmed and not h.assertion.historical

    staged = bool(res.facts.get("t_stage"))
    mentions: list[tuple[float | None, str, tuple[int, int, Sentence]]] = []
    low = rx.ascii_lower(norm)
    for site, pattern in rx.SITE_PATTERNS:
        for m in pattern.finditer(low):
            if not rx.at_word_start(low, m.start()):
                continue
            s = locate(m.start(), m.end())
            if s is None or (site == "anus" and "verge" in norm[m.end() : m.end() + 8].lower()):
                continue
            if site == "colon" and norm[max(0, m.start() - 6) : m.start()].lower().endswith(
                ("recto", "recto-")
            ):
                continue  # "rectosigmoid" is its own site
            line_start = max(norm.rfind("\n", 0, m.start()) + 1, s.start)
            label = rx.SITE_LABEL.search(norm, line_start, m.start())
            base = None
            if label:
                base = 3.0 if norm[label.end() : m.start()].strip() == "" else 2.5
            mentions.append((base, site, (m.start(), m.end(), s)))
    labelled = any(b is not None and b >= 0 and sp[2].section.kind == "finding" for b, _, sp in mentions)
    candidates: list[tuple[float, int, str, tuple[int, int, Sentence]]] = []
    for base, site, span in mentions:
        s = span[2]
        weight = base
        if weight is None:
            if labelled and s.section.kind == "finding":
                continue  # a "Tumor Site:" line outranks every other mention
            if any(affirmed(h) for h in judge.in_sentence(s.start, "MALIG")):
                weight = 2.0
            elif norm[s.start : s.end].rstrip().endswith(":") and span[0] - s.start < 3:
                weight = 1.5
            else:
                weight = 1.0
        if s.section.kind == "history":
            weight -= 10
        candidates.append((weight, span[0], site, span))
    if not candidates:
        return
    top = max(c[0] for c in candidates)
    malig = by.get("MALIG", [])
    found_malig = any(affirmed(h) for h in _findings(malig))
    if top < 0:  # only a history section names a site
        negated = any(h.assertion.negated for h in _findings(malig))
        if found_malig or negated or not any(affirmed(h) for h in malig):
            return
        conf = 0.6
        res.warn("site_from_history", "the site is read from a history section", "tumor_site")
    else:
        if not (found_malig or staged):
            return
        conf = 0.95 if top >= 2.5 else 0.85 if top >= 2 else 0.7
    best = sorted((c for c in candidates if c[0] == top), key=lambda c: c[1])
    sites = [c[2] for c in best]
    if "rectosigmoid" in sites:
        site = "rectosigmoid"
    else:
        counts = {s: sites.count(s) for s in sites}
        site = max(counts, key=lambda s: (counts[s], -sites.index(s)))
    spans = [c[3] for c in best if c[2] == site][:2]
    res.detail["site"] = site
    value = POLICY_SITE.get(site, "other")
    res.set("tumor_site", value, [_ev(text, sp) for sp in spans], conf)
    if site == "rectosigmoid":
        res.warn(
            "site_needs_review",
            "the tumour is at the rectosigmoid junction: whether it is rectal in the policy's sense is a "
            "reviewer's call (the policy treats C19 the same way)",
            "tumor_site",
        )
