"""Da Vinci PAS over real HTTP (uvicorn on loopback, SQLite store): Claim/$submit and Claim/$inquire
against the Inferno PAS kit fixtures, and IORT claims through the policy.

Fixtures: tests/fixtures/pas (Inferno PAS test kit). IORT claims are variants of
conformant_pas_bundle_v110.json built here (each says what it changes). Every FHIR resource the
service answers is validated with fhir.resources R4B (fhir.resources 8 has no R4 package).
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cds_client import validate_r4b

from medpolicy.interop import dtr, pas
from medpolicy.service import testing as service_testing

# The published HL7 / Inferno examples, kept verbatim in tests/fixtures (see its README for sources).
SHARED = Path(__file__).resolve().parents[1]
PAS_FIXTURES = SHARED / "fixtures" / "pas"
FHIR_JSON = "application/fhir+json"
SUBMIT = "/fhir/Claim/$submit"
INQUIRE = "/fhir/Claim/$inquire"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAS_FIXTURES / name).read_text())
    return data


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
    validate_r4b(response.json())
    return response


def codes(response: httpx.Response) -> list[str]:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    return [i["details"]["coding"][0]["code"] for i in body["issue"]]


def claim_response(response: httpx.Response) -> dict[str, Any]:
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle"
    assert bundle["type"] == "collection"
    first = bundle["entry"][0]["resource"]
    assert first["resourceType"] == "ClaimResponse"
    assert all(e.get("fullUrl") for e in bundle["entry"])
    return dict(first)


def review_actions(cr: dict[str, Any]) -> list[str]:
    out = []
    for item in cr["item"]:
        (adjudication,) = item["adjudication"]
        assert adjudication["category"]["coding"][0] == {
            "system": "http://terminology.hl7.org/CodeSystem/adjudication",
            "code": "submitted",
        }
        (review,) = [e for e in adjudication["extension"] if e["url"] == pas.REVIEW_ACTION_EXT]
        (code_ext,) = [e for e in review["extension"] if e["url"] == pas.REVIEW_ACTION_CODE_EXT]
        coding = code_ext["valueCodeableConcept"]["coding"][0]
        assert coding["system"] == pas.X12_306
        out.append(coding["code"])
    return out


def notes(cr: dict[str, Any]) -> str:
    return " ".join(n["text"] for n in cr.get("processNote", []))


def missing_facts(cr: dict[str, Any]) -> list[str]:
    return [
        e["valueString"]
        for item in cr["item"]
        for e in item.get("extension", [])
        if e["url"] == pas.MISSING_FACT_EXT
    ]


def iort_bundle(facts: dict[str, Any], *, dx: str = "C20", code: str = "77425") -> dict[str, Any]:
    """conformant_pas_bundle_v110.json changed to an IORT request: a fresh Bundle and Claim
    identifier, the item's productOrService CPT ``code`` serviced 2026-03-02, diagnosis ``dx``, and
    each fact in ``facts`` as a supportingInfo coded with medpolicy's case-fact system."""
    bundle = fixture("conformant_pas_bundle_v110.json")
    bundle["identifier"]["value"] = uuid.uuid4().hex
    claim = bundle["entry"][0]["resource"]
    claim["identifier"][0]["value"] = uuid.uuid4().hex
    claim["diagnosis"][0]["diagnosisCodeableConcept"]["coding"][0]["code"] = dx
    item = claim["item"][0]
    item["productOrService"] = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": code}]}
    item["servicedDate"] = "2026-03-02"
    infos = []
    for i, (name, value) in enumerate(facts.items(), start=1):
        info: dict[str, Any] = {
            "sequence": i,
            "category": {"coding": [{"system": pas.CASE_FACT_SYSTEM, "code": name}]},
        }
        if isinstance(value, bool):
            info["valueBoolean"] = value
        elif isinstance(value, int | float):
            info["valueQuantity"] = {
                "value": value,
                "unit": "mm",
                "system": "http://unitsofmeasure.org",
                "code": "mm",
            }
        else:
            info["valueString"] = value
        infos.append(info)
    if infos:
        claim["supportingInfo"] = infos
    return bundle


