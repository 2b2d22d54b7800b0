"""The service's one ASGI middleware: every control a request passes before a route, in one layer.

`ServiceMiddleware` does, in this order, what four stacked middlewares did before (one layer costs
one call and one `send` wrapper per request instead of four):

1. **request id**: the caller's `X-Request-ID` (printable, at most 128 characters) or a new one, kept
   at ``scope["state"]["request_id"]`` and sent back on every answer;
2. **body limit**: a body over `max_body_bytes` is refused with 413 `payload_too_large` (declared or
   streamed); the body is read here, bounded, and handed on as one message;
3. **guards**: request headers over `max_header_bytes` answer 431 `headers_too_large`; a NUL
   character in the path, the query or a form body answers 400 (no database stores one, no clinical
   text holds one); answers over HTTPS carry HSTS;
4. **catch-all**: an unexpected exception answers 500 `internal_error` and the keep-alive connection
   stays open (left to Starlette, the exception is re-raised after the 500 and uvicorn closes it).
   Logged by type, path and request id; the traceback by frames only (`medpolicy.service.logsafe`);
5. **access log**: one line per request: method, path, status, duration, request id and the
   authenticated principal (``scope["state"]["principal"]``: `client:<id>`, `user:<name>`,
   `cds:<issuer>`, or `-`). Never a body, a query or a token.

**Fast paths** (`hot`: (method, path) -> `FastPath`). FastAPI's handler (dependency injection,
parameter and body validation, routing, exception layers) costs more per call than many endpoints'
own work. A request to a hot route, once it has passed every control above, is offered to the
route's fast path here: it answers the common, well-formed request itself, and an error it raises is
answered by the app's exception handler for it, as the layers behind this one would. For anything
else it returns None, and the request goes through the whole stack with the same body: every
refusal, its order and its shape stay FastAPI's. So a fast path must have no effect before it
commits to answering (no log line, no security event), and accept only what the route's declared
parameters accept; the route's endpoint still makes the OpenAPI document.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medpolicy.service.errors import ApiError, render_error
from medpolicy.service.hardening import StrictJSONRequest

access_log = logging.getLogger("medpolicy.access")
log = logging.getLogger("medpolicy.service")

#: Largest total size of the request's headers accepted (names and values); uvicorn's h11 limit is the same.
MAX_HEADER_BYTES = 16 * 1024
HSTS = b"max-age=31536000; includeSubDomains"
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM = b"application/x-www-form-urlencoded"
_ACCESS_LINE = "%s %s %d %.1fms request_id=%s principal=%s"

#: A route's fast path: its response to a request it can answer alone, or None to decline.
FastPath = Callable[[StrictJSONRequest], Awaitable[Response | None]]


class ServiceMiddleware:
    """Request id, body limit, header/NUL guards, HSTS, catch-all 500 and the access log (see above)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_header_bytes: int = MAX_HEADER_BYTES,
        hot: Mapping[tuple[str, str], FastPath] | None = None,
        exception_handlers: dict[Any, Any] | None = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.hot = dict(hot or {})
        # the handlers of ExceptionMiddleware; an exception without one goes to the catch-all below
        self.handlers = {k: v for k, v in (exception_handlers or {}).items() if k not in (Exception, 500)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = ""
        content_length: bytes | None = None
        content_type = b""
        header_bytes = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"x-request-id" and not request_id:
                request_id = value.decode("latin-1")
            elif name == b"content-length":
                content_length = value
            elif name == b"content-type":
                content_type = value
        if not request_id or len(request_id) > 128 or not request_id.isprintable():
            request_id = os.urandom(16).hex()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        extra_headers = [(b"x-request-id", request_id.encode("latin-1"))]
        if scope.get("scheme") == "https":
            extra_headers.append((b"strict-transport-security", HSTS))
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = int(message["status"])
                response_started = True
                message = {**message, "headers": [*message.get("headers", ()), *extra_headers]}
            await send(message)

        try:
            error = self._refusal(scope, header_bytes, content_length)
            if error is None and scope["method"] not in _NO_BODY_METHODS:
                body = await self._read_body(receive)
                if body is None:  # the client went away
                    return
                if len(body) > self.max_body_bytes:
                    error = self._too_large()
                elif content_type.startswith(_FORM) and (b"%00" in body or b"\x00" in body):
                    error = _nul("the form")
                else:
                    fast = self.hot.get((scope["method"], scope["path"]))
                    if fast is not None and await self._fast(fast, body, scope, receive, send_with_headers):
                        return
                    receive = _replay(body, receive)
            if error is not None:
                await render_error(scope["path"], error)(scope, receive, send_with_headers)
                return
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            log.error(
                "unhandled %s on %s %s request_id=%s",
                type(exc).__name__,
                scope.get("method"),
                scope.get("path"),
                request_id,
                exc_info=exc,
            )
            if response_started:  # too late to answer: the server closes the connection
                raise
            error = ApiError(500, "internal_error", "the service failed; it has been logged")
            await render_error(scope["path"], error)(scope, receive, send_with_headers)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                # handle(makeRecord()) is info() without its look up the stack for the caller's file
                # and line, which no access line shows: a tenth of the request's logging cost
                access_log.handle(
                    access_log.makeRecord(
                        access_log.name,
                        logging.INFO,
                        __file__,
                        0,
                        _ACCESS_LINE,
                        (
                            scope["method"],
                            scope["path"],
                            status,
                            (time.perf_counter() - started) * 1000,
                            request_id,
                            state.get("principal", "-"),  # set when the caller authenticated
                        ),
                        None,
                    )
                )

    async def _fast(self, fast: FastPath, body: bytes, scope: Scope, receive: Receive, send: Send) -> bool:
        """Whether `fast` answered the request (an exception with a handler is answered by it)."""
        request = StrictJSONRequest(scope, _replay(body, receive))
        request._body = body  # Starlette's cache of the body: `body()` and `json()` need not stream it
        try:
            response = await fast(request)
        except Exception as exc:
            handler = next((self.handlers[c] for c in type(exc).__mro__ if c in self.handlers), None)
            if handler is None:
                raise
            if inspect.iscoroutinefunction(handler):
                response = await handler(request, exc)
            else:
                response = await run_in_threadpool(handler, request, exc)
        if response is None:
            return False
        await response(scope, receive, send)
        return True

    def _refusal(self, scope: Scope, header_bytes: int, content_length: bytes | None) -> ApiError | None:
        """What is wrong with the request line and headers, if anything (before any body is read)."""
        if (
            content_length is not None
            and scope["method"] not in _NO_BODY_METHODS
            and content_length.isdigit()
            and int(content_length) > self.max_body_bytes
        ):
            return self._too_large()
        if header_bytes > self.max_header_bytes:
            return ApiError(
                431,
                "headers_too_large",
                f"the request headers are {header_bytes} bytes; the limit is {self.max_header_bytes}",
                headers={"Connection": "close"},
            )
        query = scope.get("query_string", b"")
        if "\x00" in scope["path"] or (query and (b"%00" in query or b"\x00" in query)):
            return _nul("the path or query")
        return None

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, or as much as exceeds the limit by one chunk; None if the client left."""
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            return body
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            chunks.append(chunk)
            if size > self.max_body_bytes or not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self) -> ApiError:
        return ApiError(
            413,
            "payload_too_large",
            f"the request body is larger than {self.max_body_bytes} bytes",
            headers={"Connection": "close"},
        )


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that delivers `body` as one message, then whatever the server sends next."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _nul(where: str) -> ApiError:
    return ApiError(
        400, "invalid_request", f"{where} holds a NUL character, which no field may hold", value=None
    )
