"""Markdown for the chat: mining summaries, plans and verdicts, with log text escaped.

Text that comes from event logs, file names, APIs or the agents is data. It is
escaped so Markdown or HTML inside it (``[x](https://evil)``, ``<img onerror>``,
a bare ``https://`` link, a table pipe, a newline) shows as the literal text and
can never become a link, an image, a script or a new table row. Only strings
built here (wrapped in ``Md``) are emitted as Markdown.

This module is the front of three with one job each: :mod:`closedloop.chat.markdown`
(escaping, tables, number formats), :mod:`closedloop.chat.render_mining` (a mined log) and
:mod:`closedloop.chat.render_loop` (a loop run's plan and verdict).
"""

from __future__ import annotations

from closedloop.chat.markdown import (
    ASCII_PUNCTUATION,
    BIDI_CONTROLS,
    WORD_JOINER,
    Md,
    clean_text,
    count,
    duration,
    hours,
    md_cell,
    md_code_block,
    md_table,
    md_text,
    pct,
)
from closedloop.chat.render_loop import (
    PHASE_LABELS,
    agreement_md,
    last_step,
    observed_md,
    params_md,
    plan_md,
    plan_prediction,
    predicted_md,
    verdict_md,
)
from closedloop.chat.render_mining import (
    ASK_HINT,
    bottleneck_section_md,
    log_error_md,
    mining_summary_md,
    people_error,
    rework_table_md,
)

__all__ = [
    "ASCII_PUNCTUATION",
    "ASK_HINT",
    "BIDI_CONTROLS",
    "PHASE_LABELS",
    "WORD_JOINER",
    "Md",
    "agreement_md",
    "bottleneck_section_md",
    "clean_text",
    "count",
    "duration",
    "hours",
    "last_step",
    "log_error_md",
    "md_cell",
    "md_code_block",
    "md_table",
    "md_text",
    "mining_summary_md",
    "observed_md",
    "params_md",
    "pct",
    "people_error",
    "plan_md",
    "plan_prediction",
    "predicted_md",
    "rework_table_md",
    "verdict_md",
]
