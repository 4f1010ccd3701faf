"""pm4py's token replay over a log's prefix tree, memoised per marking (the replay engine).

Every replay step of pm4py's token replayer depends only on the current marking
and the next activity, so each (marking, activity) step runs once through
pm4py's own ``apply_trace`` semantics and is memoised; the log's variants are
folded into a prefix tree whose nodes are replayed once, serving fitness (the
variants' end nodes) and precision (every prefix: escaping edges) in one walk.
``replay.replay_conformance`` turns the per-variant counts into a report.

Kept as one module of ~330 lines: it is a single class whose methods share the
memo tables; splitting it would only scatter pm4py's replay semantics.
"""

from __future__ import annotations

from collections.abc import Sequence
from copy import copy
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

__all__ = ["TRACE_CHARS", "CaseDeviation", "PrefixReplay"]

TRACE_CHARS = 30  # activities shown per deviating case


class CaseDeviation(BaseModel):
    """A case that does not fit the model, and the activities where it deviates."""

    case_id: str = Field(description="first case (in log order) with this activity sequence")
    similar_cases: int = Field(description="cases with the same activity sequence (incl. this one)")
    trace_fitness: float = Field(description="token-replay fitness of the sequence, 0..1")
    missing_tokens: int = Field(description="tokens the model lacked to replay the sequence")
    remaining_tokens: int = Field(description="tokens left in the model after the sequence")
    unexpected_activities: list[str] = Field(
        description="executed although the model did not allow them at that point, or unknown "
        "to the model"
    )
    skipped_activities: list[str] = Field(
        description="activities the model still expected when the case ended"
    )
    activities: list[str] = Field(description=f"the sequence, first {TRACE_CHARS} activities")


