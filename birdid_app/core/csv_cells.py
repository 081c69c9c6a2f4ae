"""Text cells for the CSV files birdid writes, made safe to open in a spreadsheet.

A cell whose text starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which some
spreadsheets skip before reading one of those) is read as a formula by Excel, LibreOffice and
Google Sheets: a species name from a shard made elsewhere, a model's class name or a place name
could run one on the person's machine. As OWASP advises ("CSV Injection"), such a cell gets a
single quote in front, which the spreadsheet shows as text. Only text that came from somewhere
goes through here: the numbers birdid formats itself (a longitude of -3.7) are data, not formulas.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: str | None) -> str:
    """`value` as a CSV cell a spreadsheet shows as text: "" for None, a leading `'` where it
    would start a formula."""
    if value is None:
        return ""
    value = str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value
