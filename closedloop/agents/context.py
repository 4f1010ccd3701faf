"""What every agent node is given at run time (injected, never global)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from closedloop.settings import Settings


@dataclass
class LoopContext:
    """Settings, the store and the enterprise API client for one process.

    ``cache`` keeps expensive derived objects (event frames, fitted twins) for
    the life of the process; everything needed to resume lives in the store.
    """

    settings: Settings
    engine: Engine
    api_client_factory: Any = None  # Callable[[str], httpx.Client]
    cache: dict[str, Any] = field(default_factory=dict)

    def api_client(self, base_url: str) -> httpx.Client:
        """An HTTP client for the enterprise API at ``base_url`` (cached per URL)."""
        key = f"client:{base_url}"
        if key not in self.cache:
            if self.api_client_factory is not None:
                self.cache[key] = self.api_client_factory(base_url)
            else:
                headers = {}
                if self.settings.sandbox_token is not None:
                    headers["Authorization"] = f"Bearer {self.settings.sandbox_token.get_secret_value()}"
                self.cache[key] = httpx.Client(
                    base_url=base_url, timeout=self.settings.api_timeout_s, headers=headers
                )
        return self.cache[key]

    def frame(self, sha256: str, artifact: str) -> Any:
        """The canonical event frame of a stored dataset (process cache, else its parquet snapshot)."""
        import pandas as pd

        key = f"frame:{sha256}"
        if key not in self.cache:
            self.cache[key] = pd.read_parquet(artifact)
        return self.cache[key]

    def close(self) -> None:
        """Close the HTTP clients this context opened."""
        for key, value in list(self.cache.items()):
            if key.startswith("client:"):
                value.close()
                del self.cache[key]
