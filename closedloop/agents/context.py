"""What every agent node is given at run time (injected, never global)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from closedloop.settings import Settings
from closedloop.store.db import transaction
from closedloop.store.models import CatalogVersion
from closedloop.tools.act import System
from closedloop.tools.connect import build_catalog
from closedloop.tools.errors import NotAllowedError
from closedloop.tools.twin import fit_twin
from closedloop.tools.twin.uncertainty import bootstrap_twins


@dataclass
class LoopContext:
    """Settings, the store and the enterprise systems (through their connectors) for one process.

    ``cache`` keeps expensive derived objects (event frames, fitted twins, open
    systems) for the life of the process; everything needed to resume lives in
    the store, the catalog a run is bound to included.
    """

    settings: Settings
    engine: Engine
    api_client_factory: Any = None  # Callable[[str], httpx.Client], for tests
    cache: dict[str, Any] = field(default_factory=dict)

    def system(self, catalog_version: str, base_url: str) -> System:
        """The system at ``base_url`` through the stored catalog ``catalog_version`` (cached)."""
        key = f"system:{catalog_version}:{base_url}"
        if key not in self.cache:
            with transaction(self.engine) as session:
                row = session.exec(select(CatalogVersion)
                                   .where(CatalogVersion.version == catalog_version)).first()
            if row is None:
                raise NotAllowedError(f"catalog version {catalog_version!r} is not in the store")
            if self.api_client_factory is not None:
                client = self.api_client_factory(base_url)
                self.cache[key] = System(build_catalog(row.content), base_url, client)
            else:
                self.cache[key] = System.open(row.content, base_url, self.settings.secret_env(),
                                              timeout=self.settings.api_timeout_s,
                                              read_retries=self.settings.api_retries)
        return self.cache[key]

    def frame(self, sha256: str, artifact: str) -> Any:
        """The canonical event frame of a stored dataset (process cache, else its snapshot,
        decrypted with the configured snapshot key when encrypted)."""
        from closedloop.tools.log.snapshot import configured_key, read_snapshot

        key = f"frame:{sha256}"
        if key not in self.cache:
            self.cache[key] = read_snapshot(artifact, configured_key(self.settings))
        return self.cache[key]

    def twin(self, sha256: str, artifact: str) -> Any:
        """The process twin of a stored dataset, fitted once per dataset and seed in the process
        (Triage, the Planner and the Watchdog share it)."""
        key = f"twin:{sha256}:{self.settings.seed}"
        if key not in self.cache:
            self.cache[key] = fit_twin(self.frame(sha256, artifact), seed=self.settings.seed)
        return self.cache[key]

    def refits(self, sha256: str, artifact: str, count: int) -> list[Any]:
        """``count`` bootstrap refits of the dataset's twin (over cases), made once per process:
        the parameter uncertainty the Planner's predictions and the Watchdog's counterfactual share."""
        key = f"refits:{sha256}:{self.settings.seed}:{count}"
        if key not in self.cache:
            self.cache[key] = bootstrap_twins(self.frame(sha256, artifact),
                                              self.twin(sha256, artifact), count, self.settings.seed)
        return self.cache[key]

    def close(self) -> None:
        """Close the systems this context opened."""
        for key, value in list(self.cache.items()):
            if key.startswith("system:"):
                value.close()
                del self.cache[key]
