"""What a report is made of, independent of how it is written (HTML, Markdown)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2
    anchor: str | None = None


@dataclass(frozen=True)
class Para:
    text: str
    tone: str = ""  # "", "warning", "note", "lead"


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    numeric: frozenset[int] = field(default_factory=frozenset)  # right-aligned columns
    styles: dict[tuple[int, int], str] = field(default_factory=dict)  # (row, col) -> css class (e.g. verdicts)
    stack: bool = False  # long text: on a phone, each row becomes a card of labelled lines


@dataclass(frozen=True)
class Figure:
    svg: str
    caption: str


Block = Union[Heading, Para, Table, Figure]
