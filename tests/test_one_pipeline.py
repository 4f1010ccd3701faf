"""One mining pipeline: ``mine``, ``diagnose``, ``closedloop mine`` and the chat report the same model.

The chat and the loop call ``mine``, the CLI calls ``diagnose``; all of them must
describe the log with the same discovered model and the same fitness and
precision, and take the bottleneck threshold from the settings when none is given.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from closedloop.chat.render import md_text, mining_summary_md
from closedloop.cli import main
from closedloop.settings import get_settings
from closedloop.tools.log import load_event_log
from closedloop.tools.mining import (
    diagnose,
    discover_petri_net,
    mine,
    model_name,
    petri_net,
    replay_conformance,
)

MODEL_KEYS = ("algorithm", "variant", "parameters", "places", "transitions", "arcs")


@pytest.fixture(scope="module")
def helpdesk_path() -> Path:
    return Path(__file__).resolve().parents[1] / "closedloop" / "data" / "helpdesk.xes.gz"


@pytest.fixture(scope="module")
def helpdesk(helpdesk_path: Path) -> pd.DataFrame:
    return load_event_log(helpdesk_path)


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Settings re-read from the environment in the test, and again after it."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_mine_diagnose_and_cli_report_the_same_model(
    helpdesk: pd.DataFrame,
    helpdesk_path: Path,
    capsys: pytest.CaptureFixture[str],
    fresh_settings: None,
) -> None:
    mined = mine(helpdesk).model
    diagnosed = diagnose(helpdesk)
    assert main(["mine", str(helpdesk_path), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)

    # the numbers the loop and the chat see are the ones the CLI prints
    assert mined.precision is not None and mined.f1 is not None
    assert diagnosed.model == mined
    assert cli["model"] == mined.model_dump(mode="json")
    for report in (diagnosed.conformance.model_dump(mode="json"), cli["conformance"]):
        assert (report["fitness"], report["precision"], report["f1"]) == (
            mined.fitness,
            mined.precision,
            mined.f1,
        )

    # ...and they are discover_petri_net's default model measured by replay_conformance
    model = discover_petri_net(helpdesk)
    alone = replay_conformance(helpdesk, *petri_net(model), model_name(model))
    assert mined.algorithm == model_name(model).removeprefix("discovered model: ")
    assert {k: getattr(mined, k) for k in MODEL_KEYS} == {
        "algorithm": mined.algorithm,
        "variant": model.variant,
        "parameters": model.parameters,
        "places": model.places,
        "transitions": model.transitions,
        "arcs": model.arcs,
    }
    assert (mined.fitness, mined.precision) == (alone.fitness, alone.precision)
    assert diagnosed.conformance.model == cli["conformance"]["model"] == alone.model
    assert 0.9 < mined.fitness < 1.0 and 0.5 < mined.precision < 1.0  # helpdesk: 0.988 / 0.790

    # the chat's summary shows that same model and those same numbers
    chat = mining_summary_md(mine(helpdesk), "helpdesk")
    assert md_text(mined.algorithm, 80) in chat
    assert f"fitness {mined.fitness:.2f}, precision {mined.precision:.2f}, F1 {mined.f1:.2f}" in chat


def test_bottleneck_threshold_comes_from_the_settings(
    helpdesk: pd.DataFrame,
    helpdesk_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    fresh_settings: None,
) -> None:
    default = mine(helpdesk, compute_fitness=False)  # setting unset: relative to the log
    assert "mean per activity instance" in default.bottleneck_rule
    assert default.bottlenecks
    monkeypatch.setenv("CLOSEDLOOP_BOTTLENECK_HOURS", "2")
    get_settings.cache_clear()
    two = mine(helpdesk, compute_fitness=False)
    assert two.bottleneck_threshold_hours == 2.0 and len(two.bottlenecks) >= 3

    monkeypatch.setenv("CLOSEDLOOP_BOTTLENECK_HOURS", "100000")
    get_settings.cache_clear()
    strict = mine(helpdesk, compute_fitness=False)
    assert strict.bottleneck_threshold_hours == 100000 and strict.bottlenecks == []

    monkeypatch.setenv("CLOSEDLOOP_BOTTLENECK_HOURS", "0.01")
    get_settings.cache_clear()
    loose = mine(helpdesk, compute_fitness=False)
    assert loose.bottleneck_threshold_hours == 0.01
    assert len(loose.bottlenecks) >= len(default.bottlenecks)
    affected = sum(b.cases_affected for b in loose.bottlenecks)
    assert affected > sum(b.cases_affected for b in default.bottlenecks)  # more cases wait 0.01 h
    # an explicit threshold still wins over the setting
    assert (
        mine(helpdesk, bottleneck_threshold_hours=100000, compute_fitness=False).bottlenecks == []
    )

    assert main(["mine", str(helpdesk_path), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["bottleneck_threshold_hours"] == 0.01
    assert [b["activity"] for b in cli["bottlenecks"]] == [b.activity for b in loose.bottlenecks]
