"""CDS Hooks 2.0 request and discovery shapes for the Da Vinci CRD services (pure, no web framework).

* :data:`SERVICES` -- the four CRD services (order-sign, order-select, order-dispatch, appointment-book)
  and :func:`discovery_document` for ``GET /cds-services``.
* :func:`validate_request` -- checks a hook request (CDS Hooks 2.0 + CRD 2.0.1 and 2.2 shapes) and
  returns a :class:`HookRequest`, or raises :class:`CdsRequestError` listing every problem.
* :func:`orders_of` -- the orders a hook call is about (draft orders, selections, dispatched orders,
  appointments), resolved from the context, the prefetch or fetched resources.
* :class:`PrefetchPlan` / :func:`prefetch_status` -- which prefetch keys the service needs, which were
  given, and the FHIR queries to run for the missing ones.
* :func:`validate_feedback` -- the feedback endpoint's body.
* :class:`CdsSettings` -- configuration of the CDS face (trusted clients, FHIR servers it may call,
  prior-authorization default, links).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from medpolicy.interop.fhir_case import (
    LOINC_CLOSEST_MARGIN_DISTANCE,
    LOINC_CRM_DISTANCE,
    LOINC_M_CLINICAL,
    LOINC_M_PATHOLOGIC,
    LOINC_MARGIN_STATUS,
    LOINC_T_CLINICAL,
    LOINC_T_PATHOLOGIC,
    ORDER_RESOURCE_TYPES,
    flatten_resources,
)
from medpolicy.interop.jwt_auth import TrustedClient, clients_from_json

__all__ = [
    "CRD_VERSIONS",
    "SERVICES",
    "CdsRequestError",
    "CdsService",
    "CdsSettings",
    "Feedback",
    "HookRequest",
    "OrderItem",
    "PrefetchPlan",
    "Problem",
    "discovery_document",
    "fill_template",
    "orders_of",
    "prefetch_status",
    "referenced_orders",
    "requested_crd_version",
    "validate_feedback",
    "validate_request",
]

#: CRD versions whose request shapes are accepted.
CRD_VERSIONS: tuple[str, ...] = ("2.0", "2.0.1", "2.1", "2.2")

_OBS_CODES = ",".join(
    f"http://loinc.org|{c}"
    for c in (
        LOINC_T_CLINICAL,
        LOINC_T_PATHOLOGIC,
        LOINC_M_CLINICAL,
        LOINC_M_PATHOLOGIC,
        LOINC_MARGIN_STATUS,
        *sorted(LOINC_CRM_DISTANCE),
        LOINC_CLOSEST_MARGIN_DISTANCE,
    )
)

#: Prefetch templates shared by every service. ``required`` keys must be present (or fetchable).
COMMON_PREFETCH: dict[str, str] = {
    "patient": "Patient/{{context.patientId}}",
    "coverage": "Coverage?patient={{context.patientId}}&status=active",
    "conditions": "Condition?patient={{context.patientId}}",
    "observations": "Observation?patient={{context.patientId}}&code=" + _OBS_CODES,
    "procedures": "Procedure?patient={{context.patientId}}",
}
REQUIRED_PREFETCH: tuple[str, ...] = ("coverage", "conditions", "observations")


@dataclass(frozen=True)
class CdsService:
    """One CDS service: id, hook, title, description, prefetch templates."""

    id: str
    hook: str
    title: str
    description: str
    prefetch: Mapping[str, str]

    def discovery(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "title": self.title,
            "description": self.description,
            "id": self.id,
            "prefetch": dict(self.prefetch),
            "extension": {
                "davinci-crd.version": ["2.0.1", "2.2"],
                "davinci-crd.configuration-options": [
                    {
                        "code": "coverage-info",
                        "type": "boolean",
                        "name": "Coverage Information",
                        "description": "Return coverage information (covered, prior authorization, "
                        "documentation) for orders governed by the plan's medical policies",
                        "default": True,
                    },
                    {
                        "code": "max-cards",
                        "type": "integer",
                        "name": "Maximum cards",
                        "description": "Largest number of cards returned",
                        "default": 10,
                    },
                ],
            },
        }


_DESC = (
    "Coverage requirements (Da Vinci CRD) for orders governed by the plan's medical policies, starting "
    "with Intraoperative Radiation Therapy: coverage, prior authorization and documentation needs."
)

SERVICES: dict[str, CdsService] = {
    s.id: s
    for s in (
        CdsService(
            "medpolicy-crd-order-sign",
            "order-sign",
            "Coverage requirements at order signing",
            _DESC,
            dict(COMMON_PREFETCH),
        ),
        CdsService(
            "medpolicy-crd-order-select",
            "order-select",
            "Coverage requirements at order selection",
            _DESC,
            dict(COMMON_PREFETCH),
        ),
        CdsService(
            "medpolicy-crd-order-dispatch",
            "order-dispatch",
            "Coverage requirements at order dispatch",
            _DESC,
            {
                **COMMON_PREFETCH,
                "serviceRequests": "ServiceRequest?_id="
                "{{context.dispatchedOrders.ofType(ServiceRequest).id}}",
            },
        ),
        CdsService(
            "medpolicy-crd-appointment-book",
            "appointment-book",
            "Coverage requirements at appointment booking",
            _DESC,
            {
                **COMMON_PREFETCH,
                "serviceRequests": "ServiceRequest?_id="
                "{{context.appointments.entry.resource.basedOn.resolve().ofType(ServiceRequest).id}}",
            },
        ),
    )
}


def discovery_document(services: Mapping[str, CdsService] = SERVICES) -> dict[str, Any]:
    """The body of ``GET /cds-services``."""
    return {"services": [s.discovery() for s in services.values()]}


# ------------------------------------------------------------------------------------------- settings


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


# ------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Problem:
    """One problem of a request: stable code, JSON path of the field, message."""

    code: str
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "field": self.field, "value": None, "message": self.message}


class CdsRequestError(ValueError):
    """A request was refused. ``status`` is 400 (not a JSON object) or 422 (well-formed but invalid)."""

    def __init__(self, status: int, problems: Sequence[Problem]) -> None:
        self.status = status
        self.problems = list(problems)
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


@dataclass(frozen=True)
class HookRequest:
    """A validated hook request."""

    hook: str
    hook_instance: str
    context: Mapping[str, Any]
    prefetch: Mapping[str, Any] | None
    fhir_server: str | None
    fhir_authorization: Mapping[str, Any] | None
    extension: Mapping[str, Any]
    crd_version: str
    raw: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def patient_id(self) -> str | None:
        pid = self.context.get("patientId")
        return pid if isinstance(pid, str) else None

    @property
    def configuration(self) -> Mapping[str, Any]:
        """The CRD ``davinci-crd.configuration`` options the client sent (may be empty)."""
        conf = self.extension.get("davinci-crd.configuration")
        return conf if isinstance(conf, Mapping) else {}

    def wants(self, option: str, default: bool = True) -> bool:
        value = self.configuration.get(option, default)
        return bool(value) if isinstance(value, bool) else default


def requested_crd_version(body: Mapping[str, Any]) -> str:
    """``"2.2"`` when the request names CRD 2.1 or later (``davinci-crd.requestedVersion``), else 2.0.1."""
    ext = body.get("extension")
    if isinstance(ext, Mapping):
        v = ext.get("davinci-crd.requestedVersion")
        if isinstance(v, str) and v.strip():
            return v.strip()
    return "2.0.1"


_UUID = re.compile(
    r"^(urn:uuid:)?[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_REF = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


def _is_bundle(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("resourceType") == "Bundle"


def _check_bundle(value: Any, path: str, problems: list[Problem], allowed: frozenset[str]) -> None:
    if not _is_bundle(value):
        problems.append(Problem("invalid_context", path, "must be a FHIR Bundle"))
        return
    entries = value.get("entry", [])
    if not isinstance(entries, list):
        problems.append(Problem("invalid_context", f"{path}.entry", "must be an array"))
        return
    for i, entry in enumerate(entries):
        res = entry.get("resource") if isinstance(entry, Mapping) else None
        if not isinstance(res, Mapping) or not isinstance(res.get("resourceType"), str):
            problems.append(
                Problem("invalid_context", f"{path}.entry[{i}].resource", "must be a FHIR resource")
            )
        elif res["resourceType"] not in allowed:
            problems.append(
                Problem(
                    "invalid_context",
                    f"{path}.entry[{i}].resource.resourceType",
                    f"{res['resourceType']} is not allowed here",
                )
            )


def _check_refs(value: Any, path: str, problems: list[Problem]) -> None:
    if not isinstance(value, list) or not value:
        problems.append(Problem("invalid_context", path, "must be a non-empty array of references"))
        return
    for i, ref in enumerate(value):
        if not isinstance(ref, str) or not _REF.match(ref):
            problems.append(
                Problem("invalid_context", f"{path}[{i}]", "must be a relative reference Type/id")
            )


def _require_str(ctx: Mapping[str, Any], key: str, problems: list[Problem]) -> None:
    if not isinstance(ctx.get(key), str) or not ctx[key].strip():
        problems.append(Problem("missing_context", f"context.{key}", "is required (a non-empty string)"))


_ORDER_TYPES = frozenset(ORDER_RESOURCE_TYPES - {"Appointment", "Encounter", "Claim"})


def _check_context(hook: str, ctx: Mapping[str, Any], problems: list[Problem]) -> None:
    _require_str(ctx, "patientId", problems)
    if hook in {"order-sign", "order-select", "appointment-book"}:
        _require_str(ctx, "userId", problems)
    if hook in {"order-sign", "order-select"}:
        if "draftOrders" not in ctx:
            problems.append(Problem("missing_context", "context.draftOrders", "is required"))
        else:
            _check_bundle(ctx["draftOrders"], "context.draftOrders", problems, _ORDER_TYPES)
    if hook == "order-select":
        _check_refs(ctx.get("selections"), "context.selections", problems)
    if hook == "appointment-book":
        if "appointments" not in ctx:
            problems.append(Problem("missing_context", "context.appointments", "is required"))
        else:
            _check_bundle(ctx["appointments"], "context.appointments", problems, frozenset({"Appointment"}))
    if hook == "order-dispatch":
        _require_str(ctx, "performer", problems)
        if "dispatchedOrders" in ctx:  # CDS Hooks order-dispatch 1.0 / CRD 2.1+
            _check_refs(ctx["dispatchedOrders"], "context.dispatchedOrders", problems)
            tasks = ctx.get("fulfillmentTasks")
            if tasks is not None and (
                not isinstance(tasks, list)
                or not all(isinstance(t, Mapping) and t.get("resourceType") == "Task" for t in tasks)
            ):
                problems.append(
                    Problem("invalid_context", "context.fulfillmentTasks", "must be an array of Tasks")
                )
        elif "order" in ctx:  # the older order-dispatch shape (CRD 2.0.1 test kit): order + task
            order = ctx["order"]
            if not isinstance(order, str) or not _REF.match(order):
                problems.append(
                    Problem("invalid_context", "context.order", "must be a relative reference Type/id")
                )
            task = ctx.get("task")
            if task is not None and not (isinstance(task, Mapping) and task.get("resourceType") == "Task"):
                problems.append(Problem("invalid_context", "context.task", "must be a Task"))
        else:
            problems.append(Problem("missing_context", "context.dispatchedOrders", "is required"))


def validate_request(body: Any, service: CdsService) -> HookRequest:
    """Check a hook request for ``service``; every problem is reported at once.

    Raises:
        CdsRequestError: 400 when ``body`` is not a JSON object, 422 for missing or invalid fields.
    """
    if not isinstance(body, Mapping):
        raise CdsRequestError(
            400, [Problem("invalid_request", "$", "the request body must be a JSON object")]
        )
    problems: list[Problem] = []
    hook = body.get("hook")
    if not isinstance(hook, str) or not hook:
        problems.append(Problem("missing_field", "hook", "is required"))
    elif hook != service.hook:
        problems.append(Problem("wrong_hook", "hook", f"this service answers {service.hook!r}, not {hook!r}"))
    hook_instance = body.get("hookInstance")
    if not isinstance(hook_instance, str) or not _UUID.match(hook_instance):
        problems.append(Problem("invalid_field", "hookInstance", "is required and must be a UUID"))
    fhir_server = body.get("fhirServer")
    if fhir_server is not None and (
        not isinstance(fhir_server, str) or not re.match(r"^https?://", fhir_server)
    ):
        problems.append(Problem("invalid_field", "fhirServer", "must be an http(s) URL"))
    auth = body.get("fhirAuthorization")
    if auth is not None:
        if not isinstance(auth, Mapping):
            problems.append(Problem("invalid_field", "fhirAuthorization", "must be an object"))
        else:
            for key in ("access_token", "token_type", "scope", "subject"):
                if not isinstance(auth.get(key), str) or not auth[key]:
                    problems.append(Problem("invalid_field", f"fhirAuthorization.{key}", "is required"))
            if isinstance(auth.get("token_type"), str) and auth["token_type"].lower() != "bearer":
                problems.append(Problem("invalid_field", "fhirAuthorization.token_type", "must be 'Bearer'"))
            if not isinstance(auth.get("expires_in"), int) or isinstance(auth.get("expires_in"), bool):
                problems.append(
                    Problem("invalid_field", "fhirAuthorization.expires_in", "must be an integer")
                )
            if fhir_server is None:
                problems.append(
                    Problem("missing_field", "fhirServer", "is required when fhirAuthorization is given")
                )
    context = body.get("context")
    if not isinstance(context, Mapping):
        problems.append(Problem("missing_field", "context", "is required (an object)"))
    elif isinstance(hook, str) and hook == service.hook:
        _check_context(hook, context, problems)
    prefetch = body.get("prefetch")
    if prefetch is not None:
        if not isinstance(prefetch, Mapping):
            problems.append(Problem("invalid_field", "prefetch", "must be an object"))
        else:
            for key, value in prefetch.items():
                if value is not None and not (isinstance(value, Mapping) and "resourceType" in value):
                    problems.append(
                        Problem("invalid_field", f"prefetch.{key}", "must be a FHIR resource or null")
                    )
    extension = body.get("extension")
    if extension is not None and not isinstance(extension, Mapping):
        problems.append(Problem("invalid_field", "extension", "must be an object"))
    version = requested_crd_version(body)
    if version not in CRD_VERSIONS:
        problems.append(
            Problem(
                "unsupported_version",
                "extension.davinci-crd.requestedVersion",
                f"supported CRD versions: {', '.join(CRD_VERSIONS)}",
            )
        )
    if problems:
        raise CdsRequestError(422, problems)
    assert isinstance(hook, str)
    assert isinstance(hook_instance, str)
    assert isinstance(context, Mapping)
    return HookRequest(
        hook=hook,
        hook_instance=hook_instance,
        context=context,
        prefetch=prefetch if isinstance(prefetch, Mapping) else None,
        fhir_server=fhir_server if isinstance(fhir_server, str) else None,
        fhir_authorization=auth if isinstance(auth, Mapping) else None,
        extension=extension if isinstance(extension, Mapping) else {},
        crd_version=version,
        raw=body,
    )


# ------------------------------------------------------------------------------------------- orders


def _bundle_resources(value: Any) -> list[dict[str, Any]]:
    return flatten_resources([value]) if _is_bundle(value) else []


def _ref_key(resource: Mapping[str, Any]) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def _relative(ref: str) -> str:
    """``http://x/fhir/ServiceRequest/1`` -> ``ServiceRequest/1`` (history suffix dropped)."""
    ref = ref.split("/_history/")[0]
    parts = ref.rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else ref


