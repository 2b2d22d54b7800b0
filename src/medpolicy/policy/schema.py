"""The policy file as read: its schema (pydantic, ``extra="forbid"``), checked before compiling, the
YAML loaded with the line of every node, and the problems found, each located by file and line.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from medpolicy.errors import PolicyProblem
from medpolicy.policy.model import FactType, Outcome

LANGUAGE = "medpolicy/v1"


# ----------------------------------------------------------------------------------------------------
# The file schema (pydantic), checked before compiling


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Source(_Strict):
    file: str
    title: str
    last_updated: dt.date | None = None
    review_by: dt.date | None = None


class _Param(_Strict):
    type: Literal["number"]
    default: float
    description: str


class _EnumValue(_Strict):
    label: str
    rationale: str | None = None
    ajcc: str | None = None


class _Derive(_Strict):
    from_: str = Field(alias="from")
    by_code_list: dict[str, str | None] | None = None
    bands: list[dict[str, Any]] | None = None
    prefix_r: bool | None = None
    m_category: bool | None = None
    age_at: str | None = None


class _Fact(_Strict):
    type: FactType
    question: str
    description: str = ""
    values: dict[str, _EnumValue] | None = None
    synonyms: dict[str, str] = {}
    minimum: float | None = None
    unit: str | None = None
    multiple: bool = False
    system: str | None = None
    derive: _Derive | None = None
    open: str | None = None


class _CodeEntry(_Strict):
    label: str
    since: dt.date | None = None


class _CodeList(_Strict):
    system: Literal["ICD-10-CM", "CPT", "HCPCS", "ICD-10-PCS"]
    codes: list[str] | dict[str, _CodeEntry]
    note: str | None = None
    implies: dict[str, bool | str] | None = None


class _Section(_Strict):
    title: str
    heading: str
    until: str | None = None
    conclusion: str | None = None


class _Note(_Strict):
    id: str
    code: str
    when: dict[str, Any]
    versions: list[str] | None = None
    cite: str | list[str]
    text: str
    letter: bool = False


class _Rule(_Strict):
    outcome: Outcome
    when: dict[str, Any]


class _Otherwise(_Strict):
    id: str
    title: str
    outcome: Outcome
    cite: str | list[str]


class _Version(_Strict):
    id: str
    effective_from: dt.date
    summary: str
    history: str
    rules: list[_Rule]
    otherwise: _Otherwise


class _PolicyFile(_Strict):
    language: Literal["medpolicy/v1"]
    id: str
    title: str
    publisher: str
    source: _Source
    prior_authorization: bool = True
    governs: str | list[str]  # code lists (CPT/HCPCS, and ICD-10-PCS for inpatient claims)
    governs_service: str | None = None
    parameters: dict[str, _Param] = {}
    facts: dict[str, _Fact]
    code_lists: dict[str, _CodeList]
    rationale: dict[str, _Section] = {}
    definitions: dict[str, dict[str, Any]] = {}
    notes: list[_Note] = []
    versions: list[_Version] = Field(min_length=1)


# ----------------------------------------------------------------------------------------------------
# YAML with line numbers


#: libyaml's parser when PyYAML was built with it (the same nodes, marks and safe constructors; about six
#: times faster, most of a policy's load time); its syntax errors are worded by libyaml.
_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(text: str) -> tuple[Any, dict[tuple[Any, ...], int]]:
    loader = _SafeLoader(text)
    lines: dict[tuple[Any, ...], int] = {}
    try:
        node = loader.get_single_node()

        def conv(n: yaml.Node, path: tuple[Any, ...]) -> Any:
            lines[path] = n.start_mark.line + 1
            if isinstance(n, yaml.MappingNode):
                out: dict[Any, Any] = {}
                for k, v in n.value:
                    key = loader.construct_object(k, deep=True)
                    lines[(*path, key)] = k.start_mark.line + 1
                    out[key] = conv(v, (*path, key))
                return out
            if isinstance(n, yaml.SequenceNode):
                return [conv(v, (*path, i)) for i, v in enumerate(n.value)]
            return loader.construct_object(n, deep=True)

        data = conv(node, ()) if node is not None else None
    finally:
        loader.dispose()
    return data, lines


class _Problems:
    def __init__(self, file: str, lines: dict[tuple[Any, ...], int]) -> None:
        self.file = file
        self.lines = lines
        self.items: list[PolicyProblem] = []

    def line(self, path: tuple[Any, ...]) -> int | None:
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get(())

    def add(self, path: tuple[Any, ...], message: str) -> None:
        self.items.append(PolicyProblem(self.file, self.line(path), message))
