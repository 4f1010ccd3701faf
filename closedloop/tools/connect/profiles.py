"""Shipped connector profiles: a vendor-shaped OpenAPI document plus its overlay, by name.

Each profile lives in ``closedloop/connectors/profiles/<name>/`` as
``openapi.yaml`` (the vendor's API shape, trimmed) and ``overlay.yaml`` (the
``x-closedloop-*`` annotations). A site adapts a profile with further overlays
of its own (its token URL, tenant, field names) instead of editing the files.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from closedloop.tools.connect.catalog import Catalog, build_catalog
from closedloop.tools.connect.errors import SpecError
from closedloop.tools.connect.overlay import Overlay, apply_overlay, load_overlay
from closedloop.tools.connect.spec import load_spec

PROFILES_DIR = Path(__file__).resolve().parents[2] / "connectors" / "profiles"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def profile_names() -> list[str]:
    """Names of the shipped profiles."""
    return sorted(p.name for p in PROFILES_DIR.iterdir()
                  if (p / "openapi.yaml").is_file() and (p / "overlay.yaml").is_file())


def profile_dir(name: str) -> Path:
    """The folder of profile ``name`` (SpecError when there is none)."""
    if not _NAME.match(name) or name not in profile_names():
        raise SpecError(f"no connector profile {name!r}; shipped: {profile_names()}")
    return PROFILES_DIR / name


def profile_document(name: str, *site_overlays: Overlay) -> dict[str, Any]:
    """The profile's spec with its overlay, then ``site_overlays``, applied in order."""
    folder = profile_dir(name)
    doc = apply_overlay(load_spec(folder / "openapi.yaml"), load_overlay(folder / "overlay.yaml"))
    for overlay in site_overlays:
        doc = apply_overlay(doc, overlay)
    return doc


def load_profile(name: str, *site_overlays: Overlay) -> Catalog:
    """The action catalog of profile ``name`` (with ``site_overlays`` applied)."""
    return build_catalog(profile_document(name, *site_overlays))


__all__ = ["PROFILES_DIR", "load_profile", "profile_dir", "profile_document", "profile_names"]
