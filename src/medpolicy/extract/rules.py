"""The patterns extraction looks for: T and M categories, margins, sites, recurrence, metastasis, and the
narrative phrases AJCC 8 defines T categories by. Pure data and small pure helpers.

Patterns run on :func:`ocr_normalize`'s copy of the text, which has the same length as the original, so
every offset points into the document as given.
"""

from __future__ import annotations

import re

__all__ = [
    "DISTANT_WORDS", "M_STAGE", "MALIGNANCY", "is_m_stage", "MARGIN_WORD", "METASTASIS", "NODE_WORDS", "RECURRENCE",
    "R_CLASS", "SITE_PATTERNS", "T_NARRATIVE", "T_STAGE", "ocr_normalize", "staging_of",
]  # fmt: skip

# --- OCR: misread characters in words and numbers, replaced one for one (offsets unchanged) ---
_OCR = re.compile(
    r"(?P<zero>(?<=\d)[Oo](?=[\d.,]|\s*[cm]m\b)|(?<![A-Za-z])[Oo](?=[.,]\d))"
    r"|(?P<ell>(?<=[a-z]{2})(?<![ptnmTNM])1(?=[a-z]|\b)|(?<![A-Za-z0-9])1(?=[a-z]{2}))"
    r"|(?P<o>(?<=[a-z])0(?=[a-z]))"
    r"|(?P<O>(?<=[A-Z]{2})0(?=[A-Z])|(?<=[A-Z])0(?=[A-Z]{2}))"
    r"|(?P<I>(?<=[A-Z])[1l](?=[A-Z]{2})|(?<=[A-Z]{2})[1l](?=[A-Z]))"
)
_OCR_REPL = {"zero": "0", "ell": "l", "o": "o", "O": "O", "I": "I"}


def ocr_normalize(text: str) -> str:
    """Undo the commonest OCR misreadings (0/O, 1/l/I inside words and numbers), same length."""
    return _OCR.sub(lambda m: _OCR_REPL[m.lastgroup or "zero"], text)


# --- T category: "pT4a", "ypT3", "rpT4b", "cT4b N1c", "ypT4bN1aM0", "mrT4b", OCR "ypT 3" ---
T_STAGE = re.compile(
    r"(?<![A-Za-z0-9])(?P<pre>[yY][pPcC]|[rR][pPcC]|[mM][rR]|[pPcCrRaAyY])?"
    r"(?P<t>T)(?P<sp>\s?)(?P<cat>is|IS|[0-4Xx](?:[a-d](?![a-z]))?)(?:\s?\((?:m|\d+)\))?(?![0-9])"
)
#: Labels that introduce a T category written without a prefix ("T category: T3", "Stage: T4N0").
_T_LABEL = re.compile(
    r"(?i)(?:primary tumou?r|t category|t stage|stage|category|classification|post-?treatment|ajcc)[^.\n]{0,20}$"
)
_NODE_OR_META = re.compile(r"\s?N[0-3X]")
M_STAGE = re.compile(r"(?:[yY]?[pPcC])?M(?P<cat>[01][a-c]?)(?![0-9])")
_M_AFTER = re.compile(r"(?:^|[^A-Za-z0-9]|N[0-3X][a-c]?)$")


def is_m_stage(text: str, m: re.Match[str]) -> bool:
    """An M category stands alone ("pM1a", "M0") or ends a TNM string ("ypT4bN1aM0")."""
    return bool(_M_AFTER.search(text[max(0, m.start() - 3) : m.start()]))
#: The CAP line that names the M category ("Distant Metastasis (pM): Not applicable ...").
M_LINE = re.compile(r"(?i)distant metastasis\s*\((?:p|c|yp)?M\)|\((?:p|c)M\)\s*:")
#: Margins of a metastasectomy specimen are not the primary tumour's margins.
DISTANT_SPECIMEN = re.compile(r"(?i)\b(?:liver|hepatic(?! flexure)|lung|pulmonary|parenchymal|brain|adrenal|ovary)\b")


