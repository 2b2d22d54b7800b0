"""Service settings, read from the environment.

* `DATABASE_URL`: SQLAlchemy URL of the store (`postgresql+psycopg://...`, `sqlite:///...`);
  default: the SQLite file `<MEDPOLICY_DATA_DIR>/medpolicy.db`.
* `MEDPOLICY_DATA_DIR`: folder of the default SQLite store; default `data` (in the working directory).
* `MEDPOLICY_CLIENTS`: API clients and their bearer tokens (below); default none: `/v1` refuses all.
* `MEDPOLICY_MAX_BODY_BYTES`: largest request body accepted; default 1048576.
* `MEDPOLICY_CORS_ORIGINS`: comma-separated origins allowed by CORS, `*` for any; default none (CORS off).
* `MEDPOLICY_DATE_HORIZON_DAYS`: how far ahead a date of service may lie; default 730 (two years).
* `MEDPOLICY_POLICIES_DIR`: folder of policies; default the repository's `policies/`.
* `MEDPOLICY_SQLITE_SYNCHRONOUS`: SQLite `synchronous` pragma (read by the store); default `FULL`.

`MEDPOLICY_CLIENTS` is either JSON, `{"<client id>": {"token": "...", "roles": ["nurse"]}}` (a bare
string value is the token), or the short form `client:token[:role+role],client:token`. Every client
may submit requests and read its own records (role `submitter`); the roles `nurse` and `physician`
may read every request and act on it as a reviewer. The role `system` belongs to the engine and is
never given to a client.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

REVIEWER_ROLES = frozenset({"nurse", "physician"})
CLIENT_ROLES = frozenset({"submitter", "nurse", "physician"})


class SettingsError(ValueError):
    """A setting from the environment has a value the service cannot use."""


class ClientConfig(BaseModel):
    """One API client: its id, bearer token and roles."""

    model_config = ConfigDict(frozen=True)

    client_id: str = Field(min_length=1)
    token: str = Field(min_length=16)
    roles: frozenset[str] = frozenset({"submitter"})

    @field_validator("client_id")
    @classmethod
    def _not_the_engine(cls, client_id: str) -> str:
        if client_id.strip().lower() in ("medpolicy", "system"):
            raise ValueError("'medpolicy' is the engine's own name; a client may not use it")
        return client_id

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: frozenset[str]) -> frozenset[str]:
        unknown = sorted(roles - CLIENT_ROLES)
        if unknown:
            raise ValueError(f"unknown role {unknown[0]!r}; roles are {sorted(CLIENT_ROLES)}")
        return roles | {"submitter"}


class Settings(BaseModel):
    """Everything the service needs to start. Build with `Settings.from_env()` or directly."""

    model_config = ConfigDict(frozen=True)

    database_url: str | None = None
    data_dir: Path = Path("data")
    clients: tuple[ClientConfig, ...] = ()
    max_body_bytes: int = Field(default=1_048_576, gt=0)
    cors_origins: tuple[str, ...] = ()
    date_horizon_days: int = Field(default=730, ge=0)
    policies_dir: Path | None = None
    # The plan's choice: may the engine approve on facts read from documents nobody confirmed? (default no)
    auto_approve_extracted: bool = False
    # Reports attached to a PAS submission: "propose" (default) keeps the facts read from them beside the
    # request for a reviewer to accept; "case" also puts them in the case, marked extracted.
    pas_prefill: Literal["propose", "case"] = "propose"

    @property
    def resolved_database_url(self) -> str:
        """The store URL: `database_url`, or the SQLite file under `data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'medpolicy.db').resolve()}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        if env.get("DATABASE_URL"):
            values["database_url"] = env["DATABASE_URL"]
        if env.get("MEDPOLICY_DATA_DIR"):
            values["data_dir"] = Path(env["MEDPOLICY_DATA_DIR"])
        if env.get("MEDPOLICY_CLIENTS"):
            values["clients"] = parse_clients(env["MEDPOLICY_CLIENTS"])
        if env.get("MEDPOLICY_MAX_BODY_BYTES"):
            raw = env["MEDPOLICY_MAX_BODY_BYTES"]
            try:
                values["max_body_bytes"] = int(raw)
            except ValueError:
                raise SettingsError(f"MEDPOLICY_MAX_BODY_BYTES must be a whole number, not {raw!r}") from None
        if "MEDPOLICY_CORS_ORIGINS" in env:
            values["cors_origins"] = tuple(
                o.strip() for o in env["MEDPOLICY_CORS_ORIGINS"].split(",") if o.strip()
            )
        if env.get("MEDPOLICY_DATE_HORIZON_DAYS"):
            raw = env["MEDPOLICY_DATE_HORIZON_DAYS"]
            if not raw.strip().isdigit():
                raise SettingsError(
                    f"MEDPOLICY_DATE_HORIZON_DAYS must be a whole number of days, not {raw!r}"
                )
            values["date_horizon_days"] = int(raw)
        if env.get("MEDPOLICY_POLICIES_DIR"):
            values["policies_dir"] = Path(env["MEDPOLICY_POLICIES_DIR"])
        if env.get("MEDPOLICY_AUTO_APPROVE_EXTRACTED"):
            raw = env["MEDPOLICY_AUTO_APPROVE_EXTRACTED"].strip().lower()
            if raw not in {"0", "1", "true", "false", "yes", "no"}:
                raise SettingsError("MEDPOLICY_AUTO_APPROVE_EXTRACTED must be true or false")
            values["auto_approve_extracted"] = raw in {"1", "true", "yes"}
        if env.get("MEDPOLICY_PAS_PREFILL"):
            if env["MEDPOLICY_PAS_PREFILL"] not in ("propose", "case"):
                raise SettingsError("MEDPOLICY_PAS_PREFILL must be propose or case")
            values["pas_prefill"] = env["MEDPOLICY_PAS_PREFILL"]
        return cls.model_validate(values)


def parse_clients(raw: str) -> tuple[ClientConfig, ...]:
    """Parse `MEDPOLICY_CLIENTS` (JSON object or `client:token[:role+role],...`)."""
    text = raw.strip()
    entries: list[ClientConfig] = []
    try:
        if text.startswith("{"):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise SettingsError(f"MEDPOLICY_CLIENTS is not valid JSON: {exc.msg}") from None
            if not isinstance(data, dict):
                raise SettingsError("MEDPOLICY_CLIENTS must be a JSON object of client id to token")
            for client_id, spec in data.items():
                if isinstance(spec, str):
                    entries.append(ClientConfig(client_id=client_id, token=spec))
                elif isinstance(spec, dict):
                    entries.append(ClientConfig.model_validate({"client_id": client_id, **spec}))
                else:
                    raise SettingsError(f"MEDPOLICY_CLIENTS entry {client_id!r} must be a token or an object")
        else:
            for item in filter(None, (part.strip() for part in text.split(","))):
                parts = item.split(":")
                if len(parts) not in (2, 3):
                    raise SettingsError(
                        f"MEDPOLICY_CLIENTS entry {parts[0]!r} must look like client:token[:role+role]"
                    )
                roles = frozenset(parts[2].split("+")) if len(parts) == 3 else frozenset({"submitter"})
                entries.append(ClientConfig(client_id=parts[0], token=parts[1], roles=roles))
    except ValidationError as exc:
        # Name the field and the rule, never the value: it may be a token.
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise SettingsError(f"MEDPOLICY_CLIENTS is invalid: {problems}") from None
    ids = [c.client_id for c in entries]
    tokens = [c.token for c in entries]
    if len(set(ids)) != len(ids):
        raise SettingsError("MEDPOLICY_CLIENTS names a client twice")
    if len(set(tokens)) != len(tokens):
        raise SettingsError("MEDPOLICY_CLIENTS gives two clients the same token")
    return tuple(entries)
