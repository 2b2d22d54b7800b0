"""What a determination carries: outcome, version, deciding criteria with citations, trace, notes,
rationale for the tumour site and, when information is needed, the questions to ask."""

from __future__ import annotations

from medpolicy import Outcome, PolicySet, decide

BASE = {"date_of_service": "2024-03-01", "procedure_codes": ["77425"]}


def test_medically_necessary_carries_its_citations(policies: PolicySet) -> None:
    d = decide({**BASE, "diagnosis_codes": ["C20"], "margin_status": "positive", "t_stage": "pT4b"}, policies)
    j = d.to_dict()
    assert j["outcome"] == "medically_necessary"
    assert j["policy"]["version"] == "2009-10-06"
    top = j["deciding_criteria"][0]
    assert top["cite"] == [
        "Rectal cancer with positive or close margins with T4 lesions or recurrent disease."
    ]
    assert {c["id"] for c in j["deciding_criteria"]} >= {
        "rectal-cancer",
        "positive-or-close-margins",
        "t4-lesion",
    }
    assert all(c["cite"] and c["cite"][0] in " ".join(d.policy.source_text.split()) for c in j["criteria"])
    assert j["rationale"]["section"] == "colorectal"
    assert j["summary"].startswith(
        "Medically necessary under Intraoperative Radiation Therapy (IORT) (version 2009-10-06)"
    )


def test_pancreatic_points_to_the_pancreatic_rationale(policies: PolicySet) -> None:
    d = decide({**BASE, "diagnosis_codes": ["C25.0"]}, policies)
    assert d.outcome is Outcome.INVESTIGATIONAL
    assert d.rationale is not None
    assert d.rationale.id == "pancreatic"
    assert "pancreatic" in d.rationale.text.lower()
    assert "Not met: Rectal cancer with positive or close margins" in d.summary


def test_sarcoma_carries_the_contradiction_note_with_its_citation(policies: PolicySet) -> None:
    d = decide({**BASE, "diagnosis_codes": ["C48.0"]}, policies)
    [note] = [n for n in d.notes if n.code == "source_contradiction"]
    assert "sarcoma" in note.message
    assert note.cite == (
        "May be considered medically necessary for some cases of rectal cancer and sarcomas.",
    )


def test_information_needed_lists_questions_in_asking_order(policies: PolicySet) -> None:
    d = decide(BASE, policies)
    assert d.outcome is Outcome.INFORMATION_NEEDED
    assert [m.name for m in d.missing_facts] == ["tumor_site", "margin_status", "t_stage", "recurrent"]
    assert d.missing_facts[0].question.startswith("Where is the primary tumour")
    assert d.missing_facts[1].values == ("negative", "close", "positive", "gross_residual")
    assert [m["name"] for m in d.to_dict()["missing_facts"]] == [
        "tumor_site",
        "margin_status",
        "t_stage",
        "recurrent",
    ]


def test_the_trace_has_every_criterion_of_the_version_with_its_value(policies: PolicySet) -> None:
    d = decide({**BASE, "diagnosis_codes": ["C20"], "margin_status": "positive"}, policies)
    values = {c.criterion.id: c.value for c in d.trace}
    assert values["rectal-cancer"] is True
    assert values["positive-or-close-margins"] is True
    assert values["t4-lesion"] is None
    assert values["recurrent-disease"] is None
    assert values["investigational-other-uses"] is None
    assert d.version is not None
    assert [c.criterion.id for c in d.trace] == [c.id for c in d.version.criteria()]


def test_compact_output_keeps_the_decision_and_drops_only_text(policies: PolicySet) -> None:
    d = decide({**BASE, "diagnosis_codes": ["C20"], "margin_status": "positive"}, policies)
    full, compact = d.to_dict(), d.to_dict(detail="compact")
    for k in ("outcome", "policy", "deciding_criteria", "missing_facts", "notes", "summary"):
        assert full[k] == compact[k]
    assert compact["facts"] == {"tumor_site": {"value": "rectum", "source": "derived from diagnosis_codes"}}
    assert compact["criteria"] == {c["id"]: c["value"] for c in full["criteria"]}


def test_the_json_text_matches_the_reference_construction_on_generated_cases(policies: PolicySet) -> None:
    """`to_json` renders shared parts once per key and caches whole compact lines; whatever the case,
    it must say exactly what building the determination field by field says."""
    import json
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from gen import cases

    for case in cases(3000, seed=7):
        d = decide(case, policies)
        for detail in ("full", "compact"):
            assert json.loads(d.to_json(detail=detail)) == d._build_dict(detail=detail), case
            assert d.to_dict(detail=detail) == d._build_dict(detail=detail)


def test_cached_compact_lines_of_conflicting_cases_say_what_the_reference_says(policies: PolicySet) -> None:
    """A compact line with conflicting facts is reused by the key's result and the conflict notes,
    without deciding the alternatives again: cases that share a result but differ in the given value,
    the alternative, whether the conflict is decisive, the case id or the date's version must each
    still get their own flags and conflicts."""
    import json

    rectal = {"procedure_codes": ["77425"], "diagnosis_codes": ["C20"], "t_stage": "pT4b"}
    variants = [
        {"margin_status": status, "margin_distance_mm": mm}
        for status in ("close", "negative", "positive")
        for mm in (10, 0.8, 0.5, 2)
    ]
    seen_flags = set()
    for round_ in range(2):  # the second round finds every line cached
        for dos in ("2024-03-01", "2009-11-01", "2005-01-01"):
            for n, facts in enumerate(variants):
                case = {**rectal, **facts, "date_of_service": dos, "id": f"{round_}-{dos}-{n}"}
                d = decide(case, policies)
                line = json.loads(d.to_json(detail="compact"))
                assert line == d._build_dict(detail="compact"), case
                seen_flags.add(tuple(line["flags"]))
    assert ("rests_on_conflict",) in seen_flags
    assert () in seen_flags
