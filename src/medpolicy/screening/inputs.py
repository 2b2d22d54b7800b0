"""The inputs of a screening run: each claim file registered with the engine, X12 and FHIR lines staged.

CSV and Parquet files are read by the engine itself through a column mapping; X12 and FHIR files are
read by the streaming readers into a staged CSV on local disk, or Parquet in a ``stage_dir`` (storage a
cluster's executors can read), which the engine then reads. ``Runner`` is what an engine offers.
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from medpolicy.screening.fhir import read_fhir
from medpolicy.screening.records import STAGED_COLUMNS, Progress, ReadError
from medpolicy.screening.sqlgen import Dialect, SqlGen
from medpolicy.screening.tabular import Mapping, csv_header, guess_mapping, load_mapping, staged_mapping
from medpolicy.screening.x12 import looks_like_x12, read_x12

__all__ = ["Inputs", "Runner", "coverage_first"]


class Runner(Protocol):
    dialect: Dialect
    name: str

    def register_csv(self, view: str, path: Path, delimiter: str) -> None: ...
    def register_parquet(self, view: str, path: Path | str) -> None: ...
    def stage(self, staged_csv: Path, dest: str) -> None: ...
    def remove(self, dest: str) -> None: ...
    def columns(self, view: str) -> list[str]: ...
    def load(self, name: str, schema: Sequence[tuple[str, str]], rows: Any) -> None: ...
    def create(self, name: str, sql: str, *, materialize: bool = True) -> None: ...
    def query(self, sql: str) -> list[tuple[Any, ...]]: ...
    def write(self, sql: str, path: Path, fmt: str) -> None: ...
    def close(self) -> None: ...


class Inputs:
    """Registers each input with the runner and stages X12 and FHIR lines."""

    def __init__(self, runner: Runner, tmp: Path, on_bytes: Progress | None = None) -> None:
        self.runner = runner
        self.on_bytes = on_bytes
        self.engine_bytes = 0  # CSV/Parquet inputs: read by the engine when it screens
        self.gen = SqlGen(runner.dialect)
        self.sources: list[str] = []
        self.errors: list[ReadError] = []
        self.staged = tmp / "staged.csv"
        self._fh = open(self.staged, "w", newline="", encoding="utf-8")  # noqa: SIM115 -- closed in finish() or close()
        self._w = csv.writer(self._fh)
        self._w.writerow(STAGED_COLUMNS)
        self.staged_lines = 0
        self.reader_lines = 0
        self.views: list[str] = []  # tabular inputs, counted by the engine (Parquet: from its metadata)
        self.coverages: dict[str, str | None] = {}  # FHIR Coverage/id -> line of business
        self.staged_uri: str | None = None  # the staged Parquet (``finish(stage_dir)``)

    def _emit(self, row: tuple[Any, ...]) -> None:
        # None is written as an empty field: the staged source reads an empty field as NULL.
        self._w.writerow(row)
        self.staged_lines += 1

    def add(self, path: Path, mapping: str | None) -> None:
        suffix = path.suffix.lower()
        if not path.is_file():
            self.errors.append(ReadError(path.name, "file", "not_found", "no such file"))
            return
        if suffix in (".ndjson", ".jsonl", ".json"):
            read_fhir(path, self._emit, self.errors.append, self.coverages, self.on_bytes)
        elif suffix == ".parquet":
            self._tabular(path, load_mapping(mapping or "canonical"), parquet=True)
        elif suffix in (".csv", ".txt", ".tsv") and not looks_like_x12(path):
            header, delim = csv_header(path, load_mapping(mapping).delimiter if mapping else None)
            m = load_mapping(mapping) if mapping else guess_mapping(header)
            self._tabular(path, m.model_copy(update={"delimiter": delim}), parquet=False)
        else:
            read_x12(path, self._emit, self.errors.append, self.on_bytes)

    def _tabular(self, path: Path, m: Mapping, *, parquet: bool) -> None:
        self.engine_bytes += path.stat().st_size
        view = f"mp_src{len(self.sources)}"
        if parquet:
            self.runner.register_parquet(view, path)
        else:
            self.runner.register_csv(view, path, m.delimiter)
        header = self.runner.columns(view)
        if m.columns.line_of_business is None and "line_of_business" in header:
            # an extract carrying the line of business routes its lines (whatever the mapping)
            m = m.model_copy(
                update={"columns": m.columns.model_copy(update={"line_of_business": "line_of_business"})}
            )
        m = m.for_header(header)
        missing = m.missing(header)
        if missing:
            rows = self.runner.query(f"SELECT COUNT(*) FROM {view}")[0][0]
            self.errors.append(
                ReadError(
                    path.name,
                    "header",
                    "unknown_column",
                    f"column mapping {m.name!r} names columns the file does not have: {', '.join(missing)}",
                    lines=int(rows),
                )
            )
            self.reader_lines += int(rows)
            return
        self.sources.append(self.gen.source(view, m.source_columns(), path.name))
        self.views.append(view)

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def finish(self, stage_dir: str | None = None) -> None:
        """Register the staged lines: the local CSV, or (``stage_dir``) Parquet written there by the
        runner, which a cluster's executors can read (``staged_uri``, removed by ``screen`` after the run)."""
        self._fh.close()
        if self.staged_lines:
            view = f"mp_src{len(self.sources)}"
            if stage_dir is None:
                self.runner.register_csv(view, self.staged, ",")
            else:
                self.staged_uri = f"{stage_dir.rstrip('/')}/medpolicy-staged-{uuid.uuid4().hex}.parquet"
                self.runner.stage(self.staged, self.staged_uri)
                self.runner.register_parquet(view, self.staged_uri)
            self.sources.append(self.gen.source(view, staged_mapping().source_columns(), "staged"))
        if not self.sources:
            empty = (
                "SELECT CAST(NULL AS STRING) AS claim_id, CAST(NULL AS BIGINT) AS line_number, "
                + ", ".join(
                    f"CAST(NULL AS {t}) AS {c}"
                    for c, t in (
                        ("member_id", "STRING"),
                        ("procedure_code", "STRING"),
                        ("diagnosis_codes", "STRING"),
                        ("date_of_service", "STRING"),
                        ("billed_amount", "DOUBLE"),
                        ("source", "STRING"),
                        ("location", "STRING"),
                        ("line_of_business", "STRING"),
                    )
                )
            )
            self.sources.append(f"SELECT * FROM ({empty}) e WHERE 1 = 0")
        self.runner.create("mp_lines", self.gen.lines(self.sources), materialize=False)


def coverage_first(inputs: Sequence[Path | str]) -> list[Path]:
    """The inputs, FHIR files of Coverage resources first (a Bulk Data export's ``Coverage.ndjson``): the
    EOBs read after them find the Coverage their ``insurance`` names, whatever order they were given in."""
    paths = [Path(p) for p in inputs]

    def is_coverage(p: Path) -> bool:
        if p.suffix.lower() not in (".ndjson", ".jsonl") or not p.is_file():
            return False
        with open(p, "rb") as fh:
            first = fh.readline(1 << 16)
        try:
            doc = orjson.loads(first)
        except orjson.JSONDecodeError:
            return False
        return isinstance(doc, dict) and doc.get("resourceType") == "Coverage"

    return sorted(paths, key=lambda p: not is_coverage(p))  # stable: the others keep their order
