"""The `medpolicy` command as a user runs it: a real subprocess, real files, real exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

MEDPOLICY = [sys.executable, "-m", "medpolicy"]
RECTAL_T4 = {
    "date_of_service": "2024-03-01",
    "procedure_codes": ["77425"],
    "diagnosis_codes": ["C20"],
    "margin_status": "positive",
    "t_stage": "pT4b",
}


def folded(text: str) -> str:
    """Screen text without box drawing and line wrapping, as a person reads it."""
    return " ".join("".join(" " if ch in "│┃╭╮╰╯─━┏┓┗┛┡┩└┘┌┐╇┳┻┼╋┃" else ch for ch in text).split())


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    return subprocess.run(
        [*MEDPOLICY, *args], input=stdin, capture_output=True, text=True, env=env, check=False
    )


def test_decide_a_json_file_prints_a_readable_determination(tmp_path: Path) -> None:
    f = tmp_path / "case.json"
    f.write_text(json.dumps(RECTAL_T4))
    r = run("decide", str(f))
    assert r.returncode == 0, r.stderr
    assert "MEDICALLY NECESSARY" in r.stdout
    # each deciding criterion, then the sentence of the policy it implements
    assert (
        "[met] Rectal cancer with positive or close margins with T4 lesions or recurrent disease "
        "\u201cRectal cancer with positive or close margins with T4 lesions or recurrent disease.\u201d"
        in folded(r.stdout)
    )
    assert "version 2009-10-06" in r.stdout


def test_decide_from_stdin_as_json() -> None:
    r = run("decide", "--json", stdin=json.dumps({**RECTAL_T4, "t_stage": None}))
    assert r.returncode == 0
    d = json.loads(r.stdout)
    assert d["outcome"] == "information_needed"
    assert [m["name"] for m in d["missing_facts"]] == ["t_stage", "recurrent"]


def test_bad_input_exits_2_and_names_field_value_and_why() -> None:
    r = run("decide", stdin=json.dumps({**RECTAL_T4, "diagnosis_codes": ["C20", "C99.9"]}))
    assert r.returncode == 2
    assert "diagnosis_codes[1]: not an ICD-10-CM code (value 'C99.9') [unknown_code]" in r.stderr


def test_bad_input_as_json_has_the_error_shape() -> None:
    r = run("decide", "--json", stdin=json.dumps({**RECTAL_T4, "margin_distance_mm": -2}))
    assert r.returncode == 2
    err = json.loads(r.stdout)["error"]
    assert err["code"] == "invalid_case"
    assert err["errors"] == [
        {"code": "out_of_range", "field": "margin_distance_mm", "value": -2, "message": "must be at least 0"}
    ]


def test_unreadable_json_exits_2() -> None:
    r = run("decide", stdin="{not json")
    assert r.returncode == 2
    assert "invalid_json" in r.stderr


def test_explain_prints_the_whole_tree_with_values() -> None:
    r = run("explain", stdin=json.dumps({**RECTAL_T4, "t_stage": "pT3"}))
    assert r.returncode == 0
    assert "[met] rectal-cancer" in r.stdout
    assert "[not met] t4-lesion" in r.stdout
    assert "[unknown] recurrent-disease" in r.stdout
    assert "\u201cT4 lesions\u201d" in r.stdout


def test_jsonl_in_jsonl_out_one_line_per_case_with_errors_in_place(tmp_path: Path) -> None:
    src = tmp_path / "cases.jsonl"
    lines = [
        json.dumps({**RECTAL_T4, "id": "a"}),
        json.dumps({**RECTAL_T4, "id": "b", "diagnosis_codes": ["C18"]}),
        "{oops",
        json.dumps({**RECTAL_T4, "id": "d", "diagnosis_codes": ["C25.0"], "t_stage": "pT4"}),
    ]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    r = run("decide", str(src), "-o", str(out))
    assert r.returncode == 2  # some lines were bad input
    got = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(got) == 4
    assert got[0]["outcome"] == "medically_necessary"
    assert got[0]["case"] == {"id": "a"}
    assert got[1]["error"]["errors"][0]["code"] == "non_billable_code"
    assert got[1]["id"] == "b"
    assert got[2]["error"]["code"] == "invalid_json"
    assert got[2]["line"] == 3
    assert got[3]["outcome"] == "investigational"


def test_jsonl_all_good_exits_0(tmp_path: Path) -> None:
    src = tmp_path / "cases.jsonl"
    src.write_text(json.dumps(RECTAL_T4) + "\n")
    r = run("decide", str(src))
    assert r.returncode == 0
    assert json.loads(r.stdout)["outcome"] == "medically_necessary"


def test_policy_list_show_and_check() -> None:
    r = run("policy", "list")
    assert r.returncode == 0
    assert "bluekc-iort" in r.stdout
    r = run("policy", "show", "bluekc-iort")
    assert r.returncode == 0
    for text in (
        "1988-10-01",
        "2009-10-06",
        "77424",
        "77425",
        "77469",
        "IORT delivery by electron beam",
        "rectal-margins-t4-or-recurrent",
        "close_margin_max_mm",
    ):
        assert text in r.stdout
    r = run("policy", "check")
    assert r.returncode == 0
    assert "citations verified verbatim" in r.stdout
    assert "cases pass" in r.stdout


def test_policy_show_unknown_id_exits_2() -> None:
    r = run("policy", "show", "nope")
    assert r.returncode == 2
    assert "policy_not_found" in r.stderr


def test_help_documents_exit_codes() -> None:
    r = run("--help")
    assert r.returncode == 0
    assert "Exit codes: 0 decided" in r.stdout
    assert "2 bad input" in r.stdout


@pytest.mark.parametrize("missing", ["nope.json"])
def test_missing_file_exits_2(missing: str) -> None:
    assert run("decide", missing).returncode == 2


def test_user_add_creates_an_account_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    env_args = (
        "user",
        "add",
        "nora",
        "--role",
        "nurse",
        "--database-url",
        url,
        "--password",
        "a-long-enough-password",
    )
    first = run(*env_args)
    assert first.returncode == 0, first.stderr
    assert "created nurse account 'nora'" in first.stdout
    again = run(*env_args)
    assert again.returncode == 2
    assert "user_exists" in again.stderr
    weak = run("user", "add", "bob", "--role", "nurse", "--database-url", url, "--password", "short")
    assert weak.returncode == 2
    assert "weak_password" in weak.stderr


def test_decide_and_explain_keep_every_cited_sentence_readable_at_80_columns(tmp_path: Path) -> None:
    """No column collapses to an ellipsis: at 80 columns every line fits and every cited sentence of
    the applied version is there in full."""
    f = tmp_path / "case.json"
    f.write_text(json.dumps({**RECTAL_T4, "t_stage": "pT3", "recurrent": False}))
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}
    r = subprocess.run(
        [*MEDPOLICY, "decide", str(f), "--explain"], capture_output=True, text=True, env=env, check=False
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines)
    assert "\u2026" not in r.stdout
    text = " ".join(r.stdout.split())
    for cite in (
        "\u201cUse of intraoperative radiation therapy is considered investigational for all other "
        "oncologic applications.\u201d",
        "\u201cRectal cancer with positive or close margins with T4 lesions or recurrent disease.\u201d",
        "\u201cT4 lesions\u201d",
        "\u201crecurrent disease\u201d",
        "\u201cBilling Coding/Physician Documentation Information\u201d",
    ):
        assert cite in text
    # the reason: the facts it rests on, and the note that the policy's own wording is broader
    assert "T stage: pT3 (given)" in text
    assert "[policy_text_broader]" in text


def test_the_screen_commands_offer_the_screening_formats() -> None:
    from medpolicy import cli_screen
    from medpolicy.screening.api import FORMATS

    assert cli_screen.FORMATS == FORMATS  # spelled out in the CLI so start-up does not load screening


def test_deciding_does_not_load_the_other_subcommands_stacks() -> None:
    """Start-up cost: ``medpolicy decide`` on JSON lines loads neither screening nor extraction."""
    code = (
        "import sys, medpolicy.cli\n"
        "print(sorted(m for m in sys.modules if m.startswith(('medpolicy.screening', 'medpolicy.extract',"
        " 'duckdb', 'fastapi', 'sqlalchemy'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
