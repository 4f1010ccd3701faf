"""Conformance tools: check a reference (BPMN/PNML) or the discovered model against a log.

The measures themselves (token-replay fitness, escaping-edges precision, F1 and
per-case deviations) are computed by ``replay.replay_conformance``; this module
loads reference models, names the discovered default model and fronts both as
the ``check_conformance`` tool.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from closedloop.tools.base import read_tool
from closedloop.tools.errors import ToolError
from closedloop.tools.log import as_canonical
from closedloop.tools.mining.discovery import DiscoveredModel, discover_petri_net, petri_net
from closedloop.tools.mining.replay import (
    DEFAULT_MAX_REPLAY_STEPS,
    CaseDeviation,
    ConformanceReport,
    replay_conformance,
)

__all__ = [
    "DEFAULT_MAX_REPLAY_STEPS",
    "CaseDeviation",
    "ConformanceReport",
    "DiscoveredNet",
    "check_conformance",
    "discovered_net",
    "load_reference_model",
    "model_name",
    "replay_conformance",
]


MAX_MODEL_BYTES = 50 << 20
MAX_MODEL_DEPTH = 100


def _check_model_xml(path: Path) -> None:
    """Parse an untrusted model with defusedxml first (no DTD, no entities), bounded in
    size and nesting, before pm4py's lxml reader sees it."""
    from defusedxml import DefusedXmlException
    from defusedxml.ElementTree import ParseError, iterparse

    if path.stat().st_size > MAX_MODEL_BYTES:
        raise ToolError(f"{path}: larger than {MAX_MODEL_BYTES >> 20} MB; not a process model")
    depth = 0
    try:
        for event, _ in iterparse(str(path), events=("start", "end"), forbid_dtd=True):
            depth += 1 if event == "start" else -1
            if depth > MAX_MODEL_DEPTH:
                raise ToolError(f"{path}: elements nested more than {MAX_MODEL_DEPTH} deep")
    except DefusedXmlException as exc:
        raise ToolError(f"{path}: refused: {exc} (DTDs and entities are not allowed)") from None
    except ParseError as exc:
        raise ToolError(f"{path}: not well-formed XML: {exc}") from None


def load_reference_model(path: str | Path) -> tuple[Any, Any, Any]:
    """Read a BPMN 2.0 (.bpmn) or PNML (.pnml) model: pm4py ``(net, initial, final marking)``."""
    import pm4py

    path = Path(path)
    if not path.is_file():
        raise ToolError(f"{path}: reference model not found")
    suffix = path.suffix.lower()
    if suffix in (".pnml", ".bpmn"):
        _check_model_xml(path)
    try:
        if suffix == ".pnml":
            net, im, fm = pm4py.read_pnml(str(path))
        elif suffix == ".bpmn":
            net, im, fm = pm4py.convert_to_petri_net(pm4py.read_bpmn(str(path)))
        else:
            raise ToolError(f"{path}: unsupported model format; expected .bpmn or .pnml")
    except ToolError:
        raise
    except Exception as exc:  # noqa: BLE001 - lxml and pm4py raise many types on bad files
        raise ToolError(f"{path}: cannot read the model: {type(exc).__name__}: {exc}") from None
    if not net.transitions or not im:
        raise ToolError(f"{path}: the model has no transitions or no initial marking")
    if not fm:
        raise ToolError(f"{path}: the model has no final marking (token replay needs one)")
    return net, im, fm


@read_tool
def check_conformance(
    log: pd.DataFrame,
    reference_model: str | Path | None = None,
    seed: int = 0,
    max_replay_steps: int = DEFAULT_MAX_REPLAY_STEPS,
    max_deviations: int = 20,
) -> ConformanceReport:
    """Check how well a process model fits an event log.

    reference_model: a BPMN 2.0 (.bpmn) or PNML (.pnml) file whose task labels
    are the log's activity names; without it the model discovered from the log
    (``discover_petri_net`` defaults) is checked. Returns a ConformanceReport with:
    - fitness (0..1): how much of the log the model can replay (token-based replay);
    - precision (0..1): how little behaviour the model allows beyond the log
      (escaping edges); f1: their harmonic mean;
    - fitting_cases_share, deviating_cases and deviations: the most frequent
      non-fitting activity sequences with an example case id, the activities that
      happened although the model did not allow them and the ones it still expected;
    - exact / method / fitness_ci / precision_ci: exact values, or estimates from
      a seeded random sample of cases with 95% intervals when replay is expensive.
    """
    frame = as_canonical(log, "check_conformance")
    if reference_model is not None:
        net, im, fm = load_reference_model(reference_model)
        name = f"reference model {Path(reference_model).name}"
    else:
        net, im, fm, name, _ = discovered_net(frame)
    return replay_conformance(
        frame,
        net,
        im,
        fm,
        name,
        seed=seed,
        max_replay_steps=max_replay_steps,
        max_deviations=max_deviations,
    )


class DiscoveredNet(NamedTuple):
    """The net ``discover_petri_net`` finds with its defaults (pm4py objects)."""

    net: Any
    initial: Any
    final: Any
    name: str  # e.g. "discovered model: inductive miner (imd, noise_threshold=0.2)"
    model: DiscoveredModel  # size, settings, process tree


def discovered_net(frame: pd.DataFrame) -> DiscoveredNet:
    """Discover the default model of a log (``discovery.discover_petri_net``)."""
    model = discover_petri_net(frame)
    return DiscoveredNet(*petri_net(model), name=model_name(model), model=model)


def model_name(model: DiscoveredModel) -> str:
    """How reports name a discovered model, e.g.
    "discovered model: inductive miner (imd, noise_threshold=0.2)"."""
    settings = ", ".join(f"{k}={v:g}" for k, v in model.parameters.items())
    return f"discovered model: {model.algorithm} miner ({model.variant}, {settings})"
