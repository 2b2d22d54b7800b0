"""The reviewer workbench's pages (server-rendered HTML, mounted at `/` by the service).

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
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from medpolicy.store import (
    Action,
    LifecycleError,
    NotFoundError,
    PARequest,
    State,
    Store,
    StoreError,
)
from medpolicy.store.lifecycle import FINAL_STATES, allowed_actions
from medpolicy.web import present
from medpolicy.web.assignment import CASEWORK_MESSAGES, QueueFilters, apply_filters
from medpolicy.web.clock import AMBER_WITHIN, due_clock
from medpolicy.web.letters import LetterError, build_letter, letter_pdf
from medpolicy.web.plan import PlanTemplateLoader, load_plan
from medpolicy.web.policy_view import build_policy_view, criterion_anchor
from medpolicy.web.reviewer_context import casework_context, field_messages
from medpolicy.web.settings import WebSettings
from medpolicy.web.users import SignIn, User, UserError, UserStore, WebRole, csrf_matches

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

# queue views: (key, label, states)
VIEWS: tuple[tuple[str, str, tuple[State, ...]], ...] = (
    (
        "open",
        "All open",
        (State.RECEIVED, State.INFORMATION_NEEDED, State.PENDING_PHYSICIAN_REVIEW, State.READY_TO_APPROVE),
    ),
    ("mine", "My work", tuple(s for s in State if s not in FINAL_STATES)),
    ("information_needed", "Information needed", (State.INFORMATION_NEEDED,)),
    ("ready", "Ready to approve", (State.READY_TO_APPROVE,)),
    ("physician", "Pending physician review", (State.PENDING_PHYSICIAN_REVIEW,)),
    ("received", "Received (triage)", (State.RECEIVED,)),
    ("decided", "Decided", (State.APPROVED, State.DENIED, State.WITHDRAWN, State.CLOSED_NOT_GOVERNED)),
)
SORTS = {"due": "Due time (soonest first)", "received": "Received (newest first)", "urgency": "Urgency"}
QUEUE_LIMIT = 500
DONE_MESSAGES = {
    "approve": "The request is approved. Its letter is ready.",
    "deny": "The request is denied. Its letter is ready.",
    "request_information": "Information is requested; the request waits in the information-needed queue.",
    "route_to_physician": "The request is routed to a physician reviewer.",
    "answers": "Your answers are recorded and the policy has been applied again.",
    "close_not_governed": "The request is closed: this policy governs none of its codes. No decision was made.",
    **CASEWORK_MESSAGES,
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
    return web_state(request).users.session(request.cookies.get(SESSION_COOKIE))


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


# -- static --------------------------------------------------------------------------------------


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


# -- sign-in -------------------------------------------------------------------------------------


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
        if result.locked_until is not None:
            minutes = max(1, round((result.locked_until - state.clock()).total_seconds() / 60))
            message = (
                f"This account is locked after {state.settings.lockout.max_failures} failed sign-ins. "
                f"Try again in {minutes} minutes, or ask an administrator to unlock it."
            )
            return _login_form(request, next=next_url, message=message, status=423, username=username)
        return _login_form(
            request,
            next=next_url,
            message="The username or password is not right.",
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


# -- the queue -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    pa: PARequest
    clock: Any
    member: str
    casework: Any = None


def queue_rows(
    store: Store,
    states: tuple[State, ...],
    *,
    search: str | None,
    urgency: str | None,
    sort: str,
    now: datetime,
) -> list[QueueRow]:
    found: list[PARequest] = []
    for state in states:
        found += store.list_pa_requests(state=state, search=search or None, limit=QUEUE_LIMIT)
    if urgency in ("expedited", "standard"):
        found = [p for p in found if p.urgency == urgency]
    if sort == "received":
        found.sort(key=lambda p: (p.received_at, p.id), reverse=True)
    elif sort == "urgency":
        found.sort(key=lambda p: (p.urgency != "expedited", p.due_at, p.id))
    else:
        found.sort(key=lambda p: (p.due_at, p.id))
    return [
        QueueRow(p, due_clock(p.due_at, now, p.urgency, p.state), p.subject or "not named") for p in found
    ]


@router.get("/")
def queue(
    request: Request,
    view: str = "open",
    q: str = "",
    urgency: str = "",
    sort: str = "due",
    policy: str = "",
    provider: str = "",
    state: str = "",
    due: str = "",
) -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    user, csrf = auth
    views = {key: (label, states) for key, label, states in VIEWS}
    if view not in views:
        view = "open"
    if sort not in SORTS:
        sort = "due"
    store = _store(request)
    now = web_state(request).clock()
    rows = queue_rows(store, views[view][1], search=q.strip()[:100], urgency=urgency, sort=sort, now=now)
    filters = QueueFilters.of(
        policy=policy, provider=provider, state=state, due=due, mine=user.username if view == "mine" else ""
    )
    rows = apply_filters(store, rows, filters, now=now, tz=load_plan().zone)
    counts = {
        key: sum(1 for s in states for _ in store.list_pa_requests(state=s, limit=QUEUE_LIMIT))
        for key, _l, states in VIEWS
        if key != "mine"
    }
    counts["mine"] = len(
        apply_filters(
            store,
            queue_rows(store, views["mine"][1], search=None, urgency=None, sort="due", now=now),
            QueueFilters.of(mine=user.username),
            now=now,
            tz=load_plan().zone,
        )
    )
    return render(
        request,
        "queue.html",
        user=user,
        csrf=csrf,
        rows=rows,
        views=VIEWS,
        counts=counts,
        view=view,
        view_label=views[view][0],
        q=q,
        urgency=urgency,
        sort=sort,
        sorts=SORTS,
        now=now,
        amber=AMBER_WITHIN,
        filters=filters,
        names={u.username: u.display_name for u in web_state(request).users.list_users()},
        policies=list(_policies(request) or []),
        states=[(s.value, present.STATE_LABELS.get(s.value, s.value)) for s in State],
    )


# -- a request -----------------------------------------------------------------------------------


def _request_context(request: Request, pa: PARequest, user: User) -> dict[str, Any]:
    store = _store(request)
    events = store.list_audit(pa.id)
    policy = _policy(request, pa.policy_id)
    det: dict[str, Any] = pa.determination.determination if pa.determination else {}
    sources = present.fact_sources(store, pa, events)
    role = user.lifecycle_role
    outcome = det.get("outcome") or pa.recommendation
    allowed = [a.value for a in allowed_actions(pa.state, role, outcome=outcome)] if role else []
    missing = det.get("missing_facts") or []
    can_answer = Action.REQUEST_INFORMATION.value in allowed and pa.state not in FINAL_STATES
    rationale = det.get("rationale") or None
    recommended = _recommended(outcome, allowed)
    procedures = []
    labels = policy.governs.labels if policy is not None else {}
    for code in pa.case.get("procedure_codes") or []:
        procedures.append((str(code), labels.get(str(code), "not governed by this policy")))
    users = web_state(request).users.list_users()
    names = {u.username: u.display_name for u in users}
    context = {
        "pa": pa,
        "det": det,
        "events": events,
        "names": names,
        "policy": policy,
        "facts": present.fact_rows(det, policy, sources),
        "checklist": present.checklist(det),
        "questions": present.question_fields(missing, policy) if can_answer else [],
        "missing": missing,
        "allowed": allowed,
        "recommended": recommended,
        "rationale": rationale,
        "clock": due_clock(pa.due_at, web_state(request).clock(), pa.urgency, pa.state),
        "has_letter": pa.state in (State.APPROVED.value, State.DENIED.value),
        "procedures": procedures,
        "anchor": (lambda cid: criterion_anchor(str((det.get("policy") or {}).get("version")), cid)),
    }
    context.update(
        casework_context(
            pa,
            casework=store.get_casework(pa.id),
            documents=store.list_documents(pa.id),
            notes=store.list_notes(pa.id),
            events=events,
            determination=det,
            facts=context["facts"],
            reviewers=[
                (u.username, u.display_name) for u in users if u.lifecycle_role is not None and not u.disabled
            ],
        )
    )
    return context


def _recommended(outcome: str | None, allowed: list[str]) -> str | None:
    """The action the policy's answer points to, when the user may take it."""
    wanted = {
        "medically_necessary": ["approve"],
        "information_needed": ["request_information"],
        "investigational": ["deny", "route_to_physician"],
        "not_medically_necessary": ["deny", "route_to_physician"],
        "not_applicable": ["close_not_governed", "route_to_physician", "request_information"],
    }.get(outcome or "", [])
    return next((a for a in wanted if a in allowed), None)


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


