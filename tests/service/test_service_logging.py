"""The service's log lines as `medpolicy serve` writes them: every line arrives, in order, formatted
safely, although the log thread writes them in batches."""

from __future__ import annotations

import io
import logging
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from medpolicy.service import run
from medpolicy.service.logsafe import SafeFormatter


class Buffer(io.StringIO):
    def close(self) -> None:  # handlers close their stream at shutdown; keep the text
        pass


@pytest.fixture
def err(monkeypatch: pytest.MonkeyPatch) -> Iterator[Buffer]:
    """stderr for the test (set when the test starts its listener: pytest swaps sys.stderr between a
    fixture's setup and the test itself)."""
    buffer = Buffer()
    yield buffer
    logging.getLogger("medpolicy").handlers = []
    logging.getLogger("medpolicy").propagate = True


def start(err: Buffer, monkeypatch: pytest.MonkeyPatch, level: int = logging.INFO) -> run.BatchingListener:
    monkeypatch.setattr(sys, "stderr", err)
    return run.log_in_background(level)


def test_every_line_arrives_in_order_within_the_interval_and_at_stop(
    err: Buffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = start(err, monkeypatch)
    log = logging.getLogger("medpolicy.access")
    for i in range(500):
        log.info("%s %s %d request_id=%s", "POST", "/v1/determinations", 201, f"r{i}")
    deadline = time.monotonic() + 5
    while "request_id=r499" not in err.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "request_id=r499" in err.getvalue()  # written by the thread, without a stop
    log.info("last %s", "line")
    listener.stop()
    lines = err.getvalue().splitlines()
    assert [line.rsplit("request_id=", 1)[1] for line in lines[:500]] == [f"r{i}" for i in range(500)]
    assert lines[-1].endswith("medpolicy.access last line")
    assert len(lines) == 501


def test_lines_from_many_threads_all_arrive(err: Buffer, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = start(err, monkeypatch)
    log = logging.getLogger("medpolicy.service")

    def write(n: int) -> None:
        for i in range(200):
            log.warning("thread %d line %d", n, i)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    listener.stop()
    lines = err.getvalue().splitlines()
    assert len(lines) == 800
    for n in range(4):  # each thread's lines in its order
        mine = [line for line in lines if f"thread {n} line" in line]
        assert [int(line.rsplit(" ", 1)[1]) for line in mine] == list(range(200))


def test_a_level_below_the_loggers_is_not_written(err: Buffer, monkeypatch: pytest.MonkeyPatch) -> None:
    listener = start(err, monkeypatch, logging.INFO)
    logging.getLogger("medpolicy.cds").debug("not %s", "shown")
    logging.getLogger("medpolicy.cds").info("shown %s", "here")
    listener.stop()
    assert "not shown" not in err.getvalue()
    assert "shown here" in err.getvalue()


def test_plain_records_format_as_the_safe_copy_does() -> None:
    """A record whose arguments are numbers and short strings is formatted without a copy: the text is
    the one the clipping path gives, and a long or odd argument still takes that path."""
    formatter = SafeFormatter()
    args = ("POST", "/v1/determinations", 201, 3.25, None, True)
    plain = logging.LogRecord(
        "medpolicy.access", logging.INFO, __file__, 1, "%s %s %d %.1fms %s %s", args, None
    )
    text = formatter.format(plain)
    assert text.endswith(" INFO medpolicy.access POST /v1/determinations 201 3.2ms None True")
    clock = logging.Formatter("%(asctime)s")
    assert text.startswith(clock.formatTime(plain))  # the kept second's text, with its milliseconds
    long = logging.LogRecord("x", logging.INFO, __file__, 1, "%s|%s", ("a" * 500, {"mrn": "1"}), None)
    shown = formatter.format(long)
    assert shown.endswith("x " + "a" * 120 + "...|<dict>")
    broken = logging.LogRecord("x", logging.INFO, __file__, 1, "%d", ("not a number",), None)
    assert formatter.format(broken).endswith("x %d")  # a bad format keeps its text, not its arguments
