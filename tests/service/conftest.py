"""Fixtures for service tests: a real uvicorn server on loopback (see medpolicy.service.testing).

* `live_server`: one server per test module, with a fresh SQLite store and the test clients
  (`live_server.token` submitter, `.other_token` another submitter, `.nurse_token`,
  `.physician_token`; `live_server.headers(token)` builds the Authorization header).
* `make_live_server`: a factory for a server with other settings, e.g.
  `make_live_server(max_body_bytes=100)`; stopped at the end of the test.

Tests outside tests/service can reuse them in three lines:

    from medpolicy.service.testing import running_server, settings_for_tests

    @pytest.fixture(scope="module")
    def live_server(tmp_path_factory):
        with running_server(settings_for_tests(tmp_path_factory.mktemp("srv"))) as server:
            yield server
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from medpolicy.service.testing import LiveServer, add_test_reviewers, running_server, settings_for_tests


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with running_server(settings_for_tests(tmp_path_factory.mktemp("service"))) as server:
        add_test_reviewers(server.store)  # nurse.ann and dr.bo, for on_behalf_of
        yield server


@pytest.fixture
def make_live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    with ExitStack() as stack:
        count = 0

        def make(**overrides: Any) -> LiveServer:
            nonlocal count
            count += 1
            folder = tmp_path / f"service-{count}"
            folder.mkdir()
            return stack.enter_context(running_server(settings_for_tests(folder, **overrides)))

        yield make
