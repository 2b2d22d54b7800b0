"""The service's guards against hostile and malformed input (see docs/security.md).

* `StrictJSONRoute`: the route class of our JSON API. Bodies are read with `medpolicy.strictjson`
  (no NaN, no duplicate keys, no lone surrogates, bounded nesting); anything else answers 422
  `invalid_json` naming why. Large bodies are parsed in the thread pool, off the event loop.
* `fast_path`: an endpoint's own handling of the common, well-formed request, tried before FastAPI's
  handler, which still answers (and refuses) everything else.
* the header-size, NUL, HSTS and catch-all guards are in `medpolicy.service.middleware`.
* `bounded_problems`: the first `LIMITS.max_errors_listed` problems of an error, and how many there were.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute

from medpolicy import strictjson
from medpolicy.limits import LIMITS

log = logging.getLogger("medpolicy.service")

#: Bodies larger than this are parsed in the thread pool (a 1 MB body takes milliseconds to parse).
OFF_LOOP_BYTES = 64 * 1024


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


#: A route's fast path: the response for a request it can answer, or None to run the full handler.
FastPath = Callable[[StrictJSONRequest], Awaitable[Response | None]]
_FAST_PATH = "__medpolicy_fast_path__"
_Endpoint = TypeVar("_Endpoint", bound=Callable[..., Any])


def fast_path(fast: FastPath) -> Callable[[_Endpoint], _Endpoint]:
    """Give an endpoint of a `StrictJSONRoute` a fast path, tried before FastAPI's handler.

    FastAPI's handler (dependency injection, parameter and body validation, response handling) costs
    more than many endpoints' own work. A fast path answers the common, well-formed request itself
    and returns None for anything else: the full handler then runs on the same request (its body
    already read and parsed, once), so every refusal, its order and its error shape stay FastAPI's.
    A fast path must therefore have no effect before it commits to answering (no log line, no
    security event), and must accept only what the endpoint's declared parameters accept. The
    endpoint's signature still makes the OpenAPI document."""

    def attach(endpoint: _Endpoint) -> _Endpoint:
        setattr(endpoint, _FAST_PATH, fast)
        return endpoint

    return attach


class StrictJSONRoute(APIRoute):
    """Routes of this class read JSON bodies strictly (see `StrictJSONRequest`), and try the
    endpoint's `fast_path`, if it has one, before FastAPI's handler."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        fast: FastPath | None = getattr(self.endpoint, _FAST_PATH, None)

        async def strict(request: Request) -> Response:
            strict_request = StrictJSONRequest(request.scope, request.receive)
            if fast is not None:
                response = await fast(strict_request)
                if response is not None:
                    return response
            return await handler(strict_request)

        return strict


def bounded_problems(problems: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The first `max_errors_listed` problems (the caller reports the total)."""
    return [dict(p) for p in problems[: LIMITS.max_errors_listed]]
