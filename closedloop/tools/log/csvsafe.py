"""CSV written for people: cells a spreadsheet would run as formulas are defused.

An activity or resource named ``=HYPERLINK(...)`` or ``@SUM(...)`` in a log
(or a simulated log built from one) becomes a live formula when the CSV is
opened in Excel or LibreOffice (CSV/formula injection). Following OWASP, a
text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return is written with a leading apostrophe, which spreadsheets show as text.
Numbers (``-3.5``) and timestamps are left alone.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["FORMULA_STARTS", "defuse_formulas", "write_csv"]

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _defuse(value: object) -> object:
    if not isinstance(value, str) or not value.startswith(FORMULA_STARTS):
        return value
    try:
        float(value)
    except ValueError:
        return "'" + value
    return value  # a number written as text


def defuse_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot start a spreadsheet formula."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(_defuse)
    out.columns = [_defuse(str(c)) for c in out.columns]
    return out


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as CSV (no index) with formula cells defused; returns the path."""
    target = Path(path)
    defuse_formulas(frame).to_csv(target, index=False)
    return target
