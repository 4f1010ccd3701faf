"""Bind a run to its connector: resolve the annotated document, store its catalog version."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from closedloop.settings import Settings
from closedloop.store.db import transaction
from closedloop.store.models import CatalogVersion
from closedloop.tools.act import connector_document, load_manifest
from closedloop.tools.connect import build_catalog


def bind_catalog(settings: Settings, engine: Engine, api_url: str | None) -> tuple[str, str]:
    """The catalog version of the configured connector at ``api_url`` (stored once per version),
    and the base URL the run uses (``api_url``, else the manifest's default)."""
    manifest = load_manifest(settings.connector or None)
    base_url = api_url or manifest.base_url
    if not base_url:
        raise ValueError(f"connector {manifest.name!r} has no default base URL; give the API's URL")
    document = connector_document(manifest, base_url, settings.secret_env(),
                                  timeout=settings.api_timeout_s)
    catalog = build_catalog(document)
    try:
        with transaction(engine) as session:
            known = session.exec(select(CatalogVersion)
                                 .where(CatalogVersion.version == catalog.version)).first()
            if known is None:
                session.add(CatalogVersion(connector=catalog.connector.name,
                                           version=catalog.version, content=document))
    except IntegrityError:  # another process stored the same version first
        pass
    return catalog.version, base_url
