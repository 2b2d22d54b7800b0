"""The workbench's casework actions on a request: take it, assign it to a colleague or release it,
write a note, and the peer-to-peer steps (offer, schedule, record). Each goes through the store,
which checks the role and writes the audit trail."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from medpolicy.store import LifecycleError, StoreError
from medpolicy.web.request_pages import _request_problem
from medpolicy.web.views import _open_for_action, _redirect, _store, web_state

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _problem_text(exc: Exception) -> str:
    message = str(getattr(exc, "message", exc))
    return message[:1].upper() + message[1:].rstrip(".") + "."


@router.post("/requests/{request_id}/assign")
async def assign(request: Request, request_id: str) -> Response:
    """``assignee``: ``me`` (take it), a reviewer's username, or empty (back to the queue)."""
    opened = await _open_for_action(request, request_id)
    if isinstance(opened, Response):
        return opened
    form, auth, pa = opened
    user = auth[0]
    if user.lifecycle_role is None:
        return _request_problem(request, auth, pa, 403, "An administrator cannot take or assign requests.")
    wanted = (form.get("assignee") or "").strip()
    assignee: str | None = user.username if wanted == "me" else (wanted or None)
    if assignee is not None and assignee != user.username:
        reviewers = {
            u.username for u in web_state(request).users.list_users() if u.lifecycle_role and not u.disabled
        }
        if assignee not in reviewers:
            return _request_problem(request, auth, pa, 422, f"There is no reviewer named {assignee}.")
    try:
        await run_in_threadpool(
            lambda: _store(request).assign(pa.id, assignee, actor=user.username, role=user.role.value)
        )
    except (LifecycleError, StoreError) as exc:
        return _request_problem(request, auth, pa, int(getattr(exc, "status", 409)), _problem_text(exc))
    done = "taken" if assignee == user.username else ("assigned" if assignee else "released")
    return _redirect(f"/requests/{quote(pa.id)}?done={done}")


@router.post("/requests/{request_id}/notes")
async def add_note(request: Request, request_id: str) -> Response:
    opened = await _open_for_action(request, request_id)
    if isinstance(opened, Response):
        return opened
    form, auth, pa = opened
    user = auth[0]
    if user.lifecycle_role is None:
        return _request_problem(request, auth, pa, 403, "An administrator cannot write notes on a request.")
    try:
        await run_in_threadpool(
            lambda: _store(request).add_note(
                pa.id,
                form.get("text") or "",
                author=user.username,
                role=user.role.value,
                for_physician=form.get("for_physician") == "yes",
            )
        )
    except (LifecycleError, StoreError) as exc:
        return _request_problem(request, auth, pa, int(getattr(exc, "status", 409)), _problem_text(exc))
    return _redirect(f"/requests/{quote(pa.id)}?done=note#notes")


@router.post("/requests/{request_id}/peer-to-peer")
async def peer_to_peer(request: Request, request_id: str) -> Response:
    """``step``: offer, schedule (``when``, ``contact``) or record (``outcome``, ``note``)."""
    opened = await _open_for_action(request, request_id)
    if isinstance(opened, Response):
        return opened
    form, auth, pa = opened
    user = auth[0]
    step = form.get("step") or ""
    try:
        await run_in_threadpool(
            lambda: _store(request).peer_to_peer(
                pa.id,
                step,
                actor=user.username,
                role=user.role.value,
                when=form.get("when"),
                contact=form.get("contact"),
                outcome=form.get("outcome"),
                note=form.get("note"),
            )
        )
    except (LifecycleError, StoreError) as exc:
        return _request_problem(request, auth, pa, int(getattr(exc, "status", 409)), _problem_text(exc))
    return _redirect(f"/requests/{quote(pa.id)}?done=p2p_{quote(step)}#p2p")
