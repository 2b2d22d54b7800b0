"""The parser's replay of ``finish`` (``medpolicy.case_finish``) gives what the reference gives.

``parse_case`` replays the derivations, the TX rule and the notes of a case whose facts ``finish``
reads were seen before; ``_Parser.reference`` always runs them. On hypothesis-generated valid and
invalid cases for every policy (unknown keys, nulls, empty lists, wrong types, huge integers, NaN,
long strings, dates beyond the horizon, TNM stagings, TX, M1, C78 codes, conflicts, ages, lengths with
units, lines of business), both give the same ``Case`` (items and order) or the same errors, and the
same determination JSON. Each case is parsed twice, and again twice with another id and date, so that
the replay (a combination is learnt the second time it comes), not only the learning, is compared.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medpolicy import Case, CaseError, PolicySet, load_policies
from medpolicy.case import date_horizon, parser_for
from medpolicy.deciding import decider
from medpolicy.engine import Determination, engine_for
from medpolicy.errors import NoPolicyApplies
from medpolicy.limits import LIMITS

POLICIES: PolicySet = load_policies()

DATES = ["2024-03-01", "2009-10-06", "1999-01-01", " 2020-02-29 ", "2021-W01-1", "2024-3-1", "2023-02-29"]
DX = ["C20", "c20", "C19", "C21.1", "C18.7", "C25.0", "C78.5", "C78.6", "C49.A5", "C50.911", "Z85.048"]
DX += ["C16.3", "C99.9", "C18", "C00-C14", "c4911"]
PROCS = ["77425", "77424", "77469", "77770", "45110", " 77425 ", "0W3G0ZZ", "7742", "ABCDE"]
STAGINGS = ["pT4b", "TX", "cT4N1M1", "cT4N1M0", "rpT3", "T4c", "ypT3 N1a M0", "pT2", "rT2", "pT1", "T4"]
STAGINGS += ["cT4a", "pT4", "ypT3", "pT4e", "N1", "ycT3(m)", "rypT3M1a", "T3 M0"]


def scalars() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.sampled_from([0.0, -0.0, 0.5, 1.0, 2, 3.7, 5.0, 12, float("nan"), float("inf"), 2**64]),
        st.sampled_from(["x" * 300, "", " ", "1.8 cm", "2 mm", "0.5cm", "3 inches", "R0", "close"]),
    )


def value_for(fact: Any) -> st.SearchStrategy[Any]:
    t = fact.type
    if t == "date":
        past = st.dates(min_value=dt.date(1980, 1, 1), max_value=dt.date.today()).map(dt.date.isoformat)
        ahead = st.sampled_from([1, LIMITS.date_horizon_days, LIMITS.date_horizon_days + 1, 5000]).map(
            lambda n: (dt.date.today() + dt.timedelta(days=n)).isoformat()
        )
        return st.one_of(past, ahead, st.sampled_from(DATES))
    if t == "codes":
        codes = DX if fact.system == "ICD-10-CM" else PROCS
        return st.one_of(
            st.lists(st.sampled_from(codes), max_size=3),
            st.lists(st.one_of(st.sampled_from(codes), scalars()), max_size=2),
        )
    if t == "staging":
        return st.one_of(st.sampled_from(STAGINGS), st.lists(st.sampled_from(STAGINGS), max_size=3))
    if t == "enum":
        values = [*(fact.values or ()), *fact.synonyms, "bogus", " Negative ", "gross residual"]
        return st.sampled_from(values)
    if t == "number":
        lengths = st.sampled_from(["1.8 cm", "2 mm", {"value": 1.5, "unit": "cm"}, {"value": 2}, "1 furlong"])
        return st.one_of(
            st.floats(min_value=0, max_value=12, allow_nan=False).map(lambda x: round(x, 1)),
            st.integers(min_value=0, max_value=120),
            lengths,
        )
    return st.booleans()


@st.composite
def raw_cases(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    policy = draw(st.sampled_from(list(POLICIES)))
    facts = list(policy.facts)
    chosen = draw(st.lists(st.sampled_from(facts), unique_by=lambda f: f.name, max_size=len(facts)))
    # mostly values of the fact's own kind (valid, or invalid in kind); now and then anything at all
    case: dict[str, Any] = {
        f.name: draw(scalars() if draw(st.integers(0, 9)) == 0 else value_for(f)) for f in chosen
    }
    if draw(st.booleans()):
        case["id"] = draw(st.one_of(st.text(max_size=8), st.integers(min_value=-(2**65), max_value=2**65)))
    if draw(st.integers(0, 9)) == 0:
        case["line_of_business"] = draw(st.sampled_from(["commercial", "medicare_advantage", "bogus", 3]))
    if draw(st.integers(0, 9)) == 0:
        case[draw(st.sampled_from(["unknown_fact", "T_stage", "label"]))] = draw(scalars())
    return policy.id, case


def outcome(parse: Any, raw: dict[str, Any]) -> Any:
    try:
        case: Case = parse(raw, None)
    except CaseError as e:
        return ("errors", [fe.to_dict() for fe in e.errors])
    return (
        "case",
        list(case.values.items()),
        list(case.display.items()),
        list(case.sources.items()),
        case.notes,
        dict(case.metadata),
    )


def json_of(policy_id: str, parse: Any, raw: dict[str, Any]) -> Any:
    policy = POLICIES.get(policy_id)
    try:
        d = engine_for(policy).decide(parse(raw, None))
    except CaseError:
        return None
    return d.to_json(detail="compact"), d.to_json(detail="full")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_cases(), st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2024, 12, 31)))
def test_the_replay_gives_what_the_reference_gives(drawn: tuple[str, dict[str, Any]], other: dt.date) -> None:
    policy_id, raw = drawn
    parser = parser_for(POLICIES.get(policy_id))
    moved = {**raw, "id": "another", "date_of_service": other.isoformat()}
    variants = [raw, raw, moved, moved]
    for case in variants:
        expected = outcome(parser.reference, case)
        assert outcome(parser.parse, case) == expected
        assert outcome(parser.parse, case) == expected
        assert json_of(policy_id, parser.parse, case) == json_of(policy_id, parser.reference, case)


def test_the_replay_is_used_and_learns_only_what_replays(policies: PolicySet) -> None:
    policy = policies.get("bluekc-iort")
    parser = parser_for(policy)
    assert parser.finishes is not None
    base = {
        "procedure_codes": ["77425"],
        "diagnosis_codes": ["C20"],
        "t_stage": "pT4b",
        "margin_status": "close",
    }
    first = parser.parse({**base, "date_of_service": "2024-03-01", "id": "a"}, None)
    parser.parse({**base, "date_of_service": "2022-07-01", "id": "c"}, None)  # learnt the second time
    hits = parser.finishes.hits
    again = parser.parse({**base, "date_of_service": "2023-01-05", "id": "b"}, None)
    assert parser.finishes.hits == hits + 1
    assert again.sources == first.sources
    assert again.values["tumor_site"] == "rectum"
    assert again.metadata == {"id": "b"}


@pytest.mark.parametrize("days", [0, 10, LIMITS.date_horizon_days])
def test_the_date_horizon_is_today_plus_the_days(days: int) -> None:
    assert date_horizon(days) == dt.date.today() + dt.timedelta(days=days)


@pytest.mark.parametrize(
    "changes",
    [
        # a given margin status against the distance: the note names the distance, so it is keyed by it
        [{"margin_status": "negative", "margin_distance_mm": d} for d in (0.5, 0.7, 0, -0.0, 0.0, 1)],
        # a zero prints as 0 or -0: never replayed across the two
        [{"margin_distance_mm": d} for d in (-0.0, 0.0, 0, 2, 2.0, 3.5)],
        [{"t_stage": s} for s in ("TX", "pT4b", "TX", "cT4N1M1", "rpT3", "cT4N1M0", "cT4N1M1")],
        [{"diagnosis_codes": c} for c in (["C20", "C78.5"], ["C20"], ["C78.5", "C20"], ["C18.7", "C20"])],
        [{"metastatic": False, "t_stage": "cT4N1M1"}, {"metastatic": True, "t_stage": "cT4N1M1"}],
    ],
)
def test_the_replay_keeps_what_each_value_says(policies: PolicySet, changes: list[dict[str, Any]]) -> None:
    base = {"procedure_codes": ["77425"], "diagnosis_codes": ["C20"], "date_of_service": "2024-03-01"}
    for policy in policies:
        parser = parser_for(policy)
        for change in changes * 3:  # seen, learnt, replayed
            case = {**base, **{k: v for k, v in change.items() if k in policy.fact_index}}
            assert outcome(parser.parse, case) == outcome(parser.reference, case)
            assert json_of(policy.id, parser.parse, case) == json_of(policy.id, parser.reference, case)


def test_cases_at_the_input_limits_are_never_remembered(policies: PolicySet) -> None:
    """Issue 8: memory bounded by entries *and* bytes. A case with many codes is finished by the
    reference each time, and neither its combination nor a shape with unknown keys is kept."""
    parser = parser_for(policies.get("bluekc-iort"))
    finishes, shapes = parser.finishes, parser.shapes
    assert finishes is not None
    kept = (len(finishes.seen), len(finishes.table), len(shapes.seen), len(shapes.table))
    codes = [f"C18.{d}" for d in range(10)]
    big = {"procedure_codes": ["77425"], "diagnosis_codes": codes, "date_of_service": "2024-03-01"}
    unknown = {"procedure_codes": ["77425"], "x" * 1000: 1}
    for _ in range(3):
        assert outcome(parser.parse, big) == outcome(parser.reference, big)
        assert outcome(parser.parse, unknown) == outcome(parser.reference, unknown)
    # the big case's shape is an ordinary one (compiled); its combination is not kept, nor the unknown shape
    assert (len(finishes.seen), len(finishes.table)) == kept[:2]
    assert not any("x" * 1000 in s for s in (*shapes.seen, *shapes.table))


# ----------------------------------------------------------------------------------------------------
# The batch decider (``medpolicy.case_combos``): a raw case to its determination from learnt templates.

ROUTED = decider(POLICIES)
SINGLE = {p.id: decider(POLICIES, policy_id=p.id) for p in POLICIES}


def reference_decision(policy_id: str | None, raw: dict[str, Any]) -> Any:
    """What ``decide`` gives, through the reference parser: the determination or the error."""
    try:
        policy = POLICIES.get(policy_id) if policy_id is not None else POLICIES.route(raw)
        d = engine_for(policy).decide(parser_for(policy).reference(raw, None))
    except (CaseError, NoPolicyApplies) as e:
        return ("error", type(e).__name__, getattr(e, "errors", None) and [fe.to_dict() for fe in e.errors])
    return decision(d)


def decision(d: Determination) -> Any:
    c = d.case
    return (
        d.policy.id,
        d.result,
        list(c.values.items()),
        list(c.display.items()),
        list(c.sources.items()),
        c.notes,
        list(c.metadata.items()),
        d.notes,
        d.to_json(detail="full"),
    )


def batch_decision(one: Any, raw: dict[str, Any]) -> Any:
    try:
        d = one(raw)
    except (CaseError, NoPolicyApplies) as e:
        return ("error", type(e).__name__, getattr(e, "errors", None) and [fe.to_dict() for fe in e.errors])
    return decision(d)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw_cases(), st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2026, 12, 31)), st.booleans())
def test_the_batch_decider_gives_what_the_reference_gives(
    drawn: tuple[str, dict[str, Any]], other: dt.date, routed: bool
) -> None:
    """Each case five times (seen, learnt, replayed), then with another id and date of service: the
    per-case values the templates do not hold."""
    policy_id, raw = drawn
    one, chosen = (ROUTED, None) if routed else (SINGLE[policy_id], policy_id)
    moved = {**raw, "id": "another", "date_of_service": other.isoformat()}
    for case in [raw] * 3 + [moved] * 3:
        assert batch_decision(one, case) == reference_decision(chosen, case)


BATCH_BASES: list[dict[str, Any]] = [
    {"procedure_codes": ["77425"], "diagnosis_codes": ["C20"], "margin_status": "close", "t_stage": "pT4b"},
    {"procedure_codes": ["77424", "77469"], "diagnosis_codes": ["C20", "Z85.048"], "t_stage": "TX"},
    {"procedure_codes": ["77425"], "diagnosis_codes": ["C78.5"], "t_stage": ["cT4a", "ypT3"]},
    {"procedure_codes": ["77425"], "diagnosis_codes": ["C18.7"], "margin_status": "R1", "recurrent": True},
    {"procedure_codes": ["77770"], "diagnosis_codes": ["C20"], "recurrent": False},
    {"procedure_codes": ["77425"], "diagnosis_codes": ["C20"], "line_of_business": "medicare_advantage"},
    {"procedure_codes": ["77425"], "diagnosis_codes": ["C50.911"], "group": "EXAMPLE-PPO", "age": 70},
    {
        "procedure_codes": ["77424"],
        "diagnosis_codes": ["C50.911"],
        "date_of_birth": "1950-05-01",
        "tumor_size_mm": 18,
        "er_status": "positive",
        "line_of_business": "medicare_advantage",
    },
    {
        "procedure_codes": ["77424"],
        "diagnosis_codes": ["C50.912"],
        "tumor_size_mm": 25.5,
        "group": "EXAMPLE-HMO",
    },
]


@pytest.mark.parametrize("policy_id", [None, *(p.id for p in POLICIES)])
def test_the_batch_decider_learns_templates_and_they_replay(policy_id: str | None) -> None:
    """A batch's repeated combinations are decided from templates, identical to the reference, across
    ids, dates (before and after the latest version), margin distances in each band, TX, derived sites,
    conflicts, ages, tumour sizes, lines of business and groups; routed, and for each policy alone."""
    one = decider(POLICIES, policy_id=policy_id)
    combos = one.combos  # type: ignore[attr-defined]
    distances = [0.4, 1.0, 1.5, 2.0, 5.5, 3, -1.0, 0.0]
    sizes = [5, 18, 20, 25.5, 30, 31, 45.0, 60]
    dates = ["2024-03-01", "2009-10-06", "2009-10-05", "1999-01-01", "2025-08-01", " 2020-02-29 "]
    dates += ["2025-09-02", "2026-01-05", "2021-W01-1"]
    for base in BATCH_BASES:
        if policy_id is not None:  # a policy alone: its own facts (routing keys are checked, not used)
            base = {k: v for k, v in base.items() if k in POLICIES.get(policy_id).fact_index}
        for i, dos in enumerate(dates * 2):
            for extra in [{}, {"margin_distance_mm": distances[i % len(distances)]}]:
                raw = {"id": f"case-{i}", "date_of_service": dos, **base, **extra}
                if "tumor_size_mm" in raw:  # a number the engine reads, in each of its classes
                    raw["tumor_size_mm"] = sizes[i % len(sizes)]
                assert batch_decision(one, raw) == reference_decision(policy_id, raw)
    assert combos.kept > 10
    # Templates that build a display both ways were kept (each rebuilt its case as the reference did)
    # and replayed above: as a copy of the values with the displays written over them (the same keys
    # in the same order), and item by item (a TX staging is shown but leaves the values).
    kept = set()
    for fn in combos.shapes.values():
        learner = fn.__globals__["_learn"].__self__
        same_keys = [vkeys == dkeys for vkeys, dkeys, _ in learner.layouts]
        kept |= {same_keys[template[0][0]] for template in learner.table.values()}
    assert kept == {True, False}


def test_the_batch_decider_turns_itself_off_when_combinations_do_not_repeat() -> None:
    """A given margin status beside a distance keys the template by the distance (the conflict note
    shows it): 5,000 distinct distances never repeat, and the decider stops learning and forgets."""
    one = decider(POLICIES, policy_id="bluekc-iort")
    combos = one.combos  # type: ignore[attr-defined]
    base = {"procedure_codes": ["77425"], "diagnosis_codes": ["C20"], "margin_status": "negative"}
    for i in range(5000):
        raw = {"id": "x", "date_of_service": "2024-03-01", **base, "margin_distance_mm": 0.001 * (i + 1)}
        assert one(raw).case.values["margin_distance_mm"] == raw["margin_distance_mm"]
    assert not combos.enabled
    assert not combos.shapes
    raw = {"id": "y", "date_of_service": "2024-03-01", **base, "margin_distance_mm": 0.5}
    for _ in range(3):
        assert batch_decision(one, raw) == reference_decision("bluekc-iort", raw)


@st.composite
def likely_cases(draw: st.DrawFn) -> dict[str, Any]:
    """Cases as a batch sends them: mostly valid values from a few choices, so that combinations repeat
    and templates are learnt and replayed (some invalid values among them)."""
    case: dict[str, Any] = {"id": draw(st.sampled_from(["a", "b", "case-1"]))}
    case["date_of_service"] = draw(st.sampled_from(["2024-03-01", "2009-10-06", "2003-05-01", "2025-08-01"]))
    case["procedure_codes"] = draw(st.sampled_from([["77425"], ["77424", "77469"], ["77770"], ["0W3G0ZZ"]]))
    case["diagnosis_codes"] = draw(
        st.sampled_from([["C20"], ["C18.7"], ["C50.911"], ["C20", "C78.5"], ["C18"]])
    )
    optional: dict[str, st.SearchStrategy[Any]] = {
        "margin_status": st.sampled_from(["close", "negative", "R1", "bogus"]),
        "margin_distance_mm": st.sampled_from([0.5, 1.0, 1.5, 2, 4.0, 0.0, -0.0]),
        "t_stage": st.sampled_from(["pT4b", "TX", ["cT4a", "ypT3"], "cT4N1M1", "pT4e"]),
        "recurrent": st.sampled_from([True, False, 1, None]),
        "tumor_size_mm": st.sampled_from([5, 18.5, 30, 60]),
        "date_of_birth": st.sampled_from(["1950-05-01", "1990-01-01"]),
        "line_of_business": st.sampled_from(["commercial", "medicare_advantage"]),
        "group": st.sampled_from(["EXAMPLE-PPO", "OTHER"]),
    }
    for key in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=4)):
        case[key] = draw(optional[key])
    return case


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(likely_cases(), min_size=5, max_size=30), st.sampled_from([None, *(p.id for p in POLICIES)]))
def test_a_batch_of_likely_cases_gives_what_the_reference_gives(
    batch: list[dict[str, Any]], policy_id: str | None
) -> None:
    one = ROUTED if policy_id is None else SINGLE[policy_id]
    for raw in batch * 3:
        if policy_id is not None:
            raw = {k: v for k, v in raw.items() if k in POLICIES.get(policy_id).fact_index or k == "id"}
        assert batch_decision(one, raw) == reference_decision(policy_id, raw)


def test_the_likely_batches_were_decided_from_templates() -> None:
    """The test above exercises the templates, not only the ordinary path (it runs first)."""
    assert ROUTED.combos.kept > 20  # type: ignore[attr-defined]


def test_the_batch_decider_never_keeps_large_cases() -> None:
    """Issue 8: memory bounded by entries and bytes. A case with many codes is decided the ordinary
    way each time; what the decider keeps of it is a hash."""
    one = decider(POLICIES, policy_id="bluekc-iort")
    combos = one.combos  # type: ignore[attr-defined]
    codes = [f"C18.{d}" for d in range(10)]
    big = {"id": "a", "date_of_service": "2024-03-01", "procedure_codes": ["77425"], "diagnosis_codes": codes}
    for _ in range(4):
        assert batch_decision(one, big) == reference_decision("bluekc-iort", big)
    assert combos.kept == 0
    for fn in combos.shapes.values():
        learner = fn.__globals__["_learn"].__self__
        assert not learner.table
        assert all(type(h) is int for h in (*learner.seen, *learner.refused))
