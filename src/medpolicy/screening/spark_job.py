"""The Spark job: ``spark-submit`` this file to screen claims on a cluster or locally.

    spark-submit --master 'local[2]' "$(python -c 'import medpolicy.screening.spark_job as j; print(j.__file__)')" \\
        claims.parquet -o result.parquet [--facts facts.parquet] [--policy bluekc-iort] [--mapping rif-carrier]

On a cluster, give inputs every executor can read (a shared file system or object store) and install
medpolicy on the driver (the executors run only SQL). X12 and FHIR files are read on the driver: give
``--stage-dir`` on shared storage (``hdfs:///tmp/medpolicy``, ``s3a://bucket/stage``) for the lines read
from them, staged there as Parquet for the executors (removed after the run). Prints the run's summary as one JSON line.
"""

from __future__ import annotations

import argparse
import sys

import orjson

from medpolicy.screening.api import FORMATS, screen

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="medpolicy-spark-screen", description=__doc__.split("\n\n")[0])
    ap.add_argument("claims", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--format", default="parquet", choices=FORMATS)
    ap.add_argument("--policy")
    ap.add_argument("--facts")
    ap.add_argument("--mapping")
    ap.add_argument(
        "--stage-dir",
        help="where X12/FHIR lines are staged as Parquet: a path or URI every executor can read",
    )
    args = ap.parse_args(argv)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName("medpolicy-screen").getOrCreate()
    s = screen(
        args.claims,
        args.output,
        fmt=args.format,
        engine="spark",
        spark=spark,
        policy_id=args.policy,
        facts=args.facts,
        mapping=args.mapping,
        stage_dir=args.stage_dir,
    )
    print(orjson.dumps(s.to_dict()).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
