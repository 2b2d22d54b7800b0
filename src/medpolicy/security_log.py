"""Security events, logged without patient data: who (the principal), what, and the outcome.

One line per event on the `medpolicy.security` logger, `security event=<name> key=value ...`.
Values are identifiers only (user ids and usernames of accounts, client ids, stable reason codes,
times): anything else is dropped to a placeholder, so a caller cannot log free text by mistake. The
username someone typed is never logged for an unknown account (it may be a mistyped password).

    security_event("sign_in_failed", principal="user:nurse.nora")
    security_event("lockout", principal="user:nurse.nora", until="2026-11-29T16:00:00+00:00")
"""

from __future__ import annotations

import logging
import re

__all__ = ["principal_of_user", "security_event"]

log = logging.getLogger("medpolicy.security")
_SAFE = re.compile(r"[A-Za-z0-9_.:@+\-]{1,120}")


def _safe(value: object) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if _SAFE.fullmatch(text) else "<redacted>"


def security_event(event: str, **fields: object) -> None:
    """Log one security event (failed sign-ins, lock-outs, unlocks, accounts, roles, API auth)."""
    parts = " ".join(f"{key}={_safe(value)}" for key, value in fields.items())
    log.warning("security event=%s %s", _safe(event), parts)


def principal_of_user(username: str) -> str:
    return f"user:{username}"
