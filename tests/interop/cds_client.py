"""Test helpers for the CDS Hooks / CRD face: a signing CDS Hooks client, a loopback FHIR server, a live
medpolicy service configured to trust the client, and the CRD invariant checker (fhirpathpy).

Import from test modules in this folder as ``from cds_client import ...``.
"""

from __future__ import annotations

import copy
import io
import json
import re
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhir.resources.R4B import get_fhir_model_class
from fhirpathpy import evaluate
from fhirpathpy.models import models

from medpolicy.interop.cdshooks import CdsSettings
from medpolicy.interop.crd import COVERAGE_INFO_URL
from medpolicy.interop.jwt_auth import TrustedClient
from medpolicy.service.app import create_app
from medpolicy.service.testing import LiveServer, running_server, settings_for_tests

# The published HL7 / Inferno examples, kept verbatim in tests/fixtures (see its README for sources).
SHARED = Path(__file__).resolve().parents[1]
FIXTURES = SHARED / "fixtures"
CRD_22 = FIXTURES / "crd" / "hl7-crd-2.2"
CRD_INFERNO = FIXTURES / "crd" / "inferno-crd-2.0.1"
IG_PACKAGES = FIXTURES / "ig-packages"

CLIENT_ISS = "https://ehr.test.example/cds-client"


