"""Administration (`/admin/...`): accounts (add, unlock, change role) and the policy analysts' feedback
page (CRD card feedback, DTR questionnaire problems)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from medpolicy.web import present
from medpolicy.web.users import User, UserError, WebRole
from medpolicy.web.views import (
    _csrf_ok,
    _csrf_refused,
    _error,
    _form,
    _policies,
    _signed_in,
    _store,
    _to_login,
    render,
    web_state,
)

__all__ = ["router"]


router = APIRouter(include_in_schema=False)


@router.get("/admin/users")
def users_page(request: Request) -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    if auth[0].role is not WebRole.ADMIN:
        return _error(request, 403, "Administrators only", "Only an administrator manages accounts.", auth)
    return _users(request, auth)


def _users(
    request: Request, auth: tuple[User, str], message: str | None = None, status: int = 200
) -> HTMLResponse:
    state = web_state(request)
    return render(
        request,
        "users.html",
        status,
        user=auth[0],
        csrf=auth[1],
        users=state.users.list_users(),
        now=state.clock(),
        message=message,
        roles=list(WebRole),
    )


@router.get("/admin/feedback")
def feedback_page(request: Request) -> Response:
    """For the policy analysts (administrators): what clinicians did with the CRD cards, and the
    problems DTR applications reported with the questionnaires. Neither holds case data."""
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    if auth[0].role is not WebRole.ADMIN:
        return _error(request, 403, "Administrators only", "Only an administrator reads the feedback.", auth)
    store = _store(request)
    return render(
        request,
        "feedback.html",
        user=auth[0],
        csrf=auth[1],
        cards=present.card_feedback(store.summarize_cds_feedback()),
        problems=present.questionnaire_problems(
            store.list_questionnaire_errors(limit=50), _policies(request)
        ),
    )


@router.post("/admin/users")
async def users_action(request: Request) -> Response:
    form = await _form(request)
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    if not _csrf_ok(auth, form):
        return _csrf_refused(request, auth)
    if auth[0].role is not WebRole.ADMIN:
        return _error(request, 403, "Administrators only", "Only an administrator manages accounts.", auth)
    users = web_state(request).users
    by = f"user:{auth[0].username}"
    try:
        if form.get("op") == "unlock":
            await run_in_threadpool(lambda: users.unlock(form.get("username") or "", by=by))
            message = f"{form.get('username')} is unlocked."
        elif form.get("op") == "role":
            await run_in_threadpool(
                lambda: users.set_role(form.get("username") or "", form.get("role") or "", by=by)
            )
            message = f"{form.get('username')} is now {form.get('role')}."
        else:
            await run_in_threadpool(
                lambda: users.add_user(
                    form.get("username") or "",
                    form.get("password") or "",
                    form.get("role") or "",
                    display_name=form.get("display_name") or None,
                    by=by,
                )
            )
            message = f"{form.get('username')} is added."
    except UserError as exc:
        return _users(request, auth, exc.message[:1].upper() + exc.message[1:] + ".", 422)
    return _users(request, auth, message)
