"""The code systems, LOINC codes, extensions and order resource types the translation reads."""

from __future__ import annotations

CPT_SYSTEMS = frozenset({"http://www.ama-assn.org/go/cpt", "urn:oid:2.16.840.1.113883.6.12"})
HCPCS_SYSTEMS = frozenset(
    {
        "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets",
        "urn:oid:2.16.840.1.113883.6.285",
        "https://bluebutton.cms.gov/resources/codesystem/hcpcs",
    }
)
ICD10CM_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10-cm", "urn:oid:2.16.840.1.113883.6.90"})
LOINC_SYSTEM = "http://loinc.org"
SNOMED_SYSTEM = "http://snomed.info/sct"

LOINC_T_CLINICAL = "21905-5"  # Primary tumor.clinical [Class] Cancer
LOINC_T_PATHOLOGIC = "21899-0"  # Primary tumor.pathology [Class] Cancer
LOINC_M_CLINICAL = "21907-1"  # Distant metastases.clinical [Class] Cancer
LOINC_M_PATHOLOGIC = "21901-4"  # Distant metastases.pathology [Class] Cancer
LOINC_MARGIN_STATUS = "21939-4"  # Surgical margins cancer involvement (NAACCR)
LOINC_CRM_DISTANCE = frozenset({"81184-4", "81176-0"})  # tumor to circumferential resection margin
LOINC_CLOSEST_MARGIN_DISTANCE = "81175-2"  # tumor to closest margin
_DISTANCE_CODES = LOINC_CRM_DISTANCE | {LOINC_CLOSEST_MARGIN_DISTANCE}

MCODE_PROCEDURE_INTENT = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-procedure-intent"
BILLING_OPTIONS_EXT = "http://hl7.org/fhir/us/davinci-crd/StructureDefinition/ext-billing-options"
_INTENT_CODES = {"373808002": "curative", "363676003": "palliative"}

ORDER_RESOURCE_TYPES = frozenset(
    {
        "ServiceRequest",
        "DeviceRequest",
        "MedicationRequest",
        "NutritionOrder",
        "CommunicationRequest",
        "VisionPrescription",
        "Appointment",
        "Encounter",
        "Claim",
    }
)
