"""Bad input, one document at a time: a clear problem or warning, never a guess, never a crash."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from medpolicy.extract.documents import MAX_DOCUMENT_BYTES, read_document

REPORT = (
    "FINAL DIAGNOSIS:\nRectum, low anterior resection: adenocarcinoma, pT3. Radial margin negative, 8 mm.\n"
)


@pytest.mark.parametrize(("data", "code"), [(b"", "empty_document"), (b" \n\t\n", "empty_document")])
def test_empty(data: bytes, code: str) -> None:
    doc = read_document(data)
    assert doc.text is None
    assert doc.problem is not None
    assert doc.problem.code == code


def test_binary_file() -> None:
    doc = read_document(bytes(range(256)) * 40)
    assert doc.problem is not None
    assert doc.problem.code == "binary_file"


def test_too_large() -> None:
    doc = read_document(b"a" * (MAX_DOCUMENT_BYTES + 1))
    assert doc.problem is not None
    assert doc.problem.code == "too_large"


def test_a_few_nul_bytes_are_removed_with_a_warning() -> None:
    doc = read_document(REPORT.encode()[:30] + b"\x00\x00" + REPORT.encode()[30:])
    assert doc.text == REPORT
    assert [w.code for w in doc.warnings] == ["nul_bytes_removed"]


def test_windows_1252_is_read_with_a_warning() -> None:
    doc = read_document(("Tumour résumé: " + REPORT).encode("cp1252"))
    assert doc.text is not None
    assert "résumé" in doc.text
    assert [w.code for w in doc.warnings] == ["not_utf8"]


def test_utf16_with_a_bom() -> None:
    doc = read_document(REPORT.encode("utf-16"))
    assert doc.text == REPORT
    assert doc.warnings == []


def test_another_language_is_read_with_a_warning() -> None:
    spanish = (
        "DIAGNÓSTICO: Adenocarcinoma de recto, moderadamente diferenciado, que infiltra la grasa perirrectal. "
        "Margen circunferencial libre a cinco milímetros. Ganglios linfáticos sin metástasis en doce "
        "ganglios examinados. La paciente tiene antecedentes de hipertensión arterial y diabetes. Se "
        "recomienda seguimiento por oncología médica y control endoscópico en un año."
    )
    doc = read_document(spanish.encode())
    assert doc.text == spanish
    assert [w.code for w in doc.warnings] == ["not_english"]


@pytest.mark.nlp
def test_pdf_with_a_text_layer(make_text_pdf: Callable[[list[str]], bytes]) -> None:
    doc = read_document(make_text_pdf(["FINAL DIAGNOSIS:", "Rectum, LAR: adenocarcinoma, ypT4a."]))
    assert doc.kind == "pdf"
    assert doc.text is not None
    assert "ypT4a" in doc.text


@pytest.mark.nlp
def test_pdf_without_a_text_layer_is_reported_as_such(scanned_pdf: bytes) -> None:
    doc = read_document(scanned_pdf)
    assert doc.problem is not None
    assert doc.problem.code == "pdf_no_text_layer"


@pytest.mark.nlp
def test_broken_pdf() -> None:
    doc = read_document(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    assert doc.problem is not None
    assert doc.problem.code in {"pdf_unreadable", "pdf_no_text_layer"}
