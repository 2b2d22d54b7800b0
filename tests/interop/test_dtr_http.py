"""Da Vinci DTR over real HTTP (uvicorn on loopback, SQLite store): $questionnaire-package,
$next-question (adaptive), QuestionnaireResponse/$determine, against the Inferno DTR kit fixtures.

Fixtures: tests/fixtures/dtr (Inferno DTR test kit, DTR 2.0.1). Every FHIR resource the service
answers is validated with fhir.resources R4B (fhir.resources 8 has no R4 package; R4B is nearest).
Variants of a fixture are built in the test from the file and say what they change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cds_client import validate_r4b

from medpolicy import PolicySet, decide, load_policies
from medpolicy.interop import dtr
from medpolicy.service import testing as service_testing

# The published HL7 / Inferno examples, kept verbatim in tests/fixtures (see its README for sources).
SHARED = Path(__file__).resolve().parents[1]
DTR_FIXTURES = SHARED / "fixtures" / "dtr"
FHIR_JSON = "application/fhir+json"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DTR_FIXTURES / name).read_text())
    return data


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return load_policies()


def post(
    server: service_testing.LiveServer, path: str, body: Any, token: str | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(
        server.url(path),
        content=content,
        headers=server.headers(token, **{"Content-Type": FHIR_JSON}),
        timeout=60,
    )
    if response.headers.get("content-type", "").startswith(FHIR_JSON) or response.status_code >= 400:
        validate_r4b(response.json())
    return response


def issues(response: httpx.Response) -> list[dict[str, Any]]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return list(body["issue"])


def codes(response: httpx.Response) -> list[str]:
    return [i["details"]["coding"][0]["code"] for i in issues(response)]


def expressions(response: httpx.Response) -> list[str]:
    return [e for i in issues(response) for e in i.get("expression", [])]


# ---------------------------------------------------------------------------- $questionnaire-package

PACKAGE = "/fhir/Questionnaire/$questionnaire-package"
NEXT = "/fhir/Questionnaire/$next-question"
DETERMINE = "/fhir/QuestionnaireResponse/$determine"


def iort_package_request() -> dict[str, Any]:
    """questionnaire_package_input_params_conformant.json with the order changed to IORT: CPT 77425,
    reason C20 (rectal cancer), planned for 2026-03-02."""
    params = fixture("questionnaire_package_input_params_conformant.json")
    order = params["parameter"][1]["resource"]
    order["code"] = {
        "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "77425"}],
        "text": "IORT",
    }
    order["reasonCode"] = [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C20"}]}]
    order["occurrenceDateTime"] = "2026-03-02T08:00:00Z"
    return params


def test_package_conformant_fixture_is_accepted_with_a_warning(server: service_testing.LiveServer) -> None:
    response = post(server, PACKAGE, fixture("questionnaire_package_input_params_conformant.json"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Parameters"
    assert [p["name"] for p in body["parameter"]] == ["outcome"]  # a blood gas panel: no policy of ours
    outcome = body["parameter"][0]["resource"]
    assert outcome["issue"][0]["severity"] == "warning"
    assert "ServiceRequest/ServiceRequestExample" in outcome["issue"][0]["diagnostics"]


def test_package_non_conformant_fixture_is_rejected(server: service_testing.LiveServer) -> None:
    response = post(server, PACKAGE, fixture("questionnaire_package_input_params_non_conformant.json"))
    assert response.status_code == 422
    assert codes(response) == ["wrong_resource_type"]
    assert "must be a Parameters, not a Bundle" in issues(response)[0]["details"]["text"]


def test_package_ri_fixture_is_rejected_naming_the_coverage_elements(
    server: service_testing.LiveServer,
) -> None:
    # The reference-implementation request sends a Coverage with an id only; R4 needs beneficiary, payor.
    response = post(server, PACKAGE, fixture("questionnaire_package_input_params_ri.json"))
    assert response.status_code == 422
    assert set(expressions(response)) >= {
        "Parameters.parameter[0].resource.beneficiary",
        "Parameters.parameter[0].resource.payor",
    }


def test_package_for_an_iort_order(server: service_testing.LiveServer, policies: PolicySet) -> None:
    response = post(server, PACKAGE, iort_package_request())
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["name"] for p in body["parameter"]] == ["PackageBundle"]
    bundle = body["parameter"][0]["resource"]
    assert bundle["type"] == "collection"
    questionnaire, draft = (e["resource"] for e in bundle["entry"])
    policy = policies.get("bluekc-iort")
    assert questionnaire["url"] == dtr.questionnaire_url(policy)
    assert draft["questionnaire"] == f"{questionnaire['url']}|{questionnaire['version']}"
    contexts = [
        e["valueReference"]["reference"] for e in draft["extension"] if e["url"] == dtr.QR_CONTEXT_EXT
    ]
    assert contexts == ["Coverage/CoverageExample", "ServiceRequest/ServiceRequestExample"]
    answers = {i["linkId"]: i["answer"] for i in draft["item"]}
    assert answers["procedure_codes"][0]["valueString"] == "77425"
    assert answers["diagnosis_codes"][0]["valueString"] == "C20"
    assert answers["date_of_service"][0]["valueDate"] == "2026-03-02"
    assert answers["tumor_site"][0]["valueCoding"]["code"] == "rectum"  # derived from C20
    origin = answers["procedure_codes"][0]["extension"][0]
    assert origin == {
        "url": dtr.INFORMATION_ORIGIN_EXT,
        "extension": [{"url": "source", "valueCode": "auto"}],
    }
    # our Questionnaire declares no pre-population of its own (the draft carries it, marked 'auto'),
    # and the draft keeps every information-origin rule
    assert dtr.prepopulated_items(questionnaire) == {}
    dtr.check_questionnaire_response(draft, questionnaire=questionnaire)


def test_package_by_canonical(server: service_testing.LiveServer, policies: PolicySet) -> None:
    policy = policies.get("bluekc-iort")
    params = fixture("questionnaire_package_input_params_conformant.json")
    params["parameter"] = [
        params["parameter"][0],
        {"name": "questionnaire", "valueCanonical": dtr.adaptive_questionnaire_url(policy)},
        {"name": "questionnaire", "valueCanonical": "http://example.org/Questionnaire/unknown"},
    ]
    response = post(server, PACKAGE, params)
    assert response.status_code == 200, response.text
    names = [p["name"] for p in response.json()["parameter"]]
    assert names == ["PackageBundle", "outcome"]
    adaptive = response.json()["parameter"][0]["resource"]["entry"][0]["resource"]
    assert adaptive["url"] == dtr.adaptive_questionnaire_url(policy)
    warning = response.json()["parameter"][1]["resource"]["issue"][0]
    assert warning["code"] == "not-found"
    assert "http://example.org/Questionnaire/unknown" in warning["diagnostics"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "invalid_json"),
        (
            {"resourceType": "Parameters", "parameter": [{"name": "context", "valueString": "x"}]},
            422,
            "missing_parameter",
        ),
        (
            {
                "resourceType": "Parameters",
                "parameter": [
                    {
                        "name": "coverage",
                        "resource": {
                            "resourceType": "Coverage",
                            "status": "active",
                            "beneficiary": {"reference": "Patient/p"},
                            "payor": [{"reference": "Organization/o"}],
                        },
                    }
                ],
            },
            422,
            "missing_parameter",
        ),
    ],
)
def test_package_malformed_requests(
    server: service_testing.LiveServer, body: Any, status: int, code: str
) -> None:
    response = post(server, PACKAGE, body)
    assert response.status_code == status
    assert codes(response)[0] == code


def test_package_needs_a_token(server: service_testing.LiveServer) -> None:
    response = httpx.post(server.url(PACKAGE), json=iort_package_request(), timeout=30)
    assert response.status_code == 401
    assert response.json()["resourceType"] == "OperationOutcome"


# ---------------------------------------------------------------------------------- $next-question


def adaptive_start(policies: PolicySet) -> dict[str, Any]:
    """next_question_initial_input_params_conformant.json with the contained Questionnaire's url set
    to our adaptive questionnaire (the fixture names Inferno's dinner-order questionnaire)."""
    params = fixture("next_question_initial_input_params_conformant.json")
    contained = params["parameter"][0]["resource"]["contained"][0]
    contained["url"] = dtr.adaptive_questionnaire_url(policies.get("bluekc-iort"))
    return params


def test_next_question_conformant_fixture_shape_is_accepted(
    server: service_testing.LiveServer, policies: PolicySet
) -> None:
    response = post(server, NEXT, adaptive_start(policies))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["parameter"][0]["name"] == "return"
    qr = body["parameter"][0]["resource"]
    assert qr["status"] == "in-progress"
    assert qr["id"] == "adaptive-dinner-response"  # the response is the one sent, updated
    q = qr["contained"][0]
    assert len(q["item"]) == 1
    first = decide({}, policies, policy_id="bluekc-iort").missing_facts[0].name
    assert q["item"][0]["linkId"] == first


def test_next_question_for_another_payers_questionnaire_completes_at_once(
    server: service_testing.LiveServer,
) -> None:
    """next_question_initial_input_params_conformant.json starts Inferno's dinner-order adaptive
    questionnaire, which is not ours: this payer has no question to ask, so (SDC/DTR: the server
    completes the response when there are no more questions) it is echoed back completed, with a
    display note and the determination extension saying no policy of this payer governs it."""
    request = fixture("next_question_initial_input_params_conformant.json")
    response = post(server, NEXT, request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert [p["name"] for p in body["parameter"]] == ["return"]
    qr = body["parameter"][0]["resource"]
    sent = request["parameter"][0]["resource"]
    assert qr["id"] == sent["id"] == "adaptive-dinner-response"
    assert qr["status"] == "completed"
    assert qr["subject"] == sent["subject"]
    assert "item" not in qr  # nothing answered, nothing invented
    q = qr["contained"][0]
    assert q["url"] == "urn:inferno:dtr-test-kit:dinner-order-adaptive"
    assert [(i["linkId"], i["type"]) for i in q["item"]] == [(dtr.NOTE_LINK_ID, "display")]
    assert "does not administer the adaptive questionnaire" in q["item"][0]["text"]
    assert "urn:inferno:dtr-test-kit:dinner-order-adaptive" in q["item"][0]["text"]
    parts = determination_of(qr)
    assert parts["outcome"] == ["not_applicable"]
    assert "determinationId" not in parts  # nothing decided, nothing stored
    # a completed response sent again is completed again, with one note (not two)
    again = post(
        server,
        NEXT,
        {"resourceType": "Parameters", "parameter": [{"name": "questionnaire-response", "resource": qr}]},
    )
    assert again.status_code == 200, again.text
    q_again = again.json()["parameter"][0]["resource"]["contained"][0]
    assert [i["linkId"] for i in q_again["item"]] == [dtr.NOTE_LINK_ID]


def dinner_request(questionnaire_fixture: str, answers: list[dict[str, Any]]) -> dict[str, Any]:
    """next_question_initial_input_params_conformant.json with the contained Questionnaire replaced by
    an Inferno adaptive-form step (dinner_order_adaptive_next_question_*.json, a Questionnaire as the
    dinner server returns it after that step) and the response carrying ``answers``."""
    params = fixture("next_question_initial_input_params_conformant.json")
    qr = params["parameter"][0]["resource"]
    qr["contained"] = [fixture(questionnaire_fixture)]
    qr["item"] = answers
    return params


def origin(source: str, author: str | None = None) -> list[dict[str, Any]]:
    subs: list[dict[str, Any]] = [{"url": "source", "valueCode": source}]
    if author:
        subs.append(
            {"url": "author", "extension": [{"url": "practitioner", "valueReference": {"reference": author}}]}
        )
    return [{"url": dtr.INFORMATION_ORIGIN_EXT, "extension": subs}]


def dinner_answers(*, last_name_origin: str = "auto", burrito: bool = False) -> list[dict[str, Any]]:
    """Answers to the dinner questionnaire as the DTR kit expects them: PBD.1 pre-populated (auto),
    PBD.2 pre-populated then changed (override), LOC.1 pre-populated, 3.1 entered (manual)."""
    last_author = None if last_name_origin == "auto" else "Practitioner/pra1234"
    dinner: list[dict[str, Any]] = [
        {
            "linkId": "3.1",
            "text": "What would you like for dinner?",
            "answer": [
                {
                    "valueCoding": {"code": "Bean Burrito"},
                    "extension": origin("manual", "Practitioner/pra1234"),
                }
            ],
        }
    ]
    if burrito:
        dinner.append(
            {
                "linkId": "3.2.b",
                "answer": [
                    {
                        "valueCoding": {"code": "Guacamole"},
                        "extension": origin("manual", "Practitioner/pra1234"),
                    }
                ],
            }
        )
    return [
        {
            "linkId": "PBD",
            "item": [
                {
                    "linkId": "PBD.1",
                    "answer": [{"valueString": "Smith", "extension": origin(last_name_origin, last_author)}],
                },
                {
                    "linkId": "PBD.2",
                    "answer": [
                        {"valueString": "Johnny", "extension": origin("override", "Practitioner/pra1234")}
                    ],
                },
            ],
        },
        {
            "linkId": "LOC",
            "item": [{"linkId": "LOC.1", "answer": [{"valueString": "Home", "extension": origin("auto")}]}],
        },
        {"linkId": "3", "item": dinner},
    ]


@pytest.mark.parametrize(
    ("questionnaire_fixture", "burrito"),
    [
        ("dinner_order_adaptive_next_question_initial.json", False),
        ("dinner_order_adaptive_next_question_burrito.json", True),
    ],
)
def test_dinner_adaptive_steps_are_completed(
    server: service_testing.LiveServer, questionnaire_fixture: str, burrito: bool
) -> None:
    """The kit's adaptive-form steps, answered as the kit expects, are valid requests; they are not
    ours, so they complete at once (their questions and answers echoed unchanged)."""
    request = dinner_request(questionnaire_fixture, dinner_answers(burrito=burrito))
    response = post(server, NEXT, request)
    assert response.status_code == 200, response.text
    qr = response.json()["parameter"][0]["resource"]
    assert qr["status"] == "completed"
    assert qr["item"] == request["parameter"][0]["resource"]["item"]
    links = [i["linkId"] for i in qr["contained"][0]["item"]]
    sent_links = [i["linkId"] for i in fixture(questionnaire_fixture)["item"]]
    assert links == [*sent_links, dtr.NOTE_LINK_ID]
    assert determination_of(qr)["outcome"] == ["not_applicable"]


def test_another_payers_adaptive_questionnaire_with_codes_we_govern_is_decided(
    server: service_testing.LiveServer,
) -> None:
    """As $determine does for a response to another payer's questionnaire, codings in the answers
    count: an IORT procedure (CPT 77425) for rectal cancer (C20) gets the IORT policy's determination
    (stored), still completing the foreign questionnaire."""
    answers = dinner_answers()
    coded = [
        ("proc", "Procedure", "http://www.ama-assn.org/go/cpt", "77425"),
        ("dx", "Diagnosis", "http://hl7.org/fhir/sid/icd-10-cm", "C20"),
    ]
    answers[-1]["item"].extend(
        {
            "linkId": link,
            "answer": [
                {
                    "valueCoding": {"system": system, "code": code},
                    "extension": origin("manual", "Practitioner/pra1234"),
                }
            ],
        }
        for link, _, system, code in coded
    )
    request = dinner_request("dinner_order_adaptive_next_question_initial.json", answers)
    # the step's Questionnaire with two coded questions added to its "Dinner Order" group
    questionnaire = request["parameter"][0]["resource"]["contained"][0]
    questionnaire["item"][-1]["item"].extend(
        {"linkId": link, "text": text, "type": "choice"} for link, text, _, _ in coded
    )
    response = post(server, NEXT, request)
    assert response.status_code == 200, response.text
    qr = response.json()["parameter"][0]["resource"]
    assert qr["status"] == "completed"
    parts = determination_of(qr)
    assert parts["policy"] == ["bluekc-iort"]
    assert parts["outcome"] == ["information_needed"]
    assert "margin_status" in parts["missingFact"]
    stored = httpx.get(
        server.url(f"/v1/determinations/{parts['determinationId'][0]}"), headers=server.headers(), timeout=30
    )
    assert stored.status_code == 200
    note = qr["contained"][0]["item"][-1]
    assert note["linkId"] == dtr.NOTE_LINK_ID
    assert "read for their codes" in note["text"]


def test_next_question_rejects_a_manual_answer_to_a_prepopulated_item(
    server: service_testing.LiveServer,
) -> None:
    """PBD.1 carries an sdc-questionnaire-initialExpression in the kit's dinner Questionnaire: its
    answer is 'auto' or 'override', never 'manual' (with an author, so only that rule is broken)."""
    request = dinner_request(
        "dinner_order_adaptive_next_question_initial.json", dinner_answers(last_name_origin="manual")
    )
    response = post(server, NEXT, request)
    assert response.status_code == 422
    assert codes(response) == ["invalid_origin"]
    text = issues(response)[0]["details"]["text"]
    assert "'PBD.1'" in text
    assert "initialExpression" in text
    assert expressions(response) == [
        "Parameters.parameter[0].resource.item[0].item[0].answer[0].extension[0].extension.where(url='source')"
    ]
    # the same answer marked 'override' (pre-populated, then changed by the user) is accepted
    ok = post(
        server,
        NEXT,
        dinner_request(
            "dinner_order_adaptive_next_question_initial.json", dinner_answers(last_name_origin="override")
        ),
    )
    assert ok.status_code == 200, ok.text


def test_next_question_nonconformant_fixture_is_rejected(server: service_testing.LiveServer) -> None:
    response = post(server, NEXT, fixture("next_question_initial_input_params_nonconformant.json"))
    assert response.status_code == 422
    assert codes(response) == ["missing_parameter"]
    assert expressions(response) == ["Parameters.parameter.where(name='questionnaire-response')"]


def test_next_question_with_a_required_answer_missing_is_rejected(server: service_testing.LiveServer) -> None:
    response = post(server, NEXT, fixture("next_question_input_params_missing_answer.json"))
    assert response.status_code == 422
    assert codes(response) == ["required_answer_missing"]
    assert "'3.1'" in issues(response)[0]["details"]["text"]
    assert expressions(response)[0].endswith(".item.where(linkId='3.1')")


def _answer(item: dict[str, Any], value: Any) -> list[dict[str, Any]]:
    origin = [  # entered by a user: 'manual' with its author (DTR dtrx-1)
        {
            "url": dtr.INFORMATION_ORIGIN_EXT,
            "extension": [
                {"url": "source", "valueCode": "manual"},
                {
                    "url": "author",
                    "extension": [
                        {"url": "practitioner", "valueReference": {"reference": "Practitioner/p1"}}
                    ],
                },
            ],
        }
    ]
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if item["type"] == "choice":
            option = next(o["valueCoding"] for o in item["answerOption"] if o["valueCoding"]["code"] == v)
            out.append({"valueCoding": option, "extension": origin})
        elif item["type"] == "boolean":
            out.append({"valueBoolean": v, "extension": origin})
        elif item["type"] == "decimal":
            out.append({"valueDecimal": v, "extension": origin})
        elif item["type"] == "date":
            out.append({"valueDate": v, "extension": origin})
        else:
            out.append({"valueString": v, "extension": origin})
    return out


def walk(
    server: service_testing.LiveServer,
    policies: PolicySet,
    truth: dict[str, Any],
    *,
    skip: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], list[str]]:
    """Answer $next-question from ``truth`` until the response is completed; check every question
    asked is a fact the engine still misses. Facts in ``skip`` are left unanswered."""
    params = adaptive_start(policies)
    asked: list[str] = []
    for _ in range(20):
        response = post(server, NEXT, params)
        assert response.status_code == 200, response.text
        qr = response.json()["parameter"][0]["resource"]
        if qr["status"] == "completed":
            return qr, asked
        item = qr["contained"][0]["item"][-1]
        known, _ = dtr.questionnaire_response_to_case(qr, policies.get("bluekc-iort"))
        missing = [m.name for m in decide(known, policies, policy_id="bluekc-iort").missing_facts]
        assert item["linkId"] in missing, (item["linkId"], missing)
        assert item["linkId"] not in asked
        asked.append(item["linkId"])
        if item["linkId"] not in skip and item["linkId"] in truth:
            qr.setdefault("item", []).append(
                {
                    "linkId": item["linkId"],
                    "text": item["text"],
                    "answer": _answer(item, truth[item["linkId"]]),
                }
            )
        params = {
            "resourceType": "Parameters",
            "parameter": [{"name": "questionnaire-response", "resource": qr}],
        }
    raise AssertionError("the adaptive questionnaire did not complete")


RECTAL_T4_POSITIVE = {
    "procedure_codes": ["77425"],
    "date_of_service": "2026-03-02",
    "diagnosis_codes": ["C20"],
    "tumor_site": "rectum",
    "margin_status": "positive",
    "margin_distance_mm": 0.5,
    "t_stage": ["pT4b"],
    "recurrent": False,
}


def determination_of(qr: dict[str, Any]) -> dict[str, list[Any]]:
    ext = next(e for e in qr["extension"] if e["url"] == dtr.DETERMINATION_EXT)
    parts: dict[str, list[Any]] = {}
    for sub in ext["extension"]:
        parts.setdefault(sub["url"], []).append(next(v for k, v in sub.items() if k.startswith("value")))
    return parts


def test_adaptive_walk_to_medically_necessary(
    server: service_testing.LiveServer, policies: PolicySet
) -> None:
    qr, asked = walk(server, policies, RECTAL_T4_POSITIVE)
    parts = determination_of(qr)
    assert parts["outcome"] == ["medically_necessary"]
    assert asked[0] == "procedure_codes"
    assert len(asked) < len(RECTAL_T4_POSITIVE)  # never everything: only what can still matter
    display = qr["contained"][0]["item"][-1]
    assert display["type"] == "display"
    assert "medically necessary" in display["text"]
    det_id = parts["determinationId"][0]
    stored = httpx.get(server.url(f"/v1/determinations/{det_id}"), headers=server.headers(), timeout=30)
    assert stored.status_code == 200
    assert stored.json()["outcome"] == "medically_necessary"


def test_adaptive_walk_for_pancreatic_cancer_stops_early(
    server: service_testing.LiveServer, policies: PolicySet
) -> None:
    truth = {**RECTAL_T4_POSITIVE, "diagnosis_codes": ["C25.0"], "tumor_site": "pancreas"}
    qr, asked = walk(server, policies, truth)
    assert determination_of(qr)["outcome"] == ["investigational"]
    assert "t_stage" not in asked
    assert "margin_status" not in asked


def test_adaptive_walk_with_unknown_margins_completes_as_information_needed(
    server: service_testing.LiveServer, policies: PolicySet
) -> None:
    qr, asked = walk(
        server, policies, RECTAL_T4_POSITIVE, skip=frozenset({"margin_status", "margin_distance_mm"})
    )
    parts = determination_of(qr)
    assert parts["outcome"] == ["information_needed"]
    assert "margin_status" in parts["missingFact"]
    assert "margin_status" in asked


# ------------------------------------------------------------------------ QuestionnaireResponse/$determine


def test_conformant_questionnaire_response_fixture_is_accepted(server: service_testing.LiveServer) -> None:
    # A response to Inferno's respiratory-assist-device questionnaire: read for its codes (J44.9...),
    # not governed by any policy of ours.
    response = post(server, DETERMINE, fixture("questionnaire_response_conformant.json"))
    assert response.status_code == 200, response.text
    parts = determination_of(response.json())
    assert parts["outcome"] == ["not_applicable"]
    assert "content-location" not in response.headers  # no policy decision, nothing stored


def test_response_with_an_unanswered_question_is_rejected(server: service_testing.LiveServer) -> None:
    response = post(server, DETERMINE, fixture("questionnaire_response_cql_answer_missing.json"))
    assert response.status_code == 422
    assert codes(response) == ["item_without_answer"]
    assert expressions(response) == ["QuestionnaireResponse.item[0].item[1]"]
    assert "'PBD.2'" in issues(response)[0]["details"]["text"]


def kit_questionnaire() -> dict[str, Any]:
    """The DTR kit's standard Questionnaire (HomeOxygenTherapyLab): the first Questionnaire of the
    first PackageBundle of questionnaire_package_output_params_conformant.json, which the kit checks
    its QuestionnaireResponse fixtures against. It pre-populates PBD.*, PND.*, SIGPNP.2-4 by CQL."""
    package = fixture("questionnaire_package_output_params_conformant.json")
    q: dict[str, Any] = package["parameter"][0]["resource"]["entry"][0]["resource"]
    assert q["resourceType"] == "Questionnaire"
    assert q["id"] == "HomeOxygenTherapyLab"
    return q


def with_questionnaire(qr: dict[str, Any], questionnaire: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "questionnaire-response", "resource": qr},
            {"name": "questionnaire", "resource": questionnaire},
        ],
    }


