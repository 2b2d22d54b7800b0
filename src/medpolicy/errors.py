"""Errors are API. The whole tree, in one place::

    MedpolicyError                      base of everything medpolicy raises on purpose
    ├── CaseError (ValueError)          a case was rejected; .errors lists every FieldError found
    ├── PolicyLoadError (ValueError)    a policy file is invalid; .problems lists (file, line, message)
    ├── PolicyNotFound (LookupError)    no policy with that id                       code: policy_not_found
    └── NoPolicyApplies (LookupError)   no policy (or, without plan.yaml, several) applies to the case

A ``FieldError`` carries a stable snake_case ``code``, the ``field`` (a dotted path such as
``diagnosis_codes[1]``), the ``value`` as given, and a lower-case ``message`` that says why.

Field error codes (stable; tested):

=====================  ==============================================================
code                   meaning
=====================  ==============================================================
unknown_field          the case has a key no policy fact declares
invalid_type           wrong JSON type (e.g. a number where a list of codes belongs)
invalid_date           not an ISO date (YYYY-MM-DD)
unknown_code           not a code in ICD-10-CM (or not shaped like a CPT/HCPCS code)
non_billable_code      an ICD-10-CM category header or block, not a billable code
invalid_value          not one of the fact's allowed values
out_of_range           a number outside its allowed range (e.g. a negative distance)
invalid_t_category     not an AJCC 8th edition T category (or TNM string) with a valid prefix
t_category_not_in_     a T category the AJCC chapter of the case's tumour site does not have
site_chapter           (T4c on a rectal cancer)
limit_exceeded         more fields, list items or characters than ``medpolicy.limits`` allows
date_beyond_horizon    a date further ahead than the configured horizon (default two years)
=====================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "CaseError",
    "FieldError",
    "MedpolicyError",
    "NoPolicyApplies",
    "PolicyLoadError",
    "PolicyNotFound",
    "PolicyProblem",
]


class MedpolicyError(Exception):
    """Base class of every error medpolicy raises on purpose."""

    code = "medpolicy_error"


@dataclass(frozen=True, slots=True)
class FieldError:
    code: str
    field: str
    value: Any
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "value": self.value, "message": self.message}

    def __str__(self) -> str:
        return f"{self.field}: {self.message} [{self.code}]"


class CaseError(MedpolicyError, ValueError):
    """A case was rejected. Every problem found is listed, not just the first."""

    code = "invalid_case"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.message}"


class PolicyLoadError(MedpolicyError, ValueError):
    """A policy file failed to load; every problem found is listed with file and line."""

    code = "invalid_policy"

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PolicyNotFound(MedpolicyError, LookupError):
    code = "policy_not_found"


class NoPolicyApplies(MedpolicyError, LookupError):
    code = "no_policy_applies"
