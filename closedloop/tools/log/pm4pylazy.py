"""pm4py's modules without pm4py's package start-up: a first answer on a small log sooner.

``import pm4py`` runs pm4py's package ``__init__`` files, which import nearly all
of pm4py (every reader and writer, visualisation with matplotlib and graphviz,
polars statistics, an LP solver on scipy, LLM helpers, ...): about 1.2 CPU
seconds, most of what ``closedloop mine`` needs on a six-case log
(benchmarks/bench_small_logs.py). Mining needs a handful of pm4py's modules: the
XES importer, the inductive miner, the process-tree to Petri-net conversion,
token replay, the PNML exporter.

``submodule("objects.dfg.obj")`` imports such a module and only what it imports
itself. While pm4py is not fully imported, every pm4py *package* is registered
without running its ``__init__`` (``_DeferredPackages``); plain modules run as
always. A deferred package still behaves as pm4py wrote it: asking it for a
sub-module it would have imported eagerly imports that sub-module, and asking it
for any other name runs its ``__init__`` first. The first top-level name asked
of ``pm4py`` itself (``pm4py.read_xes``, or ``import pm4py`` and any function)
runs pm4py's ``__init__``; from then on pm4py imports normally.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

__all__ = ["is_fully_imported", "submodule"]

# Plain pm4py modules that modules mining needs import at their top but use only on paths
# mining does not take; each is run when first used (``importlib.util.LazyLoader``).
LAZY_MODULES = frozenset(
    {
        "pm4py.util.lp.solver",  # scipy.optimize, cvxopt: alignments, not token replay
        "pm4py.objects.conversion.log.converter",  # every log conversion, networkx
    }
)
_LOCK = threading.RLock()
_DEFERRED = "_closedloop_deferred_init"  # set on a package whose __init__ has not run


def submodule(name: str) -> ModuleType:
    """The module ``pm4py.<name>``, importing no more of pm4py than it needs.

    When pm4py is already fully imported this is an ordinary import.
    """
    full = f"pm4py.{name}"
    module = sys.modules.get(full)
    if module is not None:
        return module
    with _LOCK:
        if "pm4py" not in sys.modules and not _FINDER.active:
            _FINDER.active = True
            sys.meta_path.insert(0, _FINDER)
        return importlib.import_module(full)


def is_fully_imported() -> bool:
    """Whether pm4py's own package ``__init__`` has run in this interpreter."""
    package = sys.modules.get("pm4py")
    return package is not None and not getattr(package, _DEFERRED, False)


class _DeferredLoader(importlib.abc.Loader):
    """Creates a pm4py package as the real loader would, but runs its ``__init__`` on demand."""

    def __init__(self, real: importlib.abc.Loader) -> None:
        self.real = real

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.real.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        setattr(module, _DEFERRED, True)
        module.__getattr__ = _resolver(module)  # type: ignore[attr-defined]
        # the real loader, for the module's own __init__ when it runs
        module.__spec__.loader = self.real  # type: ignore[union-attr]
        module.__loader__ = self.real


class _DeferredPackages(importlib.abc.MetaPathFinder):
    """Finds pm4py packages (until pm4py's own ``__init__`` runs) and defers their ``__init__``."""

    active = False

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not self.active or not (fullname == "pm4py" or fullname.startswith("pm4py.")):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        if spec.submodule_search_locations is not None:
            spec.loader = _DeferredLoader(spec.loader)
            return spec
        if fullname in LAZY_MODULES:
            spec.loader = importlib.util.LazyLoader(spec.loader)
            return spec
        return None  # a plain module: imported as usual


_FINDER = _DeferredPackages()


def _resolver(package: ModuleType) -> Any:
    """A package's ``__getattr__`` (PEP 562): a sub-module by import, anything else by init."""

    def __getattr__(attr: str) -> Any:
        if attr.startswith("__") and attr.endswith("__") and attr not in ("__all__", "__version__"):
            raise AttributeError(f"module {package.__name__!r} has no attribute {attr!r}")
        name = f"{package.__name__}.{attr}"
        if importlib.util.find_spec(name) is not None:
            return importlib.import_module(name)  # what the __init__ would have imported
        _initialise(package)
        try:
            return package.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {package.__name__!r} has no attribute {attr!r}") from None

    return __getattr__


def _initialise(package: ModuleType) -> None:
    """Run a deferred package's ``__init__``; for ``pm4py`` itself, stop deferring."""
    with _LOCK:
        if not package.__dict__.pop(_DEFERRED, False):
            return
        package.__dict__.pop("__getattr__", None)
        if package.__name__ == "pm4py" and _FINDER.active:
            _FINDER.active = False
            sys.meta_path.remove(_FINDER)
        package.__spec__.loader.exec_module(package)  # type: ignore[union-attr]