def staging_of(text: str, m: re.Match[str]) -> tuple[str, str] | None:
    """(prefix, category) of a T-stage match, in the case vocabulary's spelling, or ``None`` when the
    match is not a staging (an MRI "T2-weighted", "CT" and a number, a prefixless T with no label)."""
    pre = (m.group("pre") or "").lower()
    cat = m.group("cat").lower()
    if m.group("sp") and not pre:
        return None
    if not pre:
        before = text[max(0, m.start() - 40) : m.start()]
        after = text[m.end() : m.end() + 3]
        if not (_T_LABEL.search(before) or _NODE_OR_META.match(after)):
            return None
    if pre == "ct" or text[m.end() : m.end() + 8].lower().startswith(("-weight", " weight", "w ")):
        return None
    pre = {"mr": "c", "y": "yp"}.get(pre, pre)
    category = "TX" if cat == "x" else "Tis" if cat == "is" else f"T{cat}"
    return pre, category


# --- narrative T (AJCC 8 colorectal definitions), used only when no category is written ---
_ORGANS = (
    r"(?:urinary )?bladder|prostat\w*|seminal vesicles?|vagina\w*|rectovaginal septum|uter\w+|cervix|"
    r"ovar\w+|sacrum|sacral|coccyx|pelvic (?:side ?wall|floor)|ureters?|small (?:bowel|intestine)|"
    r"abdominal wall|kidney|spleen|pancreas|duodenum|stomach|adjacent (?:organs?|structures?)|"
    r"levator ani|skeletal muscle"
)
T_NARRATIVE: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "T4b",
        re.compile(
            r"(?i)\b(?:directly invad\w*|invad\w*|invasion (?:of|into)|involv\w*|adheren\w*|adherent to|"
            r"adheres to|extend\w* into|infiltrat\w*)\s+(?:[\w-]+\s+){0,6}?(?:" + _ORGANS + r")\b"
        ),
    ),
    (
        "T4a",
        re.compile(
            r"(?i)\b(?:through|penetrat\w*|perforat\w*|involv\w*|to|on|reach\w*|invad\w*)\s+"
            r"(?:[\w-]+\s+){0,5}?(?:visceral peritoneum|serosa\b|serosal surface|peritoneal surface)"
        ),
    ),
    (
        "T3",
        re.compile(
            r"(?i)\b(?:through|beyond)\s+(?:the\s+)?muscularis propria\s+(?:into|to)\s+"
            r"(?:the\s+)?(?:peri\w+|mesorect\w+|subserosa)"
        ),
    ),
    ("T2", re.compile(r"(?i)\binvades?\s+(?:into\s+)?(?:but not through\s+)?(?:the\s+)?muscularis propria\b")),
    ("T1", re.compile(r"(?i)\binvades?\s+(?:into\s+)?(?:the\s+)?submucosa\b")),
)

# --- margins ---
MARGIN_WORD = re.compile(r"(?i)\bmargins?\b|\bCRM\b")
R_CLASS = re.compile(r"(?<![A-Za-z0-9])R([012])(?![0-9A-Za-z])")
MARGIN_KIND = re.compile(
    r"(?i)\b(circumferential|radial|crm|mesorectal|deep|proximal|distal|mesenteric|mucosal|peripheral|"
    r"lateral|parenchymal|superior|inferior|posterior|anterior|soft tissue|sidewall|presacral|bladder|"
    r"perineal|closest)\b"
)
RADIAL_KINDS = frozenset({"circumferential", "radial", "crm", "mesorectal", "deep"})
DISTANCE = re.compile(r"(?i)(?<![\w.])(\d{1,3}(?:[.,]\d{1,2})?)\s?(mm|cm)\b")
MARGIN_NEGATIVE = re.compile(
    r"(?i)\b(?:uninvolved|not involved|negative|free|clear|no (?:tumou?r|carcinoma)|widely clear)\b"
)
MARGIN_CLOSE = re.compile(r"(?i)\bclose\b")
MARGIN_POSITIVE = re.compile(
    r"(?i)\b(?:involved|positive|present at|at (?:the )?(?:inked )?(?:\w+ )?margin|extends? to|transected|"
    r"tumou?r at|carcinoma at|0 mm)\b"
)
GROSS_RESIDUAL = re.compile(r"(?i)\bgross(?:ly)? (?:residual|visible) (?:tumou?r|disease|carcinoma)\b")
IMAGING_MARGIN = re.compile(r"(?i)threaten|mesorectal fascia|\bMRF\b|predicted")

