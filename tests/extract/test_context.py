"""The two assertion engines: medspaCy's ConText (the nlp extra) and the builtin NegEx."""

from __future__ import annotations

import pytest

from medpolicy.extract.context import Assertion, BuiltinContext, ContextEngine, Target
from medpolicy.extract.sections import blank_heading_colons

CASES = [
    ("No evidence of hepatic metastases.", "metastases", Assertion(negated=True)),
    ("Peritoneal metastasis cannot be excluded.", "metastasis", Assertion(uncertain=True)),
    (
        "Should a local recurrence occur, re-irradiation is possible.",
        "recurrence",
        Assertion(hypothetical=True),
    ),
    ("Recurrent adenocarcinoma at the anastomosis.", "Recurrent", Assertion()),
    ("Metastatic adenocarcinoma consistent with colorectal origin.", "Metastatic", Assertion()),
]


def judge(engine: ContextEngine, text: str, word: str) -> Assertion:
    i = text.index(word)
    (row,) = engine.assess([(blank_heading_colons(text), [Target("X", i, i + len(word))])])
    return row[0]


def _same(got: Assertion, want: Assertion) -> bool:
    """The modifier expected is found (another may come with it); an affirmed finding has none."""
    if want.affirmed:
        return got.affirmed
    return all(getattr(got, k) for k in ("negated", "uncertain", "hypothetical") if getattr(want, k))


@pytest.mark.parametrize(("text", "word", "want"), CASES)
def test_builtin(text: str, word: str, want: Assertion) -> None:
    assert _same(judge(BuiltinContext(), text, word), want)


@pytest.mark.nlp
@pytest.mark.parametrize(("text", "word", "want"), CASES)
def test_medspacy_context(text: str, word: str, want: Assertion) -> None:
    from medpolicy.extract.context import MedspacyContext

    assert _same(judge(MedspacyContext(), text, word), want)


@pytest.mark.nlp
def test_medspacy_heading_colon_is_not_an_answer() -> None:
    """ConText's rule ": no" reads "Findings: No liver metastases" as an answer negating "Findings";
    the heading's colon is blanked first, so the negation reaches the metastases."""
    from medpolicy.extract.context import MedspacyContext

    engine = MedspacyContext()
    assert judge(engine, "Findings: No liver metastases.", "metastases").negated


@pytest.mark.nlp
def test_trigger_prefilter_skips_only_sentences_no_rule_can_match() -> None:
    from medpolicy.extract.context import MedspacyContext

    engine = MedspacyContext()
    pattern = engine._trigger
    assert pattern is not None
    assert pattern.search("no liver metastases")
    assert pattern.search("metastasis cannot be excluded")
    assert not pattern.search("Tumor Site: Rectum")


@pytest.mark.nlp
def test_the_default_engine_is_medspacy_with_the_extra() -> None:
    from medpolicy.extract.context import default_engine

    assert default_engine().name == "medspacy"
