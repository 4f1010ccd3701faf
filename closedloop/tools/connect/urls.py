"""URLs of connector calls: path templates filled safely, next-page links kept on the API's host.

Path values are percent-encoded as one segment each and ``.``/``..`` are
refused. A value inside an OData quoted key (``A_SalesOrder('{SalesOrder}')``)
has its single quotes doubled first, as OData requires, so a value cannot end
the literal. A next-page link from a response (``@odata.nextLink``,
``nextRecordsUrl``) is followed only on the scheme, host and port of the base
URL: a page cannot send the loop's credentials elsewhere.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from closedloop.tools.connect.errors import RequestBuildError

_PLACEHOLDER = re.compile(r"\{([^}]+)\}")


def fill_path(base_url: str, template: str, values: dict[str, Any], where: str) -> str:
    """``base_url`` + ``template`` with each ``{name}`` replaced by its encoded value."""
    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        value = values.get(name)
        if value is None or str(value) in ("", ".", ".."):
            raise RequestBuildError(f"{where}: path parameter {name!r} has no usable value "
                                    f"({value!r})")
        text = str(value)
        quoted_key = (match.start() > 0 and template[match.start() - 1] == "'"
                      and template[match.end():match.end() + 1] == "'")
        if quoted_key:
            text = text.replace("'", "''")
        return quote(text, safe="")

    return base_url.rstrip("/") + _PLACEHOLDER.sub(fill, template)


def resolve_link(base_url: str, link: str, where: str) -> httpx.URL:
    """The absolute URL of a next-page ``link``; refused unless on the base URL's origin."""
    if not isinstance(link, str) or not link:
        raise RequestBuildError(f"{where}: the next-page link is not a URL ({link!r})")
    base = httpx.URL(base_url.rstrip("/") + "/")
    try:
        url = base.join(link)
    except httpx.InvalidURL as exc:
        raise RequestBuildError(f"{where}: the next-page link is not a URL") from exc
    if (url.scheme, url.host, url.port) != (base.scheme, base.host, base.port):
        raise RequestBuildError(
            f"{where}: the next-page link leaves the API ({url.scheme}://{url.host}); "
            f"only {base.scheme}://{base.host} is followed"
        )
    return url


__all__ = ["fill_path", "resolve_link"]
