"""The all-reduces of a compiled step, and how many of them sit inside a loop.

A data-parallel training step needs one all-reduce of the gradients per step. Where it lands
depends on who inserts it: ``pmap`` and ``shard_map`` run the step's own ``lax.pmean``, after
the backward pass; plain ``jit`` with sharded inputs leaves it to XLA's partitioner, which may
put it inside the transposed scan (a ``while`` loop), where it runs once per time step. This
module reads XLA's optimized HLO text (``compiled.as_text()``) and counts both.
"""

import dataclasses
import re

# "ENTRY %main.3 (a: f32[]) -> f32[] {" or "%region_0.1 (...) -> ... {", with or without "%".
_HEADER = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_OPCODE = re.compile(r"=\s*[^=]*?\s([\w\-]+)\(")
# Computations an instruction runs as part of itself (not a reduction's to_apply, which is the
# all-reduce's own adder).
_CALLED = re.compile(r"\b(?:body|calls|true_computation|false_computation)=%?([\w.\-]+)")
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_WHILE_BODY = re.compile(r"\bwhile\(.*\bbody=%?([\w.\-]+)")
ALL_REDUCE = ("all-reduce", "all-reduce-start")


@dataclasses.dataclass(frozen=True)
class AllReduces:
    """Counts of all-reduce instructions in a compiled program.

    Attributes:
      total: in the whole program (each counted once, wherever it is).
      in_loops: those inside a ``while`` loop's body (or a computation it calls): run once per
        iteration, e.g. once per time step of a scan.
    """

    total: int
    in_loops: int


def computations(hlo_text: str) -> dict[str, list[str]]:
    """Each computation's instruction lines, by name."""
    result, name = {}, None
    for line in hlo_text.splitlines():
        header = _HEADER.match(line)
        if header and name is None:
            name = header.group(1)
            result[name] = []
        elif line.strip() == "}" and name is not None:
            name = None
        elif name is not None:
            result[name].append(line)
    return result


def opcode(line: str) -> str | None:
    """The instruction's opcode (``all-reduce``, ``while``, ``fusion``, ...)."""
    match = _OPCODE.search(line)
    return match.group(1) if match else None


def _called(line: str) -> list[str]:
    names = _CALLED.findall(line)
    for branches in _BRANCHES.findall(line):
        names += [b.strip().lstrip("%") for b in branches.split(",") if b.strip()]
    return names


def _reachable(start: str, graph: dict[str, list[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in graph:
            continue
        seen.add(name)
        todo += [callee for line in graph[name] for callee in _called(line)]
    return seen


def count_all_reduces(hlo_text: str) -> AllReduces:
    """How many all-reduces a compiled program holds, and how many run inside a loop."""
    graph = computations(hlo_text)
    per_computation = {
        name: sum(opcode(line) in ALL_REDUCE for line in lines) for name, lines in graph.items()
    }
    looped = set()
    for lines in graph.values():
        for line in lines:
            body = _WHILE_BODY.search(line)
            if body:
                looped |= _reachable(body.group(1), graph)
    return AllReduces(
        total=sum(per_computation.values()),
        in_loops=sum(per_computation[name] for name in looped),
    )
