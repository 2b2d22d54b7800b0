"""Signing in and out of the workbench, and its static files (style sheet, scripts, icon)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response

from medpolicy.web.users import SignIn, csrf_matches
from medpolicy.web.views import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    STATIC_DIR,
    STATIC_TYPES,
    _csrf_ok,
    _csrf_refused,
    _form,
    _redirect,
    _safe_next,
    _secure,
    _signed_in,
    render,
    web_state,
)

__all__ = ["router"]

log = logging.getLogger("medpolicy.web")

router = APIRouter(include_in_schema=False)


@router.get("/static/{name}")
def static(name: str) -> Response:
    path = STATIC_DIR / name
    if "/" in name or name.startswith(".") or path.suffix not in STATIC_TYPES or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(
        path,
        media_type=STATIC_TYPES[path.suffix],
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/favicon.ico")
def favicon() -> Response:
    return static("favicon.svg")


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if _signed_in(request):
        return _redirect(_safe_next(next))
    return _login_form(request, next=_safe_next(next))


def _login_form(
    request: Request, *, next: str, message: str | None = None, status: int = 200, username: str = ""
) -> HTMLResponse:
    import secrets

    token = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not token or len(token) > 100:
        token = secrets.token_urlsafe(32)
    response = render(
        request, "login.html", status, csrf=token, next=next, message=message, username=username
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request), path="/login"
    )
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    next_url = _safe_next(form.get("next"))
    if not csrf_matches(request.cookies.get(LOGIN_CSRF_COOKIE), form.get("csrf_token")):
        return _login_form(
            request,
            next=next_url,
            status=403,
            message="The sign-in form expired. Please try again.",
        )
    username = (form.get("username") or "").strip()
    password = form.get("password") or ""
    state = web_state(request)
    result: SignIn = await run_in_threadpool(state.users.authenticate, username, password)
    if not result.ok:
        # A locked account answers as an unknown name or a wrong password does: the answer does not
        # tell who has an account (the lock-out is logged, and an administrator sees it).
        return _login_form(
            request,
            next=next_url,
            message=(
                "The username or password is not right, or the account is locked after "
                f"{state.settings.lockout.max_failures} failed sign-ins (ask an administrator to unlock it)."
            ),
            status=401,
            username=username,
        )
    assert result.user is not None
    token, _csrf = await run_in_threadpool(state.users.create_session, result.user)
    log.info("sign-in user_id=%d role=%s", result.user.id, result.user.role.value)
    response = _redirect(next_url)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure(request),
        path="/",
        max_age=12 * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await _form(request)
    auth = _signed_in(request)
    if auth is None:
        return _redirect("/login")
    if not _csrf_ok(auth, form):
        return _csrf_refused(request, auth)
    await run_in_threadpool(web_state(request).users.end_session, request.cookies.get(SESSION_COOKIE))
    response = _redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
