"""Batch screening on Spark SQL (``local[2]``, one session for the module): the same answers as
``decide`` and as DuckDB, and the ``spark-submit`` entry point. Skipped with a reason when pyspark or
Java is missing, except in CI (CI=true), where they must run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from screening_helpers import assert_equivalent, assert_service_scope, result_rows, write_service_lines

from medpolicy.screening import screen
from medpolicy.screening.generator import generate_claims, write_all, write_csv, write_facts

pytestmark = pytest.mark.spark
N, SEED = 150, 21


def _missing() -> str | None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install -e '.[spark]')"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java runtime (Spark needs Java 17+)"
    return None


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"CI=true and the Spark tests cannot run: {reason}", pytrace=False)
        pytest.skip(reason)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from medpolicy.screening.spark_runner import local_session

    session = local_session("local[2]")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("spark-claims"), N, SEED)


@pytest.mark.parametrize("fmt", ["837p", "csv"])
def test_spark_equals_decide_and_duckdb(
    fmt: str, spark: Any, generated: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "spark-result"
    s = screen([generated[fmt]], out, engine="spark", spark=spark, facts=generated["facts"])
    assert s.balanced
    assert s.governed > 0
    assert s.engine == "spark"
    rows = result_rows(out)
    claims = {c.claim_id: c for c in generate_claims(N, SEED)}
    assert assert_equivalent(rows, claims, fmt) == s.written
    duck = tmp_path / "duck.parquet"
    d = screen([generated[fmt]], duck, facts=generated["facts"])
    assert sorted(rows) == sorted(result_rows(duck))
    assert {k: n for k, (n, _) in s.outcomes.items()} == {k: n for k, (n, _) in d.outcomes.items()}


@pytest.mark.parametrize("policy_id", ["example-iort-commercial", None])
def test_spark_equals_decide_with_joint_classes_and_routing(
    policy_id: str | None, spark: Any, tmp_path: Path
) -> None:
    """An example policy's breast facts, an age from the birth date and the date of service, conflict
    flags and chapter cross-check errors (``policy_id``), or the plan's routing of each line by its line
    of business (None): on Spark as on DuckDB, and as ``decide``."""
    from medpolicy import load_policies

    policies = load_policies()
    gen = generate_claims(120, 5, policy=policies.get(policy_id) if policy_id else None)
    claims = write_csv(gen, tmp_path / "c.csv")
    if policy_id is None:  # a line of business on every other line, and one no policy serves
        import csv

        with open(claims, newline="") as f:
            rows = list(csv.DictReader(f))
        lobs = ["", "commercial", "medicare_advantage", "medicaid"]
        for k, row in enumerate(rows):
            row["line_of_business"] = lobs[k % 4]
        with open(claims, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    facts = write_facts(gen, tmp_path / "f.csv")
    out = tmp_path / "spark-result"
    s = screen([claims], out, engine="spark", spark=spark, facts=facts, policy_id=policy_id)
    assert s.balanced
    duck = tmp_path / "duck.parquet"
    d = screen([claims], duck, facts=facts, policy_id=policy_id)
    assert sorted(result_rows(out)) == sorted(result_rows(duck))
    assert sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in s.errors) == sorted(
        orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in d.errors
    )
    if policy_id is not None:
        assert (
            assert_equivalent(result_rows(out), {c.claim_id: c for c in gen}, "csv", policy_id) == s.written
        )
    else:
        assert "no_policy_applies" in {e["code"] for e in s.errors}
        assert len(s.policy_id.split(",")) == 2


@pytest.mark.parametrize("policy_id", ["example-iort-commercial", None])
def test_spark_governs_a_line_by_the_service_given_as_decide(
    policy_id: str | None, spark: Any, tmp_path: Path
) -> None:
    """A brachytherapy line whose facts row states ``intraoperative_radiation`` (the commercial
    example's ``governs_service``): governed on Spark as on DuckDB and as ``decide``."""
    claims, facts = write_service_lines(tmp_path, by_member=policy_id is None)
    out = tmp_path / "spark-result"
    s = screen([claims], out, engine="spark", spark=spark, facts=facts, policy_id=policy_id)
    assert s.balanced
    assert_service_scope(result_rows(out), s.errors, policy_id)
    d = screen([claims], tmp_path / "duck.parquet", facts=facts, policy_id=policy_id)
    assert sorted(result_rows(out)) == sorted(result_rows(tmp_path / "duck.parquet"))
    assert (s.written, s.not_governed, s.in_error) == (d.written, d.not_governed, d.in_error)


def test_spark_reads_x12_lines_staged_as_parquet_in_the_stage_dir(
    spark: Any, generated: dict[str, Path], tmp_path: Path
) -> None:
    """``stage_dir`` (shared storage on a cluster): the X12 lines are written there as Parquet by Spark
    and Spark reads them from there (not from the driver's local CSV); removed after the run; the same
    answers as DuckDB's local staging."""
    import duckdb

    stage = tmp_path / "shared-stage"
    seen: dict[str, Any] = {}

    def at(stage_name: str) -> None:
        if stage_name == "screening":
            staged = list(stage.glob("medpolicy-staged-*.parquet"))
            seen["dirs"] = staged
            seen["rows"] = duckdb.sql(f"SELECT COUNT(*) FROM '{staged[0]}/*.parquet'").fetchall()[0][0]
            seen["read"] = spark.table("mp_src0").inputFiles()

    out = tmp_path / "spark-result"
    s = screen(
        [generated["837p"]],
        out,
        engine="spark",
        spark=spark,
        facts=generated["facts"],
        stage_dir=str(stage),
        progress=at,
    )
    assert s.balanced
    assert len(seen["dirs"]) == 1
    assert seen["rows"] == s.lines_read - sum(e.get("lines", 0) for e in s.errors)
    assert seen["read"]
    assert all(str(seen["dirs"][0]) in f and f.endswith(".parquet") for f in seen["read"])
    assert list(stage.iterdir()) == []
    duck = tmp_path / "duck.parquet"
    d = screen([generated["837p"]], duck, facts=generated["facts"])
    assert sorted(result_rows(out)) == sorted(result_rows(duck))
    assert (s.written, s.not_governed, s.in_error) == (d.written, d.not_governed, d.in_error)


def test_spark_reports_bad_input_like_duckdb(spark: Any, tmp_path: Path) -> None:
    p = tmp_path / "c.csv"
    p.write_text(
        "claim_id,line_number,member_id,procedure_code,modifiers,diagnosis_codes,date_of_service,billed_amount\n"
        "x,1,m,77425,,C99.99,2024-03-01,1\nx,2,m,77425,,C20,2024-02-30,1\nx,3,m,77425,,C20,2024-02-01,1\n"
        "x,4,m,99213,,C20,2024-02-01,1\n"
    )
    s = screen([p], tmp_path / "out", engine="spark", spark=spark)
    assert (s.lines_read, s.written, s.not_governed, s.in_error) == (4, 1, 1, 2)
    assert sorted(e["code"] for e in s.errors) == ["invalid_date", "unknown_code"]


def test_spark_submit_runs_the_job_entry_point(
    spark: Any, generated: dict[str, Path], tmp_path: Path
) -> None:
    from medpolicy.screening import spark_job

    submit = Path(sys.executable).with_name("spark-submit")
    if not submit.exists():
        submit = Path(shutil.which("spark-submit") or "spark-submit")
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    out = tmp_path / "submitted"
    stage = tmp_path / "stage"  # shared storage on a cluster (hdfs://, s3a://): here a file:// URI
    proc = subprocess.run(
        [
            str(submit),
            "--master",
            "local[1]",
            "--conf",
            "spark.ui.enabled=false",
            spark_job.__file__,
            str(generated["csv"]),
            str(generated["837p"]),
            "-o",
            str(out),
            "--facts",
            str(generated["facts"]),
            "--stage-dir",
            stage.as_uri(),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = orjson.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["engine"] == "spark"
    assert summary["written"] == len(result_rows(out)) > 0
    assert summary["lines_read"] == summary["written"] + summary["not_governed"] + summary["in_error"]
    assert stage.is_dir()  # the X12 lines were staged there (and removed after the run)
    assert list(stage.iterdir()) == []
