"""``medpolicy screen`` / ``impact`` tell how far they are: a progress bar on a terminal, status lines
otherwise."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

import medpolicy.cli_screen as cli_screen
from medpolicy.cli import app
from medpolicy.screening.generator import write_all


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_all(tmp_path_factory.mktemp("claims"), 120, 3)


def _mb(*paths: Path) -> str:
    return f"{sum(p.stat().st_size for p in paths) / 1e6:,.1f}"


def test_status_lines_when_not_a_terminal(generated: dict[str, Path], tmp_path: Path) -> None:
    files = [generated["837p"], generated["fhir"], generated["csv"]]
    res = CliRunner().invoke(app, ["screen", *map(str, files), "-o", str(tmp_path / "r.parquet")])
    assert res.exit_code == 0, res.output
    for stage in ("screen: reading claims", "screen: screening", "screen: writing"):
        assert stage in res.output
    # every byte of every input is counted, the CSV's once the engine has read it
    assert f"screen: read {_mb(*files)} of {_mb(*files)} MB (100%)" in res.output
    assert "\x1b[" not in res.output  # no terminal control codes in a log


def test_impact_counts_the_inputs_once_per_side(generated: dict[str, Path]) -> None:
    csv = generated["csv"]
    res = CliRunner().invoke(app, ["impact", str(csv), "--from", "2002-09-01", "--to", "2009-10-06"])
    assert res.exit_code == 0, res.output
    assert f"impact: read {_mb(csv)} of {_mb(csv, csv)} MB (50%)" in res.output
    assert "(100%)" in res.output


def test_a_progress_bar_on_a_terminal(
    generated: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    screen_out = io.StringIO()
    monkeypatch.setattr(cli_screen, "err", Console(file=screen_out, force_terminal=True, width=120))
    res = CliRunner().invoke(app, ["screen", str(generated["837p"]), "-o", str(tmp_path / "r.parquet")])
    assert res.exit_code == 0, res.output
    shown = screen_out.getvalue()
    assert "screen: reading claims" in shown
    assert "━" in shown  # the bar
    assert "\x1b[" in shown  # drawn in place, then cleared (transient)
    assert re.search(r"(\d+\.\d)/\1 kB", shown)  # bytes read of the input's, up to all of them
    assert "MB (" not in shown  # no status lines on a terminal
    assert "lines read" in res.output  # the summary still goes to stdout
