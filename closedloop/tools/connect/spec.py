"""Load an OpenAPI 3.0/3.1 document safely and follow its local ``$ref``s.

Documents come from vendors and users, so reading is bounded: size, nesting
depth and node count have limits, YAML is read with the safe loader (aliases
count towards the node limit, so "billion laughs" stops early), only local
references (``#/...``) are followed, and a reference chain that loops is an
error. Recursive schemas (a schema that contains itself further down) are legal
OpenAPI and are kept as ``$ref``; only pure ref-to-ref loops are refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import yaml

from closedloop.tools.connect.errors import SpecError

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 500_000
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
WRITE_METHODS = frozenset({"put", "post", "delete", "patch"})


def parse_document(text: str | bytes, source: str = "<text>") -> dict[str, Any]:
    """A JSON or YAML mapping from ``text``, within the size, depth and node limits."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_DOCUMENT_BYTES:
        raise SpecError(f"{source}: document is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError(f"{source}: not UTF-8 text ({exc})") from exc
    try:
        data = json.loads(text) if text.lstrip().startswith("{") else yaml.safe_load(text)
    except RecursionError as exc:
        raise SpecError(f"{source}: nested deeper than the parser allows") from exc
    except (ValueError, yaml.YAMLError) as exc:
        raise SpecError(f"{source}: not valid JSON or YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{source}: expected a mapping at the top, got {type(data).__name__}")
    check_shape(data, source)
    return data


def check_shape(data: Any, source: str = "<document>") -> None:
    """Raise SpecError when ``data`` nests deeper than MAX_DEPTH or has over MAX_NODES nodes."""
    stack: list[tuple[Any, int, str]] = [(data, 0, "")]
    count = 0
    while stack:
        node, depth, where = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise SpecError(f"{source}: more than {MAX_NODES} nodes (aliases included); too large")
        if depth > MAX_DEPTH:
            raise SpecError(f"{source}: nested deeper than {MAX_DEPTH} levels at {where or '/'}")
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    raise SpecError(f"{source}: non-string key {key!r} at {where or '/'}")
                stack.append((value, depth + 1, f"{where}/{escape_token(key)}"))
        elif isinstance(node, list):
            stack.extend((value, depth + 1, f"{where}/{i}") for i, value in enumerate(node))


def load_spec_text(text: str | bytes, source: str = "<text>") -> dict[str, Any]:
    """An OpenAPI 3.0/3.1 document from JSON or YAML text, with its ``$ref``s checked."""
    doc = parse_document(text, source)
    check_openapi(doc, source)
    return doc


def load_spec(path: str | Path) -> dict[str, Any]:
    """An OpenAPI 3.0/3.1 document from a JSON or YAML file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_DOCUMENT_BYTES:
            raise SpecError(f"{path}: file is {size} bytes; the limit is {MAX_DOCUMENT_BYTES}")
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    return load_spec_text(data, str(path))


def fetch_spec(url: str, client: httpx.Client | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """An OpenAPI document fetched from ``url`` (streamed, refused past the size limit)."""
    own = client is None
    http = client or httpx.Client(timeout=timeout)
    try:
        with http.stream("GET", url) as response:
            if response.status_code >= 400:
                raise SpecError(f"{url}: HTTP {response.status_code}")
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > MAX_DOCUMENT_BYTES:
                    raise SpecError(f"{url}: more than {MAX_DOCUMENT_BYTES} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise SpecError(f"{url}: cannot fetch ({type(exc).__name__}: {exc})") from exc
    finally:
        if own:
            http.close()
    return load_spec_text(b"".join(chunks), url)


def check_openapi(doc: dict[str, Any], source: str = "<document>") -> None:
    """Raise SpecError unless ``doc`` is OpenAPI 3.0/3.1 with paths and only sound local refs."""
    version = doc.get("openapi")
    if "swagger" in doc:
        raise SpecError(f"{source}: Swagger {doc['swagger']} found; convert it to OpenAPI 3 first")
    if not isinstance(version, str) or not version.startswith(("3.0.", "3.1.")):
        raise SpecError(f"{source}: 'openapi' must be 3.0.x or 3.1.x, got {version!r}")
    if not isinstance(doc.get("paths"), dict):
        raise SpecError(f"{source}: no 'paths' object")
    for where, ref in iter_refs(doc):
        deref(doc, {"$ref": ref}, where=where, source=source)


def iter_refs(node: Any, where: str = "") -> list[tuple[str, str]]:
    """Every ``$ref`` string in ``node`` with the pointer of the object holding it."""
    found: list[tuple[str, str]] = []
    stack: list[tuple[Any, str]] = [(node, where)]
    while stack:
        current, at = stack.pop()
        if isinstance(current, dict):
            ref = current.get("$ref")
            if isinstance(ref, str):
                found.append((at or "/", ref))
            stack.extend((v, f"{at}/{escape_token(k)}") for k, v in current.items())
        elif isinstance(current, list):
            stack.extend((v, f"{at}/{i}") for i, v in enumerate(current))
    return found


def deref(doc: dict[str, Any], node: Any, where: str = "", source: str = "<document>") -> Any:
    """``node`` with a chain of ``$ref``s followed to the first non-reference object."""
    seen: list[str] = []
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        ref = node["$ref"]
        if not ref.startswith("#"):
            raise SpecError(
                f"{source}: $ref {ref!r} at {where or '/'} is not local; only '#/...' references "
                "are followed (bundle remote documents into one first)"
            )
        if ref in seen:
            chain = " -> ".join([*seen, ref])
            raise SpecError(f"{source}: $ref loop at {where or '/'}: {chain}")
        seen.append(ref)
        try:
            node = pointer_get(doc, ref[1:])
        except KeyError as exc:
            raise SpecError(f"{source}: $ref {ref!r} at {where or '/'} points to nothing") from exc
    return node


def escape_token(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901 escaping)."""
    return token.replace("~", "~0").replace("/", "~1")


def pointer_get(doc: Any, pointer: str) -> Any:
    """The value at JSON Pointer ``pointer`` (RFC 6901); KeyError names the missing part."""
    if pointer == "":
        return doc
    if not pointer.startswith("/"):
        raise KeyError(f"JSON pointer {pointer!r} must start with '/'")
    node = doc
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise KeyError(f"JSON pointer {pointer!r}: nothing at {token!r}")
    return node


def iter_operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """``(method, path, operation, path_item)`` for every operation, path items dereferenced."""
    found = []
    for path, item in doc.get("paths", {}).items():
        item = deref(doc, item, where=f"/paths/{escape_token(path)}")
        if not isinstance(item, dict):
            continue
        for method in HTTP_METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                found.append((method, path, operation, item))
    return found


__all__ = [
    "HTTP_METHODS",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_NODES",
    "WRITE_METHODS",
    "check_openapi",
    "check_shape",
    "deref",
    "escape_token",
    "fetch_spec",
    "iter_operations",
    "iter_refs",
    "load_spec",
    "load_spec_text",
    "parse_document",
    "pointer_get",
]