def inquiry_for(bundle: dict[str, Any]) -> dict[str, Any]:
    """conformant_pas_inquire_bundle_v110.json asking about ``bundle``'s Claim (identifier, item)."""
    inquiry = fixture("conformant_pas_inquire_bundle_v110.json")
    claim = bundle["entry"][0]["resource"]
    asked = inquiry["entry"][0]["resource"]
    asked["identifier"] = copy.deepcopy(claim["identifier"][:1])
    asked["item"][0]["productOrService"] = copy.deepcopy(claim["item"][0]["productOrService"])
    return inquiry


# ------------------------------------------------------------------------------ the published fixtures


@pytest.mark.parametrize(
    "name",
    [
        "conformant_pas_bundle_v110.json",
        "conformant_pas_bundle_v110_multiple_items.json",
        "conformant_pas_bundle_v110_uuid.json",
    ],
)
def test_conformant_fixture_is_answered(name: str, make_server: Any) -> None:
    live = make_server()
    request = fixture(name)
    response = post(live, SUBMIT, request)
    assert response.status_code == 200, response.text
    cr = claim_response(response)
    assert response.json()["identifier"] == request["identifier"]
    assert response.json()["meta"]["profile"] == [pas.PAS_RESPONSE_BUNDLE]
    assert cr["meta"]["profile"] == [pas.PAS_CLAIM_RESPONSE]
    assert cr["use"] == "preauthorization"
    assert cr["outcome"] == "complete"
    assert cr["identifier"][0]["value"] == request["entry"][0]["resource"]["identifier"][0]["value"]
    claim_items = request["entry"][0]["resource"]["item"]
    assert [i["itemSequence"] for i in cr["item"]] == [i["sequence"] for i in claim_items]
    # An X12 service-type "consultation": no policy of this payer governs it, so no action is required.
    assert review_actions(cr) == ["NA"] * len(claim_items)
    assert "no policy of this payer" in notes(cr)
    assert "preAuthRef" not in cr
    # the referenced patient, insurer and requestor travel with the response, as in the examples
    types = [e["resource"]["resourceType"] for e in response.json()["entry"][1:]]
    assert "Patient" in types
    assert "Organization" in types


def test_response_has_the_shape_of_the_published_examples(server: service_testing.LiveServer) -> None:
    response = post(server, SUBMIT, iort_bundle({"margin_status": "positive", "t_stage": "pT4b"}))
    ours = claim_response(response)
    example = fixture("valid_pa_response_bundle.json")["entry"][0]["resource"]
    assert set(example) - set(ours) <= {"text", "id"}
    example_review = example["item"][0]["adjudication"][0]["extension"][0]
    our_review = ours["item"][0]["adjudication"][0]["extension"][0]
    assert our_review["url"] == example_review["url"]
    assert [e["url"] for e in our_review["extension"]] == [e["url"] for e in example_review["extension"]]


def test_nonconformant_fixture_is_rejected(server: service_testing.LiveServer) -> None:
    response = post(server, SUBMIT, fixture("nonconformant_pas_bundle_v110.json"))
    assert response.status_code == 422
    assert codes(response) == ["missing_claim"]
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry"]


def test_the_published_response_examples_are_valid_r4() -> None:
    for name in (
        "valid_pa_response_bundle.json",
        "valid_pa_response_bundle_denial.json",
        "valid_pa_inquire_response_bundle.json",
    ):
        validate_r4b(fixture(name))


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (lambda b: b.__setitem__("resourceType", "Claim"), 422, "wrong_resource_type"),
        (lambda b: b["entry"].reverse(), 422, "claim_not_first"),
        (lambda b: b["entry"][0]["resource"].__setitem__("use", "claim"), 422, "invalid_value"),
        (lambda b: b.pop("identifier"), 422, "missing_element"),
        (lambda b: b["entry"][0]["resource"].pop("insurer"), 422, "missing_element"),
        (lambda b: b["entry"][0]["resource"].pop("patient"), 422, "invalid_resource"),
        (lambda b: b["entry"][1].pop("fullUrl"), 422, "missing_element"),
    ],
)
def test_broken_bundles_are_rejected(
    server: service_testing.LiveServer, mutate: Any, status: int, code: str
) -> None:
    bundle = fixture("conformant_pas_bundle_v110.json")
    mutate(bundle)
    response = post(server, SUBMIT, bundle)
    assert response.status_code == status, response.text
    assert code in codes(response)