def author(reference: str) -> dict[str, Any]:
    return {
        "url": "author",
        "extension": [{"url": "practitioner", "valueReference": {"reference": reference}}],
    }


def test_kit_questionnaire_prepopulates_pbd_1() -> None:
    items = dtr.prepopulated_items(kit_questionnaire())
    assert items["PBD.1"] == "initialExpression"
    assert "3" not in items
    assert "5.1" not in items


def test_incorrect_origin_with_its_questionnaire_is_rejected_naming_the_item(
    server: service_testing.LiveServer,
) -> None:
    """questionnaire_response_incorrect_origin.json marks the answer to PBD.1, which the Questionnaire
    pre-populates by CQL, 'manual'. With the Questionnaire supplied: 422 invalid_origin naming PBD.1
    (and, as 'manual' needs an author that the fixture does not give, origin_author_missing)."""
    qr = fixture("questionnaire_response_incorrect_origin.json")
    response = post(server, DETERMINE, with_questionnaire(qr, kit_questionnaire()))
    assert response.status_code == 422
    assert codes(response) == ["invalid_origin", "origin_author_missing"]
    first = issues(response)[0]
    assert "'PBD.1'" in first["details"]["text"]
    assert "pre-populated" in first["details"]["text"]
    assert first["expression"] == [
        "Parameters.parameter[0].resource.item[0].item[0].answer[0].extension[0].extension.where(url='source')"
    ]
    assert "content-location" not in response.headers


