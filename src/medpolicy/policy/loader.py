"""Loading: the policies folder, every policy folder under it (`load_policies`, with the plan's
routing) and one policy folder (`load_policy`: read, validate against the schema, compile).
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import ValidationError

from medpolicy.errors import PolicyLoadError, PolicyProblem
from medpolicy.policy.compiler import _Compiler
from medpolicy.policy.model import Policy, PolicySet
from medpolicy.policy.schema import _load_yaml, _PolicyFile, _Problems

__all__ = ["default_policies_dir", "load_policies", "load_policy"]


def default_policies_dir() -> Path:
    """``$MEDPOLICY_POLICIES`` or the repository's ``policies/`` folder."""
    env = os.environ.get("MEDPOLICY_POLICIES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "policies"


def load_policies(root: Path | None = None) -> PolicySet:
    """Load every policy folder (one holding ``policy.yaml``) under ``root``."""
    root = root or default_policies_dir()
    problems: list[PolicyProblem] = []
    policies: dict[str, Policy] = {}
    folders = sorted(p.parent for p in root.glob("*/policy.yaml"))
    if not folders:
        raise PolicyLoadError([PolicyProblem(str(root), None, "no policy folders (*/policy.yaml) found")])
    for folder in folders:
        try:
            p = load_policy(folder)
        except PolicyLoadError as e:
            problems.extend(e.problems)
            continue
        if p.id in policies:
            problems.append(PolicyProblem(str(folder / "policy.yaml"), None, f"duplicate policy id {p.id!r}"))
        policies[p.id] = p
    if problems:
        raise PolicyLoadError(problems)
    from medpolicy.routing import load_plan  # routing reads compiled policies

    return PolicySet(policies, load_plan(root, policies))


def load_policy(folder: Path) -> Policy:
    """Load and check one policy folder; raise ``PolicyLoadError`` listing every problem."""
    path = folder / "policy.yaml"
    try:
        text = path.read_text(encoding="utf-8")
        data, lines = _load_yaml(text)
    except (OSError, yaml.YAMLError) as e:
        raise PolicyLoadError([PolicyProblem(str(path), None, f"cannot read policy file: {e}")]) from None
    pr = _Problems(str(path), lines)
    try:
        raw = _PolicyFile.model_validate(data)
    except ValidationError as e:
        for err in e.errors():
            loc = tuple(err["loc"])
            pr.add(loc, f"{'.'.join(map(str, loc)) or 'file'}: {err['msg'].lower()}")
        raise PolicyLoadError(pr.items) from None
    return _Compiler(folder, raw, pr).compile()
