"""PAS canonical URLs: the Da Vinci PAS profiles and extensions, X12 code systems, and medpolicy's own
code systems and extensions used in PAS requests and responses."""

from __future__ import annotations

from medpolicy.interop import fhir_case
from medpolicy.interop.dtr import CANONICAL_BASE

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition"


REVIEW_ACTION_EXT = f"{PAS}/extension-reviewAction"


REVIEW_ACTION_CODE_EXT = f"{PAS}/extension-reviewActionCode"


ITEM_TRACE_NUMBER_EXT = f"{PAS}/extension-itemTraceNumber"


LEVEL_OF_SERVICE_EXT = f"{PAS}/extension-levelOfServiceCode"


REQUESTED_SERVICE_EXT = f"{PAS}/extension-requestedService"


REVIEWER_EXT = f"{PAS}/extension-claimResponseReviewer"


PAS_REQUEST_BUNDLE = f"{PAS}/profile-pas-request-bundle"


PAS_RESPONSE_BUNDLE = f"{PAS}/profile-pas-response-bundle"


PAS_INQUIRY_RESPONSE_BUNDLE = f"{PAS}/profile-pas-inquiry-response-bundle"


PAS_CLAIM_RESPONSE = f"{PAS}/profile-claimresponse"


PAS_INQUIRY_RESPONSE = f"{PAS}/profile-claiminquiryresponse"


X12_306 = "https://codesystem.x12.org/005010/306"


ADJUDICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/adjudication"


#: ``Claim.supportingInfo.category`` system whose codes are medpolicy fact names (value[x] = the fact).
CASE_FACT_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/case-fact"


#: ``reviewAction.reasonCode`` system of a physician's structured denial reason (see web/denials.py)
DENIAL_REASON_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/denial-reason"


#: Extension on ``ClaimResponse.item``: one per fact still needed (valueString = fact name).
MISSING_FACT_EXT = f"{CANONICAL_BASE}/StructureDefinition/missing-fact"


#: Extension on a ``ClaimResponse.processNote`` stating one reviewer's correction of a request's fact:
#: ``fact`` (code), ``from`` / ``to`` (the values in words; absent: no value), ``derived``, ``author``
#: (the registered reviewer), ``role``, ``date``, ``reason``. The note's text says the same in words.
FACT_CORRECTION_EXT = f"{CANONICAL_BASE}/StructureDefinition/fact-correction"


REVIEW_ACTION_DISPLAY = {
    "A1": "Certified in total",
    "A3": "Not Certified",
    "A4": "Pended",
    "C": "Cancelled",
    "NA": "No Action Required",
}


_ICD10CM = fhir_case.ICD10CM_SYSTEMS | {"http://terminology.hl7.org/CodeSystem/icd10CM"}


_BILLING = fhir_case.CPT_SYSTEMS | fhir_case.HCPCS_SYSTEMS


_EXPEDITED_PRIORITY = frozenset({"stat", "urgent"})


_EXPEDITED_LEVEL = frozenset({"U", "03"})  # X12 1338: U urgent, 03 emergency (E elective is standard)
