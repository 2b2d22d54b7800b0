"""``medpolicy screen``, ``medpolicy impact`` and ``medpolicy generate-claims``: batch claims screening
from the command line (a face over ``medpolicy.screening``)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from medpolicy.errors import MedpolicyError

if TYPE_CHECKING:  # the screening stack and rich's tables load only when a command here runs
    from rich.progress import Progress, TaskID

    from medpolicy.screening.api import ImpactResult, Summary

__all__ = ["register"]

#: ``medpolicy.screening.api.FORMATS``, spelled out so that loading the CLI does not load the screening
#: stack (a test checks that the two agree).
FORMATS = ("parquet", "csv", "jsonl")

EXIT_BAD_INPUT = 2
out = Console()
err = Console(stderr=True, soft_wrap=True)

ClaimsArg = Annotated[
    list[Path], typer.Argument(help="Claim files: X12 837P/837I, FHIR NDJSON, CSV, Parquet.")
]
EngineOpt = Annotated[str, typer.Option("--engine", help="duckdb (embedded, default) or spark.")]
FormatOpt = Annotated[str, typer.Option("--format", help=f"Output format: {', '.join(FORMATS)}.")]
PolicyOpt = Annotated[
    str | None, typer.Option("--policy", help="Policy id (needed when several are loaded).")
]
StageDirOpt = Annotated[
    str | None,
    typer.Option(
        "--stage-dir",
        help="Where X12/FHIR lines are staged as Parquet for the engine (Spark on a cluster: a path or "
        "URI every executor can read, hdfs://... s3a://...); default: a local temporary folder.",
    ),
]
FactsOpt = Annotated[
    Path | None, typer.Option("--facts", help="Facts table (CSV or Parquet) by claim_id or member_id.")
]
MappingOpt = Annotated[
    str | None,
    typer.Option(
        "--mapping",
        help="Column mapping for CSV/Parquet: canonical, rif-carrier, rif-outpatient or a YAML file.",
    ),
]
PoliciesOpt = Annotated[Path | None, typer.Option("--policies", help="Folder of policy folders.")]


def _policies(root: Path | None):  # type: ignore[no-untyped-def]
    from medpolicy.policy import load_policies

    return load_policies(root)


def _print_summary(s: Summary, *, title: str = "screened") -> None:
    from rich.table import Table

    t = Table(title=f"{title}: {s.policy_id} on {s.engine}", title_justify="left")
    t.add_column("outcome")
    t.add_column("lines", justify="right")
    t.add_column("billed", justify="right")
    for outcome, (n, billed) in sorted(s.outcomes.items()):
        t.add_row(outcome, f"{n:,}", f"{billed:,.2f}")
    out.print(t)
    rate = s.lines_read / s.seconds if s.seconds else 0.0
    out.print(
        f"lines read {s.lines_read:,} = written {s.written:,} + not governed {s.not_governed:,} + "
        f"in error {s.in_error:,}",
        highlight=False,
    )
    out.print(f"{s.seconds:.2f} s, {rate:,.0f} lines/s", highlight=False)
    if s.dispositions:
        out.print(
            "dispositions: " + ", ".join(f"{k} {v:,}" for k, v in sorted(s.dispositions.items())),
            highlight=False,
        )
    if s.output:
        out.print(f"written to {s.output}", highlight=False)
    if s.errors:
        out.print(f"{len(s.errors):,} errors in {s.errors_output}", highlight=False)


class _Feedback:
    """How far a run is, on stderr: on a terminal a rich progress bar of the inputs' bytes read (X12 and
    FHIR as the readers go, CSV and Parquet once the engine has scanned them) with the stage; otherwise
    status lines (each stage, and every quarter of the bytes), which a log keeps."""

    def __init__(self, console: Console, command: str, total: int) -> None:
        self.console, self.command, self.total = console, command, max(total, 1)
        self.done, self.quarter = 0, 0
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> _Feedback:
        if self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self.task = self.bar.add_task(self.command, total=self.total)
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def stage(self, message: str) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, description=f"{self.command}: {message}")
            self.bar.refresh()
        else:
            self.console.print(f"{self.command}: {message}", highlight=False)

    def advance(self, nbytes: int) -> None:
        self.done += nbytes
        if self.bar is not None and self.task is not None:
            self.bar.update(self.task, completed=min(self.done, self.total))
            return
        quarter = min(4, self.done * 4 // self.total)
        if quarter > self.quarter:
            self.quarter = quarter
            self.console.print(
                f"{self.command}: read {self.done / 1e6:,.1f} of {self.total / 1e6:,.1f} MB "
                f"({quarter * 25}%)",
                highlight=False,
            )


def _input_bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def screen_cmd(
    claims: ClaimsArg,
    output: Annotated[Path, typer.Option("-o", "--output", help="Result file (Spark: a directory).")],
    fmt: FormatOpt = "parquet",
    engine: EngineOpt = "duckdb",
    policy: PolicyOpt = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="Apply the version in force on this date to every line.")
    ] = None,
    facts: FactsOpt = None,
    mapping: MappingOpt = None,
    validate: Annotated[
        bool, typer.Option("--validate", help="Check X12 files with pyx12 first (slow).")
    ] = False,
    keep_ungoverned: Annotated[
        bool, typer.Option("--keep-ungoverned", help="Write the lines the policy does not govern too.")
    ] = False,
    policies: PoliciesOpt = None,
    stage_dir: StageDirOpt = None,
) -> None:
    """Screen claim lines under a policy: one row per governed line (outcome, missing facts,
    disposition, CARC/RARC), errors beside it, and a summary."""
    try:
        when = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        err.print(f"[bold red]invalid_date[/] --as-of {as_of!r}: not an ISO date", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    if validate:
        from medpolicy.screening.x12 import looks_like_x12
        from medpolicy.screening.x12 import validate as x12_validate

        problems = [m for p in claims if p.is_file() and looks_like_x12(p) for m in x12_validate(p)]
        for m in problems:
            err.print(f"[bold red]invalid_x12[/] {m}", highlight=False)
        if problems:
            raise typer.Exit(EXIT_BAD_INPUT)
    from medpolicy.screening.api import ScreeningError, screen

    try:
        with _Feedback(err, "screen", _input_bytes(claims)) as feedback:
            s = screen(
                claims,
                output,
                fmt=fmt,
                engine=engine,
                policies=_policies(policies),
                policy_id=policy,
                as_of=when,
                facts=facts,
                mapping=mapping,
                keep_ungoverned=keep_ungoverned,
                stage_dir=stage_dir,
                progress=feedback.stage,
                on_bytes=feedback.advance,
            )
    except (ScreeningError, MedpolicyError) as e:
        err.print(f"[bold red]invalid_input[/] {e}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    _print_summary(s)


def impact_cmd(
    claims: ClaimsArg,
    from_: Annotated[
        str, typer.Option("--from", help="A version id, or a folder holding a proposed policy.")
    ],
    to: Annotated[str, typer.Option("--to", help="A version id, or a folder holding a proposed policy.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="The lines that change.")] = None,
    fmt: FormatOpt = "parquet",
    engine: EngineOpt = "duckdb",
    policy: PolicyOpt = None,
    facts: FactsOpt = None,
    mapping: MappingOpt = None,
    policies: PoliciesOpt = None,
    stage_dir: StageDirOpt = None,
) -> None:
    """What a policy revision would change: the same lines under two versions, as a transition table
    (lines and billed amounts) and the changed lines."""
    from medpolicy.screening.api import ScreeningError, impact

    try:
        with _Feedback(err, "impact", 2 * _input_bytes(claims)) as feedback:
            r = impact(
                claims,
                from_,
                to,
                output,
                fmt=fmt,
                engine=engine,
                policies=_policies(policies),
                policy_id=policy,
                facts=facts,
                mapping=mapping,
                stage_dir=stage_dir,
                progress=feedback.stage,
                on_bytes=feedback.advance,
            )
    except (ScreeningError, MedpolicyError) as e:
        err.print(f"[bold red]invalid_input[/] {e}", highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    _print_impact(r)


def _print_impact(r: ImpactResult) -> None:
    from rich.table import Table

    t = Table(title=f"{r.from_label} → {r.to_label}", title_justify="left")
    for c in ("from", "to", "lines", "billed"):
        t.add_column(c, justify="right" if c in ("lines", "billed") else "left")
    for a, b, n, billed in r.transitions:
        t.add_row(a, b, f"{n:,}", f"{billed:,.2f}", style=None if a == b else "bold")
    out.print(t)
    out.print(
        f"{r.changed:,} lines change" + (f", written to {r.output}" if r.output else ""), highlight=False
    )


def generate_cmd(
    folder: Annotated[Path, typer.Argument(help="Folder to write the files to.")],
    claims: Annotated[int, typer.Option("--claims", help="How many claims.")] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Write realistic IORT claim files (837P, 837I, FHIR NDJSON, CSV, RIF) and a facts table."""
    from medpolicy.screening.generator import write_all

    for kind, path in write_all(folder, claims, seed).items():
        out.print(f"{kind:6} {path}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("screen")(screen_cmd)
    app.command("impact")(impact_cmd)
    app.command("generate-claims")(generate_cmd)
