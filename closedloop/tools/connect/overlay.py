"""Apply an OpenAPI Overlay 1.0 document to an OpenAPI document, leaving the original intact.

Each action selects nodes with an RFC 9535 JSONPath ``target`` and either
merges ``update`` into them or removes them. Merge semantics: objects merge
key by key, recursively; any other value (arrays included) replaces the old
one; when the target itself is an array, ``update`` is appended to it.
An action whose target selects nothing is an error here (the Overlay
specification allows it), because in a connector it means an annotation
silently did not land.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonpath
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from closedloop.tools.connect.errors import OverlayError
from closedloop.tools.connect.spec import MAX_DOCUMENT_BYTES, check_shape, parse_document

_JSONPATH = jsonpath.JSONPathEnvironment(strict=True)


class OverlayInfo(BaseModel):
    """Title and version of an overlay."""

    model_config = ConfigDict(extra="allow")

    title: str
    version: str


class OverlayAction(BaseModel):
    """One change: merge ``update`` into, or remove, the nodes ``target`` selects."""

    model_config = ConfigDict(extra="allow")

    target: str = Field(min_length=1, max_length=2000)
    description: str | None = None
    update: Any = None
    remove: bool = False


class Overlay(BaseModel):
    """An OpenAPI Overlay 1.0 document."""

    model_config = ConfigDict(extra="allow")

    overlay: str = Field(pattern=r"^1\.\d+\.\d+$")
    info: OverlayInfo
    extends: str | None = None
    actions: list[OverlayAction] = Field(min_length=1)


def parse_overlay(data: dict[str, Any], source: str = "<overlay>") -> Overlay:
    """A validated :class:`Overlay` from a parsed document."""
    try:
        return Overlay.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise OverlayError(f"{source}: not an Overlay 1.0 document: {problems}") from exc


def load_overlay_text(text: str | bytes, source: str = "<overlay>") -> Overlay:
    """An :class:`Overlay` from JSON or YAML text (same size and depth limits as specs)."""
    return parse_overlay(parse_document(text, source), source)


def load_overlay(path: str | Path) -> Overlay:
    """An :class:`Overlay` from a JSON or YAML file."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_DOCUMENT_BYTES:
            raise OverlayError(f"{path}: larger than {MAX_DOCUMENT_BYTES} bytes")
        return load_overlay_text(path.read_bytes(), str(path))
    except OSError as exc:
        raise OverlayError(f"{path}: cannot read ({exc.strerror or exc})") from exc


def apply_overlay(doc: dict[str, Any], overlay: Overlay, source: str = "<overlay>") -> dict[str, Any]:
    """A copy of ``doc`` with every action of ``overlay`` applied in order."""
    result = copy.deepcopy(doc)
    for number, action in enumerate(overlay.actions, start=1):
        label = f"{source}: action {number} (target {action.target!r})"
        try:
            matches = list(_JSONPATH.finditer(action.target, result))
        except jsonpath.JSONPathError as exc:
            raise OverlayError(f"{label}: invalid JSONPath: {exc}") from exc
        if not matches:
            raise OverlayError(f"{label}: selects nothing in the document")
        if action.remove:
            _remove(result, [tuple(m.parts) for m in matches], label)
        elif action.update is not None:
            for match in matches:
                _update(match.obj, action.update, label)
        else:
            raise OverlayError(f"{label}: has neither 'update' nor 'remove: true'")
    check_shape(result, f"{source} applied")
    return result


def _update(node: Any, update: Any, label: str) -> None:
    if isinstance(node, list):
        node.append(copy.deepcopy(update))
    elif isinstance(node, dict) and isinstance(update, dict):
        merge(node, update)
    else:
        raise OverlayError(
            f"{label}: cannot merge a {type(update).__name__} into a {type(node).__name__}"
        )


def merge(into: dict[str, Any], update: dict[str, Any]) -> None:
    """Merge ``update`` into ``into`` in place: objects recursively, other values replaced."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def _remove(doc: dict[str, Any], locations: list[tuple[Any, ...]], label: str) -> None:
    # Deepest and highest indexes first, so earlier removals do not shift later ones.
    def order(parts: tuple[Any, ...]) -> tuple[int, int]:
        return len(parts), parts[-1] if parts and isinstance(parts[-1], int) else -1

    for parts in sorted(locations, key=order, reverse=True):
        if not parts:
            raise OverlayError(f"{label}: cannot remove the document root")
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[part]
        last = parts[-1]
        if isinstance(parent, list | dict):
            del parent[last]


__all__ = [
    "Overlay",
    "OverlayAction",
    "OverlayInfo",
    "apply_overlay",
    "load_overlay",
    "load_overlay_text",
    "merge",
    "parse_overlay",
]
