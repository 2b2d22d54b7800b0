"""Settings of the workbench, read from the environment.

* `MEDPOLICY_WEB_LOCKOUT_ATTEMPTS`: failed sign-ins in a row that lock an account; default 5.
* `MEDPOLICY_WEB_LOCKOUT_MINUTES`: how long the lock lasts; default 15.
* `MEDPOLICY_WEB_SECURE_COOKIES`: `true` (cookies only over https), `false`, or `auto` (default:
  Secure when the request came over https, so the localhost demo over http works).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from medpolicy.web.users import Lockout


class WebSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class WebSettings:
    lockout: Lockout = field(default_factory=Lockout)
    secure_cookies: bool | None = None  # None: auto

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WebSettings:
        env = os.environ if environ is None else environ
        attempts = _int(env, "MEDPOLICY_WEB_LOCKOUT_ATTEMPTS", 5)
        minutes = _int(env, "MEDPOLICY_WEB_LOCKOUT_MINUTES", 15)
        raw = env.get("MEDPOLICY_WEB_SECURE_COOKIES", "auto").strip().lower()
        if raw not in ("auto", "true", "false", "1", "0", "yes", "no"):
            raise WebSettingsError(f"MEDPOLICY_WEB_SECURE_COOKIES must be auto, true or false, not {raw!r}")
        secure = None if raw == "auto" else raw in ("true", "1", "yes")
        return cls(Lockout(max_failures=attempts, duration=timedelta(minutes=minutes)), secure)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise WebSettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value < 1:
        raise WebSettingsError(f"{name} must be at least 1")
    return value
