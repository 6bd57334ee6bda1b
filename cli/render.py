"""Printing: rich tables for people, JSON for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    count = 0
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
        count += 1
    if count == 0:
        console.print(f"(no {title.lower() if title else 'rows'})")
        return
    console.print(table)


def short_time(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


def attachment_remarks(status: str | None, detected_type: str | None) -> str:
    """What an agent must know about an attachment beyond its name, type and size."""
    remarks = ""
    if status == "too_large":
        remarks += " — too large: not stored, kept in the raw mail only"
    if detected_type:
        remarks += f" — the bytes are {detected_type}"
    return remarks
