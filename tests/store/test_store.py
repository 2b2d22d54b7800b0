"""The store, on SQLite and on PostgreSQL: determinations, requests, life cycle, audit, idempotency."""

from __future__ import annotations

import dataclasses
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from medpolicy import CaseError, PolicySet
from medpolicy.service.testing import (
    INFORMATION_NEEDED,
    INVALID,
    INVESTIGATIONAL,
    MEDICALLY_NECESSARY,
    MISSING_FACTS,
    NOT_APPLICABLE,
)
from medpolicy.store import (
    Action,
    ActionNotPermittedError,
    IdempotencyConflictError,
    InvalidActionError,
    InvalidTransitionError,
    LifecycleError,
    NotFoundError,
    ReasonRequiredError,
    Role,
    State,
    Store,
)
from medpolicy.store.migrate import alembic_config, upgrade


def _states(store: Store, request_id: str) -> list[tuple[str | None, str, str, str]]:
    return [(e.from_state, e.to_state, e.action, e.role) for e in store.list_audit(request_id)]


# -- schema ------------------------------------------------------------------------------------


def test_migrations_reach_head_and_are_idempotent(store: Store) -> None:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    upgrade(store.engine)  # a second run changes nothing
    with store.engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == head
        tables = set(sa.inspect(conn).get_table_names())
    assert {"determinations", "pa_requests", "pa_events", "alembic_version"} <= tables


def test_sqlite_runs_in_wal_mode(tmp_path: Any, policies: PolicySet) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'data' / 'medpolicy.db'}", policies=policies)
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()
    assert (tmp_path / "data" / "medpolicy.db").exists()


# -- determinations ----------------------------------------------------------------------------


def test_a_determination_is_stored_with_case_policy_engine_trace_and_time(store: Store) -> None:
    before = datetime.now(UTC)
    record = store.decide_and_save(MEDICALLY_NECESSARY, client_id="ehr-1")
    again = store.get_determination(record.id)
    assert again == record
    assert record.id.startswith("det_")
    assert record.case == MEDICALLY_NECESSARY
    assert record.outcome == "medically_necessary"
    assert record.policy_id == "bluekc-iort"
    assert record.policy_version
    assert record.engine_version
    assert record.determination["outcome"] == "medically_necessary"
    assert record.determination == store.decide(MEDICALLY_NECESSARY).to_dict() | {
        k: record.determination[k] for k in record.determination if k in {"decided_at", "id"}
    }
    assert record.created_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= record.created_at <= datetime.now(UTC) + timedelta(seconds=1)
    assert record.to_dict()["created_at"].endswith("Z")


def test_an_invalid_case_is_refused_and_nothing_is_stored(store: Store) -> None:
    with pytest.raises(CaseError) as info:
        store.decide_and_save(INVALID, client_id="ehr-1")
    assert {e.field for e in info.value.errors} >= {"margin_status", "margin_distance_mm"}
    with pytest.raises(CaseError):
        store.create_pa_request(INVALID, submitter="ehr-1")
    assert store.count_determinations() == 0
    assert store.count_pa_requests() == 0


def test_unknown_ids_are_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError) as info:
        store.get_determination("det_nope")
    assert (info.value.code, info.value.status) == ("determination_not_found", 404)
    for call in (store.get_pa_request, store.list_audit):
        with pytest.raises(NotFoundError) as info:
            call("pa_nope")
        assert info.value.code == "prior_auth_not_found"


@pytest.mark.parametrize("table", ["determinations", "pa_events"])
def test_determinations_and_audit_events_are_append_only(store: Store, table: str) -> None:
    request, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    assert store.list_audit(request.id)
    for statement in (f"UPDATE {table} SET id = id", f"DELETE FROM {table}"):  # noqa: S608 - fixed table names
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert store.list_audit(request.id)
    assert store.count_determinations() == 1


# -- prior-authorization requests ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("urgency", "due_in"), [("expedited", timedelta(hours=72)), ("standard", timedelta(days=7))]
)
def test_a_request_records_urgency_and_due_time(
    store_url: str, policies: PolicySet, urgency: str, due_in: timedelta
) -> None:
    now = datetime(2026, 3, 7, 23, 30, tzinfo=UTC)  # the day before US daylight saving starts
    store = Store.open(store_url, policies=policies, clock=lambda: now)
    try:
        request, created = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1", urgency=urgency)
        assert created
        stored = store.get_pa_request(request.id)
        assert stored.urgency == urgency
        assert stored.received_at == now
        assert stored.due_at == now + due_in
        assert stored.due_at.tzinfo is not None
        assert stored.due_at.utcoffset() == timedelta(0)
    finally:
        store.close()


