"""Da Vinci PAS (Prior Authorization Support, STU 2.0.1 and 2.2.1) <-> medpolicy (pure, no web framework).

* :func:`parse_request_bundle` validates a PAS request Bundle (``Claim/$submit``) or inquiry Bundle
  (``Claim/$inquire``) and reads it: the Claim, its identifiers, items (CPT/HCPCS codes, serviced
  date, trace numbers), diagnoses, urgency, and the supporting resources in the Bundle.
* :func:`claim_case` builds the raw case: procedure codes of every item, ICD-10-CM diagnoses
  (``Claim.diagnosis`` and Conditions), the date of service (``item.serviced[x]``, else the requested
  ServiceRequest), and clinical facts from supporting resources (Conditions and Observations through
  :mod:`medpolicy.interop.fhir_case`, a DTR QuestionnaireResponse through
  :mod:`medpolicy.interop.dtr`, or ``supportingInfo`` coded with :data:`CASE_FACT_SYSTEM`).
* :func:`response_bundle` answers with a PAS response Bundle: a ClaimResponse whose items carry the
  ``reviewAction`` extension with an X12 306 code, ``processNote`` with the reason, and the facts
  still missing; one more ``processNote`` per reviewer's correction of the request's facts (old value,
  new value, who, when, why), in words and in the :data:`FACT_CORRECTION_EXT` extension.

Review actions (X12 306), per item:

=========================================  ====  ===================================================
state of the prior-authorization request   code  meaning here
=========================================  ====  ===================================================
approved (engine or reviewer)              A1    certified in total
denied (only ever by a physician)          A3    not certified; the physician's reason is noted
information_needed                         A4    pended: the missing facts are listed
pending_physician_review / received        A4    pended: a physician must review the engine's
                                                 recommendation (investigational / not med. nec.)
withdrawn                                  C     cancelled
item no policy governs (request open)      NA    no action required: no medical policy of this
                                                 payer asks for prior authorization of the item
=========================================  ====  ===================================================

Modules: :mod:`~medpolicy.interop.pas.profiles` (URLs of profiles, extensions, code systems),
:mod:`~medpolicy.interop.pas.request` (reading the Bundle), :mod:`~medpolicy.interop.pas.case` (the
case), :mod:`~medpolicy.interop.pas.response` (the response Bundle); this package re-exports their
public names. Names with a leading underscore are shared between these modules only.

Validated with ``fhir.resources.R4B`` (no R4 package exists in fhir.resources 8; R4B is the nearest).
"""

from __future__ import annotations

from medpolicy.interop.pas.case import claim_case, governed_items
from medpolicy.interop.pas.profiles import (
    ADJUDICATION_SYSTEM,
    CASE_FACT_SYSTEM,
    DENIAL_REASON_SYSTEM,
    FACT_CORRECTION_EXT,
    ITEM_TRACE_NUMBER_EXT,
    LEVEL_OF_SERVICE_EXT,
    MISSING_FACT_EXT,
    PAS,
    PAS_CLAIM_RESPONSE,
    PAS_INQUIRY_RESPONSE,
    PAS_INQUIRY_RESPONSE_BUNDLE,
    PAS_REQUEST_BUNDLE,
    PAS_RESPONSE_BUNDLE,
    REQUESTED_SERVICE_EXT,
    REVIEW_ACTION_CODE_EXT,
    REVIEW_ACTION_DISPLAY,
    REVIEW_ACTION_EXT,
    REVIEWER_EXT,
    X12_306,
)
from medpolicy.interop.pas.request import PasItem, PasRequest, idempotency_key, parse_request_bundle
from medpolicy.interop.pas.response import (
    FactCorrection,
    ItemAction,
    RequestState,
    correction_extension,
    correction_text,
    item_actions,
    response_bundle,
    review_action_extension,
)

__all__ = [
    "ADJUDICATION_SYSTEM",
    "CASE_FACT_SYSTEM",
    "DENIAL_REASON_SYSTEM",
    "FACT_CORRECTION_EXT",
    "ITEM_TRACE_NUMBER_EXT",
    "LEVEL_OF_SERVICE_EXT",
    "MISSING_FACT_EXT",
    "PAS",
    "PAS_CLAIM_RESPONSE",
    "PAS_INQUIRY_RESPONSE",
    "PAS_INQUIRY_RESPONSE_BUNDLE",
    "PAS_REQUEST_BUNDLE",
    "PAS_RESPONSE_BUNDLE",
    "REQUESTED_SERVICE_EXT",
    "REVIEWER_EXT",
    "REVIEW_ACTION_CODE_EXT",
    "REVIEW_ACTION_DISPLAY",
    "REVIEW_ACTION_EXT",
    "X12_306",
    "FactCorrection",
    "ItemAction",
    "PasItem",
    "PasRequest",
    "RequestState",
    "claim_case",
    "correction_extension",
    "correction_text",
    "governed_items",
    "idempotency_key",
    "item_actions",
    "parse_request_bundle",
    "response_bundle",
    "review_action_extension",
]