def load_fixture(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


# ------------------------------------------------------------------------------------------- client


@dataclass
class CdsClient:
    """A CDS Hooks client that signs a fresh JWT (ES384 by default) for every call, over real HTTP."""

    base_url: str
    iss: str = CLIENT_ISS
    kid: str = "test-key-1"
    alg: str = "ES384"
    key: Any = None
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=30.0))

    def __post_init__(self) -> None:
        if self.key is None:
            self.key = (
                rsa.generate_private_key(public_exponent=65537, key_size=2048)
                if self.alg.startswith("RS")
                else ec.generate_private_key(ec.SECP384R1() if self.alg == "ES384" else ec.SECP256R1())
            )

    def jwks(self) -> dict[str, Any]:
        """The client's public JWK Set (what the service is configured with)."""
        if self.alg.startswith("RS"):
            pub = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        else:
            pub = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.key.public_key()))
        pub.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return {"keys": [pub]}

    def trusted(self) -> TrustedClient:
        return TrustedClient(iss=self.iss, jwks=self.jwks())

    def token(self, aud: str | list[str], **overrides: Any) -> str:
        """A signed JWT for ``aud``; ``overrides`` replace claims (``None`` removes one)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.iss,
            "sub": "test-ehr",
            "aud": aud,
            "iat": now,
            "exp": now + 120,
            "jti": str(uuid.uuid4()),
        }
        headers = {"kid": self.kid, "typ": "JWT"}
        alg = overrides.pop("_alg", self.alg)
        key = overrides.pop("_key", self.key)
        headers.update(overrides.pop("_headers", {}))
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        return jwt.encode(claims, key, algorithm=alg, headers=headers)

    def url(self, path: str) -> str:
        return self.base_url + path

    def discover(self, *, token: str | None = None) -> httpx.Response:
        aud = self.url("/cds-services")
        return self.http.get(aud, headers={"Authorization": f"Bearer {token or self.token(aud)}"})

    def call(
        self, service_id: str, body: Any, *, token: str | None = None, raw: bytes | None = None
    ) -> httpx.Response:
        aud = self.url(f"/cds-services/{service_id}")
        headers = {"Authorization": f"Bearer {token or self.token(aud)}", "Content-Type": "application/json"}
        content = raw if raw is not None else json.dumps(body).encode()
        return self.http.post(aud, content=content, headers=headers)

    def feedback(self, service_id: str, body: Any, *, token: str | None = None) -> httpx.Response:
        aud = self.url(f"/cds-services/{service_id}/feedback")
        headers = {"Authorization": f"Bearer {token or self.token(aud)}"}
        return self.http.post(aud, json=body, headers=headers)


@contextmanager
def cds_service(
    folder: Path, client_key: CdsClient | None = None, **cds_overrides: Any
) -> Iterator[tuple[LiveServer, CdsClient]]:
    """A live medpolicy service on loopback trusting a fresh signing client; yields (server, client)."""
    app = create_app(settings_for_tests(folder))
    client = client_key or CdsClient(base_url="http://placeholder")
    app.state.cds_settings = CdsSettings(clients=(client.trusted(),), **cds_overrides)
    try:
        with running_server(app=app) as server:
            client.base_url = server.base_url
            yield server, client
    finally:
        client.http.close()


# ------------------------------------------------------------------------------------------- FHIR server


class FhirServer:
    """A minimal FHIR R4 read/search server on 127.0.0.1 for the service to query.

    Serves ``GET /<Type>/<id>`` and ``GET /<Type>?patient=<id>[&...]`` (searchset Bundle of the resources
    of that type whose subject/patient/beneficiary is the patient). Requires ``Authorization: Bearer
    <token>``. Records the paths asked for.
    """

    def __init__(self, resources: list[dict[str, Any]], token: str = "loopback-fhir-token") -> None:  # noqa: S107
        self.resources = resources
        self.token = token
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if self.headers.get("Authorization") != f"Bearer {outer.token}":
                    self._send(401, {"resourceType": "OperationOutcome", "issue": []})
                    return
                parts = urlsplit(self.path)
                segments = [s for s in parts.path.split("/") if s]
                if segments[:1] == ["fhir"]:
                    segments = segments[1:]
                if len(segments) == 2:
                    found = [r for r in outer.resources if [r["resourceType"], r.get("id")] == segments]
                    if found:
                        self._send(200, found[0])
                    else:
                        self._send(404, {"resourceType": "OperationOutcome", "issue": []})
                    return
                if len(segments) == 1:
                    query = parse_qs(parts.query)
                    patient = (query.get("patient") or query.get("beneficiary") or [""])[0]
                    ids = set((query.get("_id") or [""])[0].split(",")) - {""}
                    matches = [
                        r
                        for r in outer.resources
                        if r["resourceType"] == segments[0]
                        and (not ids or r.get("id") in ids)
                        and (not patient or outer.patient_of(r) == patient)
                    ]
                    bundle = {
                        "resourceType": "Bundle",
                        "type": "searchset",
                        "total": len(matches),
                        "entry": [{"resource": r, "search": {"mode": "match"}} for r in matches],
                    }
                    self._send(200, bundle)
                    return
                self._send(400, {"resourceType": "OperationOutcome", "issue": []})

            def _send(self, status: int, body: Any) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fhir"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @staticmethod
    def patient_of(resource: Mapping[str, Any]) -> str:
        for key in ("subject", "patient", "beneficiary"):
            ref = resource.get(key)
            if isinstance(ref, Mapping) and isinstance(ref.get("reference"), str):
                return str(ref["reference"]).rsplit("/", 1)[-1]
        return ""

    def __enter__(self) -> FhirServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def authorization(self) -> dict[str, Any]:
        return {
            "access_token": self.token,
            "token_type": "Bearer",
            "expires_in": 300,
            "scope": "user/Patient.read user/Observation.read user/Condition.read user/Coverage.read",
            "subject": "medpolicy-crd",
        }


# ------------------------------------------------------------------------------------------- builders

CPT = "http://www.ama-assn.org/go/cpt"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"


def service_request(rid: str, cpt: str | list[str], patient: str = "p1", **extra: Any) -> dict[str, Any]:
    codes = [cpt] if isinstance(cpt, str) else cpt
    sr = {
        "resourceType": "ServiceRequest",
        "id": rid,
        "status": "draft",
        "intent": "order",
        "code": {"coding": [{"system": CPT, "code": c} for c in codes]},
        "subject": {"reference": f"Patient/{patient}"},
        "occurrenceDateTime": "2026-03-02",
        "authoredOn": "2026-02-20",
    }
    sr.update(extra)
    return sr


def condition(cid: str, icd: str, patient: str = "p1", clinical: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": cid,
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}
            ]
        },
        "code": {"coding": [{"system": ICD10CM, "code": icd}]},
        "subject": {"reference": f"Patient/{patient}"},
    }


def observation(oid: str, loinc: str, patient: str = "p1", **value: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": oid,
        "status": "final",
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "subject": {"reference": f"Patient/{patient}"},
        **value,
    }


def coverage(cid: str = "cov1", patient: str = "p1") -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "id": cid,
        "status": "active",
        "beneficiary": {"reference": f"Patient/{patient}"},
        "payor": [{"display": "Blue KC"}],
    }


def patient(pid: str = "p1") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1960-01-01"}


def searchset(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in resources]}


def order_sign_request(
    orders: list[dict[str, Any]],
    *,
    conditions: list[dict[str, Any]] | None = None,
    observations: list[dict[str, Any]] | None = None,
    version: str | None = "2.2",
    patient_id: str = "p1",
    with_coverage: bool = True,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "order-sign",
        "hookInstance": str(uuid.uuid4()),
        "context": {
            "userId": "Practitioner/dr1",
            "patientId": patient_id,
            "draftOrders": {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [{"resource": o} for o in orders],
            },
        },
        "prefetch": {
            "patient": patient(patient_id),
            "coverage": searchset(coverage(patient=patient_id)) if with_coverage else None,
            "conditions": searchset(*(conditions or [])) if conditions else None,
            "observations": searchset(*(observations or [])) if observations else None,
        },
    }
    if version:
        body["extension"] = {"davinci-crd.requestedVersion": version}
    return body


# ------------------------------------------------------------------------------------------- invariants


def crd_package_file(name: str, package: str = "davinci-crd-2.0.1.tgz") -> dict[str, Any]:
    with tarfile.open(IG_PACKAGES / package, "r:gz") as tar:
        member = tar.extractfile(f"package/{name}")
        assert member is not None
        data = json.load(io.TextIOWrapper(member, encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _published_invariants_2_0_1() -> dict[str, str]:
    sd = crd_package_file("StructureDefinition-ext-coverage-information.json")
    out: dict[str, str] = {}
    for element in sd["snapshot"]["element"]:
        for c in element.get("constraint", []):
            if c["key"].startswith("crd-ci-"):
                out[c["key"]] = c["expression"]
    return out


#: CRD 2.2 invariants crd-ci-q1..q8 as published in the HL7 CRD source (input/fsh/extensions/
#: CoverageInformation.fsh, STU 2.2); crd-ci-q9 (2.2.1) written from its published description
#: ("an indeterminate covered, pa-needed or doc-needed needs a reason").
INVARIANTS_2_2: dict[str, str] = {
    "crd-ci-q1": "extension.where(url='questionnaire').exists() implies "
    "extension.where(url = 'doc-needed').exists()",
    "crd-ci-q2": "extension.where(url = 'covered' and value = 'not-covered').exists() implies "
    "extension.where(url = 'pa-needed').exists().not()",
    "crd-ci-q3": "extension.where((url = 'covered' or url = 'pa-needed' or url = 'doc-needed') and "
    "value = 'conditional').count() >= 1 implies extension.where(url = 'info-needed').exists()",
    "crd-ci-q4": "extension.where(url = 'pa-needed' and (value = 'satisfied' or value = 'noauth' or "
    "value = 'not-covered')) and extension.where(url = 'doc-purpose').exists() implies "
    "extension.where(url = 'doc-purpose').all(value != 'withpa')",
    "crd-ci-q5": "extension.where(url = 'pa-needed' and value = 'satisfied').exists() = "
    "extension.where(url = 'satisfied-pa-id').exists()",
    "crd-ci-q6": "extension.where(url = 'info-needed' and value = 'OTH').exists() implies "
    "extension.where(url = 'reason').exists()",
    "crd-ci-q7": "extension.where(url = 'reason').empty() or "
    "extension.where(url = 'reason').value.text.exists() "
    "or extension.where(url = 'reason').value.memberOf("
    "'http://hl7.org/fhir/us/davinci-crd/ValueSet/coverageAssertionReasons')",
    "crd-ci-q8": "extension.where(url = 'doc-purpose' and value != 'conditional').exists() implies "
    "extension.where(url = 'reason').exists()",
    "crd-ci-q9": "extension.where((url = 'covered' or url = 'pa-needed' or url = 'doc-needed') and "
    "value = 'indeterminate').exists() implies extension.where(url = 'reason').exists()",
}

_REASONS_VS = "'http://hl7.org/fhir/us/davinci-crd/ValueSet/coverageAssertionReasons'"
_REASONS_MEMBER = (
    "coding.where(system = 'http://hl7.org/fhir/us/davinci-crd/CodeSystem/temp' and "
    "(code = 'gold-card' or code = 'detail-code')).exists()"
)


def evaluable(expression: str) -> str:
    """The published expression in a form fhirpathpy evaluates with the same meaning.

    Two rewrites, both semantics-preserving for these invariants:

    * FHIRPath "singleton evaluation of collections" (a one-item non-Boolean collection is ``true`` where a
      Boolean is expected) is not implemented by fhirpathpy; a bare ``extension.where(...)`` operand of
      ``and`` / ``implies`` gets an explicit ``.exists()``.
    * ``memberOf`` needs a terminology server; the ``coverageAssertionReasons`` value set has two codes of
      the CRD temporary code system (gold-card, detail-code), tested directly.
    """
    out = expression.replace(f".memberOf({_REASONS_VS})", "." + _REASONS_MEMBER)
    # add .exists() after a where(...) that is directly followed by `and` or `implies`
    result = []
    i = 0
    pattern = re.compile(r"extension\.where\(")
    while True:
        m = pattern.search(out, i)
        if not m:
            result.append(out[i:])
            break
        depth = 0
        j = m.end() - 1
        while j < len(out):
            if out[j] == "(":
                depth += 1
            elif out[j] == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        result.append(out[i : j + 1])
        rest = out[j + 1 :]
        if re.match(r"\s+(and|implies)\b", rest):
            result.append(".exists()")
        i = j + 1
    return "".join(result)


def check_invariants(resource: Mapping[str, Any], invariants: Mapping[str, str]) -> dict[str, list[bool]]:
    """Evaluate ``invariants`` on every coverage-information extension of ``resource`` (FHIR R4 model)."""
    results: dict[str, list[bool]] = {}
    for key, expression in invariants.items():
        path = (
            f"{resource['resourceType']}.extension.where(url = '{COVERAGE_INFO_URL}')"
            f".select(({evaluable(expression)}))"
        )
        value = evaluate(copy.deepcopy(dict(resource)), path, {}, models["r4"])
        results[key] = [bool(v) for v in value]
    return results


INVARIANTS_2_0_1: dict[str, str] = _published_invariants_2_0_1() if IG_PACKAGES.exists() else {}


# ------------------------------------------------------------------------------------------- response checks


def validate_r4b(resource: Mapping[str, Any]) -> None:
    """Validate with the fhir.resources R4B model (fhir.resources 8 ships no R4 package; R4B is closest)."""
    model = get_fhir_model_class(str(resource["resourceType"]))
    model.model_validate(copy.deepcopy(dict(resource)))  # validation must not touch what the test reads


def coverage_infos(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [e for e in resource.get("extension", []) if e.get("url") == COVERAGE_INFO_URL]


def sub(ext: Mapping[str, Any], url: str) -> list[Any]:
    """Values of the sub-extensions ``url`` of a coverage-information extension."""
    out = []
    for e in ext["extension"]:
        if e["url"] == url:
            (value,) = [v for k, v in e.items() if k.startswith("value")]
            out.append(value)
    return out


def assert_valid_crd_response(body: Mapping[str, Any]) -> None:
    """A CDS Hooks response: cards well formed; systemActions validate and obey the CRD invariants."""
    assert isinstance(body.get("cards"), list)
    for card in body["cards"]:
        assert isinstance(card["summary"], str)
        assert 0 < len(card["summary"]) < 140
        assert card["indicator"] in {"info", "warning", "critical"}
        assert isinstance(card["source"]["label"], str)
        assert card["source"]["label"]
        for link in card.get("links", []):
            assert link["type"] in {"absolute", "smart"}
            assert link["url"].startswith("http")
    for action in body.get("systemActions", []):
        assert action["type"] == "update"
        resource = action["resource"]
        validate_r4b(resource)
        infos = coverage_infos(resource)
        assert len(infos) == 1
        for name, invariants in (("2.0.1", INVARIANTS_2_0_1), ("2.2", INVARIANTS_2_2)):
            assert invariants, "the invariants must be loaded"
            results = check_invariants(resource, invariants)
            failed = {k: v for k, v in results.items() if v != [True]}
            assert not failed, f"CRD {name} invariants failed: {failed}"
        ext = infos[0]
        for required in ("coverage", "covered", "date", "coverage-assertion-id"):
            assert len(sub(ext, required)) == 1, required
