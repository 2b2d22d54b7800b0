"""`medpolicy decide FILE.jsonl` starts without Typer and Rich, and answers exactly as the full CLI does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from medpolicy.cli_jsonl import fast_decide

MEDPOLICY = [sys.executable, "-m", "medpolicy"]
RECTAL_T4 = {
    "date_of_service": "2024-03-01",
    "procedure_codes": ["77425"],
    "diagnosis_codes": ["C20"],
    "margin_status": "positive",
    "t_stage": "pT4b",
}
LINES = [
    json.dumps({**RECTAL_T4, "id": "a"}),
    "",
    "{oops",
    json.dumps({**RECTAL_T4, "id": "b", "diagnosis_codes": ["C18"]}),
    '{"a": 1, "a": 2}',
    "[1, 2]",
    json.dumps({**RECTAL_T4, "id": "c", "margin_status": "bogus"}),
    json.dumps({**RECTAL_T4, "id": "d", "diagnosis_codes": ["C49.A5", "C78.5"], "t_stage": None}),
    json.dumps({**RECTAL_T4, "date_of_service": "2001-01-01", "procedure_codes": ["77424"]}),
]


def run(*args: str, full_cli: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    if full_cli:
        env["FORCE_COLOR"] = ""  # makes the fast start decline; Rich still sees no terminal
    return subprocess.run([*MEDPOLICY, *args], capture_output=True, text=True, env=env, check=False)


@pytest.fixture
def cases(tmp_path: Path) -> Path:
    src = tmp_path / "cases.jsonl"
    src.write_text("\n".join(LINES) + "\n")
    return src


@pytest.mark.parametrize(
    "options",
    [(), ("--full",), ("--policy", "bluekc-iort"), ("--policy=bluekc-iort", "--full")],
    ids=["compact", "full", "policy", "policy=,full"],
)
def test_fast_start_and_full_cli_write_the_same_lines_and_exit_code(
    cases: Path, tmp_path: Path, options: tuple[str, ...]
) -> None:
    fast = run("decide", str(cases), *options)
    full = run("decide", *options, str(cases), full_cli=True)
    assert fast.returncode == full.returncode == 2  # some lines are bad input
    assert fast.stdout == full.stdout
    assert fast.stderr == full.stderr == "5 line(s) rejected as bad input (see their error lines)\n"
    assert len(fast.stdout.splitlines()) == len(LINES) - 1  # the blank line is skipped


def test_fast_start_writes_the_output_file(cases: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    r = run("decide", "-o", str(out), str(cases))
    assert r.returncode == 2
    assert r.stdout == ""
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert got[0]["outcome"] == "medically_necessary"
    assert got[0]["case"] == {"id": "a"}
    assert got[1] == {
        "line": 3,
        "error": {
            "code": "invalid_json",
            "message": "expecting property name enclosed in double quotes (at character 1)",
        },
    }
    assert got[3]["error"]["message"] == "duplicate key 'a' in one object"


def test_fast_start_loads_neither_typer_nor_rich(cases: Path) -> None:
    good = cases.with_name("good.jsonl")
    good.write_text(LINES[0] + "\n")
    r = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "medpolicy", "decide", str(good)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert "medpolicy.engine" in imported
    assert not {m for m in imported if m.split(".")[0] in ("typer", "click", "rich")}


@pytest.mark.parametrize(
    "argv",
    [
        ["decide", "case.json"],  # one case: the readable view needs Rich
        ["decide", "-"],
        ["decide", "a.jsonl", "--help"],
        ["decide", "a.jsonl", "b.jsonl"],
        ["decide", "a.jsonl", "--policy", "x", "--policy", "y"],
        ["decide", "a.jsonl", "--policy"],
        ["decide", "a.jsonl", "--json"],
        ["decide", "a.jsonl", "-o=out.jsonl"],
        ["decide", "--", "a.jsonl"],
        ["policy", "list"],
        [],
    ],
)
def test_anything_but_the_plain_jsonl_form_goes_to_the_full_cli(argv: list[str]) -> None:
    assert fast_decide(argv) is None


def test_missing_file_and_broken_policies_get_the_full_clis_message(tmp_path: Path) -> None:
    missing = run("decide", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2
    assert "cannot read" in missing.stderr
    assert "nope.jsonl" in missing.stderr
    broken = tmp_path / "policies" / "broken"
    broken.mkdir(parents=True)
    (broken / "policy.yaml").write_text("id: broken\n")
    (tmp_path / "cases.jsonl").write_text(LINES[0] + "\n")
    bad = run("decide", str(tmp_path / "cases.jsonl"), "--policies", str(tmp_path / "policies"))
    assert bad.returncode == 2
    assert "invalid policy" in bad.stderr


def test_fast_start_leaves_the_collector_on_with_start_up_frozen(cases: Path) -> None:
    """Start-up objects are kept out of collections (a speed-up), but cyclic garbage made while lines
    are decided is still collected: memory stays bounded on any number of lines."""
    code = (
        "import gc, runpy, sys\n"
        f"sys.argv = ['medpolicy', 'decide', {str(cases)!r}]\n"
        "try:\n    runpy.run_module('medpolicy', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print(e.code, gc.isenabled(), gc.get_freeze_count() > 10_000, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.stderr.splitlines()[-1] == "2 True True"


def test_fast_start_fails_as_the_full_cli_does(cases: Path, tmp_path: Path) -> None:
    """An output that cannot be written is an internal error (exit 1, said on stderr); a reader that
    leaves early (`| head`) ends the run with exit 1 and no message, as Click does."""
    for full_cli in (False, True):
        r = run("decide", str(cases), "-o", str(tmp_path), full_cli=full_cli)
        assert r.returncode == 1
        assert r.stderr.startswith("internal error IsADirectoryError"), r.stderr
    many = tmp_path / "many.jsonl"
    many.write_text((LINES[0] + "\n") * 5000)
    for full_cli in (False, True):
        env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
        if full_cli:
            env["FORCE_COLOR"] = ""
        p = subprocess.Popen(
            [*MEDPOLICY, "decide", str(many)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
        )
        assert p.stdout is not None
        p.stdout.readline()
        p.stdout.close()  # the reader leaves
        _, stderr = p.communicate()
        assert p.returncode == 1
        assert stderr == b""


@pytest.mark.parametrize("full_cli", [False, True])
def test_an_unknown_policy_is_bad_input_said_before_any_line(tmp_path: Path, full_cli: bool) -> None:
    cases = tmp_path / "cases.jsonl"
    cases.write_text(LINES[0] + "\n")
    r = run("decide", str(cases), "--policy", "nope", full_cli=full_cli)
    assert r.returncode == 2
    assert r.stdout == ""
    assert "policy_not_found" in r.stderr
    assert "'nope'" in r.stderr
    assert "internal error" not in r.stderr
