"""The ICD-10-CM table in the form that loads fastest, built from the generated TSV and shipped beside it.

``icd10cm.tsv.gz`` (written by ``scripts/gen_icd10cm_table.py`` and checked code by code against
simple-icd-10-cm) is the source: one row per code with its kind and parent. Splitting its 295,000
cells and indexing them took about 70 ms of every start. ``icd10cm.compact.gz`` holds the same table
as four sections, blank-line separated, that load with a few C-speed calls:

1. the provenance line;
2. the codes in the TSV's order, one per line;
3. the kinds, one letter per row (``b`` billable, ``h`` header, ``k`` block);
4. the depths, one digit per row (a parent is the nearest row above that is one level less deep);
5. the categories (three-character codes that are not blocks), sorted, one per line.

``tests/test_codes.py`` checks that the shipped file is exactly what ``build`` makes of the TSV. After
regenerating the TSV, run ``python -m medpolicy.codes.compact``.
"""

from __future__ import annotations

import gzip
from itertools import compress
from pathlib import Path

from medpolicy.codes import _KIND_OF_LETTER, ICD10CM, KIND_LETTERS

__all__ = ["COMPACT", "SOURCE", "build", "from_compact", "from_tsv"]

SOURCE = "icd10cm.tsv.gz"
COMPACT = "icd10cm.compact.gz"


def from_tsv(data: bytes) -> ICD10CM:
    """The table as the TSV (gzipped) says it: the reference reading of the source."""
    header, _, body = gzip.decompress(data).decode().partition("\n")
    cells = body.rstrip("\n").replace("\n", "\t").split("\t")
    codes, kinds, parents = cells[0::3], cells[1::3], cells[2::3]
    position = {c: i for i, c in enumerate(codes)}
    depths = bytearray()
    for parent in parents:
        depths.append(depths[position[parent]] + 1 if parent else 0)
    return ICD10CM(
        source=header.lstrip("# "),
        kinds=dict(zip(codes, kinds, strict=True)),
        order=tuple(codes),
        depths=bytes(depths),
        branch_rows={c: i for i, c in enumerate(codes) if kinds[i] != "billable"},
        categories=tuple(
            sorted(c for c, k in zip(codes, kinds, strict=True) if len(c) == 3 and k != "block")
        ),
    )


def build(table: ICD10CM) -> bytes:
    """The compact file's bytes for a table (gzip without a timestamp: the same table, the same bytes)."""
    text = "\n\n".join(
        [
            table.source,
            "\n".join(table.order),
            "".join(KIND_LETTERS[table.kinds[c]] for c in table.order),
            "".join(str(d) for d in table.depths),
            "\n".join(table.categories),
        ]
    )
    return gzip.compress(text.encode("ascii"), compresslevel=9, mtime=0)


def from_compact(data: bytes) -> ICD10CM:
    """Read the compact file: split each section once and build the indexes at C speed (no Python
    loop over the 98,000 rows)."""
    source, codes_text, kinds, depths, categories = gzip.decompress(data).decode("ascii").split("\n\n")
    codes = codes_text.split("\n")
    if not len(codes) == len(kinds) == len(depths):
        raise ValueError(f"{COMPACT}: sections of different lengths; rebuild it")
    branch = kinds.encode("ascii").translate(_IS_BRANCH)  # 1 for a header or block, 0 for billable
    return ICD10CM(
        source=source,
        kinds=dict(zip(codes, map(_KIND_OF_LETTER.__getitem__, kinds), strict=True)),
        order=tuple(codes),
        depths=depths.encode("ascii").translate(_DIGIT_VALUES),
        branch_rows=dict(zip(compress(codes, branch), compress(range(len(codes)), branch), strict=True)),
        categories=tuple(categories.split("\n")),
    )


_DIGIT_VALUES = bytes.maketrans(b"0123456789", bytes(range(10)))
_IS_BRANCH = bytes.maketrans(b"bhk", b"\x00\x01\x01")


def main() -> None:
    here = Path(__file__).parent
    out = here / COMPACT
    out.write_bytes(build(from_tsv((here / SOURCE).read_bytes())))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
