"""Benchmark (d): batch claims screening, as ratios measured in the same run.

* DuckDB: screening N generated lines (10% governed) ÷ a plain DuckDB scan-and-filter of the same
  Parquet file for the IORT codes, written out (target ≤ 3x); peak memory of the screening process
  (target < 2 GB); lines per second.
* Spark local[2]: screening ÷ Spark's own scan-and-filter of the same file (target ≤ 5x); skipped with a
  message when pyspark or Java is missing.
  Both are warmed first on a small file (a JVM compiles Spark's code paths on first use: 10-20 s of a
  first run on this machine, whatever the size), and the scan is timed twice, its faster run the
  baseline.
* X12: the streaming reader on a generated 837P, claims per second on one core (target ≥ 20,000), and
  its time ÷ a bare split of the same file into segments and elements (the same bytes, the same run);
  also with the staging (the reader writing the staged CSV screening reads), as claims per second.

The machine's load average is printed before and after (the figures are only comparable at a like
load). Size: ``--lines N`` or ``$MEDPOLICY_SCREEN_LINES`` (default 10,000,000); ``--claims`` /
``$MEDPOLICY_X12_CLAIMS`` for the 837P (default 100,000). ``--parts duckdb,spark,x12`` (default: all)
chooses what runs; ``--no-spark`` drops Spark.
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
from collections.abc import Callable
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

    def scan_and_filter(src: Path, out: Path) -> float:
        t = time.perf_counter()
        spark.read.parquet(str(src)).filter(F.col("procedure_code").isin(*IORT_CPT)).write.mode(
            "overwrite"
        ).parquet(str(out))
        return time.perf_counter() - t

    # Warm the JVM on both code paths (a small file), then time both on the real one.
    small = write_bulk_parquet(tmp / "warm.parquet", 20_000, governed_share=0.1, seed=1)
    scan_and_filter(small, tmp / "warm-scan")
    screen([small], tmp / "warm-screened", engine="spark", spark=spark)
    scan = min(scan_and_filter(pq, tmp / "spark-scan"), scan_and_filter(pq, tmp / "spark-scan2"))
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


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is the per-core
    figure (the wall time also counts the time other processes held the core)."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def x12_part(claims: int, tmp: Path) -> list[str]:
    import csv

    from medpolicy.screening.x12 import read_x12

    gen = [c for c in generate_claims(claims * 10 // 7 + 10, 1) if not c.institutional][:claims]
    path = write_x12(gen, tmp / "bench.837p", institutional=False, per_transaction=100)
    data = path.read_bytes()

    def bare_split() -> None:
        for seg in data.split(b"~"):
            seg.strip().split(b"*")

    lines: list[tuple[object, ...]] = []
    counted: list[int] = []
    _, bare_cpu = _timed(bare_split)
    wall, cpu = _timed(lambda: counted.append(read_x12(path, lines.append, lambda e: None)))
    read = counted[0]
    with open(tmp / "staged.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        staged_wall, staged_cpu = _timed(lambda: read_x12(path, w.writerow, lambda e: None))
    rate = read / cpu
    print(
        f"x12: {read:,} claims ({len(lines):,} lines, {len(data) / 1e6:.1f} MB): {read / cpu:,.0f} claims "
        f"per CPU second (target ≥ {X12_TARGET:,}), {read / wall:,.0f}/s wall; {cpu / bare_cpu:.1f}x a bare "
        f"split of the same bytes into segments and elements ({bare_cpu:.2f} s CPU); with the staged CSV "
        f"written {read / staged_cpu:,.0f} claims per CPU second ({read / staged_wall:,.0f}/s wall)"
    )
    return [f"x12 {rate:,.0f} claims/s"] if rate < X12_TARGET else []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=int(os.environ.get("MEDPOLICY_SCREEN_LINES", 10_000_000)))
    ap.add_argument("--claims", type=int, default=int(os.environ.get("MEDPOLICY_X12_CLAIMS", 100_000)))
    ap.add_argument("--parts", default="duckdb,spark,x12")
    ap.add_argument("--no-spark", action="store_true")
    ap.add_argument("--child-screen", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_screen:
        _child_screen(*args.child_screen)
        return 0
    misses: list[str] = []
    parts = set(args.parts.split(",")) - ({"spark"} if args.no_spark else set())
    print("load average {:.2f} {:.2f} {:.2f} on {} cores".format(*os.getloadavg(), os.cpu_count()))
    with tempfile.TemporaryDirectory(prefix="medpolicy-bench-") as d:
        tmp = Path(d)
        if parts & {"duckdb", "spark"}:
            pq = write_bulk_parquet(tmp / "lines.parquet", args.lines, governed_share=0.1)
            print(f"{args.lines:,} generated lines, 10% governed")
            if "duckdb" in parts:
                misses += duckdb_part(pq, tmp)
            if "spark" in parts:
                misses += spark_part(pq, tmp)
        if "x12" in parts:
            misses += x12_part(args.claims, tmp)
    print("load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if misses:
        print("MISSED: " + "; ".join(misses))
        return 1
    print("all screening targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
