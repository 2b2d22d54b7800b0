"""Properties of the engine, tested with hypothesis against the real IORT policy, using only the public
API as the oracle (raw cases in, determinations out).

(a) Monotonic: a definite outcome with unknown facts stays the same however those facts are filled in.
(b) Minimal questions: each missing fact can change the outcome on its own, and filling in all of them
    always yields a definite outcome.
(c) Deterministic and independent of key order and list order.
(d) The engine's fast path (per-version lookup tables) finds the result its reference path
    (``Engine.result(Engine.key(values))``) computes.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from medpolicy import Case, CaseError, Outcome, decide, engine_for, load_policies, parse_case

POLICIES = load_policies()
IORT = POLICIES.get("bluekc-iort")

# Representative values for each fact: enough to reach every class of every atom of every version.
VALUES: dict[str, list[Any]] = {
    "date_of_service": [
        "1988-09-30",
        "1988-10-01",
        "1999-01-01",
        "2002-09-01",
        "2004-08-31",
        "2004-09-01",
        "2009-10-05",
        "2009-10-06",
        "2025-06-30",
    ],
    # [] is unknown (no evidence of absence), so it is no answer to fill in
    "procedure_codes": [["77425"], ["77424", "77469"], ["77770"], ["99213", "77469"]],
    "diagnosis_codes": [
        ["C20"],
        ["C19"],
        ["C21.1"],
        ["C78.5"],
        ["Z85.048"],
        ["C18.7"],
        ["C25.0"],
        ["C48.0"],
        ["C49.11"],
        ["C50.911"],
        ["C7A.026"],
        ["I10"],
        ["C20", "C78.7"],
        ["C20", "C25.0"],
    ],
    "tumor_site": list(IORT.fact("tumor_site").values or ()),
    "margin_status": ["negative", "close", "positive", "gross_residual", "R0", "R1", "R2"],
    "margin_distance_mm": [0, 0.5, 1, 1.5, 2, 2.5, 10],
    "t_stage": ["pT4b", "cT4a", "ypT3", "rT2", "T1", ["cT4a", "ypT3"], ["pT2", "rT3"]],
    "recurrent": [True, False],
    "metastatic": [True, False],
    "treatment_intent": ["curative", "palliative"],
    "expected_curative": [True, False],
}
FACTS = list(VALUES)
DECISION_FACTS = [
    "date_of_service",
    "procedure_codes",
    "tumor_site",
    "margin_status",
    "t_stage",
    "recurrent",
    "metastatic",
    "treatment_intent",
    "expected_curative",
]


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    case: dict[str, Any] = {}
    for f in FACTS:
        choice = draw(st.integers(min_value=-2, max_value=len(VALUES[f]) - 1))
        if choice == -1:
            case[f] = None
        elif choice >= 0:
            case[f] = VALUES[f][choice]
    return case


def unknown_facts(case: dict[str, Any]) -> list[str]:
    """Decision facts the engine does not know for this case (after derivations)."""
    known = parse_case(case, IORT).values
    return [f for f in DECISION_FACTS if f not in known]


def outcome(case: dict[str, Any]) -> Outcome | None:
    """The outcome; None for a combination that is invalid input (a staging outside the AJCC chapter
    of the site: such a filling is not a case at all)."""
    try:
        return decide(case, POLICIES).outcome
    except CaseError:
        return None


def valid(case: dict[str, Any]) -> bool:
    return outcome(case) is not None


def fillings(case: dict[str, Any], facts: list[str], limit: int) -> list[dict[str, Any]]:
    combos = list(itertools.product(*(VALUES[f] for f in facts)))
    random.Random(len(combos)).shuffle(combos)
    return [{**case, **dict(zip(facts, combo, strict=True))} for combo in combos[:limit]]


FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(cases())
def test_monotonic_a_definite_outcome_survives_any_filling(case: dict[str, Any]) -> None:
    o = outcome(case)
    assume(o is not None)
    if o is Outcome.INFORMATION_NEEDED:
        return
    unknown = unknown_facts(case)
    for filled in fillings(case, unknown, 400):
        assert outcome(filled) in (o, None), (case, filled)


@FAST
@given(cases())
def test_minimal_questions_each_can_change_the_outcome_and_together_they_settle_it(
    case: dict[str, Any],
) -> None:
    assume(valid(case))
    d = decide(case, POLICIES)
    if d.outcome is not Outcome.INFORMATION_NEEDED:
        assert d.missing_facts == ()
        return
    missing = [m.name for m in d.missing_facts]
    assert missing, "information needed must say what"
    assert set(missing) <= set(unknown_facts(case)), "only unknown facts are asked for"
    # Filling in all of them always yields a definite outcome.
    for filled in fillings(case, missing, 1500):
        assert outcome(filled) is not Outcome.INFORMATION_NEEDED, (case, filled)
    # Each one can change the outcome on its own: with the other missing facts filled in some way,
    # varying just this one changes the outcome.
    rng = random.Random(0)
    for name in missing:
        others = [f for f in missing if f != name]
        for _ in range(3000):  # enough tries that a rare enabling combination (one site of ~20) is found
            base = {**case, **{f: rng.choice(VALUES[f]) for f in others}}
            if len({outcome({**base, name: v}) for v in VALUES[name]} - {None}) > 1:
                break
        else:
            raise AssertionError(f"{name} cannot change the outcome of {case}")


@FAST
@given(cases(), st.randoms(use_true_random=False))
def test_deterministic_and_independent_of_order(case: dict[str, Any], rnd: random.Random) -> None:
    assume(valid(case))
    first = decide(case, POLICIES).to_dict()
    assert decide(case, POLICIES).to_dict() == first
    items = list(case.items())
    rnd.shuffle(items)
    shuffled = {k: (rnd.sample(v, len(v)) if isinstance(v, list) and k != "t_stage" else v) for k, v in items}
    again = decide(shuffled, POLICIES).to_dict()
    assert again == first


@FAST
@given(cases())
def test_the_fast_path_finds_the_result_of_the_reference_path(case: dict[str, Any]) -> None:
    assume(valid(case))
    engine = engine_for(IORT)
    parsed = parse_case(case, IORT)
    expected = engine.result(engine.key(parsed.values))
    first, again = engine.decide(parsed), engine.decide(parsed)  # the second read from a filled table
    assert first.result is expected
    assert again.result is expected
    assert first.trace == expected.trace
    assert first.case is parsed


#: A covered rectal cancer case (the 2009-10-06 version), parsed.
RECTAL_T4_POSITIVE = parse_case(
    {
        "date_of_service": "2025-06-30",
        "procedure_codes": ["77425"],
        "tumor_site": "rectum",
        "margin_status": "positive",
        "t_stage": "pT4b",
    },
    IORT,
)


def _by_hand(values: dict[str, Any]) -> Case:
    """A Case made without parse_case, as a caller of the engine's public API may."""
    return Case(values, RECTAL_T4_POSITIVE.display, RECTAL_T4_POSITIVE.sources)


