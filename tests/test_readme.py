"""The README's example is executed: what it promises is what the engine does."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from medpolicy import Outcome, PolicySet, decide

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def readme_case() -> dict[str, object]:
    m = re.search(r"\$ echo '(\{.*?\})' \| \.venv/bin/medpolicy decide", README, re.S)
    assert m, "the README's first example is gone"
    case = json.loads(m.group(1))
    assert isinstance(case, dict)
    return case


def test_the_readme_opens_with_the_two_commands() -> None:
    first_block = README.split("```")[1]
    assert "make run" in first_block
    assert "make test" in first_block


def test_the_first_example_asks_for_t_stage_and_recurrence(policies: PolicySet) -> None:
    d = decide(readme_case(), policies)
    assert d.outcome is Outcome.INFORMATION_NEEDED
    assert [m.name for m in d.missing_facts] == ["t_stage", "recurrent"]
    assert (
        "Information needed to decide under Intraoperative Radiation Therapy (IORT): t stage, recurrent."
        in " ".join(README.split())
    )


def test_the_variations_the_readme_describes(policies: PolicySet) -> None:
    case = readme_case()
    d = decide({**case, "t_stage": "pT4b"}, policies)
    assert d.outcome is Outcome.MEDICALLY_NECESSARY
    assert d.deciding[0].criterion.cite[0] in " ".join(README.split())
    d = decide({**case, "diagnosis_codes": ["C25.0"]}, policies)
    assert d.outcome is Outcome.INVESTIGATIONAL
    assert d.rationale is not None
    assert d.rationale.id == "pancreatic"
    d = decide({**case, "date_of_service": "2003-05-01"}, policies)
    assert d.version is not None
    assert d.version.id == "2002-09-01"


def test_every_sample_output_in_the_readme_is_the_real_output_at_80_columns() -> None:
    """Each `$ echo '<case>' | .venv/bin/medpolicy decide` block shows what the command prints at 80
    columns, line for line (trailing spaces aside)."""
    blocks = re.findall(r"```sh\n\$ echo '(\{.*?\})' \| \.venv/bin/medpolicy decide\n(.*?)```", README, re.S)
    assert len(blocks) >= 2
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"}
    for case, shown in blocks:
        run = subprocess.run(
            [sys.executable, "-m", "medpolicy", "decide"],
            input=case,
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert run.returncode == 0, run.stderr
        got = [line.rstrip() for line in run.stdout.rstrip().splitlines()]
        assert got == shown.rstrip().splitlines()
        assert max(len(line) for line in got) <= 80


def _breast_case() -> dict[str, object]:
    m = re.search(
        r"\$ echo '(\{\"date_of_service\": \"2025-09-01\".*?\})' \| \.venv/bin/medpolicy decide", README, re.S
    )
    assert m, "the README's breast example is gone"
    case = json.loads(m.group(1))
    assert isinstance(case, dict)
    return case


def test_the_breast_case_under_the_commercial_and_the_medicare_advantage_policy(policies: PolicySet) -> None:
    case = _breast_case()
    commercial = decide(case, policies)
    assert commercial.policy.id == "example-iort-commercial"
    assert commercial.outcome is Outcome.INFORMATION_NEEDED
    assert " ".join(commercial.summary.split()) in " ".join(README.split())  # wrapped at 80 columns
    ma = decide(
        {**{k: v for k, v in case.items() if k != "group"}, "line_of_business": "medicare_advantage"},
        policies,
    )
    assert ma.policy.id == "example-iort-medicare-advantage"
    assert ma.outcome is Outcome.MEDICALLY_NECESSARY
    assert "A covered indication, with a diagnosis code the billing article lists" in README
    assert ma.case.display["age"] == 67
