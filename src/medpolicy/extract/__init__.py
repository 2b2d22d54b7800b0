"""Facts from clinical documents: pathology, operative and imaging reports to proposed IORT case facts.

* :func:`extract` (``core``) is the pure core: a document's text in, an :class:`Extraction` out (facts in
  the policy's case vocabulary, the evidence spans they were read from, confidence, warnings).
* ``sections`` finds headings and sentences, ``rules`` holds the patterns, ``context`` judges negation,
  uncertainty, hypothetical and historical context (medspaCy's ConText when the ``nlp`` extra is
  installed, a small builtin NegEx otherwise).
* ``documents`` turns bytes (text or PDF) into text or a per-file problem; ``proposal`` carries extracted
  facts into a case with ``source: extracted`` and keeps an approval from resting on them unconfirmed.
"""

from medpolicy.extract.core import extract
from medpolicy.extract.model import FACT_NAMES, Evidence, Extraction, ExtractionWarning

__all__ = ["FACT_NAMES", "Evidence", "Extraction", "ExtractionWarning", "extract"]
