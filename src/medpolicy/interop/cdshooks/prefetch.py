"""Prefetch of a hook call: which keys the service needs, which were given, and the FHIR queries to run
for the missing ones."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from medpolicy.interop.cdshooks.request import HookRequest
from medpolicy.interop.cdshooks.services import REQUIRED_PREFETCH, CdsService
from medpolicy.interop.fhir_case import flatten_resources


@dataclass(frozen=True)
class PrefetchPlan:
    """What the service has and what it lacks for one call.

    Attributes:
        resources: every resource given in prefetch (Bundles flattened, nulls and OperationOutcomes
            dropped), in key order.
        missing: required prefetch keys the client did not send (to fetch, or 412).
        queries: for each missing key, the relative FHIR query (tokens filled in).
    """

    resources: list[dict[str, Any]]
    missing: tuple[str, ...]
    queries: Mapping[str, str]


_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z0-9_]+)\s*\}\}")


def fill_template(template: str, context: Mapping[str, Any]) -> str | None:
    """Replace ``{{context.x}}`` tokens (first-level primitive fields only); ``None`` if one is missing."""
    out = template
    for m in _TOKEN.finditer(template):
        value = context.get(m.group(1))
        if not isinstance(value, str | int):
            return None
        out = out.replace(m.group(0), quote(str(value), safe=""))
    return None if "{{" in out else out


def prefetch_status(
    req: HookRequest, service: CdsService, required: Sequence[str] = REQUIRED_PREFETCH
) -> PrefetchPlan:
    """Sort the prefetch into present data, missing required keys and the queries to fetch them.

    A key sent as ``null`` means the client has no such data: it is present (and empty). A key sent as an
    OperationOutcome (a client reporting a failure) counts as missing.
    """
    given = req.prefetch or {}
    resources = flatten_resources(given.values())
    missing: list[str] = []
    queries: dict[str, str] = {}
    for key in required:
        if key in given and not (
            isinstance(given[key], Mapping) and given[key].get("resourceType") == "OperationOutcome"
        ):
            continue
        missing.append(key)
        template = service.prefetch.get(key)
        query = fill_template(template, req.context) if template else None
        if query:
            queries[key] = query
    return PrefetchPlan(resources=resources, missing=tuple(missing), queries=queries)
