"""Column names of the canonical event frame, defined once for every tool.

The canonical frame uses pm4py's XES keys, so frames pass to pm4py unchanged.
Every module that reads or writes an event frame imports its names from here.
"""

from __future__ import annotations

CASE = "case:concept:name"
ACTIVITY = "concept:name"
TIMESTAMP = "time:timestamp"
# Alias used where the completion time is contrasted with the start time.
COMPLETE = TIMESTAMP
START = "start_timestamp"
RESOURCE = "org:resource"
GROUP = "org:group"
LIFECYCLE = "lifecycle:transition"
CASE_PREFIX = "case:"
# The experiment cohort of a case (treatment / control), where a connector puts it.
COHORT = "case:cohort"
TIME_DTYPE = "datetime64[us, UTC]"

STANDARD_COLUMNS = frozenset({CASE, ACTIVITY, TIMESTAMP, START, RESOURCE, GROUP, LIFECYCLE})
