"""What every workbench page shares: the router, the templates and `render`, the workbench's state
(users, settings, clock), sign-in and CSRF checks, error pages and redirects. The pages themselves are
in `session_pages`, `queue_page`, `request_pages`, `decision_pages`, `policy_pages`, `admin_pages` and
the other page modules `medpolicy.web` lists; each has its own router, included in this one.

Every reviewer action goes through `Store.apply_action`: the store's life cycle decides who may do
what (a nurse who tries to deny gets the store's 403, whatever the page showed) and writes the audit
trail the request page shows. Every POST carries the session's CSRF token (the sign-in form a
double-submit token); pages answer with a strict Content-Security-Policy and `Cache-Control: no-store`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from medpolicy.store import NotFoundError, PARequest, Store
from medpolicy.web import present
from medpolicy.web.plan import PlanTemplateLoader, load_plan
from medpolicy.web.settings import WebSettings
from medpolicy.web.users import User, UserStore, WebRole, csrf_matches

log = logging.getLogger("medpolicy.web")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
SESSION_COOKIE = "medpolicy_session"
LOGIN_CSRF_COOKIE = "medpolicy_login_csrf"

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


router = APIRouter(include_in_schema=False)

_env = jinja2.Environment(
    loader=PlanTemplateLoader(HERE / "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_env.globals.update(
    outcome_labels=present.OUTCOME_LABELS,
    state_labels=present.STATE_LABELS,
    action_labels=present.ACTION_LABELS,
    role_labels=present.ROLE_LABELS,
)
_env.filters["when"] = lambda d: load_plan().when(d)  # the plan's time zone (MEDPOLICY_TIMEZONE)
_env.filters["day"] = lambda d: (
    "" if d is None else (load_plan().local(d) if isinstance(d, datetime) else d).strftime("%d %b %Y")
)
_env.filters["paragraphs"] = lambda text: [
    " ".join(block.split()) for block in str(text or "").split("\n\n") if block.strip()
]


# -- state ---------------------------------------------------------------------------------------


@dataclass
class WebState:
    """What the workbench keeps per app: its users, its settings and the clock it reads."""

    users: UserStore
    settings: WebSettings
    clock: Callable[[], datetime]
    policy_views: dict[str, Any] = field(default_factory=dict)


_state_lock = threading.Lock()


def configure(
    app: Any,
    *,
    settings: WebSettings | None = None,
    clock: Callable[[], datetime] | None = None,
) -> WebState:
    """Set up the workbench on a service app (done on first use; tests call it to fix clock/settings)."""
    store: Store = app.state.medpolicy.store
    settings = settings or WebSettings.from_env()
    now = clock or store.clock
    state = WebState(
        users=UserStore(store.engine, clock=now, lockout=settings.lockout),
        settings=settings,
        clock=now,
    )
    app.state.medpolicy_web = state
    return state


def web_state(request: Request) -> WebState:
    state: WebState | None = getattr(request.app.state, "medpolicy_web", None)
    if state is None:
        with _state_lock:
            state = getattr(request.app.state, "medpolicy_web", None)
            if state is None:
                state = configure(request.app)
    return state


def _store(request: Request) -> Store:
    store: Store = request.app.state.medpolicy.store
    return store


def _policies(request: Request) -> Any:
    return request.app.state.medpolicy.policies


def _policy(request: Request, policy_id: str | None) -> Any:
    policies = _policies(request)
    if policies is None or not policy_id:
        return None
    try:
        return policies.get(policy_id)
    except Exception:
        return None


# -- responses -----------------------------------------------------------------------------------


def render(
    request: Request,
    template: str,
    status: int = 200,
    *,
    user: User | None = None,
    csrf: str | None = None,
    **context: Any,
) -> HTMLResponse:
    html = _env.get_template(template).render(
        user=user, csrf=csrf, path=request.url.path, WebRole=WebRole, **context
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _error(
    request: Request, status: int, title: str, message: str, auth: tuple[User, str] | None
) -> HTMLResponse:
    user, csrf = auth if auth else (None, None)
    return render(request, "error.html", status, user=user, csrf=csrf, title=title, message=message)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def _signed_in(request: Request) -> tuple[User, str] | None:
    auth = web_state(request).users.session(request.cookies.get(SESSION_COOKIE))
    if auth is not None:
        request.state.principal = f"user:{auth[0].username}"  # for the access log
    return auth


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return _redirect("/login?" + urlencode({"next": target}))


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _secure(request: Request) -> bool:
    setting = web_state(request).settings.secure_cookies
    return request.url.scheme == "https" if setting is None else setting


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


def _csrf_ok(auth: tuple[User, str], form: Mapping[str, str]) -> bool:
    return csrf_matches(auth[1], form.get("csrf_token"))


def _csrf_refused(request: Request, auth: tuple[User, str] | None) -> HTMLResponse:
    return _error(
        request,
        403,
        "Form refused",
        "This form was not sent from a current workbench page (its security token is missing or stale). "
        "Go back, reload the page and try again.",
        auth,
    )


# -- a request, for the pages that act on one ----------------------------------------------------


async def _open_for_action(
    request: Request, request_id: str
) -> tuple[dict[str, str], tuple[User, str], PARequest] | Response:
    """What a reviewer's POST on a request needs: the form, the signed-in reviewer (CSRF checked) and
    the request; or the response that refuses it (sign-in page, CSRF refusal, 404)."""
    form = await _form(request)
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    if not _csrf_ok(auth, form):
        return _csrf_refused(request, auth)
    pa = await run_in_threadpool(_load, request, request_id)
    if pa is None:
        return _error(request, 404, "No such request", f"There is no request {request_id}.", auth)
    return form, auth, pa


def _load(request: Request, request_id: str) -> PARequest | None:
    try:
        return _store(request).get_pa_request(request_id)
    except NotFoundError:
        return None


def _record_read(request: Request, user: User, request_id: str, what: str) -> None:
    """Access accounting: a person read this request's patient data."""
    _store(request).record_read(request_id, principal=f"user:{user.username}", actor=user.username, what=what)
