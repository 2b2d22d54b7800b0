"""The FHIR CapabilityStatement of the service's FHIR endpoints (``GET /fhir/metadata``), pure data.

It states what is implemented, no more: FHIR R4 JSON, Questionnaire read, the DTR/SDC operations and
``ValueSet/$expand``, the QuestionnaireResponse ``$determine`` of ours, and PAS ``Claim/$submit`` and
``$inquire``. It instantiates DTR 2.0.1's payer service statement (whose operations are all offered),
not PAS's intermediary statement (which also requires subscriptions, not offered here).
:data:`OPERATIONS` is the list the service routes; a test checks that the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from medpolicy.interop.dtr import CANONICAL_BASE

__all__ = ["OPERATIONS", "Operation", "capability_statement"]

DTR_OD = "http://hl7.org/fhir/us/davinci-dtr/OperationDefinition"
SDC_OD = "http://hl7.org/fhir/uv/sdc/OperationDefinition"
PAS_OD = "http://hl7.org/fhir/us/davinci-pas/OperationDefinition"
DTR_PAYER_SERVICE = "http://hl7.org/fhir/us/davinci-dtr/CapabilityStatement/dtr-payer-service|2.0.1"


@dataclass(frozen=True)
class Operation:
    resource: str
    name: str  # the operation's code, as called: POST /fhir/{resource}/${name}
    definition: str  # canonical URL of its OperationDefinition
    documentation: str


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "Questionnaire",
        "questionnaire-package",
        f"{DTR_OD}/questionnaire-package",
        "DTR 2.0.1: the questionnaires (and pre-populated responses) the orders need.",
    ),
    Operation(
        "Questionnaire",
        "next-question",
        f"{SDC_OD}/Questionnaire-next-question",
        "SDC adaptive form: only the questions whose answer can still change the policy's outcome.",
    ),
    Operation(
        "Questionnaire",
        "log-questionnaire-errors",
        f"{DTR_OD}/log-questionnaire-errors",
        "DTR: report problems with one of these questionnaires (stored for the policy analysts; no PHI).",
    ),
    Operation(
        "ValueSet",
        "expand",
        "http://hl7.org/fhir/OperationDefinition/ValueSet-expand",
        "The answers of each enum fact of the policies (DTR payer service: SHALL).",
    ),
    Operation(
        "QuestionnaireResponse",
        "determine",
        f"{CANONICAL_BASE}/OperationDefinition/QuestionnaireResponse-determine",
        "medpolicy: a completed QuestionnaireResponse becomes a case and a stored determination.",
    ),
    Operation(
        "Claim",
        "submit",
        f"{PAS_OD}/Claim-submit",
        "PAS 2.0.1: a prior-authorization request Bundle in, a ClaimResponse Bundle out.",
    ),
    Operation(
        "Claim",
        "inquire",
        f"{PAS_OD}/Claim-inquiry",
        "PAS 2.0.1: the current state of a prior-authorization request.",
    ),
)

#: Resources with a read interaction (``GET /fhir/{type}/{id}``).
READABLE = ("Questionnaire",)


def capability_statement(*, base_url: str, software_version: str, published: date) -> dict[str, Any]:
    """The CapabilityStatement for the FHIR endpoints under ``{base_url}/fhir``."""
    resources: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        entry = resources.setdefault(op.resource, {"type": op.resource})
        entry.setdefault("operation", []).append(
            {"name": op.name, "definition": op.definition, "documentation": op.documentation}
        )
    for rtype in READABLE:
        resources.setdefault(rtype, {"type": rtype})["interaction"] = [{"code": "read"}]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": published.isoformat(),
        "publisher": "medpolicy",
        "kind": "instance",
        "software": {"name": "medpolicy", "version": software_version},
        "implementation": {
            "description": "medpolicy: medical policies as code (Da Vinci DTR and PAS endpoints)",
            "url": f"{base_url.rstrip('/')}/fhir",
        },
        "instantiates": [DTR_PAYER_SERVICE],
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": "Errors are OperationOutcomes with a stable code in details.coding.",
                "security": {
                    "description": "Every endpoint but this one needs the client's bearer token "
                    "(Authorization: Bearer <token>), issued per client by the health plan.",
                },
                "resource": [resources[t] for t in sorted(resources)],
            }
        ],
    }
