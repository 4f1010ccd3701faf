"""Safe Markdown for the chat: escaped text, tables and the numbers' formats.

Text that comes from event logs, file names, APIs or the agents is data. It is
escaped so Markdown or HTML inside it (``[x](https://evil)``, ``<img onerror>``,
a bare ``https://`` link, a table pipe, a newline) shows as the literal text and
can never become a link, an image, a script or a new table row. Only strings
built here (wrapped in ``Md``) are emitted as Markdown.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Any

WORD_JOINER = "\u2060"  # invisible; breaks GFM autolink literals (http://, www., a@b.c)
ASCII_PUNCTUATION = frozenset(
    string.punctuation
)  # CommonMark lets all of these be backslash-escaped
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
# Zero-width spots where GFM would start an autolink: "www|.", "scheme:|//", "user@|domain".
_AUTOLINK_TRIGGERS = re.compile(r"(?i)(?<=www)(?=\.)|(?<=:)(?=//)|(?<=@)")


class Md(str):
    """A string that is already safe Markdown (built by this module, not taken from data)."""


def clean_text(value: Any, limit: int | None = 160) -> str:
    """One line of plain text: control and bidi characters become spaces, runs of
    whitespace collapse, and text longer than ``limit`` characters is cut with an ellipsis."""
    text = "" if value is None else str(value)
    text = "".join(
        " " if ch in BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
        for ch in text
    )
    text = " ".join(text.split())
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)].rstrip() + "\u2026"
    return text


def md_text(value: Any, limit: int | None = 160) -> Md:
    """Plain text (an activity name, a file name, an error) as inert Markdown.

    Every ASCII punctuation character is backslash-escaped, so no Markdown or HTML
    construct can start; autolink triggers get an invisible word joiner so
    ``https://...``, ``www.`` and e-mail addresses stay text.
    """
    text = clean_text(value, limit)
    text = _AUTOLINK_TRIGGERS.sub(WORD_JOINER, text)
    return Md("".join("\\" + ch if ch in ASCII_PUNCTUATION else ch for ch in text))


def md_code_block(text: str, language: str = "text") -> Md:
    """A fenced code block that ``text`` cannot close early (the fence outgrows any backtick run)."""
    body = "".join(
        " "
        if ch in BIDI_CONTROLS or (unicodedata.category(ch) == "Cc" and ch not in "\n\t")
        else ch
        for ch in str(text).replace("\r\n", "\n").replace("\r", "\n")
    )
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return Md(f"{fence}{language}\n{body}\n{fence}")


def md_cell(value: Any) -> Md:
    """One table cell: Md as it is, integers with thousands separators, floats with one decimal,
    everything else escaped text."""
    if isinstance(value, Md):
        return Md(value.replace("\n", " "))
    if isinstance(value, bool):
        return Md("yes" if value else "no")
    if isinstance(value, int):
        return Md(f"{value:,}")
    if isinstance(value, float):
        return Md(f"{value:,.1f}")
    return md_text(value)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str | None = None) -> Md:
    """A GFM table; ``align`` holds one of ``l``/``r``/``c`` per column (default: left)."""
    align = align or "l" * len(headers)
    if len(align) != len(headers):
        raise ValueError(f"align {align!r} must give one letter per column ({len(headers)})")
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = [
        "| " + " | ".join(md_cell(h) for h in headers) + " |",
        "|" + "|".join(marks[a] for a in align) + "|",
    ]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row has {len(row)} cells, expected {len(headers)}")
        lines.append("| " + " | ".join(md_cell(c) for c in row) + " |")
    return Md("\n".join(lines))


def hours(value: float) -> Md:
    """Hours with one decimal, plus days when it is two days or more."""
    text = f"{value:,.1f} h"
    if abs(value) >= 48:
        text += f" ({value / 24:,.1f} d)"
    return Md(text)


def count(n: int, noun: str) -> Md:
    """``1 case``, ``4,580 cases`` (plural by adding ``s``)."""
    return Md(f"{n:,} {noun}{'' if n == 1 else 's'}")


def duration(value: float) -> Md:
    """Compact hours for tables: hours below two days, days from there."""
    if abs(value) < 48:
        return Md(f"{value:,.1f} h")
    days = value / 24
    return Md(f"{days:,.1f} d" if abs(days) < 100 else f"{days:,.0f} d")


def pct(share: float) -> Md:
    """A 0..1 share as a percentage."""
    return Md(f"{share:.0%}")
