"""DTR canonical URLs: medpolicy's Questionnaire, CodeSystem and ValueSet URLs, the DTR/SDC profiles and
extensions used, and which policy a questionnaire canonical names."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime

from medpolicy import Policy, PolicySet

#: Base of medpolicy's canonical URLs (Questionnaires, CodeSystems, extensions). An identifier, not
#: necessarily resolvable; the service's error code system lives under the same base.
CANONICAL_BASE = "https://medpolicy.dev/fhir"


#: Extension on a QuestionnaireResponse (and $next-question output) carrying the determination.
DETERMINATION_EXT = f"{CANONICAL_BASE}/StructureDefinition/determination"


SDC = "http://hl7.org/fhir/uv/sdc/StructureDefinition"


DTR = "http://hl7.org/fhir/us/davinci-dtr/StructureDefinition"


DTR_STD_QUESTIONNAIRE = f"{DTR}/dtr-std-questionnaire"


DTR_ADAPT_SEARCH = f"{DTR}/dtr-questionnaire-adapt-search"


DTR_ADAPT = f"{DTR}/dtr-questionnaire-adapt"


DTR_QR_PROFILE = f"{DTR}/dtr-questionnaireresponse"


DTR_PACKAGE_BUNDLE = f"{DTR}/DTR-QPackageBundle"


DTR_PACKAGE_OUTPUT = f"{DTR}/dtr-qpackage-output-parameters"


SDC_QR_ADAPT = f"{SDC}/sdc-questionnaireresponse-adapt"


SDC_NEXT_QUESTION_OUT = f"{SDC}/parameters-questionnaire-next-question-out"


QR_CONTEXT_EXT = f"{DTR}/qr-context"


INFORMATION_ORIGIN_EXT = f"{DTR}/information-origin"


ADAPTIVE_EXT = f"{SDC}/sdc-questionnaire-questionnaireAdaptive"


#: SDC item extensions by which a Questionnaire pre-populates an item's answer (DTR: the client
#: SHALL evaluate them before showing the form; such answers are marked ``auto``, or ``override``
#: once a user changes them). ``candidateExpression`` only offers answers to choose from: not here.
PREPOPULATION_EXTS: Mapping[str, str] = {
    f"{SDC}/sdc-questionnaire-initialExpression": "initialExpression",
    f"{SDC}/sdc-questionnaire-calculatedExpression": "calculatedExpression",
}


UNIT_EXT = "http://hl7.org/fhir/StructureDefinition/questionnaire-unit"


MIN_VALUE_EXT = "http://hl7.org/fhir/StructureDefinition/minValue"


UCUM = "http://unitsofmeasure.org"


def questionnaire_url(policy: Policy) -> str:
    """Canonical URL of the policy's (static) DTR Questionnaire. Version: :func:`policy_version`."""
    return f"{CANONICAL_BASE}/Questionnaire/{policy.id}"


def adaptive_questionnaire_url(policy: Policy) -> str:
    """Canonical URL of the policy's adaptive ($next-question) Questionnaire."""
    return f"{CANONICAL_BASE}/Questionnaire/{policy.id}-adaptive"


def fact_code_system(fact_name: str) -> str:
    """Code system of the answers of an enum fact (codes are the fact's values)."""
    return f"{CANONICAL_BASE}/CodeSystem/{fact_name.replace('_', '-')}"


def policy_version(policy: Policy, as_of: date | None = None) -> str | None:
    """Version id of the policy in force on ``as_of`` (today), or ``None`` before its first version."""
    version = policy.version_for(as_of or datetime.now(UTC).date())
    return None if version is None else str(version.id)


def policy_for_questionnaire(canonical: str, policies: PolicySet) -> tuple[Policy, bool] | None:
    """The policy whose questionnaire ``canonical`` (``url`` or ``url|version``) names, and whether it
    is the adaptive one; ``None`` when this payer serves no such questionnaire."""
    url = canonical.split("|", 1)[0].strip()
    for policy in _policies(policies):
        if url == questionnaire_url(policy):
            return policy, False
        if url == adaptive_questionnaire_url(policy):
            return policy, True
    return None


def _policies(policies: PolicySet) -> list[Policy]:
    return list(policies)


def value_set_url(fact_name: str) -> str:
    """Value set of every answer of an enum fact (all codes of :func:`fact_code_system`)."""
    return f"{CANONICAL_BASE}/ValueSet/{fact_name.replace('_', '-')}"
