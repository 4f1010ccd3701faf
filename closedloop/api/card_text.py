"""The text primitives of the approval cards: inert one-line text and the TextBlock / FactSet
elements built from it.

Everything that comes from logs, plans, approvers or the enterprise API is data: it only
appears in ``text`` properties, cut to a sane length and passed through
:func:`escape_markdown`. Only characters every Teams and browser font has are used for our
own text (no glyph renders as an empty box).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from typing import Any

# Backslash escapes are not honoured by every renderer (microsoft/AdaptiveCards#523), so the
# characters that form Markdown links, emphasis, code or HTML are replaced. Replacements are
# ASCII or in WGL4 (every Segoe UI / DejaVu / Arial build has them): full-width look-alikes
# rendered as empty boxes in Teams. Without "](" no link can form; "(a)(b)" is plain text.
_REPLACE = str.maketrans(
    {
        "[": "(",
        "]": ")",
        "<": "\u2039",  # SINGLE LEFT-POINTING ANGLE QUOTATION MARK (WGL4)
        ">": "\u203a",  # SINGLE RIGHT-POINTING ANGLE QUOTATION MARK (WGL4)
        "*": "\u00b7",  # MIDDLE DOT
        "`": "'",
        "~": "\u2248",  # ALMOST EQUAL TO (WGL4)
        "&": "+",  # no HTML entities
        "\\": "/",
    }
)
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30}):(?=//)")
_HOSTLIKE = re.compile(
    r"(?i)(?<![\w.\-])(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}(?![\w\-])"
)
# "_" only emphasises at a word edge; inside names like customer_tier it is left alone.
_EDGE_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")
_LINE_START = re.compile(r"^(?:[-+]|\d{1,9}[.)])(?=\s|$)")


def escape_markdown(text: Any, limit: int = 300) -> str:
    """``text`` as one inert line for a TextBlock: no links, emphasis, lists or HTML, at most ``limit`` chars.

    Control and format characters (bidi overrides, zero-width) are dropped, whitespace is
    collapsed, the text is cut (with "..."), Markdown characters are replaced by plain ones and
    URLs/host names are defanged (``https(:)//evil(.)example``) so nothing is auto-linked.
    """
    raw = "" if text is None else str(text)
    kept = "".join(
        " " if ch.isspace() else ch
        for ch in raw
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    line = " ".join(kept.split())
    if len(line) > limit:
        line = line[: max(limit - 3, 0)].rstrip() + "..."
    line = _EDGE_UNDERSCORE.sub("-", line.translate(_REPLACE))
    line = _SCHEME.sub(r"\1(:)", line)
    line = _HOSTLIKE.sub(lambda m: m.group(0).replace(".", "(.)"), line)
    if _LINE_START.match(line):
        line = "'" + line  # never a list marker
    return line


def text_block(text: str, **style: Any) -> dict[str, Any]:
    """A wrapping TextBlock of ``text`` (already escaped or ours)."""
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def heading(text: str) -> dict[str, Any]:
    """A section heading with a separator line above it."""
    return text_block(text, weight="Bolder", spacing="Medium", separator=True)


def facts(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A FactSet; titles are ours, values must already be escaped."""
    return {"type": "FactSet", "facts": [{"title": t, "value": v} for t, v in pairs]}


def is_num(value: Any) -> bool:
    """True for a real number (not a bool)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def num(value: Any, fmt: str) -> str:
    """A number formatted with ``fmt``; anything else escaped, ``n/a`` for None."""
    if not is_num(value):
        return escape_markdown(value, 30) if value is not None else "n/a"
    return format(value, fmt)


def when(value: datetime | None) -> str:
    """A timestamp as ``YYYY-MM-DD HH:MM UTC`` (``n/a`` for None)."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "n/a"


def words(key: Any) -> str:
    """A key such as ``min_cases`` as escaped words (``min cases``)."""
    return escape_markdown(str(key).replace("_", " ").strip(), 60)


def value_words(value: Any, limit: int = 120) -> str:
    """A parameter value in words: dicts as ``key value`` pairs, lists comma-separated (no JSON)."""
    if isinstance(value, dict):
        parts = [f"{words(k)} {value_words(v, 60)}" for k, v in list(value.items())[:6]]
        return escape_markdown(", ".join(parts), limit)
    if isinstance(value, list):
        return escape_markdown(", ".join(value_words(v, 40) for v in value[:6]), limit)
    if is_num(value) and 0 < abs(value) < 1:
        return f"{value:.0%}"
    return escape_markdown(value, limit)