def referenced_orders(req: HookRequest) -> list[str]:
    """References of orders the context names but does not carry (order-dispatch, appointment basedOn)."""
    ctx = req.context
    refs: list[str] = []
    if req.hook == "order-dispatch":
        if isinstance(ctx.get("dispatchedOrders"), list):
            refs.extend(r for r in ctx["dispatchedOrders"] if isinstance(r, str))
        elif isinstance(ctx.get("order"), str):
            refs.append(ctx["order"])
    if req.hook == "appointment-book":
        for appt in _bundle_resources(ctx.get("appointments")):
            for based in appt.get("basedOn") or []:
                if isinstance(based, Mapping) and isinstance(based.get("reference"), str):
                    refs.append(_relative(based["reference"]))
    return list(dict.fromkeys(refs))


@dataclass(frozen=True)
class OrderItem:
    """An order to answer for: the resource to update, and the resources whose codes count."""

    target: Mapping[str, Any]
    code_sources: tuple[Mapping[str, Any], ...]

    @property
    def reference(self) -> str:
        return _ref_key(self.target)


def orders_of(req: HookRequest, resources: Sequence[Mapping[str, Any]]) -> tuple[list[OrderItem], list[str]]:
    """The orders this call is about, and the references that could not be found.

    ``resources`` are the prefetched and fetched resources (flattened). For order-dispatch, each
    dispatched order is looked up there; for appointment-book, each Appointment is the target and its
    ``basedOn`` orders add their codes; for order-select only the selected draft orders count.
    """
    ctx = req.context
    by_ref = {_ref_key(r): r for r in resources if r.get("resourceType") in ORDER_RESOURCE_TYPES}
    missing: list[str] = []
    items: list[OrderItem] = []
    if req.hook in {"order-sign", "order-select"}:
        drafts = _bundle_resources(ctx.get("draftOrders"))
        if req.hook == "order-select":
            selected = {s for s in ctx.get("selections") or [] if isinstance(s, str)}
            drafts = [d for d in drafts if _ref_key(d) in selected]
        items = [OrderItem(d, (d,)) for d in drafts]
    elif req.hook == "order-dispatch":
        for ref in referenced_orders(req):
            if ref in by_ref:
                items.append(OrderItem(by_ref[ref], (by_ref[ref],)))
            else:
                missing.append(ref)
    elif req.hook == "appointment-book":
        for appt in _bundle_resources(ctx.get("appointments")):
            sources: list[Mapping[str, Any]] = [appt]
            for based in appt.get("basedOn") or []:
                if isinstance(based, Mapping) and isinstance(based.get("reference"), str):
                    ref = _relative(based["reference"])
                    if ref in by_ref:
                        sources.append(by_ref[ref])
                    else:
                        missing.append(ref)
            items.append(OrderItem(appt, tuple(sources)))
    return items, missing


