"""Benchmark (d): batch claims screening, as ratios measured in the same run.

* DuckDB: screening N generated lines (10% governed) ÷ a plain DuckDB scan-and-filter of the same
  Parquet file for the IORT codes, written out (target ≤ 3x); peak memory of the screening process
  (target < 2 GB); lines per second.
* Spark local[2]: screening ÷ Spark's own scan-and-filter of the same file (target ≤ 5x); skipped with a
  message when pyspark or Java is missing.
* X12: the streaming reader on a generated 837P, claims per second on one core (target ≥ 20,000), and
  its time ÷ a bare split of the same file into segments and elements.

Size: ``--lines N`` or ``$MEDPOLICY_SCREEN_LINES`` (default 10,000,000); ``--claims`` / ``$MEDPOLICY_X12_CLAIMS``
for the 837P (default 50,000). ``--no-spark`` skips Spark.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medpolicy.screening.generator import IORT_CPT, generate_claims, write_bulk_parquet, write_x12

DUCKDB_TARGET, SPARK_TARGET, MEMORY_TARGET_MB, X12_TARGET = 3.0, 5.0, 2048, 20_000


def _child_screen(pq: str, out: str) -> None:
    """Run in a child process, so that its peak memory is the screening's alone."""
    from medpolicy.screening import screen

    t = time.perf_counter()
    s = screen([pq], out)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - t,
                "lines": s.lines_read,
                "governed": s.governed,
                "balanced": s.balanced,
            }
        )
    )


def duckdb_part(pq: Path, tmp: Path) -> list[str]:
    import duckdb

    codes = ", ".join(f"'{c}'" for c in IORT_CPT)
    con = duckdb.connect()
    t = time.perf_counter()
    con.execute(
        f"COPY (SELECT * FROM read_parquet('{pq}') WHERE procedure_code IN ({codes})) "
        f"TO '{tmp / 'scan.parquet'}' (FORMAT parquet)"
    )
    scan = time.perf_counter() - t
    con.close()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(
        [sys.executable, __file__, "--child-screen", str(pq), str(tmp / "screened.parquet")],
        capture_output=True,
        text=True,
        check=True,
    )
    peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = r["seconds"] / scan
    print(
        f"duckdb: scan-and-filter {scan:.2f} s, screening {r['seconds']:.2f} s "
        f"({r['lines'] / r['seconds']:,.0f} lines/s, {r['governed']:,} governed): {ratio:.2f}x (target ≤ {DUCKDB_TARGET}x)"
    )
    print(f"duckdb: peak memory of the screening process {peak_mb:,.0f} MB (target < {MEMORY_TARGET_MB} MB)")
    misses = []
    if ratio > DUCKDB_TARGET:
        misses.append(f"duckdb ratio {ratio:.2f}")
    if peak_mb >= MEMORY_TARGET_MB:
        misses.append(f"duckdb memory {peak_mb:.0f} MB")
    if not r["balanced"]:
        misses.append("duckdb counts do not balance")
    return misses


def spark_part(pq: Path, tmp: Path) -> list[str]:
    try:
        from pyspark.sql import functions as F  # noqa: N812
    except ImportError:
        print("spark: skipped (pyspark is not installed: pip install -e '.[spark]')")
        return []
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        print("spark: skipped (no Java runtime)")
        return []
    from medpolicy.screening import screen
    from medpolicy.screening.spark_runner import local_session

    spark = local_session("local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    # Warm the JVM once on the scan itself, then time both.
    spark.read.parquet(str(pq)).filter(F.col("procedure_code").isin(*IORT_CPT)).count()
    t = time.perf_counter()
    spark.read.parquet(str(pq)).filter(F.col("procedure_code").isin(*IORT_CPT)).write.mode(
        "overwrite"
    ).parquet(str(tmp / "spark-scan"))
    scan = time.perf_counter() - t
    t = time.perf_counter()
    s = screen([pq], tmp / "spark-screened", engine="spark", spark=spark)
    took = time.perf_counter() - t
    spark.stop()
    ratio = took / scan
    print(
        f"spark local[2]: scan-and-filter {scan:.2f} s, screening {took:.2f} s "
        f"({s.lines_read / took:,.0f} lines/s): {ratio:.2f}x (target ≤ {SPARK_TARGET}x)"
    )
    return [f"spark ratio {ratio:.2f}"] if ratio > SPARK_TARGET or not s.balanced else []


def x12_part(claims: int, tmp: Path) -> list[str]:
    from medpolicy.screening.x12 import read_x12

    gen = [c for c in generate_claims(claims * 10 // 7 + 10, 1) if not c.institutional][:claims]
    path = write_x12(gen, tmp / "bench.837p", institutional=False, per_transaction=100)
    data = path.read_bytes()
    t = time.perf_counter()
    n = 0
    for seg in data.split(b"~"):
        n += len(seg.strip().split(b"*"))
    bare = time.perf_counter() - t
    lines: list[tuple[object, ...]] = []
    t = time.perf_counter()
    read = read_x12(path, lines.append, lambda e: None)
    took = time.perf_counter() - t
    rate = read / took
    print(
        f"x12: {read:,} claims ({len(lines):,} lines, {len(data) / 1e6:.1f} MB) in {took:.2f} s: "
        f"{rate:,.0f} claims/s on one core (target ≥ {X12_TARGET:,}); {took / bare:.1f}x a bare segment split"
    )
    return [f"x12 {rate:,.0f} claims/s"] if rate < X12_TARGET else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=int(os.environ.get("MEDPOLICY_SCREEN_LINES", 10_000_000)))
    ap.add_argument("--claims", type=int, default=int(os.environ.get("MEDPOLICY_X12_CLAIMS", 50_000)))
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--child-screen", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_screen:
        _child_screen(*args.child_screen)
        return 0
    misses: list[str] = []
    with tempfile.TemporaryDirectory(prefix="medpolicy-bench-") as d:
        tmp = Path(d)
        pq = write_bulk_parquet(tmp / "lines.parquet", args.lines, governed_share=0.1)
        print(f"{args.lines:,} generated lines, 10% governed")
        misses += duckdb_part(pq, tmp)
        if not args.no_spark:
            misses += spark_part(pq, tmp)
        misses += x12_part(args.claims, tmp)
    if misses:
        print("MISSED: " + "; ".join(misses))
        return 1
    print("all screening targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