def test_not_json_is_a_400(server: service_testing.LiveServer) -> None:
    response = post(server, SUBMIT, b"<Bundle/>")
    assert response.status_code == 400
    assert codes(response) == ["invalid_json"]


def test_a_parameters_wrapper_is_accepted(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"margin_status": "positive", "t_stage": "pT4b"})
    response = post(
        server,
        SUBMIT,
        {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": bundle}]},
    )
    assert response.status_code == 200, response.text
    assert review_actions(claim_response(response)) == ["A1"]


# ------------------------------------------------------------------------------------ IORT decisions


def test_rectal_t4_positive_margin_is_certified(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"margin_status": "positive", "t_stage": "pT4b"})
    response = post(server, SUBMIT, bundle)
    assert response.status_code == 200, response.text
    cr = claim_response(response)
    assert review_actions(cr) == ["A1"]
    assert cr["preAuthRef"].startswith("pa_")
    number = cr["item"][0]["adjudication"][0]["extension"][0]["extension"][0]
    assert number == {"url": "number", "valueString": cr["preAuthRef"]}
    assert missing_facts(cr) == []


def test_pancreatic_cancer_is_pended_for_physician_review(server: service_testing.LiveServer) -> None:
    response = post(server, SUBMIT, iort_bundle({"margin_status": "positive"}, dx="C25.0"))
    cr = claim_response(response)
    assert review_actions(cr) == ["A4"]
    assert "physician" in notes(cr)
    assert "investigational" in notes(cr)
    assert "preAuthRef" not in cr


def test_missing_margin_is_pended_with_the_missing_facts(server: service_testing.LiveServer) -> None:
    response = post(server, SUBMIT, iort_bundle({"t_stage": "pT4b"}))
    cr = claim_response(response)
    assert review_actions(cr) == ["A4"]
    assert "margin_status" in missing_facts(cr)
    assert "margin_status" in notes(cr)
    assert "information needed" in notes(cr).lower()


def test_facts_from_a_dtr_questionnaire_response_in_the_bundle(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({})
    qr = {
        "resourceType": "QuestionnaireResponse",
        "id": "dtr-answers",
        "status": "completed",
        "questionnaire": "https://medpolicy.dev/fhir/Questionnaire/bluekc-iort",
        "item": [
            {"linkId": "margin_distance_mm", "answer": [{"valueDecimal": 0.4}]},
            {"linkId": "recurrent", "answer": [{"valueBoolean": True}]},
        ],
    }
    bundle["entry"].append({"fullUrl": "urn:uuid:" + str(uuid.uuid4()), "resource": qr})
    bundle["entry"][0]["resource"]["supportingInfo"] = [
        {
            "sequence": 1,
            "category": {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes",
                        "code": "additionalInformation",
                    }
                ]
            },
            "valueReference": {"reference": bundle["entry"][-1]["fullUrl"]},
        }
    ]
    cr = claim_response(post(server, SUBMIT, bundle))
    assert review_actions(cr) == ["A1"]


def test_a_mixed_claim_answers_per_item(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"margin_status": "close", "recurrent": True})
    claim = bundle["entry"][0]["resource"]
    second = copy.deepcopy(claim["item"][0])
    second["sequence"] = 2
    second["productOrService"] = {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]}
    claim["item"].append(second)
    # approved as a whole (the IORT item meets the criteria): both items may proceed
    assert review_actions(claim_response(post(server, SUBMIT, bundle))) == ["A1", "A1"]
    pending = iort_bundle({"t_stage": "pT4b"})
    pending["entry"][0]["resource"]["item"].append({**copy.deepcopy(second)})
    assert review_actions(claim_response(post(server, SUBMIT, pending))) == ["A4", "NA"]


def test_urgent_level_of_service_makes_the_request_expedited(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"t_stage": "pT4b"})  # the fixture's levelOfServiceCode is U (urgent)
    cr = claim_response(post(server, SUBMIT, bundle))
    stored = httpx.get(
        server.url(
            f"/v1/prior-auth/{cr['item'][0]['adjudication'][0]['extension'][0]['extension'][0]['valueString']}"
        ),
        headers=server.headers(),
        timeout=30,
    )
    assert stored.json()["urgency"] == "expedited"


