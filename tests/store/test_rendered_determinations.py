"""The service's hot path stores a determination without parsing its JSON back into a dict
(`Store.submit_rendered`, `Determination.to_json_and_canonical`, `audit_chain.canonical_tail`).
Everything it writes and answers must be byte for byte what the dict-based construction gives:

* the determination's text is `to_json()`, and its sorted-key bytes are
  ``orjson.dumps(orjson.loads(text), option=OPT_SORT_KEYS)`` (what the audit chain hashes);
* a row's hash from its rendered tail is `row_hash` over the row's values, for generated rows and for
  generated determinations, so chains written before and after verify alike;
* the stored columns and the answer are the bytes the dict path writes and answers;
* mixed old-path and hot-path rows verify (`medpolicy audit verify`), on SQLite and PostgreSQL, and
  an edited hot-path row is detected."""

from __future__ import annotations

import datetime as dt
import hashlib
from concurrent.futures import Future
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from case_strategies import cases
from medpolicy import CaseError, PolicySet, decide, load_policies
from medpolicy.cli import app
from medpolicy.service.testing import INFORMATION_NEEDED, INVESTIGATIONAL, MEDICALLY_NECESSARY, MISSING_FACTS
from medpolicy.store import Store, audit_chain
from medpolicy.store.db import _json_dumps
from medpolicy.store.records import DeterminationRecord, RenderedDetermination

POLICIES: PolicySet = load_policies()
SORT = orjson.OPT_SORT_KEYS

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


FIXED = [MEDICALLY_NECESSARY, INVESTIGATIONAL, INFORMATION_NEEDED, MISSING_FACTS]


def _decided(case: dict[str, Any]) -> Any:
    try:
        return decide(case, POLICIES)
    except CaseError:
        return None


@pytest.mark.parametrize("case", FIXED)
def test_the_fixed_cases_render_alike(case: dict[str, Any]) -> None:
    d = decide(case, POLICIES)
    text, canonical = d.to_json_and_canonical()
    assert text == d.to_json()
    assert canonical == orjson.dumps(orjson.loads(text), option=SORT)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_rendered_text_and_sorted_bytes_are_the_dict_constructions(case: dict[str, Any]) -> None:
    d = _decided(case)
    if d is None:
        return
    for _ in range(2):  # the second time from the parts kept per key
        text, canonical = d.to_json_and_canonical()
        assert text == d.to_json()
        assert canonical == orjson.dumps(d.to_dict(), option=SORT)
        # stored and answered as text: parsing and dumping it again gives the same bytes
        assert orjson.dumps(orjson.loads(text)) == text.encode()


def _sorted_fragment(value: Any) -> orjson.Fragment:
    return orjson.Fragment(orjson.dumps(value, option=SORT))


@settings(max_examples=300, deadline=None)
@given(
    json_objects,
    json_objects,
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=-5))]),
    st.text(max_size=30),
    st.none() | st.text(max_size=30),
    st.integers(min_value=1, max_value=2**62),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
)
def test_a_hash_from_the_tail_is_row_hash(
    case: dict[str, Any],
    determination: dict[str, Any],
    created: dt.datetime,
    zone: dt.tzinfo | None,
    client_id: str,
    policy_id: str | None,
    seq: int,
    prev: str,
) -> None:
    values = {
        "id": "det_" + client_id,
        "created_at": created.replace(tzinfo=zone),
        "client_id": client_id,
        "pa_request_id": None,
        "policy_id": policy_id,
        "policy_version": None,
        "engine_version": "0.1.0",
        "outcome": "approved",
        "case": case,
        "determination": determination,
    }
    expected = audit_chain.row_hash("determinations", seq, prev, values)
    tail = audit_chain.canonical_tail("determinations", values)
    assert audit_chain.row_hash_from_tail("determinations", seq, prev, tail) == expected
    rendered = {**values, "case": _sorted_fragment(case), "determination": _sorted_fragment(determination)}
    tail = audit_chain.canonical_tail("determinations", rendered)
    assert audit_chain.row_hash_from_tail("determinations", seq, prev, tail) == expected
    # the construction itself, spelled out: SHA-256 of prev, a newline and the sorted-key JSON
    body = {k: audit_chain._canonical_value(v) for k, v in values.items()}
    canonical = orjson.dumps({**body, "_table": "determinations", "_seq": seq}, option=SORT)
    assert expected == hashlib.sha256(prev.encode() + b"\n" + canonical).hexdigest()


def test_a_column_sorting_before_the_chain_keys_is_refused() -> None:
    with pytest.raises(ValueError, match="sorts before"):
        audit_chain.canonical_tail("determinations", {"Zeta": 1, "id": "x"})


class _Capture:
    """A writer that keeps what it is given (the row values), committing nothing."""

    def __init__(self) -> None:
        self.values: list[dict[str, Any]] = []

    def submit(self, values: dict[str, Any]) -> Future[None]:
        self.values.append(values)
        future: Future[None] = Future()
        future.set_result(None)
        return future


@pytest.fixture(scope="module")
def memory_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    s = Store.open(f"sqlite:///{tmp_path_factory.mktemp('rendered') / 'store.db'}", policies=POLICIES)
    yield s
    s.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases(), st.text(min_size=1, max_size=20), st.integers(min_value=1, max_value=10**9))
