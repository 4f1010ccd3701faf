"""Shared pytest fixtures: where the bundled and the large shared logs live."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BUNDLED_DATA = REPO_ROOT / "closedloop" / "data"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture
def bundled_data() -> Path:
    """Small logs shipped inside the package (always present)."""
    return BUNDLED_DATA


@pytest.fixture
def shared_data() -> Path:
    """Large public logs beside the clone; skipped with a reason when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"../shared/data not found at {SHARED_DATA} (only present beside the dev clone)")
    return SHARED_DATA
