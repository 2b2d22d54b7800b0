"""Shared fixtures of the interop tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from medpolicy.service import testing as service_testing


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service_testing.LiveServer]:
    """A live service on loopback with its own SQLite store, one per test module."""
    settings = service_testing.settings_for_tests(tmp_path_factory.mktemp("interop"))
    with service_testing.running_server(settings) as live:
        service_testing.add_test_reviewers(live.store)
        yield live
