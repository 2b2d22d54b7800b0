"""No patient data in any log line, by construction: internal errors and database errors are forced
with a marker string in every field of the request, and the marker never appears in the log output of
the service as `medpolicy serve` configures it (our loggers, uvicorn's error log, the root logger)."""

from __future__ import annotations

import io
import logging
import logging.config
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from medpolicy.service import run
from medpolicy.service.app import create_app
from medpolicy.service.logsafe import SafeFormatter
from medpolicy.service.testing import MEDICALLY_NECESSARY, SUBMITTER_TOKEN, settings_for_tests

MARKER = "PHIMARKER-Jane-Doe-MRN-8675309"


class Buffer(io.StringIO):
    """stderr for the test: every handler `serve` installs writes here."""

    def close(self) -> None:  # handlers close their stream at shutdown; keep the text
        pass


@pytest.fixture
def serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any, Buffer]]:
    """The service on loopback with the logging `serve` installs; yields (base URL, app, its stderr)."""
    stderr = Buffer()
    monkeypatch.setattr(sys, "stderr", stderr)
    logging.config.dictConfig(run.LOG_CONFIG)
    listener = run.log_in_background(logging.DEBUG)
    app = create_app(settings_for_tests(tmp_path))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, access_log=False, log_config=run.LOG_CONFIG))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}", app, stderr
    finally:
        server.should_exit = True
        thread.join(10)
        listener.stop()
        sock.close()
        logging.getLogger("medpolicy").handlers = []
        logging.getLogger("medpolicy").propagate = True
        for name in ("", "uvicorn"):
            logging.getLogger(name).handlers = []


def test_forced_errors_never_log_the_request(
    serving: tuple[str, Any, Buffer], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, app, stderr = serving
    store = app.state.medpolicy.store

    def internal_error(case: Any, **_: Any) -> Any:
        raise RuntimeError(f"boom while deciding {case!r}")

    def database_error(case: Any, **_: Any) -> Any:
        with store.engine.connect() as conn:  # a real driver error, its parameters the case
            conn.execute(sa.text("select * from no_such_table where x = :v"), {"v": repr(case)})

    def validation_error_inside(*_: Any, **__: Any) -> Any:
        from pydantic import BaseModel

        class Strict(BaseModel):
            n: int

        Strict.model_validate({"n": MARKER})  # raises a ValidationError that prints its input

    case = {**MEDICALLY_NECESSARY, "label": MARKER, "id": MARKER}
    headers = {"Authorization": f"Bearer {SUBMITTER_TOKEN}", "Idempotency-Key": MARKER}
    body = {"case": case, "subject": MARKER, "idempotency_key": MARKER}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        for broken in (internal_error, database_error, validation_error_inside):
            monkeypatch.setattr(store, "decide", broken)
            response = http.post("/v1/determinations", json={"case": case})
            assert response.status_code == 500
            assert response.headers.get("connection", "").lower() != "close"
            assert MARKER not in response.text
            monkeypatch.setattr(store, "create_pa_request", broken)
            assert http.post("/v1/prior-auth", json=body).status_code == 500
        # and the refused inputs, which are echoed to the caller but never logged
        http.post("/v1/determinations", json={"case": {**case, "margin_status": MARKER}})
        http.post("/v1/prior-auth", content=b'{"case": {"a": "%s", "a": 1}}' % MARKER.encode())
    time.sleep(0.3)  # the background log thread
    logged = stderr.getvalue()
    assert "RuntimeError" in logged  # the errors were logged, by type
    assert "OperationalError" in logged or "ProgrammingError" in logged
    assert MARKER not in logged
    assert "Jane" not in logged


def test_the_safe_formatter_prints_types_and_frames_not_messages() -> None:
    formatter = SafeFormatter()
    try:
        try:
            raise KeyError(MARKER)
        except KeyError as first:
            raise ValueError(f"bad {MARKER}") from first
    except ValueError as exc:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed on %s", (MARKER * 10,), None)
        record.exc_info = (type(exc), exc, exc.__traceback__)
        record.exc_text = f"a cached traceback with {MARKER}"
        text = formatter.format(record)
    assert "builtins.KeyError" in text
    assert "builtins.ValueError" in text
    assert "test_the_safe_formatter_prints_types_and_frames_not_messages" in text
    assert MARKER * 5 not in text  # the argument is clipped to its first 120 characters
    assert f"bad {MARKER}" not in text
    assert "cached traceback" not in text


def test_database_engines_hide_parameters(tmp_path: Path) -> None:
    from medpolicy.store.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    assert engine.hide_parameters
    pg = make_engine("postgresql+psycopg://u@127.0.0.1:1/none")
    assert pg.hide_parameters