def test_an_unknown_urgency_is_refused(store: Store) -> None:
    with pytest.raises(InvalidActionError) as info:
        store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1", urgency="urgent")
    assert info.value.code == "invalid_urgency"


def test_the_engine_approves_when_the_criteria_are_met(store: Store) -> None:
    request, _ = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1")
    assert request.state == State.APPROVED
    assert request.recommendation == "medically_necessary"
    assert request.determination is not None
    assert request.determination.pa_request_id == request.id
    assert _states(store, request.id) == [
        (None, "received", "submit", "submitter"),
        ("received", "approved", "approve", "system"),
    ]


@pytest.mark.parametrize("case", [INVESTIGATIONAL], ids=["investigational"])
def test_the_engine_never_denies_it_routes_to_a_physician(store: Store, case: dict[str, Any]) -> None:
    request, _ = store.create_pa_request(case, submitter="ehr-1")
    assert request.state == State.PENDING_PHYSICIAN_REVIEW
    assert request.recommendation == "investigational"
    events = store.list_audit(request.id)
    assert [e.to_state for e in events] == ["received", "pending_physician_review"]
    assert events[-1].role == "system"
    assert "only a physician may deny" in (events[-1].reason or "")
    assert events[-1].determination_id == request.determination_id


def test_the_engine_pends_for_information_then_decides_again(store: Store) -> None:
    request, _ = store.create_pa_request(INFORMATION_NEEDED, submitter="ehr-1")
    assert request.state == State.INFORMATION_NEEDED
    first_determination = request.determination_id
    with pytest.raises(InvalidActionError, match="needs the new facts"):
        store.apply_action(request.id, Action.PROVIDE_INFORMATION, "ehr-1", Role.SUBMITTER)
    updated = store.apply_action(
        request.id, Action.PROVIDE_INFORMATION, "ehr-1", Role.SUBMITTER, case_update=MISSING_FACTS
    )
    assert updated.state == State.APPROVED
    assert updated.determination_id != first_determination
    assert updated.case == MEDICALLY_NECESSARY
    assert updated.version == request.version + 1
    assert _states(store, request.id) == [
        (None, "received", "submit", "submitter"),
        ("received", "information_needed", "request_information", "system"),
        ("information_needed", "information_needed", "provide_information", "submitter"),
        ("information_needed", "approved", "approve", "system"),
    ]
    assert store.get_determination(updated.determination_id or "").case == MEDICALLY_NECESSARY


def test_a_requests_determinations_replay_how_its_facts_changed(store: Store) -> None:
    """What an appeal reads: every determination of the request, oldest first, each with its case."""
    request, _ = store.create_pa_request(INFORMATION_NEEDED, submitter="ehr-1")
    other, _ = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-2")
    store.apply_action(
        request.id, Action.PROVIDE_INFORMATION, "ehr-1", Role.SUBMITTER, case_update=MISSING_FACTS
    )
    history = store.list_determinations(request.id)
    assert [d.outcome for d in history] == ["information_needed", "medically_necessary"]
    assert [d.case for d in history] == [INFORMATION_NEEDED, MEDICALLY_NECESSARY]
    assert history[0].id == request.determination_id
    assert history[-1].id == store.get_pa_request(request.id).determination_id
    assert all(d.pa_request_id == request.id for d in history)
    assert [d.id for d in store.list_determinations(other.id)] == [other.determination_id]
    assert store.list_determinations("par_unknown") == []


def test_a_request_no_policy_governs_stays_received_for_triage(store: Store) -> None:
    request, _ = store.create_pa_request(NOT_APPLICABLE, submitter="ehr-1")
    assert request.state == State.RECEIVED
    assert request.recommendation == "not_applicable"
    assert _states(store, request.id) == [(None, "received", "submit", "submitter")]