def test_incorrect_origin_alone_is_rejected_for_its_missing_author(
    server: service_testing.LiveServer,
) -> None:
    # Without the Questionnaire the pre-population breach cannot be seen, but the fixture's 'manual'
    # answer has no author, which DTR 2.0.1 (dtrx-1) requires of 'manual' and 'override'.
    response = post(server, DETERMINE, fixture("questionnaire_response_incorrect_origin.json"))
    assert response.status_code == 422
    assert codes(response) == ["origin_author_missing"]
    assert expressions(response) == ["QuestionnaireResponse.item[0].item[0].answer[0].extension[0]"]
    assert "'PBD.1'" in issues(response)[0]["details"]["text"]


def test_conformant_response_with_its_questionnaire_is_accepted(server: service_testing.LiveServer) -> None:
    body = with_questionnaire(fixture("questionnaire_response_conformant.json"), kit_questionnaire())
    response = post(server, DETERMINE, body)
    assert response.status_code == 200, response.text
    assert response.json()["resourceType"] == "QuestionnaireResponse"
    assert determination_of(response.json())["outcome"] == ["not_applicable"]


def manual_pbd_1_with_author() -> dict[str, Any]:
    """questionnaire_response_incorrect_origin.json with an author added to PBD.1's 'manual' origin,
    so that the only breach left is the pre-population one."""
    qr = fixture("questionnaire_response_incorrect_origin.json")
    qr["item"][0]["item"][0]["answer"][0]["extension"][0]["extension"].append(author("Practitioner/pra1234"))
    return qr


