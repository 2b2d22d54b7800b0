"""The orders a hook call is about (draft orders, selections, dispatched orders, appointments), resolved
from the context, the prefetch or fetched resources."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medpolicy.interop.cdshooks.request import HookRequest, _is_bundle
from medpolicy.interop.fhir_case import ORDER_RESOURCE_TYPES, flatten_resources


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
