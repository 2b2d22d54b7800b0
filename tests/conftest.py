"""Shared fixtures for the core tests: the real policies folder, loaded once."""

from __future__ import annotations

import importlib.util
import os

import pytest

from medpolicy import Policy, PolicySet, load_policies


@pytest.fixture(scope="session")
def policies() -> PolicySet:
    return load_policies()


@pytest.fixture(scope="session")
def iort(policies: PolicySet) -> Policy:
    return policies.get("bluekc-iort")


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``nlp`` need the nlp extra (medspaCy, pypdf): skipped with a reason locally when it
    is absent, a failure when CI=true (CI installs it and must never pass without running them)."""
    if item.get_closest_marker("nlp") is None:
        return
    if importlib.util.find_spec("medspacy") is not None and importlib.util.find_spec("pypdf") is not None:
        return
    reason = "the nlp extra is not installed: pip install -e '.[dev,nlp]'"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)
