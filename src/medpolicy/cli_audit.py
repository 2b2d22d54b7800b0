"""`medpolicy audit verify`: walk the store's hash chains and name the first broken link.

Exit codes: 0 every chain verifies; 3 a chain is broken (tampering, or rows written outside the
store); 2 the database cannot be read as a medpolicy store at the current schema.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

EXIT_OK, EXIT_BAD_INPUT, EXIT_BROKEN = 0, 2, 3

audit_app = typer.Typer(help="The audit trail's tamper evidence.", no_args_is_help=True)
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)


def _expectations(values: list[str]) -> dict[str, tuple[int, str]]:
    expect: dict[str, tuple[int, str]] = {}
    for value in values:
        table, _, rest = value.partition(":")
        length, _, digest = rest.partition(":")
        if not (table and length.isdigit() and len(digest) == 64):
            err.print(f"[bold red]invalid_head[/] {value!r}: give TABLE:LENGTH:HASH, as verify prints it")
            raise typer.Exit(EXIT_BAD_INPUT)
        expect[table] = (int(length), digest)
    return expect


@audit_app.command("verify")
def verify(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url", help="SQLAlchemy URL (default: $DATABASE_URL, else SQLite under ./data)."
        ),
    ] = None,
    expect_head: Annotated[
        list[str] | None,
        typer.Option(
            "--expect-head",
            help="TABLE:LENGTH:HASH recorded from an earlier run: the chain must still extend it.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Walk every hash chain of the audit trail (events, reads, determinations); name the first
    broken link. Prints each chain's head (TABLE:LENGTH:HASH): record it elsewhere to check later."""
    from sqlalchemy.exc import SQLAlchemyError

    from medpolicy.service.settings import Settings
    from medpolicy.store import audit_chain
    from medpolicy.store.db import make_engine

    expect = _expectations(expect_head or [])
    url = database_url or Settings.from_env().resolved_database_url
    engine = make_engine(url)
    try:
        reports = audit_chain.verify(engine, expect=expect)
    except SQLAlchemyError as exc:
        err.print(f"[bold red]unreadable_store[/] the audit tables cannot be read ({type(exc).__name__})")
        raise typer.Exit(EXIT_BAD_INPUT) from None
    finally:
        engine.dispose()
    broken = [r for r in reports if not r.ok]
    if as_json:
        print(
            json.dumps(
                {
                    "ok": not broken,
                    "chains": [
                        {
                            "table": r.table,
                            "length": r.length,
                            "head": r.head,
                            "broken": None if r.broken is None else str(r.broken),
                        }
                        for r in reports
                    ],
                }
            )
        )
    else:
        for r in reports:
            state = "[green]ok[/]" if r.ok else "[bold red]BROKEN[/]"
            out.print(f"{state} {r.table}:{r.length}:{r.head}")
            if r.broken is not None:
                out.print(f"  first broken link: {r.broken}")
    raise typer.Exit(EXIT_BROKEN if broken else EXIT_OK)
