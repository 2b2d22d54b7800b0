"""Decisions and their letters: approve, request information, route to a physician or deny
(`/requests/{id}/actions`); the determination letter as a page and as a PDF."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from medpolicy.store import Action, LifecycleError, StoreError
from medpolicy.web import corrections
from medpolicy.web.letters import LetterError, build_letter, letter_pdf
from medpolicy.web.request_pages import _request_problem
from medpolicy.web.users import User
from medpolicy.web.views import (
    _error,
    _load,
    _open_for_action,
    _policy,
    _record_read,
    _redirect,
    _signed_in,
    _store,
    _to_login,
    render,
    web_state,
)

__all__ = ["router"]

log = logging.getLogger("medpolicy.web")

router = APIRouter(include_in_schema=False)


FINAL_ACTIONS = frozenset({Action.APPROVE.value, Action.DENY.value})


@router.post("/requests/{request_id}/actions")
async def take_action(request: Request, request_id: str) -> Response:
    """Approve, request information, route to a physician or deny: the store checks the role."""
    opened = await _open_for_action(request, request_id)
    if isinstance(opened, Response):
        return opened
    form, auth, pa = opened
    user = auth[0]
    action = form.get("action") or ""
    if action not in {a.value for a in Action} - {Action.WITHDRAW.value, Action.PROVIDE_INFORMATION.value}:
        return _request_problem(request, auth, pa, 422, "Choose an action.")
    role = user.lifecycle_role
    if role is None:
        return _request_problem(request, auth, pa, 403, "An administrator cannot act on a request.")
    if action in FINAL_ACTIONS and form.get("confirm") != "yes":
        return _request_problem(
            request,
            auth,
            pa,
            422,
            "Tick the confirmation box: this decision is final and cannot be undone.",
        )
    reason = (form.get("reason") or "").strip()[:2000] or None
    store = _store(request)
    try:
        if action == Action.DENY.value and form.get("denial_code"):
            det = pa.determination.determination if pa.determination else {}
            from medpolicy.web.denials import denial_reasons

            chosen = {r.code: r for r in denial_reasons(det)}.get(form.get("denial_code") or "")
            if chosen is None:
                return _request_problem(
                    request, auth, pa, 422, "Choose a reason for the denial from the list."
                )
            await run_in_threadpool(
                lambda: store.deny_with_code(
                    pa.id,
                    code=chosen.code,
                    label=chosen.label,
                    words=reason or "",
                    actor=user.username,
                    role=role,
                )
            )
        elif action == Action.APPROVE.value and reason and form.get("letter_reason") != "yes":
            # an approval note stays on the request; the letter prints it only when chosen as the reason
            await run_in_threadpool(store.apply_action, pa.id, action, user.username, role, None)
            await run_in_threadpool(
                lambda: store.add_note(pa.id, reason, author=user.username, role=role.value)
            )
        else:
            await run_in_threadpool(store.apply_action, pa.id, action, user.username, role, reason)
            if action == Action.ROUTE_TO_PHYSICIAN.value and reason:
                await run_in_threadpool(
                    lambda: store.add_note(
                        pa.id, reason, author=user.username, role=role.value, for_physician=True
                    )
                )
    except (LifecycleError, StoreError) as exc:
        status = int(getattr(exc, "status", 409))
        message = str(getattr(exc, "message", exc))
        return _request_problem(request, auth, pa, status, message[:1].upper() + message[1:] + ".")
    log.info("action=%s request=%s role=%s", action, pa.id, role.value)
    return _redirect(f"/requests/{quote(pa.id)}?done={action}")


def _letter(request: Request, request_id: str) -> tuple[Any, tuple[User, str] | None, Response | None]:
    auth = _signed_in(request)
    if auth is None:
        return None, None, _to_login(request)
    pa = _load(request, request_id)
    if pa is None:
        return None, auth, _error(request, 404, "No such request", f"There is no request {request_id}.", auth)
    try:
        names = {u.username: u.display_name for u in web_state(request).users.list_users()}
        events = _store(request).list_audit(pa.id)
        policy = _policy(request, pa.policy_id)
        letter = build_letter(
            pa,
            events,
            policy,
            names=names,
            corrections=corrections.correction_lines(events, names, policy),
            casework=_store(request).get_casework(pa.id),
        )
    except LetterError as exc:
        return None, auth, _error(request, 404, "No letter", str(exc).capitalize() + ".", auth)
    _record_read(request, auth[0], pa.id, "letter")
    return letter, auth, None


@router.get("/requests/{request_id}/letter")
def letter_page(request: Request, request_id: str) -> Response:
    letter, auth, problem = _letter(request, request_id)
    if problem is not None:
        return problem
    assert auth is not None
    return render(request, "letter.html", user=auth[0], csrf=auth[1], letter=letter)


@router.get("/requests/{request_id}/letter.pdf")
def letter_download(request: Request, request_id: str) -> Response:
    letter, _auth, problem = _letter(request, request_id)
    if problem is not None:
        return problem
    return Response(
        letter_pdf(letter),
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{letter.filename}.pdf"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