def test_a_value_outside_its_facts_classes_counts_as_unknown() -> None:
    """A value the policy does not know: the fast path falls back to the reference path, which treats
    the value as unknown."""
    engine = engine_for(IORT)
    base = RECTAL_T4_POSITIVE
    assert engine.decide(base).outcome is Outcome.MEDICALLY_NECESSARY
    decided = engine.decide(_by_hand({**base.values, "tumor_site": "martian"}))
    without = _by_hand({k: v for k, v in base.values.items() if k != "tumor_site"})
    assert decided.outcome is Outcome.INFORMATION_NEEDED
    assert decided.result is engine.decide(without).result


def test_a_hand_made_case_with_lists_for_sets_decides_like_a_parsed_one() -> None:
    engine = engine_for(IORT)
    base = RECTAL_T4_POSITIVE
    listed = {k: sorted(v) if isinstance(v, frozenset) else v for k, v in base.values.items()}
    assert engine.decide(_by_hand(listed)).result is engine.decide(base).result


# ----------------------------------------------------------------------------------------------------
# The same properties on the two example policies, whose facts use the language's newer features
# (ages from a date of birth, lengths in mm or cm, open enums, scope by service), plus the Kleene law
# the trace obeys: more information never flips a criterion that was already true or false.

EXAMPLE_VALUES: dict[str, list[Any]] = {
    "date_of_service": ["2023-06-01", "2024-12-31", "2025-01-01", "2025-06-30", "2025-07-01", "2026-03-01"],
    "procedure_codes": [["77425"], ["77424"], ["77770"], ["99213"], ["77425", "77469"]],
    "intraoperative_radiation": [True, False],
    "delivery_method": ["electron_beam", "HDR", "low_energy_xray"],
    "diagnosis_codes": [
        ["C20"],
        ["C18.7"],
        ["C19"],
        ["C48.0"],
        ["C49.21"],
        ["C50.411"],
        ["D05.11"],
        ["C53.0"],
        ["C25.0"],
        ["Z85.048"],
    ],
    "tumor_site": ["rectum", "colon", "breast", "retroperitoneal_sarcoma", "bladder"],
    "margin_status": ["negative", "close", "R1"],
    "margin_distance_mm": [1, 1.8, 2, 2.5, "0.3 cm", 5],
    "t_stage": ["pT4b", "cT3", "rT2"],
    "recurrent": [True, False],
    "trial_enrolment": [True, False],
    "date_of_birth": ["1958-04-12", "1975-09-02", "1990-01-01"],
    "age": [49, 50, 70],
    "histology": ["IDC", "dcis", "invasive_lobular", "mucinous"],
    "tumor_size_mm": [15, "2 cm", "2.1 cm", 25, "30 mm"],
    "lymphovascular_invasion": [True, False],
    "er_status": ["positive", "negative"],
    "brca_variant": [True, False],
    "node_status": ["pN0", "positive"],
    "nuclear_grade": ["low", "intermediate", "high"],
    "screen_detected": [True, False],
}
EXAMPLES = ["example-iort-commercial", "example-iort-medicare-advantage"]
SLOW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def example_cases(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:  # (policy id, case)
    pid = draw(st.sampled_from(EXAMPLES))
    policy = POLICIES.get(pid)
    case: dict[str, Any] = {}
    for f, values in EXAMPLE_VALUES.items():
        if f in policy.fact_index and draw(st.booleans()):
            case[f] = draw(st.sampled_from(values))
    if "age" in case and "date_of_birth" in case:
        del case["age"]  # a given age is final; keep the two ways apart
    return pid, case


def _unknown(policy: Any, case: dict[str, Any]) -> list[str]:
    known = parse_case(case, policy).values
    return [f for f in EXAMPLE_VALUES if f in policy.fact_index and f not in known and f not in case]


@SLOW
@given(example_cases())
def test_examples_a_definite_outcome_survives_any_filling(drawn: tuple[str, dict[str, Any]]) -> None:
    policy, case = POLICIES.get(drawn[0]), drawn[1]
    o = decide(case, policy).outcome
    if o is Outcome.INFORMATION_NEEDED:
        return
    rng = random.Random(0)
    unknown = _unknown(policy, case)
    for _ in range(25):
        filled = {**case, **{f: rng.choice(EXAMPLE_VALUES[f]) for f in unknown}}
        if "date_of_birth" in case:
            filled.pop("age", None)
        assert decide(filled, policy).outcome is o, (case, filled)


@SLOW
@given(example_cases())
def test_examples_each_missing_fact_can_change_the_outcome_and_together_they_settle_it(
    drawn: tuple[str, dict[str, Any]],
) -> None:
    policy, case = POLICIES.get(drawn[0]), drawn[1]
    d = decide(case, policy)
    missing = [m.name for m in d.missing_facts]
    if d.outcome is not Outcome.INFORMATION_NEEDED:
        assert missing == []
        return
    assert missing
    assert set(missing) <= set(_unknown(policy, case)) | {"age"}
    if len(missing) > 6:
        return  # too many for random fillings to find witnesses; the search test below covers these
    rng = random.Random(1)
    for _ in range(25):
        filled = {**case, **{f: rng.choice(EXAMPLE_VALUES[f]) for f in missing}}
        assert decide(filled, policy).outcome is not Outcome.INFORMATION_NEEDED, (case, filled)
    for name in missing:
        others = [f for f in missing if f != name]
        for _ in range(300):
            base = {**case, **{f: rng.choice(EXAMPLE_VALUES[f]) for f in others}}
            if len({decide({**base, name: v}, policy).outcome for v in EXAMPLE_VALUES[name]}) > 1:
                break
        else:
            raise AssertionError(f"{name} cannot change the outcome of {case}")


@SLOW
@given(example_cases(), st.data())
def test_kleene_more_information_never_flips_a_known_criterion(
    drawn: tuple[str, dict[str, Any]], data: st.DataObject
) -> None:
    policy, case = POLICIES.get(drawn[0]), drawn[1]
    if "date_of_service" not in case:
        return
    unknown = [f for f in _unknown(policy, case) if f != "date_of_service"]
    if not unknown:
        return
    name = data.draw(st.sampled_from(unknown))
    more = {**case, name: data.draw(st.sampled_from(EXAMPLE_VALUES[name]))}
    before, after = decide(case, policy), decide(more, policy)
    if before.version is None or after.version is not before.version:
        return
    now = {c.criterion.id: c.value for c in after.trace}
    for c in before.trace:
        if c.value is not None:
            assert now[c.criterion.id] is c.value, (c.criterion.id, case, more)


@SLOW
@given(example_cases())
def test_examples_the_fast_path_finds_the_result_of_the_reference_path(
    drawn: tuple[str, dict[str, Any]],
) -> None:
    policy, case = POLICIES.get(drawn[0]), drawn[1]
    engine = engine_for(policy)
    parsed = parse_case(case, policy)
    expected = engine.result(engine.key(parsed.values))
    assert engine.decide(parsed).result is expected
    assert engine.decide(parsed).result is expected


def test_the_search_gives_what_enumeration_gives_on_the_example_policies() -> None:
    """Above 4,096 fillings the engine searches (medpolicy.search) instead of enumerating; on keys
    small enough to enumerate both ways, outcomes and missing facts agree."""
    import math

    from medpolicy import engine as engine_module

    rng = random.Random(7)
    for pid in EXAMPLES:
        policy = POLICIES.get(pid)
        searching, enumerating = engine_module.Engine(policy), engine_module.Engine(policy)
        compared = 0
        for _ in range(150):
            vclass = rng.choice([-1, *range(len(searching.starts) + 1)])
            read = searching.key_facts[vclass + 1]
            key = (
                vclass,
                *[-1 if rng.random() < 0.4 else rng.randrange(len(searching.classes[i])) for i in read],
            )
            space = math.prod(len(searching.classes[i]) for i, c in zip(read, key[1:], strict=True) if c < 0)
            if space > 8_000:
                continue
            old = engine_module._MAX_ENUMERATION
            try:
                engine_module._MAX_ENUMERATION = 0
                a = searching._evaluate(key)
                engine_module._MAX_ENUMERATION = 10**9
                b = enumerating._evaluate(key)
            finally:
                engine_module._MAX_ENUMERATION = old
            assert (a.outcome, a.possible, a.missing) == (b.outcome, b.possible, b.missing), key
            compared += 1
        assert compared > 20
