"""The CLI reads input with the service's strict loader: malformed input exits 2 (bad input), never
1 (internal error), and `--json` never prints a bare NaN."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CASE = '{"date_of_service": "2024-03-04", "procedure_codes": ["77425"], "diagnosis_codes": ["C20"], %s}'

BAD = {
    "huge_int": CASE % ('"margin_distance_mm": 1' + "0" * 400),
    "huge_id": CASE % '"id": 18446744073709551616',
    "surrogate": CASE % '"tumor_site": "\\ud800"',
    "nan": CASE % '"margin_distance_mm": NaN',
    "1e999": CASE % '"margin_distance_mm": 1e999',
    "duplicate": CASE % '"tumor_site": "rectum", "tumor_site": "colon"',
    "deep": CASE % ('"label": ' + "[" * 10_000 + "]" * 10_000),
}


def medpolicy(*args: str, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "medpolicy", *args], input=stdin, capture_output=True, timeout=120
    )


@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_json_exits_2_with_and_without_json_output(name: str) -> None:
    for flags in ((), ("--json",)):
        result = medpolicy("decide", *flags, "-", stdin=BAD[name].encode())
        assert result.returncode == 2, result.stderr.decode()[-500:]
        assert b"invalid_json" in result.stderr
        assert b"internal error" not in result.stderr


def test_invalid_utf8_exits_2() -> None:
    result = medpolicy("decide", "--json", "-", stdin=(CASE % '"label": "\xff"').encode("latin-1"))
    assert result.returncode == 2
    assert b"UTF-8" in result.stderr


def test_json_lines_with_malformed_lines_exit_2_and_print_strict_json(tmp_path: Path) -> None:
    good = CASE % '"id": "ok"'
    lines = [good, BAD["nan"], BAD["huge_int"], BAD["surrogate"], BAD["duplicate"], good]
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = medpolicy("decide", str(path), stdin=b"")
    assert result.returncode == 2
    out = result.stdout.decode()
    parsed = [
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c}")) for line in out.splitlines()
    ]
    assert len(parsed) == 6
    assert [p.get("error", {}).get("code") for p in parsed[1:5]] == ["invalid_json"] * 4
