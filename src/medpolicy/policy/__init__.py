"""Policies as data: load a policy folder (``policy.yaml`` + its source document), check it whole, and
compile it into frozen objects the engine evaluates.

A policy folder holds ``policy.yaml``, the source document as published (``source.txt``) and
``cases/*.yaml``. Loading checks the file against the schema and against the facts it declares; every
problem is reported with file and line (``PolicyLoadError``). The language is documented in
``docs/policy-language.md``.

Modules: `model` (the compiled objects: `Policy`, `PolicySet`, `Version`, `Rule`, `FactSpec`,
`Derivation`, `CodeList`, `RationaleSection`, `PolicyNote`, `Outcome`, `fold`), `schema` (the file
schema, YAML with line numbers, problems by file and line), `compiler` (the schema to the compiled
objects, with every check) and `loader` (`default_policies_dir`, `load_policies`, `load_policy`).
`medpolicy.policy` re-exports their public names.
"""

from medpolicy.policy.loader import default_policies_dir, load_policies, load_policy
from medpolicy.policy.model import (
    CodeList,
    Derivation,
    FactSpec,
    Outcome,
    Policy,
    PolicyNote,
    PolicySet,
    RationaleSection,
    Rule,
    Version,
    fold,
)
from medpolicy.policy.model import FactType as FactType  # importable here, as before the split
from medpolicy.policy.schema import LANGUAGE as LANGUAGE

__all__ = [
    "CodeList",
    "Derivation",
    "FactSpec",
    "Outcome",
    "Policy",
    "PolicyNote",
    "PolicySet",
    "RationaleSection",
    "Rule",
    "Version",
    "default_policies_dir",
    "fold",
    "load_policies",
    "load_policy",
]
