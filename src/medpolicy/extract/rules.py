"""The patterns extraction looks for: T and M categories, margins, sites, recurrence, metastasis, and the
narrative phrases AJCC 8 defines T categories by. Pure data and small pure helpers.

Patterns run on :func:`ocr_normalize`'s copy of the text, which has the same length as the original, so
every offset points into the document as given.
"""

from __future__ import annotations

import re

__all__ = [
    "DISTANT_WORDS",
    "MALIGNANCY",
    "MARGIN_WORD",
    "METASTASIS",
    "M_STAGE",
    "NODE_WORDS",
    "RECURRENCE",
    "R_CLASS",
    "SITE_PATTERNS",
    "T_NARRATIVE",
    "T_STAGE",
    "ascii_lower",
    "at_word_start",
    "is_m_stage",
    "ocr_normalize",
    "staging_of",
]  # fmt: skip

# --- OCR: misread characters in words and numbers, replaced one for one (offsets unchanged) ---
_OCR_CANDIDATE = re.compile(r"[01Ool]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower case for ASCII letters only: the same length as ``text`` (``str.lower`` is not, for a few
    Unicode letters), so offsets found in it are offsets in the document."""
    return text.translate(_ASCII_LOWER)


def _ocr_fix(text: str, i: int, c: str) -> str | None:
    """The character an OCR misreading at ``text[i]`` stands for, or ``None``."""
    n = len(text)
    a1 = text[i - 1] if i >= 1 else " "
    a2 = text[i - 2] if i >= 2 else " "
    b1 = text[i + 1] if i + 1 < n else " "
    b2 = text[i + 2] if i + 2 < n else " "
    if c in "Oo":
        if a1.isdigit() and (b1.isdigit() or b1 in ".," or text[i + 1 : i + 4].strip()[:2] in ("mm", "cm")):
            return "0"
        if not a1.isalpha() and b1 in ".," and b2.isdigit():
            return "0"
        return None
    if c == "1":
        if a1.islower() and a2.islower() and a1 not in "ptnm" and (b1.isalpha() or not b1.isalnum()):
            return "l"
        if not a1.isalnum() and b1.islower() and b2.islower():
            return "l"
    if c == "0":
        if a1.islower() and b1.islower():
            return "o"
        if (a1.isupper() and a2.isupper() and b1.isupper()) or (
            a1.isupper() and b1.isupper() and b2.isupper()
        ):
            return "O"
        return None
    if c in "1l" and a1.isupper() and ((b1.isupper() and b2.isupper()) or (a2.isupper() and b1.isupper())):
        return "I"
    return None


def ocr_normalize(text: str) -> str:
    """Undo the commonest OCR misreadings (0/O, 1/l/I inside words and numbers), same length."""
    chars: list[str] | None = None
    for m in _OCR_CANDIDATE.finditer(text):
        i = m.start()
        c = text[i]
        if c == "l" and not (i and text[i - 1].isupper()):
            continue  # the common case, quickly: a lower-case l in a lower-case word
        fixed = _ocr_fix(text, i, c)
        if fixed is not None and fixed != c:
            if chars is None:
                chars = list(text)
            chars[i] = fixed
    return text if chars is None else "".join(chars)


# --- T category: "pT4a", "ypT3", "rpT4b", "cT4b N1c", "ypT4bN1aM0", "mrT4b", OCR "ypT 3" ---
T_STAGE = re.compile(r"T(?P<sp>\s?)(?P<cat>is|IS|[0-4Xx](?:[a-d](?![a-z]))?)(?:\s?\((?:m|\d+)\))?(?![0-9])")
_T_PREFIXES = ("yp", "yc", "rp", "rc", "mr", "p", "c", "r", "a", "y")
#: Labels that introduce a T category written without a prefix ("T category: T3", "Stage: T4N0").
_T_LABEL = re.compile(
    r"(?i)(?:primary tumou?r|t category|t stage|stage|category|classification|post-?treatment|ajcc)[^.\n]{0,20}$"
)
_NODE_OR_META = re.compile(r"\s?N[0-3X]")
M_STAGE = re.compile(r"M(?P<cat>[01][a-c]?)(?![0-9])")
_M_BEFORE = re.compile(r"(?:^|[^A-Za-z0-9]|N[0-3X][a-c]?)(?:[yY]?[pPcC])?$")


def is_m_stage(text: str, m: re.Match[str]) -> bool:
    """An M category stands alone ("pM1a", "M0") or ends a TNM string ("ypT4bN1aM0")."""
    return bool(_M_BEFORE.search(text[max(0, m.start() - 6) : m.start()]))


#: The CAP line that names the M category ("Distant Metastasis (pM): Not applicable ...").
M_LINE = re.compile(r"(?i)distant metastasis\s*\((?:p|c|yp)?M\)|\((?:p|c)M\)\s*:")
#: Margins of a metastasectomy specimen are not the primary tumour's margins.
DISTANT_SPECIMEN = re.compile(
    r"(?i)\b(?:liver|hepatic(?! flexure)|lung|pulmonary|parenchymal|brain|adrenal|ovary)\b"
)


def staging_of(text: str, m: re.Match[str]) -> tuple[str, str, int] | None:
    """(prefix, category, start including the prefix) of a T-stage match, in the case vocabulary's
    spelling, or ``None`` when the match is not a staging (an MRI "T2-weighted", "CT" and a number, a
    "T" inside a word, a prefixless T with no label)."""
    s = m.start()
    pre = ""
    for p in _T_PREFIXES:
        b = s - len(p)
        if b >= 0 and text[b:s].lower() == p and (b == 0 or not text[b - 1].isalnum()):
            pre = p
            break
    else:
        if s > 0 and text[s - 1].isalnum():
            return None
    cat = m.group("cat").lower()
    if m.group("sp") and not pre:
        return None
    if not pre:
        before = text[max(0, s - 40) : s]
        after = text[m.end() : m.end() + 3]
        if not (_T_LABEL.search(before) or _NODE_OR_META.match(after)):
            return None
    if text[m.end() : m.end() + 8].lower().startswith(("-weight", " weight", "w ")):
        return None
    start = s - len(pre)
    pre = {"mr": "c", "y": "yp"}.get(pre, pre)
    category = "TX" if cat == "x" else "Tis" if cat == "is" else f"T{cat}"
    return pre, category, start


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
            r"(?:directly invad\w*|invad\w*|invasion (?:of|into)|involv\w*|adheren\w*|adherent to|"
            r"adheres to|extend\w* into|infiltrat\w*)\s+(?:[\w-]+\s+){0,6}?(?:" + _ORGANS + r")\b"
        ),
    ),
    (
        "T4a",
        re.compile(
            r"(?:through|penetrat\w*|perforat\w*|involv\w*|to|on|reach\w*|invad\w*)\s+"
            r"(?:[\w-]+\s+){0,5}?(?:visceral peritoneum|serosa\b|serosal surface|peritoneal surface)"
        ),
    ),
    (
        "T3",
        re.compile(
            r"(?:through|beyond)\s+(?:the\s+)?muscularis propria\s+(?:into|to)\s+"
            r"(?:the\s+)?(?:peri\w+|mesorect\w+|subserosa)"
        ),
    ),
    ("T2", re.compile(r"invades?\s+(?:into\s+)?(?:but not through\s+)?(?:the\s+)?muscularis propria\b")),
    ("T1", re.compile(r"invades?\s+(?:into\s+)?(?:the\s+)?submucosa\b")),
)

# --- margins ---
MARGIN_WORD = re.compile(r"(?:margins?|crm)\b")
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
MALIGNANCY = re.compile(r"(?:carcinoma|sarcoma|cancer|malignan\w*|neoplasm|tumou?r|mass|lesion|primary)s?\b")
RECURRENCE = re.compile(r"(?:recurr|relaps)\w*")
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
METASTASIS = re.compile(r"(?:metasta\w*|carcinomatosis|distant (?:disease|spread))\b")
DISTANT_WORDS = re.compile(
    r"(?i)\b(?:liver|hepatic(?! flexure)|lungs?|pulmonary|peritone\w*|omentum|omental|bones?|osseous|brain|adrenal|"
    r"distant|carcinomatosis|ovar\w+|M1\w*|widespread|systemic|metastatic disease|segment \d)\b"
)
NODE_WORDS = re.compile(r"(?i)\b(?:lymph|nodes?|nodal|pN\d|N[12][abc]?)\b")

# --- sites ---
SITE_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("rectosigmoid", re.compile(r"recto-?\s?sigmoid\b")),
    ("anus", re.compile(r"(?:anal canal|anus|anal (?:squamous|carcinoma|cancer|margin)|perianal)\b")),
    ("rectum", re.compile(r"(?:rect(?:um|al)\b|mesorect\w*|anorectal\b)")),
    (
        "colon",
        re.compile(
            r"(?:ca?ecum|ca?ecal|ascending colon|hepatic flexure|transverse colon|splenic flexure|"
            r"descending colon|sigmoid|colon|colonic|hemicolectomy|sigmoidectomy|"
            r"appendi(?:x|ceal) (?:adeno)?carcinoma)\b"
        ),
    ),
    ("stomach", re.compile(r"(?:stomach|gastric|gastrectomy|antrum)\b")),
    ("pancreas", re.compile(r"pancrea\w*")),
    ("retroperitoneal_sarcoma", re.compile(r"retroperitone\w*\b(?=[^\n]{0,80}sarcoma)")),
    ("soft_tissue_sarcoma", re.compile(r"(?:soft tissue|extremity) \w*sarcoma\b")),
    ("breast", re.compile(r"breast\b")),
    ("gynecologic", re.compile(r"(?:cervical|endometrial|ovarian|uterine) (?:\w+ )?(?:carcinoma|cancer)\b")),
    ("kidney", re.compile(r"renal (?:cell|pelvis)\b")),
)
#: Scanning patterns (above, from MARGIN_WORD to SITE_PATTERNS) run on :func:`ascii_lower`'s text and
#: start with a literal, which lets the regular-expression engine skip ahead; :func:`at_word_start`
#: checks the boundary a leading ``\b`` would have (and would have made every scan many times slower).


def at_word_start(low: str, i: int) -> bool:
    return i == 0 or not low[i - 1].isalnum()


SITE_LABEL = re.compile(r"(?i)\btumou?r (?:site|location)\s*:")
