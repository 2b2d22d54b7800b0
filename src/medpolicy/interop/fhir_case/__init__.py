"""FHIR R4 resources -> raw medpolicy case (pure translation, no I/O, no web framework).

This package turns an order (the draft ``ServiceRequest`` of a CDS Hooks call, a PAS ``Claim`` item, an
``Appointment``...) and the patient's supporting resources (``Condition``, ``Observation``, ``Procedure``,
``Coverage``, ``Patient``; loose or inside Bundles) into the raw case mapping that
:func:`medpolicy.decide` takes, and records where every fact came from.

Public API (used by the CRD, DTR and PAS faces)::

    extracted = extract_case(order, resources)           # -> ExtractedCase
    extracted.case        # {"procedure_codes": [...], "diagnosis_codes": [...], "t_stage": [...], ...}
    extracted.sources     # {"diagnosis_codes": ("Condition/123",), "t_stage": ("Observation/9",), ...}
    flatten_resources(prefetch.values())                 # Bundles -> list of resources
    order_codes(order) / order_date(order) / coverage_reference(resources)

Rules (documented in docs/api-cds.md, "FHIR -> case"):

* Procedure codes: codings of ``ServiceRequest.code`` (and its Da Vinci ``ext-billing-options``
  alternatives, and the ``code`` elements of other order types) whose system is CPT
  (``http://www.ama-assn.org/go/cpt``) or HCPCS Level II. Other systems (SNOMED, LOINC, local) are not
  billing codes and are not case facts.
* Diagnosis codes: ICD-10-CM (``http://hl7.org/fhir/sid/icd-10-cm``) codings of ``Condition.code`` and of
  the order's ``reasonCode``. Conditions whose ``verificationStatus`` is ``refuted`` or
  ``entered-in-error`` (they assert nothing) or whose ``clinicalStatus`` is ``resolved`` or ``inactive``
  (a past problem) are ignored; every other one counts.
* T stage: Observations coded LOINC 21905-5 (primary tumor, clinical: prefix ``c``) or 21899-0 (primary
  tumor, pathologic: prefix ``p``). The value (string or CodeableConcept text/display/code) is parsed
  for an AJCC T category; a value that already carries a prefix (``ypT3``, ``rT2``) keeps it.
* Distant metastasis: LOINC 21907-1 (cM) / 21901-4 (pM); ``M1*`` -> ``metastatic: true``,
  ``M0`` -> ``false``. Secondary-neoplasm ICD-10-CM codes are *not* read as metastasis (C77 is regional
  nodes; C78.5 is a frequent miscode of local recurrence).
* Margins: LOINC 21939-4 (surgical margins cancer involvement) -> ``margin_status``; LOINC 81184-4 /
  81176-0 (distance of tumor from circumferential resection margin, microscopic / macroscopic) and
  81175-2 (distance from closest margin) -> ``margin_distance_mm`` (the smallest distance; mm or cm).
* Recurrence: a primary malignant neoplasm Condition with ``clinicalStatus`` ``recurrence`` ->
  ``recurrent: true``. Absence of evidence never sets ``false``.
* Treatment intent: the mCODE ``procedure-intent`` extension (SNOMED 373808002 curative,
  363676003 palliative) on the order.
* Date of service: ``occurrenceDateTime`` / ``occurrencePeriod.start`` / ``occurrenceTiming.event[0]``
  (``Appointment.start``, ``Claim.item.servicedDate``), else ``authoredOn``; only full dates count.

A fact with no evidence stays absent (unknown). A value that is present but cannot be understood
(an unparseable T category, an unknown margin status, a distance in an unknown unit) raises
:class:`medpolicy.CaseError` naming the field and the resource; nothing is silently dropped. Code
*validity* (ICD-10-CM billable, CPT shape) is checked by :func:`medpolicy.decide`, which raises
``CaseError`` too.

Modules, one job each: :mod:`~medpolicy.interop.fhir_case.vocabulary` (code systems, LOINC codes,
extensions, order types), :mod:`~medpolicy.interop.fhir_case.resources` (references, Bundles, codings,
dates), :mod:`~medpolicy.interop.fhir_case.orders` (an order's codes and date),
:mod:`~medpolicy.interop.fhir_case.member` (Coverage and Patient), :mod:`~medpolicy.interop.fhir_case.values`
(T and M categories, margins, distances, intent), :mod:`~medpolicy.interop.fhir_case.extract`
(:func:`extract_case`). This package re-exports their public names. Names with a leading underscore are
shared between these modules only.
"""

from __future__ import annotations

from medpolicy.interop.fhir_case.extract import ExtractedCase, extract_case
from medpolicy.interop.fhir_case.member import (
    LINE_OF_BUSINESS_SYSTEM,
    SOPT_SYSTEM,
    coverage_reference,
    coverage_routing,
    patient_facts,
)
from medpolicy.interop.fhir_case.orders import order_codes, order_date
from medpolicy.interop.fhir_case.resources import flatten_resources, reference_of
from medpolicy.interop.fhir_case.vocabulary import (
    BILLING_OPTIONS_EXT,
    CPT_SYSTEMS,
    HCPCS_SYSTEMS,
    ICD10CM_SYSTEMS,
    LOINC_CLOSEST_MARGIN_DISTANCE,
    LOINC_CRM_DISTANCE,
    LOINC_M_CLINICAL,
    LOINC_M_PATHOLOGIC,
    LOINC_MARGIN_STATUS,
    LOINC_SYSTEM,
    LOINC_T_CLINICAL,
    LOINC_T_PATHOLOGIC,
    MCODE_PROCEDURE_INTENT,
    ORDER_RESOURCE_TYPES,
    SNOMED_SYSTEM,
)

__all__ = [
    "BILLING_OPTIONS_EXT",
    "CPT_SYSTEMS",
    "HCPCS_SYSTEMS",
    "ICD10CM_SYSTEMS",
    "LINE_OF_BUSINESS_SYSTEM",
    "LOINC_CLOSEST_MARGIN_DISTANCE",
    "LOINC_CRM_DISTANCE",
    "LOINC_MARGIN_STATUS",
    "LOINC_M_CLINICAL",
    "LOINC_M_PATHOLOGIC",
    "LOINC_SYSTEM",
    "LOINC_T_CLINICAL",
    "LOINC_T_PATHOLOGIC",
    "MCODE_PROCEDURE_INTENT",
    "ORDER_RESOURCE_TYPES",
    "SNOMED_SYSTEM",
    "SOPT_SYSTEM",
    "ExtractedCase",
    "coverage_reference",
    "coverage_routing",
    "extract_case",
    "flatten_resources",
    "order_codes",
    "order_date",
    "patient_facts",
    "reference_of",
]
