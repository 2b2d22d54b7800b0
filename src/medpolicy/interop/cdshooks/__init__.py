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

Modules, one job each: :mod:`~medpolicy.interop.cdshooks.services` (the services, their prefetch
templates, discovery), :mod:`~medpolicy.interop.cdshooks.settings` (:class:`CdsSettings`),
:mod:`~medpolicy.interop.cdshooks.request` (hook request checks, :class:`Problem`,
:class:`CdsRequestError`), :mod:`~medpolicy.interop.cdshooks.orders` (the orders of a call),
:mod:`~medpolicy.interop.cdshooks.prefetch` (the prefetch plan),
:mod:`~medpolicy.interop.cdshooks.feedback` (feedback bodies). This package re-exports their public
names and holds :func:`new_uuid` and :func:`dumps`. Names with a leading underscore are shared between
these modules only.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from medpolicy.interop.cdshooks.feedback import Feedback, validate_feedback
from medpolicy.interop.cdshooks.orders import OrderItem, orders_of, referenced_orders
from medpolicy.interop.cdshooks.prefetch import PrefetchPlan, fill_template, prefetch_status
from medpolicy.interop.cdshooks.request import (
    CRD_VERSIONS,
    CdsRequestError,
    HookRequest,
    Problem,
    requested_crd_version,
    validate_request,
)
from medpolicy.interop.cdshooks.services import (
    COMMON_PREFETCH,
    REQUIRED_PREFETCH,
    SERVICES,
    CdsService,
    discovery_document,
)
from medpolicy.interop.cdshooks.settings import CdsSettings

__all__ = [
    "COMMON_PREFETCH",
    "CRD_VERSIONS",
    "REQUIRED_PREFETCH",
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
    "dumps",
    "fill_template",
    "new_uuid",
    "orders_of",
    "prefetch_status",
    "referenced_orders",
    "requested_crd_version",
    "validate_feedback",
    "validate_request",
]


def new_uuid() -> str:
    return str(uuid.uuid4())


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
