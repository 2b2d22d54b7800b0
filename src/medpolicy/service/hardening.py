"""The service's guards against hostile and malformed input (see docs/security.md).

* `StrictJSONRoute`: the route class of our JSON API. Bodies are read with `medpolicy.strictjson`
  (no NaN, no duplicate keys, no lone surrogates, bounded nesting); anything else answers 422
  `invalid_json` naming why. Large bodies are parsed in the thread pool, off the event loop.
* the header-size, NUL, HSTS and catch-all guards are in `medpolicy.service.middleware`.
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
