"""Configuration of the CDS Hooks / CRD face (:class:`CdsSettings`), read from the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medpolicy.interop.jwt_auth import TrustedClient, clients_from_json


class CdsSettings(BaseModel):
    """Configuration of the CDS Hooks / CRD face.

    Environment (see :meth:`from_env`):

    | variable | meaning | default |
    |---|---|---|
    | ``MEDPOLICY_CDS_CLIENTS`` | trusted clients, ``{"<iss>": {"jwks": {...}}}`` or ``jwks_url`` | none |
    | ``MEDPOLICY_CDS_BASE_URL`` | public base URL (the JWT ``aud`` is checked against it) | request URL |
    | ``MEDPOLICY_CDS_FHIR_SERVERS`` | comma-separated FHIR base URLs the service may query | none |
    | ``MEDPOLICY_CDS_PA_NEEDED`` | ``auth-needed`` or ``no-auth`` for covered IORT orders | ``auth-needed`` |
    | ``MEDPOLICY_CDS_DISCOVERY_PUBLIC`` | ``1`` to serve discovery without a JWT | ``0`` |
    | ``MEDPOLICY_CDS_POLICY_URL`` | link to the policy, ``{base_url}``/``{policy_id}`` replaced | served here |
    | ``MEDPOLICY_CDS_SHARED_REPLAY`` | ``1`` to record used JWT ids in the store, so that several server |
    |                                 | processes refuse each other's replays (``serve --workers`` sets it) | ``0`` |
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    clients: tuple[TrustedClient, ...] = ()
    base_url: str | None = None
    fhir_servers: tuple[str, ...] = ()
    pa_needed: Literal["auth-needed", "no-auth"] = "auth-needed"
    discovery_public: bool = False
    shared_replay: bool = False
    jwt_leeway_seconds: float = Field(default=30.0, ge=0, le=300)
    jwt_max_lifetime_seconds: float = Field(default=600.0, gt=0, le=3600)
    fhir_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    #: ``{base_url}`` (this service) and ``{policy_id}`` are replaced. The default is served by this
    #: service: the policy's published text (``GET /cds-services/policies/{policy_id}``, no JWT needed).
    policy_url_template: str = "{base_url}/cds-services/policies/{policy_id}"
    payer_label: str = "Blue KC medical policy (medpolicy)"
    max_cards: int = Field(default=10, ge=0)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CdsSettings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("MEDPOLICY_CDS_CLIENTS"):
            values["clients"] = clients_from_json(env["MEDPOLICY_CDS_CLIENTS"])
        if env.get("MEDPOLICY_CDS_BASE_URL"):
            values["base_url"] = env["MEDPOLICY_CDS_BASE_URL"].rstrip("/")
        if env.get("MEDPOLICY_CDS_FHIR_SERVERS"):
            values["fhir_servers"] = tuple(
                s.strip().rstrip("/") for s in env["MEDPOLICY_CDS_FHIR_SERVERS"].split(",") if s.strip()
            )
        if env.get("MEDPOLICY_CDS_PA_NEEDED"):
            values["pa_needed"] = env["MEDPOLICY_CDS_PA_NEEDED"]
        if env.get("MEDPOLICY_CDS_DISCOVERY_PUBLIC"):
            values["discovery_public"] = env["MEDPOLICY_CDS_DISCOVERY_PUBLIC"].strip().lower() in {
                "1",
                "true",
                "yes",
            }
        if env.get("MEDPOLICY_CDS_SHARED_REPLAY"):
            values["shared_replay"] = env["MEDPOLICY_CDS_SHARED_REPLAY"].strip().lower() in {
                "1",
                "true",
                "yes",
            }
        if env.get("MEDPOLICY_CDS_POLICY_URL"):
            values["policy_url_template"] = env["MEDPOLICY_CDS_POLICY_URL"]
        return cls.model_validate(values)

    def may_query(self, fhir_server: str | None) -> bool:
        """Whether the service may send queries to ``fhir_server`` (only configured servers)."""
        if not fhir_server:
            return False
        base = fhir_server.rstrip("/")
        return any(base == s or base.startswith(s + "/") for s in self.fhir_servers)
