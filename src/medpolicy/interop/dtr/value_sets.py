"""``ValueSet/$expand`` of the answers of each enum fact (the DTR payer service SHALL offer it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from medpolicy import PolicySet
from medpolicy.interop.dtr.canonical import CANONICAL_BASE, fact_code_system, value_set_url
from medpolicy.interop.dtr.facts import _fact_options, all_facts
from medpolicy.interop.dtr.validation import FhirInputError, Problem, _invalid, validate_fhir


def value_sets(policies: PolicySet) -> dict[str, Any]:
    """The value sets this payer can expand: URL -> the enum fact whose answers it holds."""
    return {
        value_set_url(name): fact
        for name, fact in all_facts(policies).items()
        if fact.type == "enum" and _fact_options(fact)
    }


@dataclass(frozen=True)
class ExpandRequest:
    url: str
    filter: str | None = None
    offset: int = 0
    count: int | None = None


def expand_request(params: Any) -> ExpandRequest:
    """The inputs of ``ValueSet/$expand`` given as a Parameters body (``url``, ``filter``, ``offset``,
    ``count``). Raises :class:`FhirInputError`; an inline ``valueSet`` is not supported (422)."""
    if not isinstance(params, Mapping):
        raise FhirInputError(
            400, "not_a_resource", "the body must be a FHIR Parameters resource (a JSON object)"
        )
    validate_fhir(params, expected="Parameters", path="Parameters")
    given: dict[str, Any] = {}
    for i, p in enumerate(params.get("parameter") or []):
        name = p.get("name") if isinstance(p, Mapping) else None
        if name == "valueSet":
            raise _invalid(
                "an inline valueSet is not expanded here; name one of ours by url",
                f"Parameters.parameter[{i}]",
                code="not_supported",
            )
        if name in ("url", "filter", "offset", "count"):
            values = [v for k, v in p.items() if k.startswith("value")]
            given[name] = (values[0] if values else None, f"Parameters.parameter[{i}]")
    return expand_arguments({k: v for k, (v, _) in given.items()}, {k: w for k, (_, w) in given.items()})


def expand_arguments(values: Mapping[str, Any], where: Mapping[str, str] | None = None) -> ExpandRequest:
    """``url``, ``filter``, ``offset``, ``count`` (from a query string or Parameters), checked."""
    where = where or {}
    url = values.get("url")
    if not isinstance(url, str) or not url.strip():
        raise _invalid(
            "the 'url' of the value set to expand is required",
            where.get("url", "url"),
            code="missing_parameter",
        )
    numbers: dict[str, int | None] = {}
    for name in ("offset", "count"):
        raw = values.get(name)
        if raw is None:
            numbers[name] = None
            continue
        try:
            number = int(raw)
        except (TypeError, ValueError):
            number = -1
        if isinstance(raw, bool) or number < 0:
            raise _invalid(
                f"'{name}' must be a whole number of at least 0",
                where.get(name, name),
                code="invalid_parameter",
                value=raw,
            )
        numbers[name] = number
    text = values.get("filter")
    return ExpandRequest(
        url=url.strip(),
        filter=(str(text).strip() or None) if text is not None else None,
        offset=numbers["offset"] or 0,
        count=numbers["count"],
    )


def expand_value_set(request: ExpandRequest, policies: PolicySet, *, now: datetime) -> dict[str, Any]:
    """``ValueSet/$expand`` of one of our value sets (``url`` or ``url|version``): every code, or
    those whose code or display contains ``filter`` (case-insensitive), paged by ``offset``/``count``.
    Raises :class:`FhirInputError` 404 ``value_set_not_found`` for a value set we do not have."""
    url = request.url.split("|", 1)[0]
    fact = value_sets(policies).get(url)
    if fact is None:
        raise FhirInputError(
            404,
            "value_set_not_found",
            f"no value set {request.url!r} here; ours are {CANONICAL_BASE}/ValueSet/<fact>",
            [Problem("value_set_not_found", "url", "no such value set", request.url)],
        )
    system = fact_code_system(fact.name)
    codes = [{"system": system, "code": code, "display": label} for code, label in _fact_options(fact)]
    if request.filter:
        needle = request.filter.casefold()
        codes = [c for c in codes if needle in c["code"].casefold() or needle in c["display"].casefold()]
    total = len(codes)
    end = None if request.count is None else request.offset + request.count
    expansion: dict[str, Any] = {"timestamp": now.isoformat(), "total": total, "offset": request.offset}
    parameters: list[dict[str, Any]] = []
    if request.filter:
        parameters.append({"name": "filter", "valueString": request.filter})
    if request.count is not None:
        parameters.append({"name": "count", "valueInteger": request.count})
    if parameters:
        expansion["parameter"] = parameters
    page = codes[request.offset : end]
    if page:
        expansion["contains"] = page
    return {
        "resourceType": "ValueSet",
        "url": url,
        "name": "".join(part.capitalize() for part in fact.name.split("_")),
        "title": f"Answers to: {fact.question}",
        "status": "active",
        "compose": {"include": [{"system": system}]},
        "expansion": expansion,
    }
