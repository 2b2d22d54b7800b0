"""``medpolicy policy check --coverage``: print a policy's criteria coverage (a face over
``medpolicy.coverage``)."""

from __future__ import annotations

import typer
from rich.console import Console

from medpolicy.coverage import coverage, report_lines
from medpolicy.errors import PolicyLoadError
from medpolicy.policy import Policy

__all__ = ["print_coverage"]


def print_coverage(policy: Policy, out: Console, err: Console) -> int:
    """Print the report; 1 when the policy's cases fall below its folder's minimum, else 0."""
    try:
        report = coverage(policy)
    except PolicyLoadError as e:
        for prob in e.problems:
            err.print(f"  {prob}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    for line in report_lines(report, width=max(60, min(out.width, 120))):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    if not report.ok:
        err.print(
            f"[red]FAIL[/] {policy.id}: coverage {report.percent:.1f}% is below the minimum "
            f"{report.minimum:g}% set in {policy.folder.name}/coverage.yaml",
            highlight=False,
        )
        return 1
    return 0
