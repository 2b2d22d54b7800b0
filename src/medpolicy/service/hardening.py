"""The service's guards against hostile and malformed input (see docs/security.md).

* `StrictJSONRoute`: the route class of our JSON API. Bodies are read with `medpolicy.strictjson`
  (no NaN, no duplicate keys, no lone surrogates, bounded nesting); anything else answers 422
  `invalid_json` naming why. Large bodies are parsed in the thread pool, off the event loop.
* `GuardMiddleware`: refuses oversized request headers (431), NUL characters in the path, the query or
  a form body (400: no database stores them, and no clinical text holds one), and adds HSTS to every
  answer given over HTTPS.
* `CatchAllMiddleware`: an unexpected exception answers 500 without closing the connection.
* `bounded_problems`: the first `LIMITS.max_errors_listed` problems of an error, and how many there were.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medpolicy import strictjson
from medpolicy.limits import LIMITS

log = logging.getLogger("medpolicy.service")

#: Bodies larger than this are parsed in the thread pool (a 1 MB body takes milliseconds to parse).
OFF_LOOP_BYTES = 64 * 1024
#: Largest total size of the request line's headers accepted (names and values).
MAX_HEADER_BYTES = 16 * 1024
HSTS = b"max-age=31536000; includeSubDomains"


class StrictJSONRequest(Request):
    """A request whose `json()` is the strict loader (FastAPI turns its JSONDecodeError into 422)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                if len(body) > OFF_LOOP_BYTES:
                    self._json = await run_in_threadpool(strictjson.loads, body)
                else:
                    self._json = strictjson.loads(body)
            except strictjson.JsonInputError as exc:
                # FastAPI answers this with a `json_invalid` validation error: 422 invalid_json
                raise json.JSONDecodeError(exc.message, "", 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """Routes of this class read JSON bodies strictly (see `StrictJSONRequest`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def bounded_problems(problems: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The first `max_errors_listed` problems (the caller reports the total)."""
    return [dict(p) for p in problems[: LIMITS.max_errors_listed]]


class GuardMiddleware:
    """Header size, NUL characters, HSTS. Install inside the body-size limit (it reads the whole body
    that middleware has already buffered)."""

    def __init__(self, app: ASGIApp, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from medpolicy.service.errors import ApiError, render_error

        headers = scope.get("headers", ())
        size = sum(len(k) + len(v) for k, v in headers)
        if size > self.max_header_bytes:
            error = ApiError(
                431,
                "headers_too_large",
                f"the request headers are {size} bytes; the limit is {self.max_header_bytes}",
                headers={"Connection": "close"},
            )
            await render_error(scope["path"], error)(scope, receive, send)
            return
        query = bytes(scope.get("query_string", b""))
        if "\x00" in scope["path"] or b"%00" in query or b"\x00" in query:
            await _nul(scope, receive, send, "the path or query")
            return
        content_type = next((bytes(v) for k, v in headers if k == b"content-type"), b"")
        if content_type.startswith(b"application/x-www-form-urlencoded"):
            message = await receive()
            body = message.get("body", b"")
            if b"%00" in body or b"\x00" in body:
                await _nul(scope, receive, send, "the form")
                return
            delivered = False

            async def replay() -> Message:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return message
                return await receive()

            receive = replay
        if scope.get("scheme") == "https":
            original_send = send

            async def send_with_hsts(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (b"strict-transport-security", HSTS)],
                    }
                await original_send(message)

            send = send_with_hsts
        await self.app(scope, receive, send)


async def _nul(scope: Scope, receive: Receive, send: Send, where: str) -> None:
    from medpolicy.service.errors import ApiError, render_error

    error = ApiError(
        400, "invalid_request", f"{where} holds a NUL character, which no field may hold", value=None
    )
    await render_error(scope["path"], error)(scope, receive, send)


class CatchAllMiddleware:
    """An unexpected exception answers 500 `internal_error` here, and the connection stays open.

    (Left to Starlette, the exception is re-raised after the 500 is sent, and uvicorn then closes
    the keep-alive connection.) Logged by type, path and request id; the traceback by frames only
    (`medpolicy.service.logsafe`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            from medpolicy.service.errors import ApiError, render_error

            log.error(
                "unhandled %s on %s %s request_id=%s",
                type(exc).__name__,
                scope.get("method"),
                scope.get("path"),
                scope.get("state", {}).get("request_id", "-"),
                exc_info=exc,
            )
            if started:  # too late to answer: the server closes the connection
                raise
            error = ApiError(500, "internal_error", "the service failed; it has been logged")
            await render_error(scope["path"], error)(scope, receive, send)
