"""Tidy a pm4py BPMN graph before export: fewer gateways, stable ids, stable order.

pm4py's conversion from a process tree chains gateways (an exclusive split
directly into another exclusive split, pass-through gateways with one flow in
and one out) and names every element with a random UUID in set order, so two
exports of the same model cannot be diffed. Here:

- ``merge_gateways``: a gateway with one incoming and one outgoing flow is
  removed (its flows joined); a diverging gateway whose only incoming flow comes
  from a diverging gateway of the same type is merged into it, and a converging
  gateway whose only outgoing flow goes to a converging gateway of the same type
  likewise (a choice of choices is one choice, a fork of forks one fork; the same
  for joins), repeated until nothing changes;
- ``stable_ids``: elements get ids from their breadth-first position from the
  start event (``StartEvent_1``, ``Activity_3``, ``Gateway_5``, ``Flow_7``...),
  ties broken by names, never by memory addresses;
- ``ordered_xml``: the serialised process and diagram children sorted by those ids,
  and ``isMarkerVisible="true"`` on exclusive gateways so the X is drawn.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any

__all__ = ["merge_gateways", "ordered_nodes", "ordered_xml", "stable_ids"]

_PREFIX = {
    "StartEvent": "StartEvent",
    "NormalStartEvent": "StartEvent",
    "EndEvent": "EndEvent",
    "NormalEndEvent": "EndEvent",
    "Task": "Activity",
}


def merge_gateways(bpmn: Any) -> int:
    """Merge chained gateways in place (module docstring); returns how many were removed."""
    from pm4py.objects.bpmn.obj import BPMN

    removed = 0
    changed = True
    while changed:
        changed = False
        for node in sorted(ordered_nodes(bpmn), key=lambda n: _label(n)):
            if not isinstance(node, BPMN.Gateway) or node not in bpmn.get_nodes():
                continue
            ins, outs = list(node.get_in_arcs()), list(node.get_out_arcs())
            if len(ins) == 1 and len(outs) == 1:
                source, target = ins[0].get_source(), outs[0].get_target()
                _drop(bpmn, node)
                bpmn.add_flow(_flow(source, target))
            elif len(ins) == 1 and _same_split(ins[0].get_source(), node):
                parent = ins[0].get_source()
                targets = [f.get_target() for f in outs]
                _drop(bpmn, node)
                for target in targets:
                    bpmn.add_flow(_flow(parent, target))
            elif len(outs) == 1 and _same_join(node, outs[0].get_target()):
                child = outs[0].get_target()
                sources = [f.get_source() for f in ins]
                _drop(bpmn, node)
                for source in sources:
                    bpmn.add_flow(_flow(source, child))
            else:
                continue
            removed += 1
            changed = True
            break
    return removed


def _flow(source: Any, target: Any) -> Any:
    from pm4py.objects.bpmn.obj import BPMN

    return BPMN.SequenceFlow(source, target, process=source.get_process())


def _same_split(parent: Any, node: Any) -> bool:
    return (
        type(parent) is type(node)
        and len(parent.get_out_arcs()) > 1
        and len(parent.get_in_arcs()) == 1
        and len(node.get_out_arcs()) > 1
    )


def _same_join(node: Any, child: Any) -> bool:
    return (
        type(child) is type(node)
        and len(child.get_in_arcs()) > 1
        and len(child.get_out_arcs()) == 1
        and len(node.get_in_arcs()) > 1
    )


def _drop(bpmn: Any, node: Any) -> None:
    for flow in [*node.get_in_arcs(), *node.get_out_arcs()]:
        bpmn.remove_flow(flow)
    bpmn.remove_node(node)


def _label(node: Any) -> tuple[str, str]:
    return type(node).__name__, str(node.get_name())


def ordered_nodes(bpmn: Any) -> list[Any]:
    """Nodes breadth-first from the start events; successors by (kind, name), then arc order."""
    from pm4py.objects.bpmn.obj import BPMN

    every = sorted(bpmn.get_nodes(), key=_label)
    queue = deque(n for n in every if isinstance(n, BPMN.StartEvent))
    seen: dict[Any, None] = {}
    while queue:
        node = queue.popleft()
        if node in seen:
            continue
        seen[node] = None
        queue.extend(
            sorted((f.get_target() for f in node.get_out_arcs()), key=_label)  # stable sort
        )
    seen.update((n, None) for n in every if n not in seen)
    return list(seen)


def stable_ids(bpmn: Any) -> dict[str, str]:
    """Deterministic ids for the nodes (old id -> new id), by breadth-first position.

    pm4py hashes nodes by id, so the graph keeps its ids; ``ordered_xml`` renames
    them in the serialised XML.
    """
    names: dict[str, str] = {}
    for i, node in enumerate(ordered_nodes(bpmn), start=1):
        kind = type(node).__name__
        prefix = _PREFIX.get(kind, "Gateway" if "Gateway" in kind else kind)
        names[str(node.get_id())] = f"{prefix}_{i}"
    return names


_ELEMENT = re.compile(rb"(\t*<(bpmn|bpmndi):(\w+)\b[^>]*?(?:/>|[^/]>.*?</\2:\3>)\n)", re.DOTALL)
_NUMBER = re.compile(r"(\d+)$")
_UUID_ID = re.compile(rb"id[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_FLOW = re.compile(rb'<bpmn:sequenceFlow id="([^"]+)"[^>]*?sourceRef="([^"]+)" targetRef="([^"]+)"')


def ordered_xml(xml: bytes, names: dict[str, str]) -> bytes:
    """The XML with stable ids (``names`` for nodes, flows numbered by their renamed ends,
    the rest in order), the children of the process and of the diagram plane sorted by
    those ids, and the exclusive gateways' marker made visible."""
    mapping = {old.encode(): new.encode() for old, new in names.items()}
    process = re.search(rb'<bpmn:process id="([^"]+)"', xml)
    if process:
        mapping[process.group(1)] = b"Process_1"
    flows = [
        (m.group(1), mapping.get(m.group(2)), mapping.get(m.group(3))) for m in _FLOW.finditer(xml)
    ]
    order = {new: i for i, new in enumerate(mapping.values())}
    flows.sort(key=lambda f: (order.get(f[1], len(order)), order.get(f[2], len(order)), f[0]))
    for i, (old, _, _) in enumerate(flows, start=1):
        mapping[old] = f"Flow_{i}".encode()
    text = _UUID_ID.sub(lambda m: mapping.get(m.group(0), m.group(0)), xml)

    def key(block: bytes) -> tuple[int, int]:
        head = block.split(b">", 1)[0]
        ident = re.search(rb'bpmnElement="([^"]+)"', head) or re.search(rb' id="([^"]+)"', head)
        name = ident.group(1).decode() if ident else ""
        number = _NUMBER.search(name)
        return (1 if name.startswith("Flow_") else 0, int(number.group(1)) if number else 0)

    for parent in (rb"bpmn:process", rb"bpmndi:BPMNPlane"):
        match = re.search(
            rb"(<" + parent + rb"\b[^>]*>\n)(.*?)(\t*</" + parent + rb">)", text, re.DOTALL
        )
        if not match:
            continue
        blocks = [m.group(1) for m in _ELEMENT.finditer(match.group(2))]
        if b"".join(blocks) != match.group(2):  # unexpected layout: leave the order alone
            continue
        body = b"".join(sorted(blocks, key=key))
        text = text[: match.start(2)] + body + text[match.end(2) :]
    text = re.sub(rb'(<bpmndi:BPMNDiagram id=")[^"]+"', rb'\1Diagram_1"', text)
    text = re.sub(
        rb'(<bpmndi:BPMNPlane bpmnElement=")[^"]+(" id=")[^"]+"', rb'\1Process_1\2Plane_1"', text
    )
    gateways = re.findall(rb'<bpmn:exclusiveGateway id="([^"]+)"', text)
    for ident in gateways:
        text = text.replace(
            b'bpmnElement="' + ident + b'"',
            b'bpmnElement="' + ident + b'" isMarkerVisible="true"',
        )
    return text