def test_prepopulation_rule_needs_the_questionnaire(server: service_testing.LiveServer) -> None:
    qr = manual_pbd_1_with_author()
    assert post(server, DETERMINE, qr).status_code == 200  # nothing says PBD.1 is pre-populated
    rejected = post(server, DETERMINE, with_questionnaire(qr, kit_questionnaire()))
    assert rejected.status_code == 422
    assert codes(rejected) == ["invalid_origin"]


def test_prepopulation_rule_with_a_contained_questionnaire(server: service_testing.LiveServer) -> None:
    qr = manual_pbd_1_with_author()
    q = kit_questionnaire()
    qr["contained"] = [q]
    qr["questionnaire"] = f"#{q['id']}"
    response = post(server, DETERMINE, qr)
    assert response.status_code == 422
    assert codes(response) == ["invalid_origin"]
    assert expressions(response)[0].startswith("QuestionnaireResponse.item[0].item[0].answer[0]")
    # a contained Questionnaire and a supplied one: which is answered is ambiguous
    both = post(server, DETERMINE, with_questionnaire(qr, kit_questionnaire()))
    assert both.status_code == 422
    assert codes(both) == ["questionnaire_mismatch"]


def test_a_supplied_questionnaire_must_be_the_one_answered(server: service_testing.LiveServer) -> None:
    qr = fixture("questionnaire_response_conformant.json")
    other = kit_questionnaire() | {"url": "http://example.org/Questionnaire/other"}
    response = post(server, DETERMINE, with_questionnaire(qr, other))
    assert response.status_code == 422
    assert codes(response) == ["questionnaire_mismatch"]
    assert expressions(response) == ["Parameters.parameter[1].resource.url"]
    # the canonical the response names (RespiratoryAssistDevices) is accepted
    named = kit_questionnaire() | {
        "url": "http://localhost:8090/fhir/r4/Questionnaire/RespiratoryAssistDevices"
    }
    ok = post(server, DETERMINE, with_questionnaire(qr, named))
    assert ok.status_code == 200, ok.text


