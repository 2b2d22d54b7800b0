"""The Spark runner: the same generated SQL on Spark SQL (``pip install 'medpolicy[spark]'``, Java 17+).

On a user's SparkSession (``screen(..., engine="spark", spark=session)``) or a local one. Every table the
run builds is checkpointed (``localCheckpoint``), so a stage is computed once. Outputs are Spark's own:
a directory of part files at the output path.
"""

from __future__ import annotations

import csv
import itertools
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from medpolicy.screening.sqlgen import SPARK, Dialect

__all__ = ["SparkRunner", "local_session"]

#: Staged lines sent to the executors at a time (``SparkRunner.stage``).
STAGE_BATCH = 200_000
_TYPES = {"STRING": "STRING", "INT": "INT", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE"}


def local_session(master: str = "local[2]", driver_memory: str = "2g") -> Any:
    """A small local SparkSession (UI off, few shuffle partitions: screening tables are small).

    ``driver_memory``: in local mode the driver's JVM runs the tasks too, and Spark's default heap (1 GB)
    spends much of a 10M-line run collecting garbage (the governed lines are held in memory between
    steps): 2 GB made it 1.6x faster (65 s -> 40 s, ``docs/screening.md``). It applies when this call
    starts the JVM (not to a session already running)."""
    from pyspark.sql import SparkSession

    return (
        SparkSession.builder.master(master)
        .config("spark.driver.memory", driver_memory)
        .appName("medpolicy-screen")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )


class SparkRunner:
    dialect: Dialect = SPARK
    name = "spark"

    def __init__(self, spark: Any = None) -> None:
        self.spark = spark or local_session()
        self._tables: dict[str, Any] = {}

    def close(self) -> None:
        for df in self._tables.values():
            df.unpersist()
        self._tables.clear()

    def register_csv(self, view: str, path: Path, delimiter: str) -> None:
        df = (
            self.spark.read.option("header", "true")
            .option("sep", delimiter)
            .option("quote", '"')
            .option("escape", '"')
            .option("nullValue", "\\N")
            .csv(str(path))
        )
        df.createOrReplaceTempView(view)

    def register_parquet(self, view: str, path: Path | str) -> None:
        self.spark.read.parquet(str(path)).createOrReplaceTempView(view)

    def stage(self, staged_csv: Path, dest: str, batch: int = STAGE_BATCH) -> None:
        """The staged lines (a CSV on the driver's disk, which executors on a cluster cannot read) written
        as Parquet at ``dest`` (a path or URI every executor can read: ``hdfs://``, ``s3a://``, a shared
        mount): read on the driver ``batch`` rows at a time, each batch sent to the executors and
        appended, so the driver holds one batch. Every column is text, as in the staged CSV."""
        with open(staged_csv, newline="", encoding="utf-8") as fh:
            rows = csv.reader(fh)
            header = next(rows)
            ddl = ", ".join(f"`{c}` STRING" for c in header)
            mode = "overwrite"
            while True:
                chunk = [tuple(v if v != "" else None for v in row) for row in itertools.islice(rows, batch)]
                if chunk or mode == "overwrite":  # an empty staging still writes its schema
                    self.spark.createDataFrame(chunk, ddl).write.mode(mode).parquet(dest)
                    mode = "append"
                if len(chunk) < batch:
                    return

    def remove(self, dest: str) -> None:
        """Delete the staged Parquet at ``dest`` (through Hadoop's file system: any URI Spark writes)."""
        jvm = self.spark.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(dest)
        path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration()).delete(path, True)

    def columns(self, view: str) -> list[str]:
        return list(self.spark.table(view).columns)

    def load(self, name: str, schema: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]) -> None:
        """A small table the driver computed (a value's classes, a key's result): marked for broadcast,
        so each join with it is a hash lookup in every task, not a shuffle of the claim lines (Spark
        knows no size for data made on the driver and would otherwise sort-merge join)."""
        from pyspark.sql import functions as F  # noqa: N812

        ddl = ", ".join(f"{c} {_TYPES[t]}" for c, t in schema)
        data = [tuple(r) for r in rows]
        df = F.broadcast(self.spark.createDataFrame(data, ddl))
        df.createOrReplaceTempView(name)

    def create(self, name: str, sql: str, *, materialize: bool = True) -> None:
        df = self.spark.sql(sql)
        if materialize:
            df = df.localCheckpoint()
            self._tables[name] = df
        df.createOrReplaceTempView(name)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.spark.sql(sql).collect()]

    def write(self, sql: str, path: Path, fmt: str) -> None:
        df = self.spark.sql(sql)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        w = df.write.mode("overwrite")
        if fmt == "parquet":
            w.parquet(str(path))
        elif fmt == "csv":
            w.option("header", "true").csv(str(path))
        else:
            w.json(str(path))