def test_an_invalid_diagnosis_code_is_a_422(server: service_testing.LiveServer) -> None:
    response = post(server, SUBMIT, iort_bundle({}, dx="C18"))  # a category header, not billable
    assert response.status_code == 422
    assert codes(response) == ["non_billable_code"]


# ------------------------------------------------------------------- idempotency, inquiry, physician


def pa_id(cr: dict[str, Any]) -> str:
    value: str = cr["item"][0]["adjudication"][0]["extension"][0]["extension"][0]["valueString"]
    return value


def test_resubmission_is_idempotent(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"t_stage": "pT4b"})
    first = claim_response(post(server, SUBMIT, bundle))
    count = server.store.count_pa_requests()
    again = claim_response(post(server, SUBMIT, bundle))
    assert pa_id(again) == pa_id(first)
    assert server.store.count_pa_requests() == count
    changed = copy.deepcopy(bundle)
    changed["entry"][0]["resource"]["supportingInfo"][0]["valueString"] = "pT3"
    response = post(server, SUBMIT, changed)
    assert response.status_code == 409
    assert codes(response) == ["idempotency_key_reused"]


def test_inquiry_fixture_after_the_fixture_submission(make_server: Any) -> None:
    live = make_server()
    submitted = claim_response(post(live, SUBMIT, fixture("conformant_pas_bundle_v110.json")))
    response = post(live, INQUIRE, fixture("conformant_pas_inquire_bundle_v110.json"))
    assert response.status_code == 200, response.text
    assert response.json()["meta"]["profile"] == [pas.PAS_INQUIRY_RESPONSE_BUNDLE]
    cr = claim_response(response)
    assert cr["meta"]["profile"] == [pas.PAS_INQUIRY_RESPONSE]
    assert pa_id(cr) == pa_id(submitted)
    assert review_actions(cr) == ["NA"]


def test_inquiry_for_an_unknown_claim_is_not_found(make_server: Any) -> None:
    live = make_server()
    response = post(live, INQUIRE, fixture("conformant_pas_inquire_bundle_v110.json"))
    assert response.status_code == 404
    assert codes(response) == ["prior_auth_not_found"]


def test_inquiry_only_sees_the_clients_own_requests(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"t_stage": "pT4b"})
    post(server, SUBMIT, bundle)
    response = post(server, INQUIRE, inquiry_for(bundle), token=server.other_token)
    assert response.status_code == 404


def test_physician_denial_then_inquiry_says_a3(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"margin_status": "positive"}, dx="C25.0")
    submitted = claim_response(post(server, SUBMIT, bundle))
    assert review_actions(submitted) == ["A4"]
    request_id = pa_id(submitted)
    before = claim_response(post(server, INQUIRE, inquiry_for(bundle)))
    assert review_actions(before) == ["A4"]
    denial = httpx.post(
        server.url(f"/v1/prior-auth/{request_id}/actions"),
        json={
            "action": "deny",
            "role": "physician",
            "on_behalf_of": "dr.bo",
            "reason": "IORT for pancreatic cancer is investigational under the policy.",
        },
        headers=server.headers(server.physician_token),
        timeout=30,
    )
    assert denial.status_code == 200, denial.text
    cr = claim_response(post(server, INQUIRE, inquiry_for(bundle)))
    assert review_actions(cr) == ["A3"]
    assert "pancreatic cancer is investigational" in notes(cr)
    reviewer = next(e for e in cr["extension"] if e["url"] == pas.REVIEWER_EXT)
    assert reviewer["extension"] == [{"url": "wasHumanReviewedFlag", "valueBoolean": True}]
    # a resubmission of the same Claim reports the decision too
    assert review_actions(claim_response(post(server, SUBMIT, bundle))) == ["A3"]


