"""DTR ``Questionnaire/$log-questionnaire-errors``: reading what a DTR application could not do with one of
our questionnaires (an OperationOutcome, no PHI)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medpolicy.interop.dtr.validation import FhirInputError, _invalid, _one_parameter, validate_fhir


@dataclass(frozen=True)
class QuestionnaireErrorReport:
    """Input of ``Questionnaire/$log-questionnaire-errors``: what a DTR application could not do with
    one of our questionnaires. The OperationOutcome carries no PHI (the sender SHALL NOT put any in)."""

    questionnaire: str  # canonical, ideally version-specific (url|version)
    outcome: dict[str, Any]  # the OperationOutcome


#: Parameter names: DTR 2.0.1's OperationDefinition ('Questionnaire', 'OperationOutcome') and the
#: spelling of DTR 2.2's example ('questionnaire', 'operationOutcome').
_LOG_PARAMS = {"questionnaire": "Questionnaire", "operationoutcome": "OperationOutcome"}


def parse_questionnaire_errors(params: Any) -> QuestionnaireErrorReport:
    """Read a ``$log-questionnaire-errors`` Parameters: exactly one Questionnaire canonical and one
    OperationOutcome (validated). Raises :class:`FhirInputError`."""
    if not isinstance(params, Mapping):
        raise FhirInputError(
            400, "not_a_resource", "the body must be a FHIR Parameters resource (a JSON object)"
        )
    validate_fhir(params, expected="Parameters", path="Parameters")
    found: dict[str, list[tuple[int, Mapping[str, Any]]]] = {name: [] for name in _LOG_PARAMS.values()}
    for i, p in enumerate(params.get("parameter") or []):
        name = _LOG_PARAMS.get(str(p.get("name", "")).lower()) if isinstance(p, Mapping) else None
        if name is not None:
            found[name].append((i, p))
    i, q = _one_parameter(found["Questionnaire"], "Questionnaire", "Parameters")
    j, o = _one_parameter(found["OperationOutcome"], "OperationOutcome", "Parameters")
    canonical = q.get("valueCanonical")
    if not isinstance(canonical, str) or not canonical.strip():
        raise _invalid(
            "the 'Questionnaire' parameter must be a valueCanonical (the questionnaire's URL)",
            f"Parameters.parameter[{i}].valueCanonical",
            code="missing_parameter",
        )
    path = f"Parameters.parameter[{j}].resource"
    outcome = o.get("resource")
    validate_fhir(outcome, expected="OperationOutcome", path=path)
    assert isinstance(outcome, Mapping)
    return QuestionnaireErrorReport(questionnaire=canonical.strip(), outcome=dict(outcome))