def test_a_rendered_row_is_the_dict_row(
    memory_store: Store, case: dict[str, Any], client_id: str, seq: int
) -> None:
    """Against the dict construction (`_determination_values`, `DeterminationRecord.to_dict`): the
    same columns, the same stored text, the same hash and the same answer."""
    d = _decided(case)
    if d is None:
        return
    store = memory_store
    writer, capture = store._writer, _Capture()
    store._writer = capture  # type: ignore[assignment]
    try:
        record, _ = store.submit_rendered(case, d, client_id=client_id)
    finally:
        store._writer = writer
    (values,) = capture.values
    old = store._determination_values(case, d, client_id=client_id, pa_request_id=None)
    old["id"], old["created_at"] = record.id, record.created_at
    tail = values.pop(audit_chain.CANONICAL)
    assert set(values) == set(old)
    for column in ("case", "determination"):
        assert _json_dumps(values[column]) == _json_dumps(old[column])  # the stored text
    assert {k: v for k, v in values.items() if k not in ("case", "determination")} == {
        k: v for k, v in old.items() if k not in ("case", "determination")
    }
    prev = "f" * 64
    assert audit_chain.row_hash_from_tail("determinations", seq, prev, tail) == audit_chain.row_hash(
        "determinations", seq, prev, old
    )
    assert record.to_json() == orjson.dumps(DeterminationRecord(**old).to_dict())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases())
def test_the_stores_decider_renders_alike(memory_store: Store, case: dict[str, Any]) -> None:
    """Through the store's decider (routes remembered, repeated combinations decided from learnt
    templates: `medpolicy.case_combos`), as the service decides."""
    if _decided(case) is None:
        return
    for _ in range(3):  # learnt the second time, decided from the template the third
        d = memory_store.decide(case)
        text, canonical = d.to_json_and_canonical()
        assert text == d.to_json()
        assert canonical == orjson.dumps(orjson.loads(text), option=SORT)


def _hot(store: Store, case: dict[str, Any], client_id: str) -> str:
    record, committed = store.submit_rendered(case, store.decide(case), client_id=client_id)
    committed.result()
    return record.id


def test_hot_and_dict_rows_share_one_chain_that_verifies(store: Store) -> None:
    ids = [
        store.decide_and_save(MEDICALLY_NECESSARY, client_id="ehr-1").id,
        _hot(store, INVESTIGATIONAL, "ehr-1"),
        _hot(store, {**MEDICALLY_NECESSARY, "id": "case-ñ\u2019"}, "ehr-2"),
        store.decide_and_save(INFORMATION_NEEDED, client_id="ehr-2").id,
        _hot(store, MISSING_FACTS, "ehr-1"),
    ]
    report = {r.table: r for r in audit_chain.verify(store.engine)}["determinations"]
    assert (report.length, report.broken) == (5, None)
    url = store.engine.url.render_as_string(hide_password=False)
    result = CliRunner().invoke(app, ["audit", "verify", "--database-url", url])
    assert result.exit_code == 0, result.output
    # read back, a hot-path row is what the dict path would have stored
    stored = store.get_determination(ids[1])
    assert stored.determination == decide(INVESTIGATIONAL, POLICIES).to_dict()
    assert stored.case == INVESTIGATIONAL


def test_the_answer_is_the_stored_record_read_back(store: Store) -> None:
    """What the hot path and the keyed path answer is what reading the row answers: byte for byte on
    SQLite; on PostgreSQL the same JSON (JSONB keeps an object's keys in an order of its own)."""
    from medpolicy.store import idempotent

    def same(answer: bytes, det_id: str) -> None:
        read_back = orjson.dumps(store.get_determination(det_id).to_dict())
        assert orjson.loads(answer) == orjson.loads(read_back)
        if store.engine.dialect.name == "sqlite":
            assert answer == read_back

    record, committed = store.submit_rendered(
        INVESTIGATIONAL, store.decide(INVESTIGATIONAL), client_id="ehr-1"
    )
    committed.result()
    same(record.to_json(), record.id)
    digest = idempotent.fingerprint(MEDICALLY_NECESSARY, None)
    keyed, created = idempotent.save(
        store,
        MEDICALLY_NECESSARY,
        store.decide(MEDICALLY_NECESSARY),
        client_id="ehr-1",
        key="k-1",
        digest=digest,
    )
    assert created
    assert isinstance(keyed, RenderedDetermination)
    same(keyed.to_json(), keyed.id)
    again, created = idempotent.save(
        store,
        MEDICALLY_NECESSARY,
        store.decide(MEDICALLY_NECESSARY),
        client_id="ehr-1",
        key="k-1",
        digest=digest,
    )
    assert not created
    assert again.id == keyed.id
    report = {r.table: r for r in audit_chain.verify(store.engine)}["determinations"]
    assert (report.length, report.broken) == (2, None)


def test_an_edited_hot_path_row_is_detected(store: Store) -> None:
    det_id = _hot(store, INVESTIGATIONAL, "ehr-1")
    _hot(store, MEDICALLY_NECESSARY, "ehr-1")
    with store.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("DROP TRIGGER determinations_append_only ON determinations")
        else:
            for name in ("no_update", "no_delete", "no_replace"):
                conn.exec_driver_sql(f"DROP TRIGGER determinations_{name}")
        conn.execute(
            sa.text("UPDATE determinations SET outcome = 'medically_necessary' WHERE id = :id"),
            {"id": det_id},
        )
    report = {r.table: r for r in audit_chain.verify(store.engine)}["determinations"]
    assert report.broken is not None
    assert report.broken.seq == 1