class PrefixReplay:
    """pm4py token replay over the prefix tree of the log's variants, memoised per marking.

    Node 0 is the empty prefix. Per node: the marking after replaying the prefix
    (pm4py objects), whether the prefix replayed without missing tokens, and the
    running token counts and escaping-edge sums of the path to it.
    """

    def __init__(self, net: Any, im: Any, fm: Any, variants: Sequence[tuple[str, ...]]) -> None:
        from closedloop.tools.log.pm4pylazy import submodule

        token_replay = submodule("algo.conformance.tokenreplay.variants.token_replay")
        semantics = submodule("objects.petri_net.semantics")
        get_places_shortest_path_by_hidden = submodule(
            "objects.petri_net.utils.petri_utils"
        ).get_places_shortest_path_by_hidden

        self._tr, self._sem = token_replay, semantics
        self.net, self.im, self.fm = net, im, fm
        self.variants = variants
        depth = token_replay.TechnicalParameters.MAX_REC_DEPTH.value
        self.shortest = get_places_shortest_path_by_hidden(net, depth)
        self.labels: dict[str, Any] = {}
        for t in sorted(net.transitions, key=lambda x: x.name):  # as pm4py builds its map
            self.labels[t.label] = t
        self._duplicated = {
            label: sum(t.label == label for t in net.transitions) > 1 for label in self.labels
        }
        self._number_net()
        self._ids: dict[tuple, int] = {}
        self.cost = 0  # replay steps computed so far (the rest come from the memo)
        self._steps: dict[tuple[int, str], tuple] = {}
        self._finals: dict[int, tuple] = {}
        self._enabled: dict[int, frozenset[str]] = {}
        self._build_tree()
        start = copy(im)
        key = self._key(start)
        self._state: dict[int, tuple] = {
            0: (start, key, True, 0, 0, _tokens(im), *self._escaping(0, start, key))
        }
        n = len(variants)
        names = ("missing", "consumed", "remaining", "produced", "ee", "at", "trace_fitness")
        self.stats = {name: np.full(n, np.nan) for name in names}
        self.stats["fit"] = np.zeros(n)

    def _number_net(self) -> None:
        """Places and transitions as numbers for ``_visible`` (transitions in pm4py's order)."""
        ordered = sorted(self.net.transitions, key=lambda x: (str(x.name), id(x)))
        places = list(self.net.places)
        number = {p: i for i, p in enumerate(places)}
        self._place, self._place_name = number, [p.name for p in places]
        self._pre = [tuple((number[a.source], a.weight) for a in t.in_arcs) for t in ordered]
        self._post = [tuple((number[a.target], a.weight) for a in t.out_arcs) for t in ordered]
        self._repr = [repr(t) for t in ordered]
        self._label = [t.label for t in ordered]
        self._consumers: list[list[int]] = [[] for _ in places]
        for i, pre in enumerate(self._pre):
            for p, _ in pre:
                self._consumers[p].append(i)
        self._unconstrained = [i for i, pre in enumerate(self._pre) if not pre]

    def _build_tree(self) -> None:
        """The whole log's prefix tree (its children are the precision's observed behaviour)."""
        self.children: list[dict[str, int]] = [{}]
        self.parent: list[int] = [-1]
        self.activity: list[str] = [""]
        self.ends: list[int] = []
        for trace in self.variants:
            node = 0
            for act in trace:
                nxt = self.children[node].get(act)
                if nxt is None:
                    nxt = len(self.parent)
                    self.children[node][act] = nxt
                    self.children.append({})
                    self.parent.append(node)
                    self.activity.append(act)
                node = nxt
            self.ends.append(node)

    # -- pm4py's replay semantics (token_replay.apply_trace with its defaults), memoised
    def _key(self, marking: Any) -> int:
        """A small id per distinct marking (memo lookups then hash ints, not places)."""
        items = tuple(marking.items())  # insertion order matters to pm4py's tie-breaking
        return self._ids.setdefault(items, len(self._ids))

    def _step(self, marking: Any, key: int, act: str) -> tuple:
        """(marking, key, missing, consumed, produced, problem labels) after replaying ``act``.

        The body of apply_trace's event loop: walk through hidden transitions to
        enable the activity's transition, add missing tokens if that failed, fire.
        """
        memo = self._steps.get((key, act))
        if memo is not None:
            return memo
        if act not in self.labels:  # pm4py skips activities the model does not know
            memo = (marking, key, 0, 0, 0, (act,))
            self._steps[(key, act)] = memo
            return memo
        tr, sem = self._tr, self._sem
        self.cost += 1
        t = self.labels[act]
        if self._duplicated.get(act):  # pm4py prefers an enabled twin
            t = next((x for x in sem.enabled_transitions(self.net, marking) if x.label == act), t)
        missing = consumed = produced = 0
        if not sem.is_enabled(t, self.net, marking):
            _, marking, fired, _ = tr.apply_hidden_trans(
                t, self.net, copy(marking), self.shortest, [], 0, set(), [], False
            )
            for hidden in fired:
                consumed += tr.get_consumed_tokens(hidden)[0]
                produced += tr.get_produced_tokens(hidden)[0]
        problems: tuple[str, ...] = ()
        if not sem.is_enabled(t, self.net, marking):
            problems = (act,)
            marking = copy(marking)
            missing += tr.add_missing_tokens(t, marking)[0]
        consumed += tr.get_consumed_tokens(t)[0]
        produced += tr.get_produced_tokens(t)[0]
        if sem.is_enabled(t, self.net, marking):
            marking = sem.execute(t, self.net, marking)
        memo = (marking, self._key(marking), missing, consumed, produced, problems)
        self._steps[(key, act)] = memo
        return memo

    def _final(self, marking: Any, key: int) -> tuple:
        """(missing, consumed, remaining, produced, marking left) when the case ends here.

        The end of apply_trace: try to reach the final marking through hidden
        transitions, then count what is missing from it and what remains.
        """
        memo = self._finals.get(key)
        if memo is not None:
            return memo
        tr, sem, net, fm = self._tr, self._sem, self.net, self.fm
        self.cost += 1
        consumed = produced = 0

        def fire(t: Any, m: Any) -> Any:
            nonlocal consumed, produced
            consumed += tr.get_consumed_tokens(t)[0]
            produced += tr.get_produced_tokens(t)[0]
            return sem.execute(t, net, m)

        for _ in range(tr.TechnicalParameters.MAX_IT_FINAL1.value):
            if tr.break_condition_final_marking(marking, fm):
                break
            for group in tr.get_req_transitions_for_final_marking(marking, fm, self.shortest):
                for t in group:
                    if sem.is_enabled(t, net, marking):
                        marking = fire(t, marking)
                if tr.break_condition_final_marking(marking, fm):
                    break
        if not tr.break_condition_final_marking(marking, fm) and len(fm) == 1:
            sink = next(iter(fm))
            routes = sorted(
                (self.shortest[p][sink] for p in marking if sink in self.shortest.get(p, {})),
                key=len,
            )
            for _ in range(tr.TechnicalParameters.MAX_IT_FINAL2.value):
                for route in routes:
                    for t in route:
                        if not sem.is_enabled(t, net, marking):
                            break
                        marking = fire(t, marking)
        missing = sum(max(0, n - marking[p]) for p, n in fm.items())
        remaining = sum(max(0, n - fm[p]) if p in fm else n for p, n in marking.items())
        memo = (missing, consumed + _tokens(fm), remaining, produced, marking)
        self._finals[key] = memo
        return memo

    def _visible(self, marking: Any, key: int) -> frozenset[str]:
        """Labels pm4py's get_visible_transitions_eventually_enabled_by_marking returns.

        Same exploration order and the same quirk (a transition is explored with the
        marking it was last seen enabled in), on place and transition numbers
        instead of pm4py objects and repr() strings.
        """
        memo = self._enabled.get(key)
        if memo is not None:
            return memo
        self.cost += 1
        place_name, repr_of, label = self._place_name, self._repr, self._label
        names: dict[int, tuple[dict[int, int], tuple]] = {}

        def name_of(m: dict[int, int]) -> tuple:
            known = names.get(id(m))
            if known is None:
                ordered = sorted(m.items(), key=lambda item: place_name[item[0]])
                known = (m, tuple((place_name[p], n) for p, n in ordered))
                names[id(m)] = known
            return known[1]

        start = {self._place[p]: n for p, n in marking.items()}
        queue = self._enabled_sorted(start)
        seen_at = dict.fromkeys(queue, start)
        visible: set[str] = set()
        visited: set[tuple] = set()
        i = 0
        while i < len(queue):
            t = queue[i]
            m = seen_at[t]
            probe = (repr_of[t], name_of(m))
            if probe not in visited:
                if label[t] is not None:
                    visible.add(label[t])
                elif self._is_enabled(t, m):
                    after = dict(m)
                    for p, w in self._pre[t]:
                        after[p] -= w
                        if after[p] == 0:
                            del after[p]
                    for p, w in self._post[t]:
                        after[p] = after.get(p, 0) + w
                    for t2 in self._enabled_sorted(after):
                        queue.append(t2)
                        seen_at[t2] = after
                visited.add(probe)
            i += 1
        memo = frozenset(visible)
        self._enabled[key] = memo
        return memo

    def _is_enabled(self, t: int, m: dict[int, int]) -> bool:
        return all(m.get(p, 0) >= w for p, w in self._pre[t])

    def _enabled_sorted(self, m: dict[int, int]) -> list[int]:
        """Enabled transitions in pm4py's order (by name, then id)."""
        candidates = set(self._unconstrained)
        for p, n in m.items():
            if n > 0:
                candidates.update(self._consumers[p])
        return sorted(t for t in candidates if self._is_enabled(t, m))

    def _escaping(self, node: int, marking: Any, key: int) -> tuple[int, int]:
        """(escaping edges, allowed) at a prefix: model-enabled labels the log never took next."""
        allowed = self._visible(marking, key)
        return len(allowed - self.children[node].keys()), len(allowed)

    # -- the walk
    def _node(self, node: int) -> tuple:
        """(marking, key, fits so far, missing, consumed, produced, cum ee, cum at) of a node."""
        state = self._state.get(node)
        if state is None:
            marking, key, fits, missing, consumed, produced, ee, at = self._node(self.parent[node])
            after, key2, m, c, p, _ = self._step(marking, key, self.activity[node])
            fits = fits and m == 0
            if fits and self.children[node]:
                e, a = self._escaping(node, after, key2)
                ee, at = ee + e, at + a
            state = (after, key2, fits, missing + m, consumed + c, produced + p, ee, at)
            self._state[node] = state
        return state

    def variant(self, v: int) -> None:
        """Replay variant ``v`` (prefixes shared with earlier variants are not replayed again)."""
        end = self.ends[v]
        # iterative descent, so deep traces do not hit the recursion limit
        path = []
        node = end
        while node not in self._state:
            path.append(node)
            node = self.parent[node]
        for node in reversed(path):
            self._node(node)
        marking, key, fits, missing, consumed, produced, _, _ = self._state[end]
        _, _, _, _, ee, at = self._state[self.parent[end]][2:]
        fm_missing, fm_consumed, remaining, fm_produced, _ = self._final(marking, key)
        missing, consumed = missing + fm_missing, consumed + fm_consumed
        produced += fm_produced
        s = self.stats
        s["missing"][v], s["consumed"][v] = missing, consumed
        s["remaining"][v], s["produced"][v] = remaining, produced
        s["ee"][v], s["at"][v] = ee, at
        s["fit"][v] = float(fits and remaining == 0)
        s["trace_fitness"][v] = (
            0.5 * (1 - missing / consumed) + 0.5 * (1 - remaining / produced)
            if consumed > 0 and produced > 0
            else 1.0
        )

    def deviation(self, v: int, case_id: str, similar: int) -> CaseDeviation:
        """Where variant ``v`` (already replayed) deviates from the model."""
        trace = self.variants[v]
        unexpected: list[str] = []
        node = 0
        for act in trace:
            marking, key = self._state[node][:2]
            node = self.children[node][act]
            for label in self._step(marking, key, act)[5]:
                if label not in unexpected:
                    unexpected.append(label)
        marking, key = self._state[node][:2]
        left = copy(self._final(marking, key)[4])
        for place, n in self.fm.items():
            left[place] = max(0, left[place] - n)
        left = type(left)({p: n for p, n in left.items() if n > 0})
        skipped = sorted(self._visible(left, self._key(left))) if left else []
        s = self.stats
        return CaseDeviation(
            case_id=case_id,
            similar_cases=similar,
            trace_fitness=round(float(s["trace_fitness"][v]), 4),
            missing_tokens=int(s["missing"][v]),
            remaining_tokens=int(s["remaining"][v]),
            unexpected_activities=unexpected,
            skipped_activities=skipped,
            activities=list(trace[:TRACE_CHARS]),
        )


def _tokens(marking: Any) -> int:
    return int(sum(marking.values()))