def test_only_a_physician_denies_and_must_say_why(store: Store) -> None:
    request, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    with pytest.raises(ActionNotPermittedError):
        store.apply_action(request.id, Action.DENY, "nurse-ann", Role.NURSE, reason="investigational")
    with pytest.raises(ReasonRequiredError):
        store.apply_action(request.id, Action.DENY, "dr-bo", Role.PHYSICIAN, reason="  ")
    with pytest.raises(ActionNotPermittedError, match="only when the criteria are met"):
        store.apply_action(request.id, Action.APPROVE, "nurse-ann", Role.NURSE)
    denied = store.apply_action(
        request.id,
        Action.DENY,
        "dr-bo",
        Role.PHYSICIAN,
        reason="IORT for breast cancer is investigational under the policy",
    )
    assert denied.state == State.DENIED
    assert denied.decision_reason == "IORT for breast cancer is investigational under the policy"
    last = store.list_audit(request.id)[-1]
    assert (last.actor, last.role, last.action, last.from_state, last.to_state) == (
        "dr-bo",
        "physician",
        "deny",
        "pending_physician_review",
        "denied",
    )
    assert last.reason == denied.decision_reason
    assert last.at.tzinfo is not None
    with pytest.raises(InvalidTransitionError):
        store.apply_action(request.id, Action.APPROVE, "dr-cy", Role.PHYSICIAN, reason="changed my mind")
    assert len(store.list_audit(request.id)) == 3  # refused actions leave no event


def test_a_nurse_approves_on_new_facts_that_meet_the_criteria(store: Store) -> None:
    request, _ = store.create_pa_request(INFORMATION_NEEDED, submitter="ehr-1")
    approved = store.apply_action(
        request.id,
        Action.APPROVE,
        "nurse-ann",
        Role.NURSE,
        reason="margin and stage confirmed by phone with the surgeon",
        case_update=MISSING_FACTS,
    )
    assert approved.state == State.APPROVED
    assert approved.recommendation == "medically_necessary"
    last = store.list_audit(request.id)[-1]
    assert (last.action, last.role, last.determination_id) == ("approve", "nurse", approved.determination_id)


def test_new_facts_with_an_invalid_value_change_nothing(store: Store) -> None:
    request, _ = store.create_pa_request(INFORMATION_NEEDED, submitter="ehr-1")
    with pytest.raises(CaseError):
        store.apply_action(
            request.id,
            Action.PROVIDE_INFORMATION,
            "ehr-1",
            Role.SUBMITTER,
            case_update={"margin_status": "sort of"},
        )
    assert store.get_pa_request(request.id) == request
    assert len(store.list_audit(request.id)) == 2


def test_only_the_submitter_withdraws(store: Store) -> None:
    request, _ = store.create_pa_request(INFORMATION_NEEDED, submitter="ehr-1")
    with pytest.raises(ActionNotPermittedError, match="only the submitter"):
        store.apply_action(request.id, Action.WITHDRAW, "ehr-2", Role.SUBMITTER)
    with pytest.raises(ActionNotPermittedError):
        store.apply_action(request.id, Action.WITHDRAW, "nurse-ann", Role.NURSE)
    withdrawn = store.apply_action(
        request.id, Action.WITHDRAW, "ehr-1", Role.SUBMITTER, reason="surgery cancelled"
    )
    assert withdrawn.state == State.WITHDRAWN
    with pytest.raises(InvalidTransitionError):
        store.apply_action(
            request.id, Action.PROVIDE_INFORMATION, "ehr-1", Role.SUBMITTER, case_update=MISSING_FACTS
        )


def test_the_system_role_cannot_deny_through_the_store(store: Store) -> None:
    request, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    with pytest.raises(LifecycleError):
        store.apply_action(request.id, Action.DENY, "medpolicy", Role.SYSTEM, reason="engine")


def test_listing_filters_by_state_submitter_and_search(store: Store) -> None:
    approved, _ = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1", subject="member M-1001")
    pending, _ = store.create_pa_request(
        INVESTIGATIONAL, submitter="ehr-2", urgency="expedited", subject="M-2002"
    )
    info, _ = store.create_pa_request(INFORMATION_NEEDED, submitter="ehr-1")
    assert [r.id for r in store.list_pa_requests()] == [pending.id, approved.id, info.id]  # soonest due first
    assert [r.id for r in store.list_pa_requests(state="pending_physician_review")] == [pending.id]
    assert {r.id for r in store.list_pa_requests(submitter="ehr-1")} == {approved.id, info.id}
    assert [r.id for r in store.list_pa_requests(search="m-1001")] == [approved.id]
    assert [r.id for r in store.list_pa_requests(search="C50.911")] == [pending.id]
    assert [r.id for r in store.list_pa_requests(search=pending.id[-12:])] == [pending.id]
    assert len(store.list_pa_requests(limit=2)) == 2
    assert [r.id for r in store.list_pa_requests(limit=2, offset=2)] == [info.id]
    listed = store.list_pa_requests(state=State.APPROVED)[0]
    assert listed.determination is not None
    assert listed.determination.outcome == "medically_necessary"


