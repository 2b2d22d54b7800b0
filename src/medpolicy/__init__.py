"""medpolicy: medical policies as versioned, citable policy-as-code.

The public API of the pure core::

    policies = load_policies()                 # the repository's policies/ folder
    d = decide({"date_of_service": "2024-03-01", "procedure_codes": ["77425"],
                "diagnosis_codes": ["C20"], "margin_status": "positive", "t_stage": "pT4b"}, policies)
    d.outcome            # Outcome.MEDICALLY_NECESSARY
    d.to_dict()          # DeterminationV1 JSON
"""

from __future__ import annotations

__version__ = "0.1.0"

from medpolicy.case import Case, Note, parse_case
from medpolicy.deciding import decide
from medpolicy.engine import CriterionResult, Determination, MissingFact, decide_case, engine_for
from medpolicy.errors import (
    CaseError,
    FieldError,
    MedpolicyError,
    NoPolicyApplies,
    PolicyLoadError,
    PolicyNotFound,
)
from medpolicy.policy import FactSpec, Outcome, Policy, PolicySet, Version, load_policies, load_policy

__all__ = [
    "Case",
    "CaseError",
    "CriterionResult",
    "Determination",
    "FactSpec",
    "FieldError",
    "MedpolicyError",
    "MissingFact",
    "NoPolicyApplies",
    "Note",
    "Outcome",
    "Policy",
    "PolicyLoadError",
    "PolicyNotFound",
    "PolicySet",
    "Version",
    "__version__",
    "decide",
    "decide_case",
    "engine_for",
    "load_policies",
    "load_policy",
    "parse_case",
]
