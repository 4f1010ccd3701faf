"""The ``rules`` room: learn automation rules from history and backtest them.

Public API (import from here; the modules behind it may move):

- learning: :func:`generate_rules` (``learn``) fits a decision tree on the
  earlier cases and returns a :class:`RuleSet` of :class:`CandidateRule`;
- backtesting: :func:`backtest_rule` (``backtest``) scores one condition ->
  action rule on the fit and score periods (:class:`RuleBacktest`,
  :class:`PeriodScore`, :class:`Confusion`);
- targets and case tables (``cases``): :class:`OutcomeTarget`,
  :data:`BPI2012_DECISION`, :data:`Target`, :func:`case_table`,
  :func:`split_by_time`, :func:`feature_columns`, :func:`records`, the table
  columns ``LABEL``, ``CASE_START``, ``DECIDED_AT``, ``VARIANT``;
- the condition language (``conditions``): :func:`compile_condition`,
  :func:`evaluate_condition`, :class:`Condition`, :class:`ConditionError`,
  :func:`identifier`; :func:`number_literal` and :func:`nice_cut` (``learn``)
  write numbers and cuts in it.
"""

from closedloop.tools.rules.backtest import (
    Confusion,
    PeriodScore,
    RuleBacktest,
    backtest_rule,
    predicted_label,
)
from closedloop.tools.rules.cases import (
    BPI2012_DECISION,
    CASE_START,
    DECIDED_AT,
    LABEL,
    VARIANT,
    OutcomeTarget,
    Target,
    as_target,
    case_table,
    feature_columns,
    records,
    split_by_time,
)
from closedloop.tools.rules.conditions import (
    Condition,
    ConditionError,
    compile_condition,
    evaluate_condition,
    identifier,
)
from closedloop.tools.rules.learn import (
    CandidateRule,
    RuleSet,
    generate_rules,
    nice_cut,
    number_literal,
)

__all__ = [
    "BPI2012_DECISION",
    "CASE_START",
    "DECIDED_AT",
    "LABEL",
    "VARIANT",
    "CandidateRule",
    "Condition",
    "ConditionError",
    "Confusion",
    "OutcomeTarget",
    "PeriodScore",
    "RuleBacktest",
    "RuleSet",
    "Target",
    "as_target",
    "backtest_rule",
    "case_table",
    "compile_condition",
    "evaluate_condition",
    "feature_columns",
    "generate_rules",
    "identifier",
    "nice_cut",
    "number_literal",
    "predicted_label",
    "records",
    "split_by_time",
]