def test_nurse_approval_after_information_then_inquiry_says_a1(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"t_stage": "pT4b"})
    request_id = pa_id(claim_response(post(server, SUBMIT, bundle)))
    update = httpx.post(
        server.url(f"/v1/prior-auth/{request_id}/actions"),
        json={"action": "provide_information", "case_update": {"margin_status": "close"}},
        headers=server.headers(),
        timeout=30,
    )
    assert update.status_code == 200, update.text
    assert review_actions(claim_response(post(server, INQUIRE, inquiry_for(bundle)))) == ["A1"]


def test_withdrawn_request_is_cancelled(server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"t_stage": "pT4b"})
    request_id = pa_id(claim_response(post(server, SUBMIT, bundle)))
    withdrawal = httpx.post(
        server.url(f"/v1/prior-auth/{request_id}/actions"),
        json={"action": "withdraw"},
        headers=server.headers(),
        timeout=30,
    )
    assert withdrawal.status_code == 200, withdrawal.text
    assert review_actions(claim_response(post(server, INQUIRE, inquiry_for(bundle)))) == ["C"]


def correction_notes(cr: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(text, {sub-extension url: value}) of each processNote stating a correction."""
    out = []
    for note in cr.get("processNote", []):
        for ext in note.get("extension", []):
            if ext["url"] == pas.FACT_CORRECTION_EXT:
                values = {
                    sub["url"]: next(v for k, v in sub.items() if k.startswith("value"))
                    for sub in ext["extension"]
                }
                out.append((note["text"], values))
    return out


def test_inquiry_lists_the_corrections_of_the_submitted_facts(server: service_testing.LiveServer) -> None:
    """Issue 8: a nurse rewrites the provider's diagnosis (C50.911 -> C20) as a correction; the
    provider's $inquire shows it: old value, new value, who, when and why, in words and coded."""
    bundle = iort_bundle({"t_stage": "pT4b", "margin_status": "positive"}, dx="C50.911")
    request_id = pa_id(claim_response(post(server, SUBMIT, bundle)))
    assert correction_notes(claim_response(post(server, INQUIRE, inquiry_for(bundle)))) == []
    corrected = httpx.post(
        server.url(f"/v1/prior-auth/{request_id}/corrections"),
        json={
            "facts": {"diagnosis_codes": ["C20"]},
            "reason": "operative report: rectal primary",
            "role": "nurse",
            "on_behalf_of": "nurse.ann",
        },
        headers=server.headers(server.nurse_token),
        timeout=30,
    )
    assert corrected.status_code == 200, corrected.text
    cr = claim_response(post(server, INQUIRE, inquiry_for(bundle)))
    found = correction_notes(cr)
    text, values = found[0]
    assert values["fact"] == "diagnosis_codes"
    assert values["from"] == "C50.911"
    assert values["to"] == "C20"
    assert values["derived"] is False
    assert (values["author"], values["role"]) == ("nurse.ann", "nurse")
    assert values["reason"] == "operative report: rectal primary"
    assert values["date"].endswith("Z")
    assert "corrected by nurse.ann (nurse reviewer)" in text
    assert "from C50.911 (submitted as that)" in text
    assert "Reason: operative report: rectal primary." in text
    # one request-level note, numbered after the item's note, which the item still points at
    assert len(found) == 1
    assert [n["number"] for n in cr["processNote"]] == [1, 2]
    assert [i["noteNumber"] for i in cr["item"]] == [[1]]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """A fresh server per test (the published fixtures share one Claim identifier)."""
    from contextlib import ExitStack

    with ExitStack() as stack:
        count = 0

        def make() -> service_testing.LiveServer:
            nonlocal count
            count += 1
            folder = tmp_path / f"srv-{count}"
            folder.mkdir()
            return stack.enter_context(
                service_testing.running_server(service_testing.settings_for_tests(folder))
            )

        yield make


def test_dtr_module_constants_are_shared() -> None:
    assert pas.CASE_FACT_SYSTEM.startswith(dtr.CANONICAL_BASE)


def test_facts_from_observations_in_the_bundle(server: service_testing.LiveServer) -> None:
    """Clinical facts from Observations travelling in the Bundle (read by medpolicy.interop.fhir_case)."""
    bundle = iort_bundle({})
    patient = {"reference": "Patient/SubscriberExample"}
    observations = [
        {
            "resourceType": "Observation",
            "id": "t-stage",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "21899-0"}]},
            "subject": patient,
            "valueCodeableConcept": {"text": "pT4a"},
        },
        {
            "resourceType": "Observation",
            "id": "margin",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "81184-4"}]},
            "subject": patient,
            "valueQuantity": {
                "value": 0.8,
                "unit": "mm",
                "system": "http://unitsofmeasure.org",
                "code": "mm",
            },
        },
    ]
    for obs in observations:
        bundle["entry"].append({"fullUrl": f"urn:uuid:{uuid.uuid4()}", "resource": obs})
    cr = claim_response(post(server, SUBMIT, bundle))
    assert review_actions(cr) == ["A1"]


