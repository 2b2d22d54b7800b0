"""Tamper evidence of the audit trail, on SQLite and PostgreSQL: every kind of tampering found when the
trail was attacked by hand (REPLACE rewrite, forged insert, edited outcome, deleted event with the
triggers dropped) is refused or detected by `medpolicy audit verify`, and the chain stays linear under
concurrent writers (threads, and two stores on one database as two server processes would be)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from medpolicy import PolicySet
from medpolicy.cli import app
from medpolicy.service.testing import INFORMATION_NEEDED, INVESTIGATIONAL, MEDICALLY_NECESSARY, MISSING_FACTS
from medpolicy.store import Action, Role, Store, audit_chain


def _report(store: Store) -> dict[str, audit_chain.ChainReport]:
    return {r.table: r for r in audit_chain.verify(store.engine)}


def _trail(store: Store) -> tuple[str, str]:
    """A request denied by a physician after the engine routed it: (request id, determination id)."""
    pa, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    store.apply_action(pa.id, Action.DENY, "dr-who", Role.PHYSICIAN, reason="investigational for the breast")
    store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1")
    store.decide_and_save(MEDICALLY_NECESSARY, client_id="ehr-2")
    return pa.id, pa.determination_id or ""


def _drop_append_only_triggers(conn: sa.Connection, table: str) -> None:
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"DROP TRIGGER {table}_append_only ON {table}")
    else:
        for name in ("no_update", "no_delete", "no_replace"):
            conn.exec_driver_sql(f"DROP TRIGGER {table}_{name}")


def _verify_cli(store: Store) -> Any:
    url = store.engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(app, ["audit", "verify", "--database-url", url])


def test_an_untouched_trail_verifies_and_prints_each_head(store: Store) -> None:
    _trail(store)
    reports = _report(store)
    assert all(r.ok for r in reports.values())
    assert reports["pa_events"].length == 5  # submit + route, deny, submit + approve
    assert reports["determinations"].length == 3
    result = _verify_cli(store)
    assert result.exit_code == 0, result.output
    assert f"pa_events:5:{reports['pa_events'].head}" in result.output


def test_a_replace_cannot_rewrite_an_event_or_a_determination(store: Store) -> None:
    request_id, det_id = _trail(store)
    with store.engine.connect() as conn:
        event = conn.execute(sa.text("SELECT * FROM pa_events ORDER BY id LIMIT 1 OFFSET 1")).mappings().one()
    forged = dict(event) | {"actor": "dr-somebody-else", "role": "physician", "action": "deny"}
    columns = ", ".join(forged)
    values = ", ".join(f":{c}" for c in forged)
    if store.is_sqlite:
        attempts = [
            (f"INSERT OR REPLACE INTO pa_events ({columns}) VALUES ({values})", forged),  # noqa: S608
            (
                "INSERT OR REPLACE INTO determinations (id, created_at, client_id, engine_version, outcome, "
                "\"case\", determination) VALUES (:id, '2026-01-01', 'x', 'x', 'medically_necessary', '{}', '{}')",
                {"id": det_id},
            ),
        ]
    else:
        attempts = [
            (
                f"INSERT INTO pa_events ({columns}) VALUES ({values}) "  # noqa: S608
                "ON CONFLICT (id) DO UPDATE SET actor = EXCLUDED.actor",
                forged,
            ),
            (
                'INSERT INTO determinations (id, created_at, client_id, engine_version, outcome, "case", '
                "determination) VALUES (:id, now(), 'x', 'x', 'medically_necessary', '{}', '{}') "
                "ON CONFLICT (id) DO UPDATE SET outcome = EXCLUDED.outcome",
                {"id": det_id},
            ),
        ]
    for statement, params in attempts:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(sa.text(statement), params)
    assert store.get_determination(det_id).outcome == "investigational"
    assert [e.actor for e in store.list_audit(request_id)] == ["ehr-1", "medpolicy", "dr-who"]
    assert all(r.ok for r in _report(store).values())


def test_a_replace_with_the_triggers_dropped_is_detected(tmp_path: Any, policies: PolicySet) -> None:
    # REPLACE is SQLite's; PostgreSQL's upsert is an UPDATE (see the edit tests)
    store = Store.open(f"sqlite:///{tmp_path / 'replace.db'}", policies=policies)
    try:
        _replace_detected(store)
    finally:
        store.close()


def _replace_detected(store: Store) -> None:
    _trail(store)
    with store.engine.begin() as conn:
        _drop_append_only_triggers(conn, "pa_events")
        event = conn.execute(sa.text("SELECT * FROM pa_events ORDER BY id LIMIT 1 OFFSET 1")).mappings().one()
        forged = dict(event) | {"actor": "dr-somebody-else", "role": "physician", "action": "deny"}
        columns, values = ", ".join(forged), ", ".join(f":{c}" for c in forged)
        conn.execute(sa.text(f"INSERT OR REPLACE INTO pa_events ({columns}) VALUES ({values})"), forged)  # noqa: S608
    broken = _report(store)["pa_events"].broken
    assert broken is not None
    assert broken.seq == 2
    assert "content does not match" in broken.problem
    result = _verify_cli(store)
    assert result.exit_code == 3
    assert "pa_events: link 2" in result.output


@pytest.mark.parametrize("kind", ["unchained", "next link", "copied link"])
def test_a_forged_event_is_refused_or_detected(store: Store, kind: str) -> None:
    request_id, _ = _trail(store)
    head = _report(store)["pa_events"]
    row: dict[str, Any] = {
        "request_id": request_id,
        "at": "2026-11-27 10:00:00",
        "actor": "medpolicy",
        "principal": "medpolicy",
        "role": "system",
        "action": "approve",
        "from_state": "pending_physician_review",
        "to_state": "approved",
        "reason": "forged",
        "seq": None,
        "prev": None,
        "hash": None,
    }
    if kind == "next link":  # the forger computes a plausible hash (of other content)
        row |= {"seq": head.length + 1, "prev": head.head, "hash": "ab" * 32}
    if kind == "copied link":  # the forger reuses an existing link's place: the unique index refuses
        row |= {"seq": 2, "prev": "00" * 32, "hash": "cd" * 32}
    insert = sa.text(
        "INSERT INTO pa_events (request_id, at, actor, principal, role, action, from_state, to_state, "
        "reason, chain_seq, chain_prev, chain_hash) VALUES (:request_id, :at, :actor, :principal, :role, "
        ":action, :from_state, :to_state, :reason, :seq, :prev, :hash)"
    )
    if kind == "copied link":
        with pytest.raises(sa.exc.DBAPIError), store.engine.begin() as conn:
            conn.execute(insert, row)
        assert _report(store)["pa_events"].ok
        return
    with store.engine.begin() as conn:
        conn.execute(insert, row)
    broken = _report(store)["pa_events"].broken
    assert broken is not None
    if kind == "unchained":
        assert broken.seq is None
        assert "inserted without the store" in broken.problem
    else:
        assert broken.seq == head.length + 1
        assert "does not match" in broken.problem
    assert _verify_cli(store).exit_code == 3


def test_an_edited_outcome_is_detected(store: Store) -> None:
    _request_id, det_id = _trail(store)
    with store.engine.begin() as conn:
        _drop_append_only_triggers(conn, "determinations")
        conn.execute(
            sa.text("UPDATE determinations SET outcome = 'medically_necessary' WHERE id = :id"),
            {"id": det_id},
        )
    broken = _report(store)["determinations"].broken
    assert broken is not None
    assert broken.row_id == det_id
    assert "changed after it was written" in broken.problem
    result = _verify_cli(store)
    assert result.exit_code == 3
    assert det_id in result.output


def test_an_edited_event_is_detected(store: Store) -> None:
    _trail(store)
    before = _report(store)["pa_events"]
    assert (before.ok, before.length) == (True, 5), str(before.broken)  # a break here is not the edit's
    with store.engine.begin() as conn:
        _drop_append_only_triggers(conn, "pa_events")
        edited = conn.execute(
            sa.text("UPDATE pa_events SET actor = 'dr-somebody-else' WHERE action = 'deny'")
        )
        assert edited.rowcount == 1
    broken = _report(store)["pa_events"].broken
    assert broken is not None
    assert (broken.seq, broken.problem) == (
        3,
        "its content does not match its hash: the row was changed after it was written",
    ), str(broken)


def test_a_deleted_event_is_detected(store: Store) -> None:
    _trail(store)
    with store.engine.begin() as conn:
        _drop_append_only_triggers(conn, "pa_events")
        conn.execute(sa.text("DELETE FROM pa_events WHERE action = 'deny'"))
    broken = _report(store)["pa_events"].broken
    assert broken is not None
    assert broken.seq == 3
    assert "removed" in broken.problem


def test_removing_the_last_events_is_detected_against_a_recorded_head(store: Store) -> None:
    _trail(store)
    recorded = _report(store)["pa_events"]
    with store.engine.begin() as conn:
        _drop_append_only_triggers(conn, "pa_events")
        conn.execute(sa.text("DELETE FROM pa_events WHERE chain_seq = :n"), {"n": recorded.length})
    assert _report(store)["pa_events"].ok  # the chain alone cannot tell its tail was cut ...
    url = store.engine.url.render_as_string(hide_password=False)
    head = f"pa_events:{recorded.length}:{recorded.head}"
    result = CliRunner().invoke(app, ["audit", "verify", "--database-url", url, "--expect-head", head])
    assert result.exit_code == 3, result.output  # ... a head recorded elsewhere can
    assert "fewer than the 5 recorded" in result.output


def test_the_chain_stays_linear_under_concurrent_writers(store_url: str, policies: PolicySet) -> None:
    # two stores on one database: two server processes (each with its own locks and writer thread)
    stores = [
        Store.open(store_url, policies=policies),
        Store.open(store_url, policies=policies, migrate=False),
    ]
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def work(store: Store, n: int) -> None:
        try:
            start.wait()
            for i in range(4):
                pa, _ = store.create_pa_request(INFORMATION_NEEDED, submitter=f"ehr-{n}")
                store.apply_action(
                    pa.id, Action.PROVIDE_INFORMATION, f"ehr-{n}", Role.SUBMITTER, case_update=MISSING_FACTS
                )
                store.decide_and_save({**MEDICALLY_NECESSARY, "margin_distance_mm": i}, client_id="x")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(stores[n % 2], n)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        reports = _report(stores[0])
        assert all(r.ok for r in reports.values()), [str(r.broken) for r in reports.values()]
        with stores[0].engine.connect() as conn:
            events = conn.execute(sa.text("SELECT count(*) FROM pa_events")).scalar_one()
            dets = conn.execute(sa.text("SELECT count(*) FROM determinations")).scalar_one()
        assert reports["pa_events"].length == events == 6 * 4 * 4  # submit, pend, provide, approve
        assert reports["determinations"].length == dets == 6 * 4 * 3
    finally:
        for s in stores:
            s.close()


def test_rows_written_before_the_chain_existed_are_sealed_by_the_migration(store_url: str) -> None:
    from medpolicy.store.db import make_engine
    from medpolicy.store.migrate import upgrade

    engine = make_engine(store_url)
    try:
        upgrade(engine, "0005_dtr_questionnaire_errors")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO determinations (id, created_at, client_id, engine_version, outcome, "
                    "\"case\", determination) VALUES ('det_1', '2026-01-01 10:00:00', 'ehr-1', 'medpolicy 0', "
                    '\'investigational\', \'{"diagnosis_codes": ["C50.911"]}\', \'{"outcome": "investigational"}\')'
                )
            )
            conn.execute(
                sa.text(
                    "INSERT INTO pa_requests (id, submitter, request_hash, urgency, state, received_at, due_at, "
                    "updated_at, \"case\", version) VALUES ('pa_1', 'ehr-1', 'h', 'standard', 'received', "
                    "'2026-01-01 10:00:00', '2026-01-08 10:00:00', '2026-01-01 10:00:00', '{}', 1)"
                )
            )
            for action in ("submit", "route_to_physician"):
                conn.execute(
                    sa.text(
                        "INSERT INTO pa_events (request_id, at, actor, role, action, to_state) VALUES "
                        "('pa_1', '2026-01-01 10:00:00', 'ehr-1', 'submitter', :action, 'received')"
                    ),
                    {"action": action},
                )
        upgrade(engine)
        reports = {r.table: r for r in audit_chain.verify(engine)}
        assert all(r.ok for r in reports.values())
        assert (reports["pa_events"].length, reports["determinations"].length) == (2, 1)
    finally:
        engine.dispose()


def test_keyed_determinations_join_the_chain(store: Store, policies: PolicySet) -> None:
    """`POST /v1/determinations` with an Idempotency-Key writes through its own transaction
    (`store.idempotent`); those rows are sealed into the same chain as the group-commit ones."""
    from medpolicy import decide
    from medpolicy.store import idempotent

    store.decide_and_save(MEDICALLY_NECESSARY, client_id="ehr-2")
    digest = idempotent.fingerprint(MEDICALLY_NECESSARY, None)
    determination = decide(MEDICALLY_NECESSARY, policies)
    _record, created = idempotent.save(
        store, MEDICALLY_NECESSARY, determination, client_id="ehr-2", key="k-1", digest=digest
    )
    assert created
    store.decide_and_save(INVESTIGATIONAL, client_id="ehr-2")
    report = _report(store)["determinations"]
    assert report.length == 3
    assert report.broken is None


def test_a_list_read_records_each_request_shown_once_in_the_reads_chain(store: Store) -> None:
    """A list or a queue shows several requests' patient data at once: each request shown gets its own
    read (so "who read this request" stays one lookup), sealed into the reads chain like a single read."""
    first, _ = store.create_pa_request(INVESTIGATIONAL, submitter="ehr-1")
    second, _ = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-1")
    unseen, _ = store.create_pa_request(MEDICALLY_NECESSARY, submitter="ehr-2")
    store.record_read(first.id, principal="user:nurse.nora", actor="nurse.nora", what="request page")
    store.record_reads(
        [first.id, second.id, first.id], principal="client:um-1", actor="um-1", what="api list"
    )
    store.record_reads([], principal="client:um-1", actor="um-1", what="api list")  # an empty list: nothing

    def who(request_id: str) -> list[tuple[str, str, str]]:
        return [(r["principal"], r["actor"], r["what"]) for r in store.list_reads(request_id)]

    assert who(first.id) == [
        ("user:nurse.nora", "nurse.nora", "request page"),
        ("client:um-1", "um-1", "api list"),
    ]
    assert who(second.id) == [("client:um-1", "um-1", "api list")]
    assert who(unseen.id) == []
    listed = store.list_reads(first.id)[1:] + store.list_reads(second.id)
    assert listed[0]["at"] == listed[1]["at"]
    assert listed[0]["at"].tzinfo is not None
    reads = _report(store)["pa_reads"]
    assert reads.ok, str(reads.broken)
    assert reads.length == 3
