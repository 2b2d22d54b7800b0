"""Extraction test fixtures. Extraction tests run on whichever assertion engine is installed; tests
marked ``nlp`` need the ``nlp`` extra (see tests/conftest.py)."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest

# Small PDFs made on the spot with reportlab: one with a text layer, one with only drawings (a scan).


def text_pdf(lines: list[str]) -> bytes:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter)
    y = 740
    for line in lines:
        c.drawString(60, y, line)
        y -= 16
    c.showPage()
    c.save()
    return buf.getvalue()


def image_only_pdf() -> bytes:
    from reportlab.lib.pagesizes import letter
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=letter)
    for i in range(20):
        c.rect(60, 700 - i * 20, 400, 12, fill=1)  # what a scanned page looks like to a text extractor
    c.showPage()
    c.save()
    return buf.getvalue()


@pytest.fixture
def make_text_pdf() -> Callable[[list[str]], bytes]:
    return text_pdf


@pytest.fixture
def scanned_pdf() -> bytes:
    return image_only_pdf()