# --------------------------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_server(tmp_path: Path) -> Iterator[service_testing.LiveServer]:
    """A server whose store is a fresh schema of the PostgreSQL test server (skipped when unreachable,
    except under CI=true), as in tests/store/conftest.py."""
    import os
    import secrets

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    url = os.environ.get("MEDPOLICY_TEST_PG_URL") or (
        os.environ["DATABASE_URL"]
        if os.environ.get("DATABASE_URL", "").startswith("postgresql")
        else "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    admin = sa.create_engine(url, connect_args={"connect_timeout": 3})
    schema = f"medpolicy_pas_{secrets.token_hex(6)}"
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        reason = f"PostgreSQL is unreachable ({type(exc).__name__}); set MEDPOLICY_TEST_PG_URL"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    schema_url = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    settings = service_testing.settings_for_tests(tmp_path, database_url=schema_url.render_as_string(False))
    try:
        with service_testing.running_server(settings) as live:
            service_testing.add_test_reviewers(live.store)
            yield live
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.mark.postgres
def test_submit_deny_inquire_on_postgresql(pg_server: service_testing.LiveServer) -> None:
    bundle = iort_bundle({"margin_status": "positive"}, dx="C25.0")
    request_id = pa_id(claim_response(post(pg_server, SUBMIT, bundle)))
    assert review_actions(claim_response(post(pg_server, SUBMIT, bundle))) == ["A4"]
    assert pg_server.store.count_pa_requests() == 1
    denial = httpx.post(
        pg_server.url(f"/v1/prior-auth/{request_id}/actions"),
        json={"action": "deny", "role": "physician", "on_behalf_of": "dr.bo", "reason": "investigational"},
        headers=pg_server.headers(pg_server.physician_token),
        timeout=30,
    )
    assert denial.status_code == 200, denial.text
    assert review_actions(claim_response(post(pg_server, INQUIRE, inquiry_for(bundle)))) == ["A3"]


# ----------------------------------------------------------------- PAS 2.2.1 profiles (IG package)


def _differential(package: str, name: str) -> list[dict[str, Any]]:
    import tarfile

    path = SHARED / "fixtures" / "ig-packages" / package
    with tarfile.open(path, "r:gz") as tar:
        member = tar.extractfile(f"package/StructureDefinition-{name}.json")
        assert member is not None
        elements: list[dict[str, Any]] = json.load(member)["differential"]["element"]
    return elements


def _required_top_level(package: str, name: str) -> set[str]:
    """Elements directly under the root that the profile makes 1..* (no slices, no nesting)."""
    required = set()
    for element in _differential(package, name):
        parts = element["id"].split(".")
        if len(parts) == 2 and ":" not in element["id"] and element.get("min", 0) >= 1:
            required.add(parts[1])
    return required


def test_responses_carry_every_element_pas_2_2_1_requires(server: service_testing.LiveServer) -> None:
    response = post(server, SUBMIT, iort_bundle({"t_stage": "pT4b"}))
    bundle = response.json()
    cr = claim_response(response)
    for element in _required_top_level("davinci-pas-2.2.1.tgz", "profile-pas-response-bundle"):
        assert element in bundle, element
    for profile in ("profile-claimresponse-base", "profile-claimresponse"):
        for element in _required_top_level("davinci-pas-2.2.1.tgz", profile):
            assert element in cr, element
    assert "request" in cr  # 1..1 in PAS 2.2.1
    inquiry = post(server, INQUIRE, inquiry_for(iort_bundle({})))
    assert inquiry.status_code == 404  # not submitted
