"""The input limits, in one place: what one case, one JSON document and the parser's caches may hold.

Every face (CLI, API, CDS Hooks, DTR, PAS) goes through these numbers, so one client cannot make the
service hold or work through an unbounded amount of input. They are documented in ``docs/security.md``
and ``docs/api.md``; a value over a limit is refused with the stable code ``limit_exceeded`` (a case)
or ``invalid_json`` (a document), naming the limit.

``DATE_HORIZON_DAYS`` (how far ahead a date of service may lie) is the one limit a deployment sets:
``MEDPOLICY_DATE_HORIZON_DAYS`` in the service, ``configure(date_horizon_days=...)`` in code.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["LIMITS", "Limits", "configure"]


@dataclass(slots=True)
class Limits:
    #: Keys of one case (facts and metadata together).
    max_case_fields: int = 100
    #: Items of one list fact (codes, stagings). An 837I claim carries at most 25 diagnosis codes.
    max_list_items: int = 50
    #: Characters of one string in a case (a code, an enum value, an id or label).
    max_string_chars: int = 200
    #: Problems listed in one error answer; the rest are counted, not listed.
    max_errors_listed: int = 50
    #: Nesting of arrays and objects in one JSON document (FHIR resources nest about 10 deep).
    max_json_depth: int = 64
    #: Characters of an offending value echoed back in an error.
    max_echo_chars: int = 64
    #: The parser's caches of seen values: entries per fact, and the size of a value worth caching.
    cache_entries: int = 4096
    cache_value_chars: int = 64
    cache_list_items: int = 16
    #: Valid dates up to today kept by the parser (a miss costs about a microsecond: a larger cache was
    #: measured to help the CLI little and to shift the engine bench's baseline), and ``finish``
    #: results kept by the facts it reads (``case_finish``; a batch has a few thousand combinations).
    cache_dates: int = 4096
    cache_finishes: int = 16384
    #: A date of service may lie at most this many days after today (two years by default).
    date_horizon_days: int = 730


#: The limits in force (one per process).
LIMITS = Limits()


def configure(*, date_horizon_days: int | None = None) -> None:
    """Set the deployment's limits (the service calls this from its settings)."""
    if date_horizon_days is not None:
        if date_horizon_days < 0:
            raise ValueError("the date horizon must be zero or more days")
        LIMITS.date_horizon_days = date_horizon_days