# ------------------------------------------------------------------------------------------- prefetch


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


# ------------------------------------------------------------------------------------------- feedback


@dataclass(frozen=True)
class Feedback:
    """One feedback item (CDS Hooks 2.0 ``feedback[]``)."""

    card: str
    outcome: Literal["accepted", "overridden"]
    accepted_suggestions: tuple[str, ...]
    override_reason: Mapping[str, Any] | None
    outcome_timestamp: str


def _is_timestamp(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value


def validate_feedback(body: Any) -> list[Feedback]:
    """Check a feedback body ``{"feedback": [...]}``.

    Raises:
        CdsRequestError: 400 when not a JSON object, 422 for missing or invalid fields.
    """
    if not isinstance(body, Mapping):
        raise CdsRequestError(
            400, [Problem("invalid_request", "$", "the request body must be a JSON object")]
        )
    items = body.get("feedback")
    if not isinstance(items, list) or not items:
        raise CdsRequestError(422, [Problem("missing_field", "feedback", "must be a non-empty array")])
    problems: list[Problem] = []
    out: list[Feedback] = []
    for i, item in enumerate(items):
        path = f"feedback[{i}]"
        if not isinstance(item, Mapping):
            problems.append(Problem("invalid_field", path, "must be an object"))
            continue
        card = item.get("card")
        outcome = item.get("outcome")
        if not isinstance(card, str) or not card:
            problems.append(Problem("missing_field", f"{path}.card", "is required (the card uuid)"))
        if outcome not in ("accepted", "overridden"):
            problems.append(Problem("invalid_field", f"{path}.outcome", "must be 'accepted' or 'overridden'"))
        accepted: list[str] = []
        raw_accepted = item.get("acceptedSuggestions")
        if outcome == "accepted" and (not isinstance(raw_accepted, list) or not raw_accepted):
            problems.append(
                Problem("missing_field", f"{path}.acceptedSuggestions", "is required for an accepted outcome")
            )
        elif raw_accepted is not None:
            if not isinstance(raw_accepted, list):
                problems.append(Problem("invalid_field", f"{path}.acceptedSuggestions", "must be an array"))
            else:
                for j, s in enumerate(raw_accepted):
                    if isinstance(s, Mapping) and isinstance(s.get("id"), str) and s["id"]:
                        accepted.append(s["id"])
                    else:
                        problems.append(
                            Problem("invalid_field", f"{path}.acceptedSuggestions[{j}].id", "is required")
                        )
        reason = item.get("overrideReason")
        if reason is not None:
            if not isinstance(reason, Mapping):
                problems.append(Problem("invalid_field", f"{path}.overrideReason", "must be an object"))
            elif reason.get("reason") is not None:
                coding = reason["reason"]
                if not (
                    isinstance(coding, Mapping)
                    and isinstance(coding.get("code"), str)
                    and isinstance(coding.get("system"), str)
                ):
                    problems.append(
                        Problem(
                            "invalid_field",
                            f"{path}.overrideReason.reason",
                            "must be a Coding (code, system)",
                        )
                    )
            if outcome == "accepted":
                problems.append(
                    Problem("invalid_field", f"{path}.overrideReason", "only an overridden card has a reason")
                )
        stamp = item.get("outcomeTimestamp")
        if not _is_timestamp(stamp):
            problems.append(
                Problem("invalid_field", f"{path}.outcomeTimestamp", "must be an ISO 8601 timestamp")
            )
        if not problems:
            out.append(
                Feedback(
                    card=str(card),
                    outcome="accepted" if outcome == "accepted" else "overridden",
                    accepted_suggestions=tuple(accepted),
                    override_reason=reason if isinstance(reason, Mapping) else None,
                    outcome_timestamp=str(stamp),
                )
            )
    if problems:
        raise CdsRequestError(422, problems)
    return out


def new_uuid() -> str:
    return str(uuid.uuid4())


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
