"""What the Watchdog measures: cohorts, designs, effects, guardrail KPIs."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    Field,
)

from closedloop.contracts.base import Record


class CohortStats(BaseModel):
    """Mean of a KPI over one cohort with its confidence interval."""

    n: int
    mean: float
    ci_low: float
    ci_high: float


class GuardrailThresholds(BaseModel):
    """How much a guardrail KPI may worsen before the change is aborted (rollout practice defaults).

    Rates are in percentage points (2.0 = two points). Reopen and failure are
    held to the rework limit (a reopened or failed case is reworked); cost is
    checked only when a limit is given.
    """

    max_rework_increase_points: float = Field(default=2.0, ge=0)
    max_reopen_increase_points: float = Field(default=2.0, ge=0)
    max_failure_increase_points: float = Field(default=2.0, ge=0)
    max_sla_drop_points: float = Field(default=1.0, ge=0)
    max_cost_increase_pct: float | None = Field(default=None, ge=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)


class Guardrails(Record):
    """The limits a live change is watched against (stored with the plan).

    The guardrail-KPI fields are optional and left out of the dump until set,
    so plans stored before them keep their shape.
    """

    max_relative_worsening: float = Field(ge=0)
    min_cases_per_cohort: int = Field(ge=2)
    max_writes: int = Field(ge=0)
    end_activities: list[str]
    start_activities: list[str]
    thresholds: GuardrailThresholds | None = None
    sla_hours: float | None = Field(default=None, gt=0)
    reopen_activities: list[str] | None = None
    failure_activities: list[str] | None = None
    watch_days: float | None = Field(
        default=None,
        gt=0,
        description="how long the change runs beside its control group before the Watchdog's "
        "verdict (days): the window the Planner predicted over and a switchback trial spans "
        "(settings.prediction_days); unset: until each cohort has min_cases_per_cohort cases",
    )


DesignName = Literal["switchback", "before_after_with_counterfactual", "treatment_control_corrected",
                     "treatment_control"]
"""How a live change is measured (see ``closedloop.tools.measure.choose_design``)."""


class DesignChoice(BaseModel):
    """The measurement design chosen for a change, and why."""

    design: DesignName
    why: str


class EffectEstimate(BaseModel):
    """The measured total effect of a change on a KPI (with the change minus without), with its interval.

    ``unit`` is what the interval treats as independent (time blocks in a
    switchback, cases otherwise); ``estimator`` says whether open cases were
    censored (restricted mean up to ``tau_hours``) or every case was closed.
    """

    kpi: str = "cycle_time_hours"
    design: DesignName
    why: str
    effect: float
    ci_low: float
    ci_high: float
    confidence: float
    baseline: float
    changed: float
    relative_pct: float | None
    significant: bool
    unit: Literal["block", "case"]
    units_changed: int
    units_baseline: int
    cases: int
    open_cases: int
    estimator: str
    tau_hours: float | None = None
    assumptions: list[str] = Field(default_factory=list)


class RateStat(BaseModel):
    """A share of cases (e.g. reworked) with its standard error; ``count`` when it is a plain count."""

    rate: float
    n: int
    se: float
    count: int | None = None


class GuardrailKpis(BaseModel):
    """Quality and cost KPIs of one cohort or period, measured from its events."""

    cases: int
    open_cases: int
    rework: RateStat
    reopen: RateStat
    failure: RateStat | None = None
    sla_attainment: RateStat | None = None
    sla_hours: float | None = None
    busy_hours: float
    staff_cost: float
    cost_per_case: float
    assumptions: list[str] = Field(default_factory=list)


class GuardrailResult(BaseModel):
    """One guardrail: how much it worsened (positive = worse), its interval, and whether it breached."""

    kpi: str
    unit: Literal["points", "pct"]
    baseline: float
    changed: float
    worsening: float
    ci_low: float | None
    ci_high: float | None
    threshold: float
    breached: bool


class GuardrailCheck(BaseModel):
    """All guardrails of a change: it is aborted when any breached."""

    breached: bool
    breaches: list[str]
    results: list[GuardrailResult]
    rule: str


class SequentialDecision(BaseModel):
    """A sequential test's state on the rework proportion: abort early, keep watching, or no breach."""

    decision: Literal["abort", "continue", "no_breach"]
    n: int
    stopped_at: int | None
    log_likelihood_ratio: float
    upper: float
    lower: float
    p0: float
    p1: float
    alpha: float
    beta: float
    rule: str


