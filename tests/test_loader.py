"""Loading a policy checks the whole file: schema, facts, operators, code lists and verbatim citations,
and reports each problem with file and line. `medpolicy policy check` fails loudly on them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from medpolicy import Policy, PolicyLoadError, load_policies, load_policy
from medpolicy.cli import app

SRC = Path(__file__).resolve().parents[1] / "policies" / "bluekc-iort"


def _copy(tmp_path: Path, old: str, new: str) -> Path:
    root = tmp_path / "policies"
    dest = root / "bluekc-iort"
    shutil.copytree(SRC, dest)
    f = dest / "policy.yaml"
    text = f.read_text()
    assert old in text, old
    f.write_text(text.replace(old, new, 1))
    return root


def _problems(root: Path) -> list[str]:
    with pytest.raises(PolicyLoadError) as e:
        load_policies(root)
    return [str(p) for p in e.value.problems]


def _line_of(root: Path, needle: str) -> int:
    lines = (root / "bluekc-iort" / "policy.yaml").read_text().splitlines()
    return next(i for i, ln in enumerate(lines, 1) if needle in ln)


def test_the_real_policy_loads_with_every_citation_verbatim(iort: Policy) -> None:
    folded = " ".join(iort.source_text.split())
    cites = [c for v in iort.versions for crit in v.criteria() for c in crit.cite]
    assert len(cites) >= 15
    assert all(c in folded for c in cites)


def test_a_citation_not_in_the_source_is_a_load_error_with_file_and_line(tmp_path: Path) -> None:
    root = _copy(tmp_path, "cite: positive or close margins", "cite: positive or very close margins")
    probs = _problems(root)
    line = _line_of(root, "cite: positive or very close margins")
    assert probs == [
        f"{root / 'bluekc-iort' / 'policy.yaml'}:{line}: citation not found verbatim in the source document: "
        "'positive or very close margins'"
    ]


def test_policy_check_fails_loudly_on_a_wrong_citation(tmp_path: Path) -> None:
    root = _copy(tmp_path, "cite: T4 lesions\n", "cite: T4 tumours\n")
    result = CliRunner().invoke(app, ["policy", "check", "--policies", str(root)])
    assert result.exit_code == 2
    assert "citation not found verbatim in the source document: 'T4 tumours'" in result.output


def test_an_unknown_fact_is_a_load_error(tmp_path: Path) -> None:
    root = _copy(tmp_path, "fact: margin_status\n", "fact: margin_state\n")
    assert any("reads unknown fact 'margin_state'" in p for p in _problems(root))


def test_an_operator_of_the_wrong_type_is_a_load_error(tmp_path: Path) -> None:
    root = _copy(
        tmp_path,
        "fact: recurrent\n                  is: true",
        "fact: recurrent\n                  in: [yes]",
    )
    assert any("operator 'in' does not apply to boolean fact 'recurrent'" in p for p in _problems(root))


def test_a_value_the_fact_does_not_declare_is_a_load_error(tmp_path: Path) -> None:
    root = _copy(tmp_path, "in: [close, positive, gross_residual]", "in: [close, positive, R2]")
    assert any("['R2'] not among the values of 'margin_status'" in p for p in _problems(root))


def test_an_unknown_icd10_code_in_a_code_list_is_a_load_error(tmp_path: Path) -> None:
    root = _copy(tmp_path, "codes: [C20]", "codes: [C20.9]")
    assert any("'C20.9' is not an ICD-10-CM code, block or range" in p for p in _problems(root))


def test_an_unknown_key_is_a_schema_error_with_its_line(tmp_path: Path) -> None:
    root = _copy(tmp_path, "prior_authorization: true", "prior_authorisation: true")
    probs = _problems(root)
    assert any(p.endswith("prior_authorisation: extra inputs are not permitted") for p in probs)
    assert any(f":{_line_of(root, 'prior_authorisation')}:" in p for p in probs)


def test_versions_out_of_order_are_a_load_error(tmp_path: Path) -> None:
    root = _copy(tmp_path, "effective_from: 2004-09-01", "effective_from: 2001-09-01")
    assert any("versions must be in order of effective_from" in p for p in _problems(root))


def test_a_missing_rationale_heading_is_a_load_error(tmp_path: Path) -> None:
    root = _copy(tmp_path, "heading: Glioma}", "heading: Gliomas}")
    assert any("heading 'Gliomas' is not a line of the source" in p for p in _problems(root))


def test_rationale_sections_hold_what_the_policy_says_about_each_indication(iort: Policy) -> None:
    assert set(iort.rationale) >= {
        "colorectal",
        "gastric",
        "sarcoma",
        "gynecologic",
        "head_and_neck",
        "pancreatic",
        "renal_cell",
        "glioma",
        "neuroblastoma",
        "fibromatosis",
        "guidelines",
    }
    assert "Evaluation of IORT for pancreatic cancer" not in iort.rationale["pancreatic"].text[:0]
    assert "NCCN guidelines for treatment of rectal cancer" in iort.rationale["guidelines"].text
    assert "Gastric Cancer" not in iort.rationale["colorectal"].text


def test_billing_codes_carry_our_own_labels_not_ama_descriptors(iort: Policy) -> None:
    labels = iort.governs.labels
    assert set(labels) == {"77424", "77425", "77469"}
    # The AMA descriptors appear in the source; our labels must not repeat them.
    for label in labels.values():
        assert label not in iort.source_text
        assert "treatment delivery" not in label.lower()


def test_load_policy_reads_one_folder() -> None:
    p = load_policy(SRC)
    assert [v.id for v in p.versions] == ["1988-10-01", "2002-09-01", "2004-09-01", "2009-10-06"]
    assert [str(v.effective_to) for v in p.versions] == ["2002-08-31", "2004-08-31", "2009-10-05", "None"]


def test_a_yaml_syntax_error_is_a_load_error_naming_the_file_and_line(tmp_path: Path) -> None:
    root = _copy(tmp_path, "prior_authorization: true", "prior_authorization: [true")
    probs = _problems(root)
    assert len(probs) == 1
    assert "policy.yaml" in probs[0]
    assert "cannot read policy file" in probs[0]
    assert f"line {_line_of(root, 'prior_authorization')}" in probs[0]


def test_a_yaml_tag_that_would_build_an_object_is_refused(tmp_path: Path) -> None:
    root = _copy(tmp_path, "prior_authorization: true", "prior_authorization: !!python/name:os.getcwd ''")
    probs = _problems(root)
    assert len(probs) == 1
    assert "could not determine a constructor" in probs[0]
