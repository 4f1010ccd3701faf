"""Precise exceptions of connectors (spec, overlay, annotations, auth, catalog).

They subclass the tools' base classes so the one error boundary already turns
them into messages; refusing an operation outside the catalog is a
:class:`~closedloop.tools.errors.NotAllowedError` like every other refusal.
"""

from __future__ import annotations

from closedloop.tools.errors import NotAllowedError, ToolError


class ConnectorError(ToolError):
    """Base class of every connector problem."""


class SpecError(ConnectorError):
    """An OpenAPI document cannot be read: syntax, version, size, depth or a bad ``$ref``."""


class OverlayError(ConnectorError):
    """An Overlay document is invalid or one of its actions cannot be applied."""


class AnnotationError(ConnectorError):
    """An ``x-closedloop-*`` annotation is missing or invalid (names operation and annotation)."""


class AuthError(ConnectorError):
    """Credentials are missing, or the token endpoint refused them."""


class NotInCatalogError(NotAllowedError, ConnectorError):
    """An action or operation that the connector's catalog does not contain."""


class RequestBuildError(ConnectorError):
    """An action's parameters do not fit its request mapping (bad or missing value)."""


__all__ = [
    "AnnotationError",
    "AuthError",
    "ConnectorError",
    "NotInCatalogError",
    "OverlayError",
    "RequestBuildError",
    "SpecError",
]
