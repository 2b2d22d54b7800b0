"""The health plan's configuration: identity, contacts, letter texts and the time zone shown.

A folder holds ``plan.toml`` (see ``plan_default/plan.toml``, the demo's working defaults) and may
hold letter partials (``letter/*.html``) that replace the workbench's own. ``MEDPOLICY_PLAN_DIR``
names the folder; ``MEDPOLICY_TIMEZONE`` overrides its time zone.

    plan = load_plan()                  # the folder of MEDPOLICY_PLAN_DIR, else the demo's
    plan.local(datetime_in_utc)         # the same instant in the plan's time zone
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2

__all__ = ["DEFAULT_PLAN_DIR", "PlanConfig", "PlanConfigError", "PlanTemplateLoader", "Reviewer", "load_plan"]

DEFAULT_PLAN_DIR = Path(__file__).resolve().parent / "plan_default"


class PlanConfigError(ValueError):
    """The plan folder is missing, or its plan.toml is not valid (the message says where)."""


@dataclass(frozen=True)
class Contact:
    address: tuple[str, ...] = ()
    phone: str = ""
    fax: str = ""
    hours: str = ""


@dataclass(frozen=True)
class Reviewer:
    credentials: str = ""
    specialty: str = ""


@dataclass(frozen=True)
class PlanConfig:
    name: str
    address: tuple[str, ...]
    phone: str
    website: str
    timezone: str
    appeals: Contact
    peer_to_peer: Contact
    valid_days: int
    units_per_code: int
    closing: str
    department: str
    non_discrimination: str
    taglines: tuple[str, ...]
    reviewers: Mapping[str, Reviewer] = field(default_factory=dict)
    folder: Path = DEFAULT_PLAN_DIR

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, when: datetime) -> datetime:
        return when.astimezone(self.zone)

    def when(self, when: datetime | None) -> str:
        """``03 Dec 2026 09:15 CST``: a time as the workbench shows it."""
        if when is None:
            return ""
        return self.local(when).strftime("%d %b %Y %H:%M %Z")

    def reviewer(self, username: str) -> Reviewer:
        return self.reviewers.get(username, Reviewer())

    @property
    def templates(self) -> Path | None:
        """The folder's own letter partials, if it has any."""
        return self.folder if (self.folder / "letter").is_dir() else None


def _text(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise PlanConfigError(f"plan.toml [{where}] {key} must be text")
    return value.strip()


def _lines(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PlanConfigError(f"plan.toml [{where}] {key} must be a list of lines")
    return tuple(value)


def _contact(data: Any, where: str) -> Contact:
    if not isinstance(data, Mapping):
        raise PlanConfigError(f"plan.toml needs a [{where}] table")
    return Contact(
        address=_lines(data, "address", where),
        phone=_text(data, "phone", where),
        fax=_text(data, "fax", where, ""),
        hours=_text(data, "hours", where, ""),
    )


def parse_plan(data: Mapping[str, Any], folder: Path, timezone: str | None = None) -> PlanConfig:
    plan = data.get("plan")
    if not isinstance(plan, Mapping):
        raise PlanConfigError("plan.toml needs a [plan] table")
    auth = data.get("authorization") or {}
    sig = data.get("signature") or {}
    notices = data.get("notices") or {}
    tz = timezone or _text(plan, "timezone", "plan", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise PlanConfigError(f"unknown time zone {tz!r} (an IANA name such as America/Chicago)") from None
    valid_days = auth.get("valid_days", 90)
    units = auth.get("units_per_code", 1)
    if not isinstance(valid_days, int) or valid_days < 1 or not isinstance(units, int) or units < 1:
        raise PlanConfigError("plan.toml [authorization] valid_days and units_per_code are whole numbers ≥ 1")
    reviewers = {}
    for username, info in (data.get("reviewers") or {}).items():
        if isinstance(info, Mapping):
            reviewers[str(username)] = Reviewer(
                _text(info, "credentials", "reviewers", ""), _text(info, "specialty", "reviewers", "")
            )
    return PlanConfig(
        name=_text(plan, "name", "plan"),
        address=_lines(plan, "address", "plan"),
        phone=_text(plan, "phone", "plan"),
        website=_text(plan, "website", "plan", ""),
        timezone=tz,
        appeals=_contact(data.get("appeals"), "appeals"),
        peer_to_peer=_contact(data.get("peer_to_peer"), "peer_to_peer"),
        valid_days=valid_days,
        units_per_code=units,
        closing=_text(sig, "closing", "signature", "Sincerely,"),
        department=_text(sig, "department", "signature", "Utilization Management"),
        non_discrimination=" ".join(_text(notices, "non_discrimination", "notices").split()),
        taglines=_lines(notices, "taglines", "notices"),
        reviewers=reviewers,
        folder=folder,
    )


class PlanTemplateLoader(jinja2.BaseLoader):
    """A Jinja2 loader: ``letter/*`` partials from the plan's folder when it has them, else the
    workbench's own (every other template is the workbench's)."""

    def __init__(self, templates: Path) -> None:
        self.own = jinja2.FileSystemLoader(str(templates))

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        folder = load_plan().templates
        if folder is not None and template.startswith("letter/"):
            try:
                return jinja2.FileSystemLoader(str(folder)).get_source(environment, template)
            except jinja2.TemplateNotFound:
                pass
        return self.own.get_source(environment, template)


def load_plan(folder: str | Path | None = None, *, timezone: str | None = None) -> PlanConfig:
    """The plan's configuration from `folder` (default: MEDPOLICY_PLAN_DIR, else the demo's)."""
    path = Path(folder or os.environ.get("MEDPOLICY_PLAN_DIR") or DEFAULT_PLAN_DIR)
    return _load(path.resolve(), timezone or os.environ.get("MEDPOLICY_TIMEZONE") or None)


@lru_cache(maxsize=8)
def _load(path: Path, timezone: str | None) -> PlanConfig:
    file = path / "plan.toml"
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanConfigError(f"no plan.toml in {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlanConfigError(f"{file}: {exc}") from None
    return parse_plan(data, path, timezone)