# --- concepts judged in context ---
MALIGNANCY = re.compile(
    r"(?i)(?:carcinoma|sarcoma|\bcancer|\bmalignan\w*|\bneoplasm|\btumou?r|\bmass|\blesion|\bprimary)s?\b"
)
RECURRENCE = re.compile(r"(?i)\b(?:recurr\w*|relaps\w*)\b")
NOT_CANCER = re.compile(
    r"(?i)^\W*(?:\w+\s+){0,2}?(?:inflammation|appendicitis|diverticulitis|infections?|pain|hernia|bleeding|"
    r"polyps?|ulcers?|pancreatitis|abscess\w*|episodes?|fistula\w*|strictures?|colitis|cystitis|"
    r"pneumonia|obstruction|uti|urinary|laryngeal|nerve|dislocation|miscarriage|fever|vomiting)\b"
)
DISTANT_RECURRENCE = re.compile(
    r"(?i)\b(?:distant|liver|hepatic(?! flexure)|lungs?|pulmonary|bone|brain|systemic|metastatic)\b"
)
LOCAL_RECURRENCE = re.compile(
    r"(?i)\b(?:local\w*|locoregional|pelvi\w*|presacral|anastomo\w*|sacr\w*|perineal|sidewall|"
    r"rect\w*|carcinoma|adenocarcinoma|cancer|tumou?r|mass|disease|primary|biopsy)\b"
)
METASTASIS = re.compile(r"(?i)\b(?:metasta\w*|carcinomatosis|distant (?:disease|spread))\b")
DISTANT_WORDS = re.compile(
    r"(?i)\b(?:liver|hepatic(?! flexure)|lungs?|pulmonary|peritone\w*|omentum|omental|bones?|osseous|brain|adrenal|"
    r"distant|carcinomatosis|ovar\w+|M1\w*|widespread|systemic|metastatic disease|segment \d)\b"
)
NODE_WORDS = re.compile(r"(?i)\b(?:lymph|nodes?|nodal|pN\d|N[12][abc]?)\b")

# --- sites ---
SITE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rectosigmoid", re.compile(r"(?i)\brecto-?\s?sigmoid\b")),
    ("anus", re.compile(r"(?i)\banal canal\b|\banus\b|\banal (?:squamous|carcinoma|cancer|margin)|\bperianal\b")),
    ("rectum", re.compile(r"(?i)\brect(?:um|al)\b|\bmesorect\w*|\banorectal\b")),
    (
        "colon",
        re.compile(
            r"(?i)\b(?:ca?ecum|ca?ecal|ascending colon|hepatic flexure|transverse colon|splenic flexure|"
            r"descending colon|sigmoid|colon|colonic|hemicolectomy|sigmoidectomy|"
            r"appendi(?:x|ceal) (?:adeno)?carcinoma)\b"
        ),
    ),
    ("stomach", re.compile(r"(?i)\bstomach\b|\bgastric\b|\bgastrectomy\b|\bantrum\b")),
    ("pancreas", re.compile(r"(?i)\bpancrea\w*")),
    ("retroperitoneal_sarcoma", re.compile(r"(?i)\bretroperitone\w*\b(?=[^\n]{0,80}sarcoma)|\bretroperitoneal \w*sarcoma")),
    ("soft_tissue_sarcoma", re.compile(r"(?i)\b(?:soft tissue|extremity) \w*sarcoma\b")),
    ("breast", re.compile(r"(?i)\bbreast\b")),
    ("gynecologic", re.compile(r"(?i)\b(?:cervical|endometrial|ovarian|uterine) (?:\w+ )?(?:carcinoma|cancer)\b")),
    ("kidney", re.compile(r"(?i)\brenal cell\b|\brenal pelvis\b")),
)
SITE_LABEL = re.compile(r"(?i)\btumou?r (?:site|location)\s*:")
