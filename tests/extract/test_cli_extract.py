"""`medpolicy extract` as a user runs it: real files, one JSON line per file, exit 2 when any file could
not be read, and no document text on standard error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

MEDPOLICY = [sys.executable, "-m", "medpolicy"]
SECRET = "Zebulon-Quartermaine"  # a patient name in a report: must never reach a log line
REPORT = f"""SURGICAL PATHOLOGY REPORT
Patient: {SECRET}
CLINICAL HISTORY: Low rectal cancer after chemoradiation.
FINAL DIAGNOSIS:
Rectum, low anterior resection: residual adenocarcinoma with treatment effect.
Circumferential margin uninvolved; tumor is 1.5 mm from the radial margin.
Tumor Site: Rectum
Primary Tumor (pT): ypT4a
"""


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160", "NO_COLOR": "1"}
    return subprocess.run([*MEDPOLICY, *args], capture_output=True, text=True, env=env, check=False)


def test_json_line_per_file_in_the_issue_shape(tmp_path: Path) -> None:
    f = tmp_path / "report.txt"
    f.write_text(REPORT)
    r = run("extract", str(f), "--json")
    assert r.returncode == 0, r.stderr
    (line,) = r.stdout.splitlines()
    got = json.loads(line)
    assert got["file"] == str(f)
    assert got["source"] == "extracted"
    assert got["facts"]["tumor_site"] == "rectum"
    assert got["facts"]["t_stage"] == ["ypT4a"]
    assert got["facts"]["margin_status"] == "close"
    assert got["facts"]["margin_distance_mm"] == 1.5
    assert got["facts"]["metastatic"] is None
    ev = got["evidence"]["t_stage"][0]
    assert REPORT[ev["start"] : ev["end"]] == ev["text"] == "ypT4a"
    assert 0 < got["confidence"]["t_stage"] <= 1


def test_bad_files_are_reported_and_the_others_go_on(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text(REPORT)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "image.bin"
    binary.write_bytes(bytes(range(256)) * 50)
    r = run("extract", str(empty), str(binary), str(tmp_path / "missing.txt"), str(good), "--json")
    assert r.returncode == 2
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x.get("error", {}).get("code") for x in lines] == [
        "empty_document",
        "binary_file",
        "cannot_read",
        None,
    ]
    assert lines[3]["facts"]["t_stage"] == ["ypT4a"]
    assert "empty_document" in r.stderr
    assert SECRET not in r.stderr


def test_a_large_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as fh:
        fh.truncate(50 * 1024 * 1024)
    r = run("extract", str(big), "--json")
    assert r.returncode == 2
    assert json.loads(r.stdout)["error"]["code"] == "too_large"


def test_human_output_shows_values_and_evidence(tmp_path: Path) -> None:
    f = tmp_path / "report.txt"
    f.write_text(REPORT)
    r = run("extract", str(f))
    assert r.returncode == 0, r.stderr
    assert "ypT4a" in r.stdout
    assert "unknown" in r.stdout  # metastatic is not stated
    assert SECRET not in r.stderr


def test_output_feeds_decide(tmp_path: Path) -> None:
    f = tmp_path / "report.txt"
    f.write_text(REPORT)
    line = run("extract", str(f), "--json").stdout
    rec = tmp_path / "extracted.json"
    rec.write_text(line)
    r = run("decide", str(rec), "--json", "--policy", "bluekc-iort")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    facts = d["facts"]
    assert facts["t_stage"]["source"] == "extracted"
    assert facts["margin_status"]["source"] == "extracted"


@pytest.mark.nlp
def test_pdfs_with_and_without_a_text_layer(
    tmp_path: Path, make_text_pdf: Callable[[list[str]], bytes], scanned_pdf: bytes
) -> None:
    good = tmp_path / "report.pdf"
    good.write_bytes(
        make_text_pdf(["FINAL DIAGNOSIS:", "Rectum, LAR: adenocarcinoma.", "Primary Tumor (pT): pT4b"])
    )
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(scanned_pdf)
    r = run("extract", str(good), str(scan), "--json")
    assert r.returncode == 2
    a, b = (json.loads(x) for x in r.stdout.splitlines())
    assert a["kind"] == "pdf"
    assert a["facts"]["t_stage"] == ["pT4b"]
    assert b["error"]["code"] == "pdf_no_text_layer"
