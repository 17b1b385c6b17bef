"""Plain-text tables for the terminal: aligned columns and readable numbers."""

from __future__ import annotations

__all__ = ["aligned_table", "format_number"]


def format_number(value: float | None, digits: int = 6) -> str:
    """Fixed-point with ``digits`` decimals; tiny non-zero values in scientific notation.

    >>> format_number(0.5), format_number(2.06e-9), format_number(None)
    ('0.500000', '2.06e-09', '-inf')
    """
    if value is None:
        return "-inf"
    if value != 0 and abs(value) < 10 ** -(digits - 2):
        return f"{value:.2e}"  # tiny but not zero: show it rather than print 0.000000
    return f"{value:.{digits}f}"


def aligned_table(header: list[str], body: list[list[str]]) -> list[str]:
    """Lines of a table: first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    lines = []
    for row in [header, *body]:
        cells = [row[0].ljust(widths[0])]
        cells += [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells).rstrip())
    return lines