# -- idempotency -------------------------------------------------------------------------------


def test_a_retried_submission_returns_the_original(store: Store) -> None:
    first, created = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1", idempotency_key="k-1")
    again, created_again = store.create_pa_request(
        MEDICALLY_NECESSARY, submitter="ehr-1", idempotency_key="k-1"
    )
    assert created
    assert not created_again
    assert again.id == first.id
    assert store.count_pa_requests() == 1
    assert store.count_determinations() == 1
    assert len(store.list_audit(first.id)) == 2


def test_the_same_key_with_another_body_is_a_conflict(store: Store) -> None:
    store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1", idempotency_key="k-1")
    with pytest.raises(IdempotencyConflictError) as info:
        store.create_pa_request(
            MEDICALLY_NECESSARY, submitter="ehr-1", urgency="expedited", idempotency_key="k-1"
        )
    assert (info.value.code, info.value.status) == ("idempotency_key_reused", 409)
    assert store.count_pa_requests() == 1


def test_idempotency_keys_belong_to_their_submitter(store: Store) -> None:
    a, _ = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1", idempotency_key="k-1")
    b, created = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-2", idempotency_key="k-1")
    assert created
    assert a.id != b.id


def test_concurrent_submissions_with_one_key_create_one_request(store: Store) -> None:
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        try:
            barrier.wait()
            request, created = store.create_pa_request(
                INVESTIGATIONAL, submitter="ehr-1", idempotency_key="race"
            )
            results.append((request.id, created))
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({request_id for request_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert store.count_pa_requests() == 1
    assert store.count_determinations() == 1


def test_concurrent_reviewers_cannot_both_decide(store: Store) -> None:
    request, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def act(action: Action, actor: str) -> None:
        barrier.wait()
        try:
            store.apply_action(request.id, action, actor, Role.PHYSICIAN, reason=f"{actor} decides")
            outcomes.append(f"ok {action.value}")
        except LifecycleError as exc:
            outcomes.append(exc.code)
        except Exception as exc:
            outcomes.append(getattr(exc, "code", type(exc).__name__))

    threads = [
        threading.Thread(target=act, args=(Action.DENY, "dr-a")),
        threading.Thread(target=act, args=(Action.APPROVE, "dr-b")),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(o.startswith("ok") for o in outcomes) == 1, outcomes
    assert next(o for o in outcomes if not o.startswith("ok")) in {"invalid_transition", "concurrent_update"}
    final = store.get_pa_request(request.id)
    assert final.state in {State.DENIED, State.APPROVED}
    assert [e.to_state for e in store.list_audit(request.id)][-1] == final.state
    assert len(store.list_audit(request.id)) == 3


# -- group commit ------------------------------------------------------------------------------


def test_concurrent_determinations_are_all_committed_once(store: Store) -> None:
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(24)

    def save(i: int) -> None:
        try:
            barrier.wait()
            record = store.decide_and_save(
                {**MEDICALLY_NECESSARY, "margin_distance_mm": i / 10}, client_id="ehr-1"
            )
            ids.append(record.id)
        except BaseException as exc:  # re-raised by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(set(ids)) == 24
    assert store.count_determinations() == 24
    for i in ids:  # every answer names a committed row
        assert store.get_determination(i).client_id == "ehr-1"


def test_a_failing_row_fails_only_its_own_caller(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.decide_and_save(MEDICALLY_NECESSARY, client_id="ehr-1")
    duplicate = dataclasses.asdict(first)  # the same primary key again: the database refuses it
    batches: list[int] = []
    gate = threading.Event()
    insert = store._insert_determinations

    def gated(rows: list[dict[str, Any]]) -> None:
        batches.append(len(rows))
        gate.wait(timeout=30)
        insert(rows)

    monkeypatch.setattr(store, "_insert_determinations", gated)
    decided = store.decide(INVESTIGATIONAL)
    blocker = store.submit_determination(INVESTIGATIONAL, decided, client_id="ehr-2")
    while not batches:  # the writer holds the blocker at the gate; what follows queues behind it
        threading.Event().wait(0.005)
    good = store.submit_determination(INVESTIGATIONAL, decided, client_id="ehr-2")
    bad = store._writer.submit(duplicate)
    gate.set()
    blocker[1].result(timeout=30)
    good[1].result(timeout=30)
    with pytest.raises(sa.exc.IntegrityError):
        bad.result(timeout=30)
    assert batches == [1, 2, 1, 1]  # one batch of two failed, then each row alone
    assert store.get_determination(good[0].id).outcome == "investigational"
    assert store.count_determinations() == 3


def test_a_closed_store_refuses_new_determinations(store_url: str, policies: PolicySet) -> None:
    store = Store.open(store_url, policies=policies)
    store.decide_and_save(MEDICALLY_NECESSARY, client_id="ehr-1")
    store.close()
    _record, committed = store.submit_determination(
        MEDICALLY_NECESSARY, store.decide(MEDICALLY_NECESSARY), client_id="ehr-1"
    )
    with pytest.raises(Exception, match="the store is closed"):
        committed.result(timeout=30)


def test_a_caller_that_went_away_does_not_stop_the_writer(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    started = threading.Event()
    insert = store._insert_determinations

    def gated(rows: list[dict[str, Any]]) -> None:
        started.set()
        gate.wait(timeout=30)
        insert(rows)

    monkeypatch.setattr(store, "_insert_determinations", gated)
    decided = store.decide(MEDICALLY_NECESSARY)
    blocker = store.submit_determination(MEDICALLY_NECESSARY, decided, client_id="ehr-1")
    started.wait(timeout=30)
    gone = store.submit_determination(MEDICALLY_NECESSARY, decided, client_id="ehr-1")
    assert gone[1].cancel()  # as asyncio does when the HTTP client disconnects
    gate.set()
    blocker[1].result(timeout=30)
    after = store.decide_and_save(MEDICALLY_NECESSARY, client_id="ehr-1")
    assert store.get_determination(after.id).id == after.id
    assert store.count_determinations() == 3  # the abandoned row was still committed


def test_cds_feedback_is_stored_durably_newest_first(store: Store) -> None:
    store.record_cds_feedback(
        [
            {
                "service_id": "s",
                "client": "ehr",
                "card": "c1",
                "outcome": "accepted",
                "outcome_timestamp": "2026-03-01T10:00:00Z",
                "accepted_suggestions": ["g1"],
                "override_code": None,
            },
            {
                "service_id": "s",
                "client": "ehr",
                "card": "c2",
                "outcome": "overridden",
                "outcome_timestamp": "2026-03-01T10:01:00Z",
                "accepted_suggestions": [],
                "override_code": "x",
            },
        ]
    )
    got = store.list_cds_feedback()
    assert [(r["card"], r["outcome"], r["accepted_suggestions"], r["override_code"]) for r in got] == [
        ("c2", "overridden", [], "x"),
        ("c1", "accepted", ["g1"], None),
    ]
    assert got[0]["received_at"].tzinfo is not None
    assert [r["card"] for r in store.list_cds_feedback(card="c1")] == ["c1"]
    assert sorted(store.summarize_cds_feedback(), key=lambda r: r["outcome"]) == [
        {"service_id": "s", "outcome": "accepted", "override_code": None, "count": 1},
        {"service_id": "s", "outcome": "overridden", "override_code": "x", "count": 1},
    ]


def test_a_jti_can_be_claimed_once(store: Store) -> None:
    from datetime import UTC, datetime, timedelta

    from medpolicy.store import TokenReplayedError

    until = datetime.now(UTC) + timedelta(minutes=5)
    store.claim_jti("ehr", "t-1", until).result(timeout=10)
    store.claim_jti("other-ehr", "t-1", until).result(timeout=10)  # ids belong to their issuer
    with pytest.raises(TokenReplayedError):
        store.claim_jti("ehr", "t-1", until).result(timeout=10)


def test_dtr_questionnaire_error_reports_are_stored_newest_first(store: Store) -> None:
    outcome = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}
    first = store.record_questionnaire_errors(
        client="dtr-app", questionnaire="https://q/a|1", outcome=outcome
    )
    second = store.record_questionnaire_errors(
        client="dtr-app", questionnaire="https://q/b|2", outcome=outcome
    )
    assert second > first
    assert [r["id"] for r in store.list_questionnaire_errors()] == [second, first]
    (only_a,) = store.list_questionnaire_errors(questionnaire="https://q/a|1")
    assert only_a["outcome"] == outcome
    assert only_a["client"] == "dtr-app"
    assert only_a["received_at"].tzinfo is not None
