"""Shared fixtures for the core tests: the real policies folder, loaded once."""

from __future__ import annotations

import pytest

from medpolicy import Policy, PolicySet, load_policies


@pytest.fixture(scope="session")
def policies() -> PolicySet:
    return load_policies()


@pytest.fixture(scope="session")
def iort(policies: PolicySet) -> Policy:
    return policies.get("bluekc-iort")
