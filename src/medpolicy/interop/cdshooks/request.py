"""A hook request checked (CDS Hooks 2.0 + CRD 2.0.1 and 2.2 shapes): :func:`validate_request` returns a
:class:`HookRequest` or raises :class:`CdsRequestError` listing every :class:`Problem`."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from medpolicy.interop.cdshooks.services import CdsService
from medpolicy.interop.fhir_case import ORDER_RESOURCE_TYPES

#: CRD versions whose request shapes are accepted.
CRD_VERSIONS: tuple[str, ...] = ("2.0", "2.0.1", "2.1", "2.2")


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