def test_an_unknown_origin_code_is_rejected(server: service_testing.LiveServer) -> None:
    qr = fixture("questionnaire_response_conformant.json")
    qr["item"][0]["item"][0]["answer"][0]["extension"][0]["extension"][0]["valueCode"] = "guessed"
    response = post(server, DETERMINE, qr)
    assert response.status_code == 422
    assert codes(response) == ["invalid_origin"]


def test_an_auto_answer_with_an_author_is_rejected(server: service_testing.LiveServer) -> None:
    qr = fixture("questionnaire_response_conformant.json")
    qr["item"][0]["item"][0]["answer"][0]["extension"][0]["extension"].append(author("Practitioner/x"))
    response = post(server, DETERMINE, qr)
    assert response.status_code == 422
    assert codes(response) == ["origin_author_not_allowed"]


def test_our_questionnaire_response_is_decided_and_stored(
    server: service_testing.LiveServer, policies: PolicySet
) -> None:
    policy = policies.get("bluekc-iort")
    q = dtr.build_questionnaire(policy, policies)
    items = {i["linkId"]: i for i in q["item"]}
    qr = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{q['url']}|{q['version']}",
        "status": "completed",
        "subject": {"reference": "Patient/p1"},
        "item": [
            {"linkId": name, "answer": _answer(items[name], value)}
            for name, value in RECTAL_T4_POSITIVE.items()
            if name in items
        ],
    }
    response = post(server, DETERMINE, qr)
    assert response.status_code == 200, response.text
    parts = determination_of(response.json())
    assert parts["outcome"] == ["medically_necessary"]
    assert response.headers["content-location"] == f"/v1/determinations/{parts['determinationId'][0]}"


