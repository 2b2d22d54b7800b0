"""POST /v1/extractions over a real server: a document in, the extraction JSON out; 4xx on bad input."""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable

import httpx
import pytest

from medpolicy.service.testing import LiveServer

SECRET = "Zebulon-Quartermaine"
REPORT = f"""Patient: {SECRET}
FINAL DIAGNOSIS:
Rectum, abdominoperineal resection: adenocarcinoma directly invading the prostate.
Circumferential (radial) margin: involved by invasive carcinoma.
Tumor Site: Rectum
Primary Tumor (pT): pT4b
Distant Metastasis (pM): pM1a (liver)
"""


def post(server: LiveServer, content: bytes, content_type: str, token: str | None = None) -> httpx.Response:
    return httpx.post(
        server.url("/v1/extractions"),
        content=content,
        headers=server.headers(token, **{"Content-Type": content_type}),
        timeout=60,
    )


def test_plain_text_in_facts_out(live_server: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        r = post(live_server, REPORT.encode(), "text/plain")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["source"] == "extracted"
    assert body["facts"] == {
        "tumor_site": "rectum",
        "t_stage": ["pT4b"],
        "margin_status": "positive",
        "margin_distance_mm": None,
        "recurrent": False,
        "metastatic": True,
    }
    ev = body["evidence"]["metastatic"][0]
    assert REPORT[ev["start"] : ev["end"]] == ev["text"]
    assert SECRET not in caplog.text


def test_json_with_base64_data(live_server: LiveServer) -> None:
    payload = {"data": base64.b64encode(REPORT.encode("cp1252")).decode(), "name": "path.txt"}
    r = httpx.post(
        live_server.url("/v1/extractions"), json=payload, headers=live_server.headers(), timeout=60
    )
    assert r.status_code == 200, r.text
    assert r.json()["file"] == "path.txt"
    assert r.json()["facts"]["t_stage"] == ["pT4b"]


def test_needs_a_token(live_server: LiveServer) -> None:
    r = httpx.post(live_server.url("/v1/extractions"), content=REPORT.encode(), timeout=60)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("content", "ctype", "status", "code"),
    [
        (b"", "text/plain", 422, "empty_document"),
        (bytes(range(256)) * 20, "application/octet-stream", 422, "binary_file"),
        (b"{not json", "application/json", 400, "invalid_json"),
        (b'{"data": "***"}', "application/json", 422, "invalid_base64"),
        (b'{"name": "x"}', "application/json", 422, "missing_field"),
    ],
)
def test_bad_input_is_4xx_with_a_code(
    live_server: LiveServer, content: bytes, ctype: str, status: int, code: str
) -> None:
    r = post(live_server, content, ctype)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


def test_body_size_limit(make_live_server: Callable[..., LiveServer]) -> None:
    server = make_live_server(max_body_bytes=1000)
    r = post(server, b"x" * 5000, "text/plain")
    assert r.status_code == 413


@pytest.mark.nlp
def test_pdf_without_text_layer_is_422(live_server: LiveServer) -> None:
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    page = canvas.Canvas(buf)
    page.rect(60, 600, 400, 100, fill=1)  # a scanned page: pixels, no text
    page.showPage()
    page.save()
    r = post(live_server, buf.getvalue(), "application/pdf")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "pdf_no_text_layer"


def test_plan_setting_for_approval_on_extracted_facts() -> None:
    from medpolicy.service.settings import Settings, SettingsError

    assert Settings.from_env({}).auto_approve_extracted is False
    assert Settings.from_env({"MEDPOLICY_AUTO_APPROVE_EXTRACTED": "true"}).auto_approve_extracted is True
    with pytest.raises(SettingsError, match="MEDPOLICY_AUTO_APPROVE_EXTRACTED"):
        Settings.from_env({"MEDPOLICY_AUTO_APPROVE_EXTRACTED": "maybe"})
    assert Settings.from_env({}).pas_prefill == "propose"
    assert Settings.from_env({"MEDPOLICY_PAS_PREFILL": "case"}).pas_prefill == "case"
    with pytest.raises(SettingsError, match="MEDPOLICY_PAS_PREFILL"):
        Settings.from_env({"MEDPOLICY_PAS_PREFILL": "always"})
