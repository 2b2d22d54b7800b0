"""The DuckDB runner (the default engine): embedded, streaming, spills to disk past its memory limit."""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from medpolicy.screening.sqlgen import DUCKDB, Dialect

__all__ = ["DuckDBRunner"]

_TYPES = {"STRING": "VARCHAR", "INT": "INTEGER", "BIGINT": "BIGINT", "DOUBLE": "DOUBLE"}
NULL = "\\N"


class DuckDBRunner:
    """Runs the generated SQL in an in-process DuckDB (a fresh in-memory database unless ``con`` is given)."""

    dialect: Dialect = DUCKDB
    name = "duckdb"

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection | None = None,
        *,
        threads: int | None = None,
        memory_limit: str | None = "1GB",
    ) -> None:
        self.con = con or duckdb.connect()
        self._tmp = tempfile.TemporaryDirectory(prefix="medpolicy-screen-")
        self.con.execute(f"SET temp_directory = '{self._tmp.name}'")
        if memory_limit:
            self.con.execute(f"SET memory_limit = '{memory_limit}'")
        if threads:
            self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute("SET preserve_insertion_order = false")
        self._n = 0

    def close(self) -> None:
        self._tmp.cleanup()

    # -- inputs

    def register_csv(self, view: str, path: Path, delimiter: str) -> None:
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_csv({_lit(path)}, header = true, "
            f"all_varchar = true, delim = {_lit(delimiter)}, quote = '\"', escape = '\"', nullstr = {_lit(NULL)})"
        )

    def register_parquet(self, view: str, path: Path | str) -> None:
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * FROM read_parquet({_lit(path)})")

    def stage(self, staged_csv: Path, dest: str) -> None:
        """The staged lines (a local CSV) written as one Parquet file at ``dest`` (a path DuckDB can
        write; its folder is made)."""
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        self.register_csv("mp_stage_csv", staged_csv, ",")
        self.con.execute(
            f"COPY (SELECT * FROM mp_stage_csv) TO '{_path_literal(Path(dest))}' (FORMAT parquet)"
        )

    def remove(self, dest: str) -> None:
        p = Path(dest)
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    def columns(self, view: str) -> list[str]:
        return [r[0] for r in self.con.execute(f"DESCRIBE {view}").fetchall()]

    def load(self, name: str, schema: Sequence[tuple[str, str]], rows: Iterable[Sequence[Any]]) -> None:
        """A table from Python rows (through a temporary CSV file: no pandas or Arrow needed)."""
        self._n += 1
        path = os.path.join(self._tmp.name, f"{name}-{self._n}.csv")
        n = 0
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            for row in rows:
                w.writerow([NULL if v is None else v for v in row])
                n += 1
        if not n:
            cols = ", ".join(f"{c} {_TYPES[t]}" for c, t in schema)
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({cols})")
            return
        cols = ", ".join(f"'{c}': '{_TYPES[t]}'" for c, t in schema)
        self.con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM read_csv(?, header = false, "
            f"columns = {{{cols}}}, nullstr = ?, quote = '\"', escape = '\"')",
            [path, NULL],
        )

    # -- statements

    def create(self, name: str, sql: str, *, materialize: bool = True) -> None:
        kind = "TABLE" if materialize else "VIEW"
        self.con.execute(f"CREATE OR REPLACE TEMP {kind} {name} AS {sql}")

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.con.execute(sql).fetchall()

    def write(self, sql: str, path: Path, fmt: str) -> None:
        opts = {"parquet": "FORMAT parquet", "csv": "FORMAT csv, HEADER true", "jsonl": "FORMAT json"}[fmt]
        self.con.execute(f"COPY ({sql}) TO '{_path_literal(path)}' ({opts})")


def _path_literal(path: Path) -> str:
    return str(path).replace("'", "''")


def _lit(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"
