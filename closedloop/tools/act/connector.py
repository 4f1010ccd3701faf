"""Connector manifests: which spec, which overlays, which base URL make one enterprise system.

A manifest is a small YAML (or JSON) file::

    connector: 1                 # manifest format version
    name: helpdesk
    spec_file: openapi.yaml      # a file beside the manifest, or
    spec_url: /openapi.json      # fetched from the system (relative to its base URL) or absolute
    overlays: [overlay.yaml]     # OpenAPI Overlay 1.0 documents, applied in order
    base_url: https://erp.example.com   # optional default base URL

``CLOSEDLOOP_CONNECTOR`` names a manifest file, a folder holding ``connector.yaml``,
or an OpenAPI document annotated inline (a file with an ``openapi`` key). Secrets
never live here: the connector's auth annotation names environment variables.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from closedloop.tools.connect import (
    CONNECTORS_DIR,
    ConnectorAnnotation,
    SpecError,
    apply_overlay,
    fetch_spec,
    load_overlay,
    load_spec,
    make_auth,
    parse_document,
)
from closedloop.tools.connect.auth import trusted_roots, url_under
from closedloop.tools.errors import ApiCallError

MANIFEST_NAME = "connector.yaml"
DEFAULT_CONNECTOR = CONNECTORS_DIR / "helpdesk" / MANIFEST_NAME
CONNECTOR_KEY = "x-closedloop-connector"


class ConnectorManifest(BaseModel):
    """Where a connector's spec and overlays are, and its default base URL."""

    model_config = ConfigDict(extra="forbid")

    connector: Literal[1] = 1
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]{1,64}$")
    spec_file: str | None = None
    spec_url: str | None = None
    overlays: list[str] = Field(default_factory=list)
    base_url: str | None = None
    folder: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="after")
    def _one_spec(self) -> ConnectorManifest:
        if (self.spec_file is None) == (self.spec_url is None):
            raise ValueError("a connector manifest names exactly one of spec_file, spec_url")
        return self


def connector_path(domain_or_path: str | Path | None) -> Path:
    """The manifest of a bundled domain (``helpdesk``, ``o2c``), a path, or the default."""
    if domain_or_path in (None, ""):
        return DEFAULT_CONNECTOR
    text = str(domain_or_path)
    bundled = CONNECTORS_DIR / text / MANIFEST_NAME
    if "/" not in text and bundled.is_file():
        return bundled
    return Path(text)


def load_manifest(path: str | Path | None = None) -> ConnectorManifest:
    """The manifest at ``path`` (a file, a folder with ``connector.yaml``, or an annotated spec)."""
    target = connector_path(path)
    if target.is_dir():
        target = target / MANIFEST_NAME
    if not target.is_file():
        raise SpecError(f"{target}: no connector manifest (CLOSEDLOOP_CONNECTOR)")
    data = parse_document(target.read_bytes(), str(target))
    if "openapi" in data:  # an OpenAPI document annotated inline
        name = str(data.get(CONNECTOR_KEY, {}).get("name", target.stem))
        return ConnectorManifest(name=name, spec_file=target.name, folder=target.parent)
    try:
        return ConnectorManifest.model_validate({**data, "folder": target.parent})
    except ValidationError as exc:
        raise SpecError(f"{target}: not a connector manifest: {exc}") from exc


def _spec_auth(manifest: ConnectorManifest, env: Mapping[str, str]) -> httpx.Auth | None:
    """The connector's own auth (from its overlay's root update), to fetch the spec with."""
    for name in manifest.overlays:
        overlay = load_overlay(manifest.folder / name)
        for action in overlay.actions:
            update = action.update if isinstance(action.update, dict) else {}
            if action.target == "$" and CONNECTOR_KEY in update:
                annotation = ConnectorAnnotation.model_validate(update[CONNECTOR_KEY])
                return make_auth(annotation.auth, env)
    return None


def connector_document(
    manifest: ConnectorManifest,
    base_url: str | None,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """The annotated OpenAPI document of a connector: its spec with every overlay applied.

    A ``spec_url`` is fetched from the system; failing that raises ApiCallError.
    """
    env = os.environ if env is None else env
    if manifest.spec_file is not None:
        doc = load_spec(manifest.folder / manifest.spec_file)
    else:
        root = base_url or manifest.base_url
        if not root:
            raise SpecError(f"connector {manifest.name!r}: spec_url needs a base URL")
        url = str(httpx.URL(root.rstrip("/") + "/").join(str(manifest.spec_url).lstrip("/")))
        # The connector's credentials only go to a trusted URL, never to one a caller supplied.
        auth = _spec_auth(manifest, env) if url_under(url, trusted_roots(root, env)) else None
        with httpx.Client(timeout=timeout, auth=auth) as client:
            try:
                doc = fetch_spec(url, client)
            except SpecError as exc:
                raise ApiCallError(f"GET {httpx.URL(url).path} failed: {exc}") from exc
    for name in manifest.overlays:
        doc = apply_overlay(doc, load_overlay(manifest.folder / name), str(name))
    return doc


__all__ = [
    "DEFAULT_CONNECTOR",
    "MANIFEST_NAME",
    "ConnectorManifest",
    "connector_document",
    "connector_path",
    "load_manifest",
]