class AutomationFailures(BaseModel):
    """A canary's bot failures on its segment: treated cases people had to do after all.

    ``cases`` are the judged cases (failed or finished); ``pending`` were old
    enough to judge but are still open with neither; ``low95``/``high95`` is
    the Wilson interval of ``rate``.
    """

    failed: int
    cases: int
    pending: int
    rate: float | None = None
    low95: float = 0.0
    high95: float = 1.0
    settle_hours: float
    taken_over: list[str] = Field(default_factory=list)
    notice_n: int = Field(0, description="failed cases whose notice delay was seen")
    notice_q1: float | None = Field(None, description="hours a failure went unnoticed, quartile 1")
    notice_q3: float | None = Field(None, description="hours a failure went unnoticed, quartile 3")


# Designs whose effect is on the mean of every case (blocks or periods), not per treated case.
ALL_CASE_DESIGNS = ("switchback", "before_after_with_counterfactual")


class KpiMeasurement(Record):
    """A live change's effect on cycle time, measured from the system's own events since it.

    ``design``/``why``/``effect`` say how the effect was measured (the legacy
    ``delta``/``ci_*`` repeat ``effect``'s numbers); ``treatment``/``control``
    are the changed and the baseline cohort or period. ``guardrail_kpis`` are
    per cohort or period, ``guardrail_check`` and ``sequential`` their checks.
    Without enough completed cases the cohort statistics and the delta are absent.
    """

    kpi: str = "cycle_time_hours"
    source: str
    events: int
    min_cases_per_cohort: int
    enough_cases: bool
    treatment_n: int
    control_n: int
    treatment: CohortStats | None = None
    control: CohortStats | None = None
    delta: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    relative_pct: float | None = None
    guardrail_breached: bool | None = None
    guardrail: str | None = None
    design: DesignName | None = None
    why: str | None = None
    effect: EffectEstimate | None = None
    guardrail_check: GuardrailCheck | None = None
    guardrail_kpis: dict[str, GuardrailKpis] | None = None
    sequential: SequentialDecision | None = None
    automation_failures: AutomationFailures | None = Field(
        None, description="an automation canary's failures on its segment (treated cases only)")

    @property
    def per_treated_case(self) -> bool:
        """Whether the effect is per treated case (a split's cohorts) rather than on the mean of
        every case (a switchback's blocks, a before/after's period)."""
        return self.design not in ALL_CASE_DESIGNS


# --------------------------------------------------------------------------- approvals


class SwitchBlock(BaseModel):
    """One block of a running switchback trial: the change was on (or off) from ``start``
    (the system's time of the toggle: its last event before it) until the next block."""

    index: int
    on: bool
    start: datetime
    execution_id: int | None = None


class SwitchbackSchedule(BaseModel):
    """A switchback trial: the change alternates on/off by blocks of ``block_hours``.

    ``plan`` is the on/off order of every block (block 0 is the change as executed, the
    last block is on, so a kept change stays live); ``pairs`` the blocks randomised together
    (one on, one off); ``blocks`` are the blocks begun so far; ``reported_hours`` how long
    the world ran since the current block began, as the resumes' drivers said.
    ``finished`` once the last block has run its length; ``stopped`` says why a trial ended
    early (a toggle refused or failed), in which case the blocks begun are all there is.
    """

    block_hours: float = Field(gt=0)
    washout_hours: float = Field(ge=0)
    plan: list[bool]
    pairs: list[tuple[int, int]] = Field(default_factory=list)
    why: str
    blocks: list[SwitchBlock] = Field(default_factory=list)
    reported_hours: float = 0.0
    finished: bool = False
    stopped: str | None = None
