"""Generate src/medpolicy/codes/icd10cm.tsv.gz from the simple-icd-10-cm package.

The package takes about 2 s and 190 MB to import, too much for a CLI that decides cases one by
one, so the code set is kept as a small generated table: one row per code or block with whether it
is billable (a leaf) and its parent. ``tests/test_codes.py`` checks the table against the package
itself, so the table cannot drift from the real ICD-10-CM code set.

Run: ``.venv/bin/python scripts/gen_icd10cm_table.py``
"""

from __future__ import annotations

import gzip
import importlib.metadata
import warnings
from pathlib import Path

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import simple_icd_10_cm as cm

OUT = Path(__file__).resolve().parents[1] / "src" / "medpolicy" / "codes" / "icd10cm.tsv.gz"


def main() -> None:
    version = importlib.metadata.version("simple-icd-10-cm")
    rows: dict[str, str] = {}
    for code in cm.get_all_codes(True):
        if cm.is_chapter(code):
            continue
        parent = cm.get_parent(code)
        # A few names (B10, C50, C7A, ...) are both a one-category block and the category itself: keep the
        # category, hung directly under the chapter.
        if (parent and cm.is_chapter(parent)) or parent == code:
            parent = ""
        if cm.is_category_or_subcategory(code) or cm.is_extended_subcategory(code):
            kind = "billable" if cm.is_leaf(code) else "header"
        else:
            kind = "block"
        rows[code] = f"{code}\t{kind}\t{parent}"
    header = (
        f"# ICD-10-CM code table generated from simple-icd-10-cm {version} (CDC tabular data, public domain)"
        f" by scripts/gen_icd10cm_table.py; columns: code, kind (billable|header|block), parent\n"
    )
    with gzip.GzipFile(OUT, "wb", mtime=0) as f:
        f.write((header + "\n".join(rows.values()) + "\n").encode())
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
