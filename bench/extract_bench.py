"""Extraction speed: reports of about 5 KB per second on one core (target of issue 12: at least 50).

Documents are built from the development corpus (each report padded with others to 5 KB, so every
document reads like a real multi-part report), then extracted one by one in this process after one
warm-up call (the assertion engine is built once per process)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from medpolicy.extract import extract
from medpolicy.extract.context import default_engine

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "reports" / "dev"
TARGET = 50.0
SIZE = 5_000


def documents() -> list[str]:
    texts = [p.read_text(encoding="utf-8") for p in sorted(CORPUS.glob("*.txt"))]
    docs = []
    for i in range(len(texts)):
        doc = texts[i]
        j = i + 1
        while len(doc) < SIZE:
            doc += "\n\n" + texts[j % len(texts)]
            j += 1
        docs.append(doc[:SIZE])
    return docs


def main() -> None:
    docs = documents()
    extract(docs[0])  # warm-up: builds the engine
    rounds = 3
    start = time.process_time()
    for _ in range(rounds):
        for d in docs:
            extract(d)
    cpu = time.process_time() - start
    rate = rounds * len(docs) / cpu
    print(
        f"extract ({default_engine().name}): {rounds * len(docs)} reports of {SIZE // 1000} KB in {cpu:.2f} s CPU"
        f" = {rate:.0f} reports/s per core (target >= {TARGET:.0f}) {'ok' if rate >= TARGET else 'MISSED'}"
    )
    if rate < TARGET:
        sys.exit(1)


if __name__ == "__main__":
    main()
