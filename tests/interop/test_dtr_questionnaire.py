"""DTR questionnaires generated from the policy (pure functions of medpolicy.interop.dtr).

The enableWhen conditions are computed by asking the engine; these tests check them against the
engine again (for every controlling answer, a conditioned item is enabled exactly when its fact is
still missing), and pin the IORT consequences a reviewer would expect.
"""

from __future__ import annotations

import copy
from datetime import date
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from medpolicy import PolicySet, decide, load_policies
from medpolicy.interop import dtr

AS_OF = date(2026, 3, 2)


def assert_r4(resource: dict[str, Any]) -> None:
    """Validate with fhir.resources R4B (fhir.resources 8 has no R4 package; R4B is the closest)."""
    get_fhir_model_class(resource["resourceType"]).model_validate(copy.deepcopy(resource))


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies()


@pytest.fixture(scope="module")
def policy(policies: PolicySet) -> Any:
    return policies.get("bluekc-iort")


@pytest.fixture(scope="module")
def questionnaire(policy: Any, policies: PolicySet) -> dict[str, Any]:
    return dtr.build_questionnaire(policy, policies, as_of=AS_OF)


def _missing(case: dict[str, Any], policies: PolicySet, policy: Any) -> set[str]:
    return {m.name for m in decide(case, policies, policy_id=policy.id).missing_facts}


def test_questionnaire_is_valid_r4_and_names_the_policy(questionnaire: dict[str, Any], policy: Any) -> None:
    assert_r4(questionnaire)
    assert questionnaire["url"] == dtr.questionnaire_url(policy)
    assert questionnaire["meta"]["profile"] == [dtr.DTR_STD_QUESTIONNAIRE]
    assert questionnaire["version"] == policy.version_for(AS_OF).id
    assert questionnaire["subjectType"] == ["Patient"]
    assert questionnaire["text"]["div"].startswith("<div")


def test_items_are_the_facts_the_policy_needs(
    questionnaire: dict[str, Any], policy: Any, policies: PolicySet
) -> None:
    links = [i["linkId"] for i in questionnaire["item"]]
    declared = [f.name for f in policy.facts]
    assert links == [n for n in declared if n in links], "items follow the policy's order"
    needed = _missing({"date_of_service": AS_OF.isoformat()}, policies, policy)
    sources = {s for s, derived in dtr.derivation_sources(policy).items() if derived in needed}
    assert set(links) == needed | sources | {"date_of_service"}
    assert sources == {"diagnosis_codes", "margin_distance_mm", "t_stage"}
    # facts of older versions only (2002: metastases, intent) are not asked for today's version
    assert "treatment_intent" not in links
    assert "metastatic" not in links


def test_item_types_follow_the_fact_types(questionnaire: dict[str, Any], policy: Any) -> None:
    items = {i["linkId"]: i for i in questionnaire["item"]}
    site = items["tumor_site"]
    assert site["type"] == "choice"
    assert [o["valueCoding"]["code"] for o in site["answerOption"]] == list(policy.fact("tumor_site").values)
    assert site["answerOption"][0]["valueCoding"]["display"] == "Rectum"
    assert items["recurrent"]["type"] == "boolean"
    distance = items["margin_distance_mm"]
    assert distance["type"] == "decimal"
    assert {
        "url": dtr.UNIT_EXT,
        "valueCoding": {"system": dtr.UCUM, "code": "mm", "display": "mm"},
    } in distance["extension"]
    assert items["procedure_codes"]["type"] == "string"
    assert items["procedure_codes"]["repeats"] is True
    assert items["date_of_service"]["type"] == "date"
    assert items["t_stage"]["repeats"] is True


def test_t_stage_and_recurrence_are_asked_only_for_rectal_cancer(questionnaire: dict[str, Any]) -> None:
    items = {i["linkId"]: i for i in questionnaire["item"]}
    for link in ("t_stage", "recurrent", "margin_status"):
        item = items[link]
        assert item["enableBehavior"] == "all"
        excluded = {c["answerCoding"]["code"] for c in item["enableWhen"] if c["question"] == "tumor_site"}
        assert all(c["operator"] == "!=" for c in item["enableWhen"])
        assert "rectum" not in excluded
        assert {"pancreas", "colon", "anus", "breast", "other"} <= excluded
    # a negative margin makes T stage and recurrence moot; the site and margin are asked first
    assert {
        "question": "margin_status",
        "operator": "!=",
        "answerCoding": {"system": dtr.fact_code_system("margin_status"), "code": "negative"},
    } in items["t_stage"]["enableWhen"]
    assert "enableWhen" not in items["tumor_site"]
    assert "enableWhen" not in items["procedure_codes"]


def _enabled_under(item: dict[str, Any], controller: str, answer: Any) -> bool | None:
    """Is ``item`` enabled by its conditions on ``controller`` alone when it is answered ``answer``?"""
    conds = [c for c in item.get("enableWhen", []) if c["question"] == controller]
    if not conds:
        return None
    results = []
    for c in conds:
        expected = c["answerCoding"]["code"] if "answerCoding" in c else c["answerBoolean"]
        if c["operator"] == "exists":
            results.append(expected is True)  # the controller is answered
        else:
            assert c["operator"] == "!="
            results.append(expected != answer)
    return all(results)


