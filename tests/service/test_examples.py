"""docs/examples/README.md: each curl command, run as written against a live server."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from medpolicy.service import testing as service_testing

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "docs" / "examples" / "README.md"


def commands() -> dict[str, str]:
    """The README's curl commands by the operation they call."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    found = {}
    for block in blocks:
        if block.lstrip().startswith("curl"):
            operation = re.search(r"/fhir/[A-Za-z]+/\\\$([a-z-]+)", block)
            assert operation is not None, block
            found[operation.group(1)] = block.replace("\\\n", " ")
    return found


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service_testing.LiveServer]:
    with service_testing.running_server(
        service_testing.settings_for_tests(tmp_path_factory.mktemp("ex"))
    ) as s:
        yield s


def run(server: service_testing.LiveServer, operation: str) -> dict[str, object]:
    if shutil.which("curl") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("curl is needed to run the documented examples")
        pytest.skip("curl is not installed")
    env = {**os.environ, "MP": server.base_url, "TOKEN": service_testing.SUBMITTER_TOKEN}
    proc = subprocess.run(
        ["/bin/sh", "-c", commands()[operation].strip() + " -w '\\n%{http_code}'"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    body, _, status = proc.stdout.rpartition("\n")
    assert status == "200", body
    answer: dict[str, object] = json.loads(body)
    return answer


def test_the_readme_documents_the_four_operations() -> None:
    assert set(commands()) == {"questionnaire-package", "next-question", "submit", "inquire"}


def test_questionnaire_package_example(server: service_testing.LiveServer) -> None:
    answer = run(server, "questionnaire-package")
    assert [p["name"] for p in answer["parameter"]] == ["PackageBundle"]  # type: ignore[index]


def test_next_question_example(server: service_testing.LiveServer) -> None:
    answer = run(server, "next-question")
    qr = answer["parameter"][0]["resource"]  # type: ignore[index]
    assert qr["status"] == "in-progress"
    assert qr["contained"][0]["item"], "the first question is asked"


def test_pas_submit_then_inquire_examples(server: service_testing.LiveServer) -> None:
    submitted = run(server, "submit")
    response = submitted["entry"][0]["resource"]  # type: ignore[index]
    action = response["item"][0]["adjudication"][0]["extension"][0]["extension"]
    code = next(e for e in action if e["url"].endswith("reviewActionCode"))
    assert code["valueCodeableConcept"]["coding"][0]["code"] == "A4"  # pended: the margin is needed
    inquired = run(server, "inquire")
    assert inquired["entry"][0]["resource"]["request"]  # type: ignore[index]
    assert inquired["entry"][0]["resource"]["item"][0]["itemSequence"] == 1  # type: ignore[index]
