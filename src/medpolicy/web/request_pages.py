"""A request's page (`/requests/{id}`) and what a reviewer does on it short of a decision: answer the
missing facts (and preview the policy's answer), correct a fact with a reason."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from medpolicy.store import Action, LifecycleError, PARequest, Role, State, StoreError
from medpolicy.store.lifecycle import FINAL_STATES, allowed_actions
from medpolicy.web import corrections, present
from medpolicy.web.assignment import CASEWORK_MESSAGES
from medpolicy.web.clock import due_clock
from medpolicy.web.policy_view import criterion_anchor
from medpolicy.web.reviewer_context import casework_context, field_messages
from medpolicy.web.users import User
from medpolicy.web.views import (
    _csrf_ok,
    _error,
    _form,
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


DONE_MESSAGES = {
    "approve": "The request is approved. Its letter is ready.",
    "deny": "The request is denied. Its letter is ready.",
    "request_information": "Information is requested; the request waits in the information-needed queue.",
    "route_to_physician": "The request is routed to a physician reviewer.",
    "answers": "Your answers are recorded and the policy has been applied again.",
    "correction": "The correction is recorded with its reason and the policy has been applied again.",
    "close_not_governed": "The request is closed: this policy governs none of its codes. No decision was made.",
    **CASEWORK_MESSAGES,
}


def _request_context(request: Request, pa: PARequest, user: User) -> dict[str, Any]:
    store = _store(request)
    events = store.list_audit(pa.id)
    policy = _policy(request, pa.policy_id)
    det: dict[str, Any] = pa.determination.determination if pa.determination else {}
    users = web_state(request).users.list_users()
    names = {u.username: u.display_name for u in users}
    sources = corrections.overlay_sources(present.fact_sources(store, pa, events), events, names, policy)
    role = user.lifecycle_role
    outcome = det.get("outcome") or pa.recommendation
    by_nurse = corrections.rests_on_nurse_correction(pa.case, events)
    allowed = (
        [a.value for a in allowed_actions(pa.state, role, outcome=outcome, nurse_corrected=by_nurse)]
        if role
        else []
    )
    missing = det.get("missing_facts") or []
    can_answer = Action.REQUEST_INFORMATION.value in allowed and pa.state not in FINAL_STATES
    rationale = det.get("rationale") or None
    recommended = _recommended(outcome, allowed)
    procedures = []
    labels = policy.governs.labels if policy is not None else {}
    for code in pa.case.get("procedure_codes") or []:
        procedures.append((str(code), labels.get(str(code), "not governed by this policy")))
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
        "can_correct": role is not None and pa.state not in FINAL_STATES,
        "correctable": corrections.correctable_fields(policy),
        "nurse_corrected": by_nurse,
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


@router.get("/requests/{request_id}")
def request_page(request: Request, request_id: str, done: str = "") -> Response:
    auth = _signed_in(request)
    if auth is None:
        return _to_login(request)
    user, csrf = auth
    pa = _load(request, request_id)
    if pa is None:
        return _error(request, 404, "No such request", f"There is no request {request_id}.", auth)
    _record_read(request, user, pa.id, "request page")
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
    _record_read(request, user, pa.id, "request page")  # a refusal shows the whole page again
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


async def _open_for_change(
    request: Request, request_id: str
) -> tuple[dict[str, str], tuple[User, str], PARequest, Role] | Response:
    """What a reviewer's change of a request's facts needs: `_open_for_action` (the form, the signed-in
    user with CSRF checked, the request) and the user's role in the life cycle; or the response that
    refuses it (sign-in page, CSRF refusal, 404, or 403 for an administrator, who reviews nothing)."""
    opened = await _open_for_action(request, request_id)
    if isinstance(opened, Response):
        return opened
    form, auth, pa = opened
    role = auth[0].lifecycle_role
    if role is None:
        return _request_problem(request, auth, pa, 403, "An administrator cannot change a request.")
    return form, auth, pa, role


@router.post("/requests/{request_id}/answers")
async def answer_missing(request: Request, request_id: str) -> Response:
    """Record a reviewer's answers to the missing facts; the store decides again."""
    opened = await _open_for_change(request, request_id)
    if isinstance(opened, Response):
        return opened
    form, auth, pa, role = opened
    user = auth[0]
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


@router.post("/requests/{request_id}/corrections")
async def correct_fact(request: Request, request_id: str) -> Response:
    """Correct a submitted or derived fact, with a required reason (its own audited event)."""
    opened = await _open_for_change(request, request_id)
    if isinstance(opened, Response):
        return opened
    form, auth, pa, role = opened
    user = auth[0]
    parsed = corrections.parse_correction(form, _policy(request, pa.policy_id))
    if parsed is None:
        return _request_problem(request, auth, pa, 422, "Choose the fact to correct.")
    reason = (form.get("reason") or "").strip()[:2000] or None
    from medpolicy import CaseError

    try:
        await run_in_threadpool(
            lambda: _store(request).correct_facts(
                pa.id,
                {parsed[0]: parsed[1]},
                actor=user.username,
                role=role,
                reason=reason,
                principal=f"user:{user.username}",
            )
        )
    except CaseError as exc:
        return _request_problem(
            request, auth, pa, 422, "The corrected value is not valid.", field_errors=list(exc.errors)
        )
    except (LifecycleError, StoreError) as exc:
        status = int(getattr(exc, "status", 409))
        message = str(getattr(exc, "message", exc))
        return _request_problem(request, auth, pa, status, message[:1].upper() + message[1:] + ".")
    log.info("correction request=%s role=%s principal=user:%s", pa.id, role.value, user.username)
    return _redirect(f"/requests/{quote(pa.id)}?done=correction#facts-h")
