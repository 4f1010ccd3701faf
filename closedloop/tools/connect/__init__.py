"""Connectors: an OpenAPI 3 document plus ``x-closedloop-*`` annotations, no code.

A connector is a vendor's OpenAPI spec, left untouched, plus annotations
written inline or in an OpenAPI Overlay 1.0 document. From it comes the action
catalog: the only writes the loop may make, how to read events and state, and
how to undo and verify each change. See ``docs/connectors.md``.

Modules: ``spec`` (safe loading, local ``$ref``), ``overlay`` (Overlay 1.0),
``annotations`` (the models), ``params`` (typed parameters), ``templates``
(value sources), ``auth`` (bearer, basic, API key, OAuth2 client credentials),
``catalog`` (:func:`build_catalog`), ``request`` (requests built, not sent),
``feed`` (event paging: token, offset, next link; ``{since}`` watermarks),
``urls`` (safe paths, OData keys, next links on the API's host only),
``readback`` (event pages, read-back checks), ``schema`` (shipped JSON Schema),
``profiles`` (shipped vendor profiles by name), ``probe`` (:func:`check_connector`: a
connector against its live API, writes built but never sent; ``examples`` makes its
example parameters).

Loading a connector *manifest* (``connector.yaml``: spec, overlays, base URL) is the
act room's job: ``closedloop.tools.act.load_manifest`` / ``connector_document``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from closedloop.tools.connect.annotations import (
    ActionAnnotation,
    ChangeKindByParam,
    ConnectorAnnotation,
)
from closedloop.tools.connect.auth import (
    ApiKeyHeaderAuth,
    BasicCredentialsAuth,
    BearerTokenAuth,
    CsrfTokenAuth,
    OAuth2ClientCredentialsAuth,
    make_auth,
    make_connector_auth,
)
from closedloop.tools.connect.catalog import Catalog, CatalogAction, OperationRef, build_catalog
from closedloop.tools.connect.errors import (
    AnnotationError,
    AuthError,
    ConnectorError,
    NotInCatalogError,
    OverlayError,
    RequestBuildError,
    SpecError,
)
from closedloop.tools.connect.feed import watermark
from closedloop.tools.connect.overlay import (
    Overlay,
    apply_overlay,
    load_overlay,
    load_overlay_text,
)
from closedloop.tools.connect.probe import ConnectorCheck, Finding, check_connector
from closedloop.tools.connect.profiles import load_profile, profile_document, profile_names
from closedloop.tools.connect.readback import COHORT, map_events_page, verify_readback
from closedloop.tools.connect.request import (
    build_action_request,
    build_before_request,
    build_compensation_request,
    build_events_request,
    build_read_request,
    build_verify_request,
)
from closedloop.tools.connect.schema import annotations_json_schema
from closedloop.tools.connect.spec import (
    fetch_spec,
    load_spec,
    load_spec_text,
    parse_document,
    pointer_get,
)
from closedloop.tools.connect.templates import fill_pointer

CONNECTORS_DIR = Path(__file__).resolve().parents[2] / "connectors"


def load_connector(spec: dict[str, Any], overlay: Overlay | None = None) -> Catalog:
    """The catalog of ``spec`` with ``overlay`` applied (if any); the spec is not modified."""
    return build_catalog(apply_overlay(spec, overlay) if overlay is not None else spec)

from closedloop.tools.connect.urls import fill_path

__all__ = [
    "COHORT",
    "CONNECTORS_DIR",
    "ActionAnnotation",
    "AnnotationError",
    "ApiKeyHeaderAuth",
    "AuthError",
    "BasicCredentialsAuth",
    "BearerTokenAuth",
    "Catalog",
    "CatalogAction",
    "ChangeKindByParam",
    "ConnectorAnnotation",
    "ConnectorCheck",
    "ConnectorError",
    "CsrfTokenAuth",
    "Finding",
    "NotInCatalogError",
    "OAuth2ClientCredentialsAuth",
    "OperationRef",
    "Overlay",
    "OverlayError",
    "RequestBuildError",
    "SpecError",
    "annotations_json_schema",
    "apply_overlay",
    "build_action_request",
    "build_before_request",
    "build_catalog",
    "build_compensation_request",
    "build_events_request",
    "build_read_request",
    "build_verify_request",
    "check_connector",
    "fetch_spec",
    "fill_path",
    "fill_pointer",
    "load_connector",
    "load_overlay",
    "load_overlay_text",
    "load_profile",
    "load_spec",
    "load_spec_text",
    "make_auth",
    "make_connector_auth",
    "map_events_page",
    "parse_document",
    "pointer_get",
    "profile_document",
    "profile_names",
    "verify_readback",
    "watermark",
]
