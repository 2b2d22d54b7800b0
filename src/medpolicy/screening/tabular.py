"""CSV and Parquet claim-line extracts, read by the engine itself through a column mapping.

A mapping is a small YAML file naming which column holds each field of a claim line::

    name: my-extract
    delimiter: ","            # CSV only
    columns:
      claim_id: CLAIM_NO
      line_number: LINE_NO
      member_id: MEMBER        # optional
      procedure_code: CPT
      modifiers: [MOD1, MOD2]  # optional
      diagnosis_codes: [DX1, DX2, DX3]   # one column may hold several codes separated by | or ,
      date_of_service: FROM_DATE         # YYYY-MM-DD, CCYYMMDD or DD-Mon-YYYY
      billed_amount: CHARGE              # optional
      line_of_business: PAYER_TYPE       # optional: commercial, medicare_advantage, medicaid, or an 837
                                         # claim filing indicator code (SBR09: CI, 16, MC...); else NULL
    line_of_business: medicaid           # optional: one line of business for every line instead
    optional: [line_of_business]         # optional: columns that may be absent from a file (then NULL)

Built in: ``canonical`` (medpolicy's own layout, which the generator writes), ``rif-carrier`` and
``rif-outpatient`` (CMS RIF). A CSV file without ``--mapping`` is matched to one by its header.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from medpolicy.routing import LINES_OF_BUSINESS
from medpolicy.screening.sqlgen import SourceColumns

__all__ = ["BUILTIN", "Mapping", "MappingError", "guess_mapping", "load_mapping"]

BUILTIN = ("canonical", "rif-carrier", "rif-outpatient")


class MappingError(ValueError):
    """A mapping that cannot be used (unknown name, invalid file)."""


class _Columns(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    claim_id: str
    line_number: str
    member_id: str | None = None
    procedure_code: str
    modifiers: list[str] = []
    diagnosis_codes: list[str] = []
    date_of_service: str | None = None
    billed_amount: str | None = None
    location: str | None = None
    line_of_business: str | None = None  # a line of business or an 837 SBR09 code; routes the line


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    delimiter: str = ","
    columns: _Columns
    line_of_business: str | None = None
    optional: list[str] = []

    @field_validator("optional")
    @classmethod
    def _optional_fields(cls, v: list[str]) -> list[str]:
        required = [f for f, info in _Columns.model_fields.items() if info.is_required()]
        bad = [f for f in v if f not in _Columns.model_fields or f in required]
        if bad:
            raise ValueError(f"{bad} are not optional fields of a claim line")
        return v

    @field_validator("line_of_business")
    @classmethod
    def _known_line(cls, v: str | None) -> str | None:
        if v is not None and v not in LINES_OF_BUSINESS:
            raise ValueError(f"{v!r} is not a line of business ({', '.join(LINES_OF_BUSINESS)})")
        return v

    def for_header(self, header: list[str]) -> Mapping:
        """This mapping without the ``optional`` fields whose column the file does not have."""
        absent = {f: None for f in self.optional if getattr(self.columns, f, None) not in set(header)}
        if not absent:
            return self
        return self.model_copy(update={"columns": self.columns.model_copy(update=absent)})

    def source_columns(self) -> SourceColumns:
        c = self.columns
        return SourceColumns(
            claim_id=c.claim_id,
            line_number=c.line_number,
            member_id=c.member_id,
            procedure_code=c.procedure_code,
            diagnosis_codes=tuple(c.diagnosis_codes),
            date_of_service=c.date_of_service,
            billed_amount=c.billed_amount,
            location=c.location,
            line_of_business=c.line_of_business,
            line_of_business_value=self.line_of_business,
        )

    def missing(self, header: list[str]) -> list[str]:
        """Columns the mapping names that the file does not have."""
        have = set(header)
        return [c for c in self.source_columns().names() if c not in have]


def load_mapping(name_or_path: str) -> Mapping:
    """A built-in mapping by name, or a mapping YAML file."""
    if name_or_path in BUILTIN:
        text = resources.files("medpolicy.screening").joinpath(f"mappings/{name_or_path}.yaml").read_text()
    else:
        p = Path(name_or_path)
        if not p.is_file():
            raise MappingError(
                f"unknown column mapping {name_or_path!r}: not a file and not one of {', '.join(BUILTIN)}"
            )
        text = p.read_text(encoding="utf-8")
    try:
        return Mapping.model_validate(yaml.safe_load(text))
    except (ValidationError, yaml.YAMLError) as e:
        raise MappingError(f"column mapping {name_or_path!r} is not valid: {e}") from None


def staged_mapping() -> Mapping:
    """The layout X12 and FHIR lines are staged in."""
    m = load_mapping("canonical")
    cols = m.columns.model_copy(update={"location": "location", "line_of_business": "line_of_business"})
    return m.model_copy(update={"columns": cols, "optional": []})


def guess_mapping(header: list[str]) -> Mapping:
    """The built-in mapping a header fits best (the canonical layout when none is clearly meant)."""
    cols = set(header)
    if {"CLM_ID", "CLM_LINE_NUM", "REV_CNTR"} <= cols:
        return load_mapping("rif-outpatient")
    if {"CLM_ID", "LINE_NUM", "HCPCS_CD"} <= cols:
        return load_mapping("rif-carrier")
    return load_mapping("canonical")


def csv_header(path: Path, delimiter: str | None = None) -> tuple[list[str], str]:
    """The header of a CSV file and its delimiter (``|`` when the header has more of them than commas)."""
    with open(path, "rb") as fh:
        first = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
    delim = delimiter or ("|" if first.count("|") > first.count(",") else ",")
    return [h.strip().strip('"') for h in first.split(delim)], delim
