"""The policy browser (`/policies`, `/policies/{id}`): each policy's criteria, codes and versions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from medpolicy.web.policy_view import build_policy_view
from medpolicy.web.views import _error, _policies, _policy, _signed_in, _to_login, render, web_state

__all__ = ["router"]


router = APIRouter(include_in_schema=False)


@router.get("/policies")
def policies_page(request: Request) -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    policies = list(_policies(request) or [])
    return render(request, "policies.html", user=auth[0], csrf=auth[1], policies=policies)


@router.get("/policies/{policy_id}")
def policy_page(request: Request, policy_id: str) -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    policy = _policy(request, policy_id)
    if policy is None:
        return _error(request, 404, "No such policy", f"There is no policy {policy_id}.", auth)
    cache = web_state(request).policy_views
    view = cache.get(policy.id)
    if view is None:
        view = cache[policy.id] = build_policy_view(policy)
    codes = [
        (code, policy.governs.labels.get(code, ""), policy.governs.since.get(code))
        for code in policy.governs.entries
    ]
    return render(
        request,
        "policy.html",
        user=auth[0],
        csrf=auth[1],
        policy=policy,
        view=view,
        codes=codes,
        versions=list(reversed(policy.versions)),
    )
