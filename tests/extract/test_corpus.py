"""The report corpus meets issue 12's targets on both parts (the same computation as `make eval`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "extract_eval.py"


@pytest.fixture(scope="module")
def evaluation() -> ModuleType:
    spec = importlib.util.spec_from_file_location("extract_eval", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("part", ["dev", "heldout"])
def test_targets(evaluation: ModuleType, part: str, capsys: pytest.CaptureFixture[str]) -> None:
    missed = evaluation.report(part, evaluation.evaluate(part, False))
    assert missed == [], capsys.readouterr().out


def test_corpus_size_and_gold(evaluation: ModuleType) -> None:
    import json

    sizes = {}
    for part in ("dev", "heldout"):
        folder = evaluation.CORPUS / part
        gold = json.loads((folder / "gold.json").read_text())
        assert sorted(gold) == sorted(p.name for p in folder.glob("*.txt"))
        sizes[part] = len(gold)
    assert sum(sizes.values()) >= 80
