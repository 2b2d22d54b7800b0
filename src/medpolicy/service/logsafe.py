"""Logging that cannot print patient data: every handler the service installs formats with
`SafeFormatter`.

* An exception is logged by its type and where it was raised (file, line, function), never by its
  message: messages carry input (a `RequestValidationError` prints the submitted body, a database
  error its SQL parameters or the offending key). Chained causes are named by type too.
* A message's arguments are clipped (`MAX_ARG_CHARS`); an argument that is not a number or a short
  string is shown by its type name. Our own log lines pass only ids, codes, methods, paths, statuses.
* SQLAlchemy engines are created with `hide_parameters=True` (`medpolicy.store.db`), so not even a
  database error's text holds the parameters.
"""

from __future__ import annotations

import copy
import logging
import time
import traceback
from types import TracebackType
from typing import Any

MAX_ARG_CHARS = 120
_PLAIN = frozenset({int, float, bool, type(None)})  # shown as they are (a str too, up to MAX_ARG_CHARS)

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class SafeFormatter(logging.Formatter):
    """A formatter that prints exceptions by type and frame only, and clips message arguments."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None, **kwargs: Any) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s %(message)s", datefmt, **kwargs)
        self._second: tuple[int, str] = (-1, "")  # (epoch second, its formatted date and time)

    def format(self, record: logging.LogRecord) -> str:
        args = record.args
        if (
            record.exc_info is None
            and record.exc_text is None
            and record.stack_info is None
            and type(args) is tuple
            and all(type(a) in _PLAIN or (type(a) is str and len(a) <= MAX_ARG_CHARS) for a in args)
        ):
            # Every argument would be shown as it is, and there is no exception: the record needs no
            # safe copy (an access-log line, each request's, is formatted this way).
            try:
                return super().format(record)
            except (TypeError, ValueError):
                pass
        safe = copy.copy(record)
        safe.exc_text = None  # another formatter may have cached the full traceback on the record
        if safe.args:
            args = safe.args if isinstance(safe.args, tuple) else (safe.args,)
            safe.args = tuple(_safe_arg(a) for a in args)
        try:
            safe.getMessage()
        except (TypeError, ValueError):
            safe.args = ()
        return super().format(safe)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        # the default "%Y-%m-%d %H:%M:%S,mmm": the seconds' text is kept (one strftime a second)
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        msec_format = self.default_msec_format
        return msec_format % (cached[1], record.msecs) if msec_format else cached[1]

    def formatException(self, ei: Any) -> str:  # noqa: N802 - the logging API's name
        return exception_summary(ei[1]) if ei and ei[1] is not None else "(no exception)"

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - the logging API's name
        return stack_info  # code locations only: no values


def exception_summary(exc: BaseException) -> str:
    """``Traceback (types and frames only)``: each exception of the chain by type, with its frames."""
    lines = ["Traceback (exception messages are not logged: they may hold request data)"]
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = current.__cause__ or current.__context__
    for i, item in enumerate(reversed(chain)):
        if i:
            lines.append("  then, while handling it:")
        for frame in traceback.extract_tb(item.__traceback__):
            lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        lines.append(f"{type(item).__module__}.{type(item).__qualname__}")
    return "\n".join(lines)


def _safe_arg(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value if len(value) <= MAX_ARG_CHARS else value[:MAX_ARG_CHARS] + "..."
    if isinstance(value, BaseException):
        return type(value).__name__
    return f"<{type(value).__name__}>"