@router.get("/requests/{request_id}")
def request_page(request: Request, request_id: str, done: str = "") -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    user, csrf = auth
    pa = _load(request, request_id)
    if pa is None:
        return _error(request, 404, "No such request", f"There is no request {request_id}.", auth)
    return render(
        request,
        "request.html",
        user=user,
        csrf=csrf,
        done=DONE_MESSAGES.get(done),
        problem=None,
        field_errors=[],
        field_messages={},
        answers={},
        **_request_context(request, pa, user),
    )


def _request_problem(
    request: Request,
    auth: tuple[User, str],
    pa: PARequest,
    status: int,
    problem: str,
    *,
    field_errors: list[Any] | None = None,
    answers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    user, csrf = auth
    return render(
        request,
        "request.html",
        status,
        user=user,
        csrf=csrf,
        done=None,
        problem=problem,
        field_errors=field_errors or [],
        field_messages=field_messages(field_errors or []),
        answers=answers or {},
        **_request_context(request, pa, user),
    )


@router.post("/requests/{request_id}/answers")
async def answer_missing(request: Request, request_id: str) -> Response:
    """Record a reviewer's answers to the missing facts; the store decides again."""
    opened = await _open_for_action(request, request_id)
    if isinstance(opened, Response):
        return opened
    form, auth, pa = opened
    user = auth[0]
    role = user.lifecycle_role
    if role is None:
        return _request_problem(request, auth, pa, 403, "An administrator cannot change a request.")
    det = pa.determination.determination if pa.determination else {}
    fields = present.question_fields(det.get("missing_facts") or [], _policy(request, pa.policy_id))
    answers = present.parse_answers(form, fields)
    if not answers:
        return _request_problem(request, auth, pa, 422, "Answer at least one question.", answers=form)
    from medpolicy import CaseError

    reason = "answers entered for: " + ", ".join(present.fact_name(k).lower() for k in answers)
    try:
        await run_in_threadpool(
            _store(request).apply_action,
            pa.id,
            Action.REQUEST_INFORMATION,
            user.username,
            role,
            reason,
            answers,
        )
    except CaseError as exc:
        return _request_problem(
            request,
            auth,
            pa,
            422,
            "Some answers are not valid: see the messages beside the questions.",
            field_errors=list(exc.errors),
            answers=form,
        )
    except (LifecycleError, StoreError) as exc:
        status = int(getattr(exc, "status", 409))
        return _request_problem(request, auth, pa, status, str(getattr(exc, "message", exc)))
    if form.get("cite_document"):
        try:
            await run_in_threadpool(
                lambda: _store(request).cite_document(
                    pa.id,
                    list(answers),
                    form.get("cite_document") or "",
                    page=form.get("cite_page"),
                    quote=form.get("cite_quote"),
                    actor=user.username,
                    role=role.value,
                )
            )
        except StoreError as exc:
            return _request_problem(
                request, auth, pa, exc.status, exc.message[:1].upper() + exc.message[1:] + "."
            )
    return _redirect(f"/requests/{quote(pa.id)}?done=answers#determination")


@router.post("/requests/{request_id}/preview")
async def preview_answers(request: Request, request_id: str) -> Response:
    """What the policy would answer with these answers, without recording anything (for the form's
    live hint). JSON: {outcome, label, still_needed: [questions], errors: [messages]}."""
    form = await _form(request)
    auth = _signed_in(request)
    if auth is None:
        return JSONResponse({"error": {"code": "not_signed_in", "message": "sign in first"}}, 401)
    if not _csrf_ok(auth, form):
        return JSONResponse({"error": {"code": "csrf_failed", "message": "the form's token is stale"}}, 403)
    pa = await run_in_threadpool(_load, request, request_id)
    if pa is None:
        return JSONResponse({"error": {"code": "prior_auth_not_found", "message": "no such request"}}, 404)
    det = pa.determination.determination if pa.determination else {}
    fields = present.question_fields(det.get("missing_facts") or [], _policy(request, pa.policy_id))
    answers = present.parse_answers(form, fields)
    from medpolicy import CaseError

    try:
        decided = await run_in_threadpool(
            _store(request).decide, {**pa.case, **answers}, policy_id=pa.policy_id
        )
    except CaseError as exc:
        errors = [f"{present.fact_name(e.field)}: {e.message}" for e in exc.errors]
        return JSONResponse({"outcome": None, "label": None, "still_needed": [], "errors": errors})
    return JSONResponse(
        {
            "outcome": decided.outcome.value,
            "label": present.OUTCOME_LABELS.get(decided.outcome.value, decided.outcome.value),
            "still_needed": [m.question for m in decided.missing_facts],
            "errors": [],
        },
        headers={"Cache-Control": "no-store"},
    )


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


# -- letters -------------------------------------------------------------------------------------


def _letter(request: Request, request_id: str) -> tuple[Any, tuple[User, str] | None, Response | None]:
    auth = _signed_in(request)
    if auth is None:
        return None, None, _to_login(request)
    pa = _load(request, request_id)
    if pa is None:
        return None, auth, _error(request, 404, "No such request", f"There is no request {request_id}.", auth)
    try:
        names = {u.username: u.display_name for u in web_state(request).users.list_users()}
        letter = build_letter(
            pa,
            _store(request).list_audit(pa.id),
            _policy(request, pa.policy_id),
            names=names,
            casework=_store(request).get_casework(pa.id),
        )
    except LetterError as exc:
        return None, auth, _error(request, 404, "No letter", str(exc).capitalize() + ".", auth)
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


# -- policies ------------------------------------------------------------------------------------


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


# -- administration ------------------------------------------------------------------------------


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
    try:
        if form.get("op") == "unlock":
            await run_in_threadpool(users.unlock, form.get("username") or "")
            message = f"{form.get('username')} is unlocked."
        else:
            await run_in_threadpool(
                lambda: users.add_user(
                    form.get("username") or "",
                    form.get("password") or "",
                    form.get("role") or "",
                    display_name=form.get("display_name") or None,
                )
            )
            message = f"{form.get('username')} is added."
    except UserError as exc:
        return _users(request, auth, exc.message[:1].upper() + exc.message[1:] + ".", 422)
    return _users(request, auth, message)