def test_invalid_answer_value_is_a_422_naming_the_fact(
    server: service_testing.LiveServer, policies: PolicySet
) -> None:
    policy = policies.get("bluekc-iort")
    qr = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": dtr.questionnaire_url(policy),
        "status": "completed",
        "item": [
            {"linkId": "diagnosis_codes", "answer": [{"valueString": "C18"}]}
        ],  # a category, not billable
    }
    response = post(server, DETERMINE, qr)
    assert response.status_code == 422
    assert codes(response) == ["non_billable_code"]


def test_read_questionnaire(server: service_testing.LiveServer, policies: PolicySet) -> None:
    response = httpx.get(server.url("/fhir/Questionnaire/bluekc-iort"), headers=server.headers(), timeout=60)
    assert response.status_code == 200
    validate_r4b(response.json())
    assert response.json()["url"] == dtr.questionnaire_url(policies.get("bluekc-iort"))
    missing = httpx.get(server.url("/fhir/Questionnaire/nope"), headers=server.headers(), timeout=30)
    assert missing.status_code == 404
    assert missing.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize(("since", "bundles"), [("2014-01-01T00:00:00Z", 1), ("2025-01-01T00:00:00Z", 0)])
def test_package_changedsince(server: service_testing.LiveServer, since: str, bundles: int) -> None:
    params = iort_package_request()
    params["parameter"].append({"name": "changedsince", "valueInstant": since})
    response = post(server, PACKAGE, params)
    assert response.status_code == 200, response.text
    names = [p["name"] for p in response.json().get("parameter", [])]
    assert names.count("PackageBundle") == bundles
