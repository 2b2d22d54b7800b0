"""An order's billing codes (CPT, HCPCS Level II, CRD billing options) and its planned date of service."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from medpolicy.interop.fhir_case.resources import _codes_in, _dedupe, _full_date
from medpolicy.interop.fhir_case.vocabulary import BILLING_OPTIONS_EXT, CPT_SYSTEMS, HCPCS_SYSTEMS


def _billing_concepts(resource: Mapping[str, Any]) -> list[Any]:
    """CodeableConcepts of an order that may carry billing codes."""
    rtype = resource.get("resourceType")
    concepts: list[Any] = []
    if rtype in {"ServiceRequest", "CommunicationRequest", "Encounter"}:
        concepts.append(resource.get("code"))
        concepts.extend(resource.get("type") or [])
    elif rtype == "DeviceRequest":
        concepts.append(resource.get("codeCodeableConcept"))
    elif rtype == "MedicationRequest":
        concepts.append(resource.get("medicationCodeableConcept"))
    elif rtype == "Appointment":
        concepts.extend(resource.get("serviceType") or [])
        concepts.append(resource.get("appointmentType"))
    elif rtype == "Claim":
        concepts.extend(
            item.get("productOrService") for item in resource.get("item") or [] if isinstance(item, Mapping)
        )
    more: list[Any] = []
    for concept in concepts:
        if isinstance(concept, Mapping):
            for ext in concept.get("extension") or []:
                if isinstance(ext, Mapping) and ext.get("url") == BILLING_OPTIONS_EXT:
                    more.append(ext.get("valueCodeableConcept"))
    return concepts + more


def order_codes(order: Mapping[str, Any]) -> list[str]:
    """CPT and HCPCS Level II codes an order asks for (its code, and CRD billing-option alternatives).

    Order of first appearance, without duplicates. Codes of other systems are not billing codes.
    """
    codes: list[str] = []
    for concept in _billing_concepts(order):
        codes.extend(_codes_in(concept, CPT_SYSTEMS | HCPCS_SYSTEMS))
    return _dedupe(codes)


def order_date(order: Mapping[str, Any]) -> str | None:
    """Planned date of service of an order as ``YYYY-MM-DD``, or ``None`` when it has no full date.

    ServiceRequest-like orders: ``occurrenceDateTime``, ``occurrencePeriod.start``,
    ``occurrenceTiming.event[0]``, then ``authoredOn``. Appointment: ``start``, then ``requestedPeriod``.
    Encounter: ``period.start``. Claim: first ``item.servicedDate`` / ``servicedPeriod.start``, then
    ``billablePeriod.start``. Partial dates (``2026`` or ``2026-05``) do not count.
    """
    candidates: list[Any] = []
    period = order.get("occurrencePeriod")
    timing = order.get("occurrenceTiming")
    candidates.append(order.get("occurrenceDateTime"))
    if isinstance(period, Mapping):
        candidates.append(period.get("start"))
    if isinstance(timing, Mapping) and timing.get("event"):
        candidates.append((timing.get("event") or [None])[0])
    candidates.append(order.get("start"))
    for rp in order.get("requestedPeriod") or []:
        if isinstance(rp, Mapping):
            candidates.append(rp.get("start"))
    if isinstance(order.get("period"), Mapping):
        candidates.append(order["period"].get("start"))
    for item in order.get("item") or []:
        if isinstance(item, Mapping):
            candidates.append(item.get("servicedDate"))
            if isinstance(item.get("servicedPeriod"), Mapping):
                candidates.append(item["servicedPeriod"].get("start"))
    if isinstance(order.get("billablePeriod"), Mapping):
        candidates.append(order["billablePeriod"].get("start"))
    candidates.append(order.get("authoredOn"))
    candidates.append(order.get("dateTime"))  # NutritionOrder
    for value in candidates:
        d = _full_date(value)
        if d:
            return d
    return None