def test_every_condition_agrees_with_the_engine(
    questionnaire: dict[str, Any], policy: Any, policies: PolicySet
) -> None:
    """For every controlling answer, an item with conditions on that question is enabled exactly when
    the engine still misses its fact (or, for a source fact, the fact derived from it)."""
    items = {i["linkId"]: i for i in questionnaire["item"]}
    stands_for = dtr.derivation_sources(policy)
    checked = 0
    for controller in items.values():
        fact = policy.fact(controller["linkId"])
        if fact.type not in ("boolean", "enum"):
            continue
        answers: list[Any] = [True, False] if fact.type == "boolean" else list(fact.values or ())
        for answer in answers:
            missing = _missing({"date_of_service": AS_OF.isoformat(), fact.name: answer}, policies, policy)
            for item in items.values():
                enabled = _enabled_under(item, fact.name, answer)
                if enabled is None:
                    continue
                link = item["linkId"]
                target = (
                    link
                    if link in _missing({"date_of_service": AS_OF.isoformat()}, policies, policy)
                    else (stands_for[link])
                )
                assert enabled == (target in missing), (link, fact.name, answer)
                checked += 1
    assert checked > 30


def test_adaptive_questionnaire_has_no_items(policy: Any) -> None:
    q = dtr.build_adaptive_questionnaire(policy, as_of=AS_OF)
    assert_r4(q)
    assert q["url"] == dtr.adaptive_questionnaire_url(policy)
    assert {"url": dtr.ADAPTIVE_EXT, "valueBoolean": True} in q["extension"]
    assert "item" not in q


def test_canonical_lookup(policy: Any, policies: PolicySet) -> None:
    assert dtr.policy_for_questionnaire(dtr.questionnaire_url(policy) + "|2009-10-06", policies) == (
        policy,
        False,
    )
    assert dtr.policy_for_questionnaire(dtr.adaptive_questionnaire_url(policy), policies) == (policy, True)
    assert dtr.policy_for_questionnaire("http://example.org/Questionnaire/other", policies) is None


def test_response_answers_become_the_case(policy: Any) -> None:
    qr = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [
            {"linkId": "procedure_codes", "answer": [{"valueString": "77425"}, {"valueString": "77469"}]},
            {"linkId": "date_of_service", "answer": [{"valueDate": "2026-03-02"}]},
            {
                "linkId": "tumor_site",
                "answer": [{"valueCoding": {"system": dtr.fact_code_system("tumor_site"), "code": "rectum"}}],
            },
            {"linkId": "margin_distance_mm", "answer": [{"valueDecimal": 0.5}]},
            {"linkId": "t_stage", "answer": [{"valueString": "pT4b"}]},
            {"linkId": "recurrent", "answer": [{"valueBoolean": False}]},
        ],
    }
    case, answered = dtr.questionnaire_response_to_case(qr, policy)
    assert case == {
        "procedure_codes": ["77425", "77469"],
        "date_of_service": "2026-03-02",
        "tumor_site": "rectum",
        "margin_distance_mm": 0.5,
        "t_stage": ["pT4b"],
        "recurrent": False,
    }
    assert answered[0] == "procedure_codes"


def test_a_wrongly_typed_answer_is_a_case_error(policy: Any) -> None:
    from medpolicy import CaseError

    qr = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [{"linkId": "recurrent", "answer": [{"valueString": "yes"}]}],
    }
    with pytest.raises(CaseError) as info:
        dtr.questionnaire_response_to_case(qr, policy)
    assert info.value.errors[0].field == "recurrent"
    assert "linkId recurrent" in info.value.errors[0].message


def test_prepopulated_items_are_found_at_any_depth() -> None:
    sdc = "http://hl7.org/fhir/uv/sdc/StructureDefinition"

    def expr(name: str) -> list[dict[str, Any]]:
        return [
            {
                "url": f"{sdc}/sdc-questionnaire-{name}",
                "valueExpression": {"language": "text/cql", "expression": "X"},
            }
        ]

    q = {
        "resourceType": "Questionnaire",
        "status": "active",
        "item": [
            {
                "linkId": "g",
                "type": "group",
                "item": [
                    {"linkId": "a", "type": "string", "extension": expr("initialExpression")},
                    {"linkId": "b", "type": "decimal", "extension": expr("calculatedExpression")},
                    {"linkId": "c", "type": "choice", "extension": expr("candidateExpression")},
                    {"linkId": "d", "type": "string"},
                ],
            }
        ],
    }
    assert dtr.prepopulated_items(q) == {"a": "initialExpression", "b": "calculatedExpression"}


def test_our_questionnaire_declares_no_prepopulation(questionnaire: dict[str, Any]) -> None:
    # pre-filled answers come in the $questionnaire-package draft (marked 'auto'), not from the items
    assert dtr.prepopulated_items(questionnaire) == {}


def test_walking_a_questionnaire_leaves_no_garbage_cycle(questionnaire: dict[str, Any]) -> None:
    """The walks a DTR request makes over a questionnaire (its pre-populated items, the required
    questions a response leaves unanswered, in groups at any depth) are freed by reference counting: a
    request must not leave reference cycles for the garbage collector (each one makes it run sooner,
    pausing the server)."""
    import gc

    nested = {
        "resourceType": "Questionnaire",
        "status": "active",
        "item": [
            *questionnaire["item"],
            {
                "linkId": "g",
                "type": "group",
                "item": [{"linkId": "inner", "type": "string", "required": True, "text": "Inner"}],
            },
        ],
    }
    empty = {"resourceType": "QuestionnaireResponse", "status": "in-progress", "item": []}
    gc.collect()
    gc.disable()
    try:
        dtr.prepopulated_items(nested)
        dtr.unanswered_required(nested, empty, "QuestionnaireResponse")
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable == 0
    missing = dtr.unanswered_required(nested, empty, "QuestionnaireResponse")
    assert [p.value for p in missing][-1:] == ["inner"]  # the walk went into the group
