"""The PAS face under the authorization rules: a request submitted with Claim/$submit cannot be
certified by a nurse rewriting the provider's diagnosis (Claim/$inquire keeps answering pended), a
resubmission cannot overwrite the submitted facts, and a physician's approval after a correction is
what certifies it."""

from __future__ import annotations

import copy
from typing import Any

import httpx
from test_pas_http import (
    INQUIRE,
    SUBMIT,
    claim_response,
    codes,
    inquiry_for,
    iort_bundle,
    pa_id,
    post,
    review_actions,
)

from medpolicy.service import testing as service_testing

REWRITE: dict[str, Any] = {"diagnosis_codes": ["C20"], "margin_status": "positive", "t_stage": "pT4b"}


def _act(
    server: service_testing.LiveServer, request_id: str, body: dict[str, Any], token: str
) -> httpx.Response:
    return httpx.post(
        server.url(f"/v1/prior-auth/{request_id}/actions"),
        json=body,
        headers=server.headers(token),
        timeout=30,
    )


def test_a_pas_request_is_not_certified_by_a_nurse_rewriting_its_facts(
    server: service_testing.LiveServer,
) -> None:
    bundle = iort_bundle({"margin_status": "negative", "t_stage": "pT2"}, dx="C50.911")
    submitted = claim_response(post(server, SUBMIT, bundle))
    assert review_actions(submitted) == ["A4"]
    request_id = pa_id(submitted)

    attack = {
        "action": "approve",
        "role": "nurse",
        "on_behalf_of": "nurse.ann",
        "reason": "the EHR sent the wrong code",
        "case_update": REWRITE,
    }
    refused = _act(server, request_id, attack, server.nurse_token)
    assert refused.status_code == 403, refused.text
    assert review_actions(claim_response(post(server, INQUIRE, inquiry_for(bundle)))) == ["A4"]

    rewritten = copy.deepcopy(bundle)  # the same Claim again, with another diagnosis: no silent overwrite
    rewritten["entry"][0]["resource"]["diagnosis"][0]["diagnosisCodeableConcept"]["coding"][0]["code"] = "C20"
    conflict = post(server, SUBMIT, rewritten)
    assert conflict.status_code == 409
    assert codes(conflict) == ["idempotency_key_reused"]
    assert server.store.get_pa_request(request_id).case["diagnosis_codes"] == ["C50.911"]

    physician = attack | {
        "role": "physician",
        "on_behalf_of": "dr.bo",
        "reason": "rectal primary per op note",
    }
    approved = _act(server, request_id, physician, server.physician_token)
    assert approved.status_code == 200, approved.text
    assert approved.json()["corrections"][0]["from"] == ["C50.911"]
    cr = claim_response(post(server, INQUIRE, inquiry_for(bundle)))
    assert review_actions(cr) == ["A1"]
