"""``medpolicy extract FILE...``: propose case facts from pathology, operative and imaging reports.

Each file is read on its own: one that cannot be read (missing, empty, binary, a PDF with no text layer,
too large) gets an error line and the others go on; the exit code is 2 when any file could not be read.
With ``--json``, one JSON object per file per line (see :mod:`medpolicy.extract.pipeline`); its
``facts`` are in the policy's case vocabulary, so ``medpolicy decide`` takes the line as it is. Nothing
of a document's text is written to standard error: error lines name the file and a code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console

if TYPE_CHECKING:
    from rich.table import Table

__all__ = ["extract_cmd", "register"]

_err = Console(stderr=True, soft_wrap=True)
_out = Console(soft_wrap=True)


def _read(path: str) -> tuple[bytes | None, dict[str, str] | None]:
    from medpolicy.extract.documents import MAX_DOCUMENT_BYTES  # the extraction stack loads only here

    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            return None, {
                "code": "too_large",
                "message": f"the file is {size:,} bytes; at most {MAX_DOCUMENT_BYTES:,} are read",
            }
        return p.read_bytes(), None
    except IsADirectoryError:
        return None, {"code": "not_a_file", "message": "a directory, not a file"}
    except OSError as e:
        return None, {"code": "cannot_read", "message": e.strerror or type(e).__name__}


def extract_cmd(
    files: Annotated[
        list[str], typer.Argument(metavar="FILE", help="Report files: text (any common encoding) or PDF.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per file per line.")] = False,
) -> None:
    """Propose IORT case facts (site, T category, margins, recurrence, metastases) from reports, each
    with the words it was read from. Facts are proposals (source: extracted) for a person to confirm."""
    from medpolicy.extract.pipeline import extraction_record

    failed = False
    for path in files:
        data, problem = _read(path)
        record: dict[str, Any]
        if data is None:
            record = {"file": path, "error": problem, "warnings": []}
        else:
            record = extraction_record(data, name=path)
        if "error" in record:
            failed = True
            _err.print(
                f"[bold red]{record['error']['code']}[/] {path}: {record['error']['message']}",
                markup=True,
                highlight=False,
            )
        elif not as_json:
            for w in record["warnings"]:
                _err.print(f"[yellow]{w['code']}[/] {path}: {w['message']}", highlight=False)
        if as_json:
            sys.stdout.write(orjson.dumps(record).decode() + "\n")
        elif "error" not in record:
            _out.print(_table(record))
    sys.stdout.flush()
    if failed:
        raise typer.Exit(2)


def _table(record: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title=f"{record['file']} ({record['kind']}, {record['engine']})", title_justify="left")
    table.add_column("fact")
    table.add_column("value")
    table.add_column("confidence", justify="right")
    table.add_column("evidence")
    for name, value in record["facts"].items():
        ev = record["evidence"].get(name, [])
        shown = "; ".join(f"{e['section']}: {' '.join(e['text'].split())[:60]}" for e in ev[:2])
        conf = record["confidence"].get(name)
        table.add_row(
            name, "unknown" if value is None else str(value), "" if conf is None else f"{conf:.2f}", shown
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("extract")(extract_cmd)
