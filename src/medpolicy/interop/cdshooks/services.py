"""The CRD services of the CDS face: their hooks, prefetch templates and the discovery document."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medpolicy.interop.fhir_case import (
    LOINC_CLOSEST_MARGIN_DISTANCE,
    LOINC_CRM_DISTANCE,
    LOINC_M_CLINICAL,
    LOINC_M_PATHOLOGIC,
    LOINC_MARGIN_STATUS,
    LOINC_T_CLINICAL,
    LOINC_T_PATHOLOGIC,
)

_OBS_CODES = ",".join(
    f"http://loinc.org|{c}"
    for c in (
        LOINC_T_CLINICAL,
        LOINC_T_PATHOLOGIC,
        LOINC_M_CLINICAL,
        LOINC_M_PATHOLOGIC,
        LOINC_MARGIN_STATUS,
        *sorted(LOINC_CRM_DISTANCE),
        LOINC_CLOSEST_MARGIN_DISTANCE,
    )
)

#: Prefetch templates shared by every service. ``required`` keys must be present (or fetchable).
COMMON_PREFETCH: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "coverage": "Coverage?patient={{context.patientId}}&status=active",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&code=" + _OBS_CODES,
    "procedures": "Procedure?patient={{context.patientId}}",
}
REQUIRED_PREFETCH: tuple[str, ...] = ("coverage", "conditions", "observations")


@dataclass(frozen=True)
class CdsService:
    """One CDS service: id, hook, title, description, prefetch templates."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str]

    def discovery(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": dict(self.prefetch),
            "extension": {
                "davinci-crd.version": ["2.0.1", "2.2"],
                "davinci-crd.configuration-options": [
                    {
                        "code": "coverage-info",
                        "type": "boolean",
                        "name": "Coverage Information",
                        "description": "Return coverage information (covered, prior authorization, "
                        "documentation) for orders governed by the plan's medical policies",
                        "default": True,
                    },
                    {
                        "code": "max-cards",
                        "type": "integer",
                        "name": "Maximum cards",
                        "description": "Largest number of cards returned",
                        "default": 10,
                    },
                ],
            },
        }


_DESC = (
    "Coverage requirements (Da Vinci CRD) for orders governed by the plan's medical policies, starting "
    "with Intraoperative Radiation Therapy: coverage, prior authorization and documentation needs."
)

SERVICES: dict[str, CdsService] = {
    s.id: s
    for s in (
        CdsService(
            "medpolicy-crd-order-sign",
            "order-sign",
            "Coverage requirements at order signing",
            _DESC,
            dict(COMMON_PREFETCH),
        ),
        CdsService(
            "medpolicy-crd-order-select",
            "order-select",
            "Coverage requirements at order selection",
            _DESC,
            dict(COMMON_PREFETCH),
        ),
        CdsService(
            "medpolicy-crd-order-dispatch",
            "order-dispatch",
            "Coverage requirements at order dispatch",
            _DESC,
            {
                **COMMON_PREFETCH,
                "serviceRequests": "ServiceRequest?_id="
                "{{context.dispatchedOrders.ofType(ServiceRequest).id}}",
            },
        ),
        CdsService(
            "medpolicy-crd-appointment-book",
            "appointment-book",
            "Coverage requirements at appointment booking",
            _DESC,
            {
                **COMMON_PREFETCH,
                "serviceRequests": "ServiceRequest?_id="
                "{{context.appointments.entry.resource.basedOn.resolve().ofType(ServiceRequest).id}}",
            },
        ),
    )
}


def discovery_document(services: Mapping[str, CdsService] = SERVICES) -> dict[str, Any]:
    """The body of ``GET /cds-services``."""
    return {"services": [s.discovery() for s in services.values()]}
