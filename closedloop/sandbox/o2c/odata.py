"""The slice of OData v2 query options the o2c sandbox understands, and its JSON envelope.

``$filter``: comparisons ``Field eq|ne|gt|ge|lt|le literal`` joined by ``and``;
literals are ``'text'`` (``''`` escapes a quote), numbers, ``true``/``false``/
``null`` and ``datetimeoffset'...'``/``datetime'...'`` (compared as ISO text).
``$orderby``: ``Field [asc|desc]``, comma separated. ``$top``/``$skip`` as
usual; the server cuts pages at its page size and then links the rest with
``__next`` (a URL carrying ``$skiptoken``). Errors use OData's error body.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi.responses import JSONResponse

_COMPARISON = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s+(eq|ne|gt|ge|lt|le)\s+"
    r"((?:datetimeoffset|datetime)?'(?:[^']|'')*'|-?\d+(?:\.\d+)?|true|false|null)\s*",
    re.IGNORECASE,
)
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b, "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
}


class ODataError(ValueError):
    """A query option the sandbox cannot apply (answered with 400)."""


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """An OData v2 error body: ``{"error": {"code", "message": {"lang", "value"}}}``."""
    body = {"error": {"code": code, "message": {"lang": "en", "value": message}}}
    return JSONResponse(body, status_code=status, headers=headers)


def _literal(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "null":
        return None
    if text.endswith("'"):
        return text[text.index("'") + 1:-1].replace("''", "'")
    return float(text) if "." in text else int(text)


@dataclass(frozen=True)
class Comparison:
    """One ``Field op literal`` term of a ``$filter``."""

    field: str
    op: str
    value: Any

    def test(self, row: dict[str, Any]) -> bool:
        """Whether ``row`` passes; comparisons with null or mismatched types are false."""
        actual = row.get(self.field)
        if self.op in ("eq", "ne") or (actual is not None and self.value is not None):
            try:
                return _OPS[self.op](actual, self.value)
            except TypeError:
                return False
        return False


def parse_filter(text: str | None, fields: set[str]) -> list[Comparison]:
    """The ``and``-joined comparisons of a ``$filter`` (ODataError on anything else)."""
    if not text or not text.strip():
        return []
    terms = re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE)
    comparisons = []
    for term in terms:
        match = _COMPARISON.fullmatch(term)
        if match is None:
            raise ODataError(f"unsupported $filter term {term!r}: use 'Field eq|ne|gt|ge|lt|le "
                             "literal' joined by 'and'")
        field, op, literal = match.groups()
        if field not in fields:
            raise ODataError(f"unknown property {field!r} in $filter")
        comparisons.append(Comparison(field, op.lower(), _literal(literal)))
    return comparisons


def parse_orderby(text: str | None, fields: set[str]) -> list[tuple[str, bool]]:
    """``(field, descending)`` pairs of an ``$orderby``."""
    if not text or not text.strip():
        return []
    keys = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower()
                                             not in ("asc", "desc")):
            raise ODataError(f"unsupported $orderby term {part.strip()!r}")
        if words[0] not in fields:
            raise ODataError(f"unknown property {words[0]!r} in $orderby")
        keys.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return keys


def apply_query(rows: list[dict[str, Any]], filter_: str | None,
                orderby: str | None, fields: set[str]) -> list[dict[str, Any]]:
    """Rows passing ``$filter``, sorted by ``$orderby`` (stable; nulls first)."""
    comparisons = parse_filter(filter_, fields)
    kept = [r for r in rows if all(c.test(r) for c in comparisons)]
    for field, descending in reversed(parse_orderby(orderby, fields)):
        kept.sort(key=lambda r, f=field: (r.get(f) is not None, r.get(f)), reverse=descending)
    return kept


def parse_skiptoken(text: str | None) -> int:
    """A ``$skiptoken`` is a non-negative integer in this service."""
    if text is None or text == "":
        return 0
    if not text.isdigit():
        raise ODataError(f"invalid $skiptoken {text!r}: expected a non-negative integer")
    return int(text)


def next_link(base_url: str, query: dict[str, Any], token: int) -> str:
    """The ``__next`` URL: the same query with ``$skiptoken`` set."""
    params = {k: v for k, v in query.items() if v is not None and k != "$skiptoken"}
    params["$skiptoken"] = token
    return f"{base_url}?{urlencode(params)}"


def envelope(results: list[dict[str, Any]], next_url: str | None = None,
             skiptoken: int | None = None, count: int | None = None) -> dict[str, Any]:
    """The OData v2 JSON envelope of an entity set page.

    ``__skiptoken`` repeats the token of ``__next`` for clients that page by token
    rather than by following the link.
    """
    d: dict[str, Any] = {"results": results}
    if count is not None:
        d["__count"] = str(count)
    if next_url is not None:
        d["__next"] = next_url
        d["__skiptoken"] = str(skiptoken)
    return {"d": d}
