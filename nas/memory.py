"""Peak activation memory at batch 1, float32: the documented rule (pure Python, no torch).

Rule. A network runs as a sequence of operators, one at a time. Each operator allocates its output
(views such as reshape, permute, transpose and slicing allocate nothing and share their base). A
tensor is alive from the operator that creates it until the last operator that reads it (or any
view of it); the network input is alive from the first operator. The peak is the largest total of
bytes alive during any one operator. Weights are not activations and are not counted
(``Costs.param_memory_bytes`` counts them). Auxiliary outputs count too: LayerNorm's per-token mean
and reciprocal std (alive only during the LayerNorm).

Each unit gives its operator sequence (``Unit.add_ops``, in the module of its block kind, mirroring
its static module) with the helpers here; the test
``tests/test_memory.py`` checks the rule against a dispatch-level trace of the extracted model
(:func:`nas.memory_trace.measure_peak_memory`) for random subnets of every shipped space, and
``tests/test_block_kinds.py`` for every registered block kind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

BYTES_PER_ELEMENT = 4


@dataclass
class OpGraph:
    """A straight-line program of allocating operators over tensors of known size (elements)."""

    sizes: list[int] = field(default_factory=list)
    birth: list[int] = field(default_factory=list)
    last: list[int] = field(default_factory=list)
    steps: int = 0

    def input(self, numel: int) -> int:
        self.sizes.append(numel)
        self.birth.append(0)
        self.last.append(0)
        return len(self.sizes) - 1

    def op(self, inputs: list[int], numel: int, *aux: int) -> int:
        """One operator reading ``inputs`` and allocating an output of ``numel`` elements (and
        auxiliary outputs that nothing reads). Returns the output's id."""
        step = self.steps
        self.steps += 1
        for i in inputs:
            self.last[i] = max(self.last[i], step)
        out = -1
        for n in (numel, *aux):
            self.sizes.append(n)
            self.birth.append(step)
            self.last.append(step)
            out = len(self.sizes) - 1 if out < 0 else out
        return out

    def peak_elements(self) -> int:
        delta = [0] * (self.steps + 2)
        for size, b, last in zip(self.sizes, self.birth, self.last):
            delta[b] += size
            delta[last + 1] -= size
        peak = live = 0
        for d in delta[: self.steps]:
            live += d
            peak = max(peak, live)
        return peak


class OpsUnit(Protocol):
    """What the rule needs of a unit (:class:`nas.blocks.base.Unit` is one): its input size and
    its operators. Typed structurally so that this module imports no block code."""

    def input_numel(self) -> int: ...

    def add_ops(self, g: OpGraph, x: int) -> int: ...


def conv_bn_ops(g: OpGraph, x: int, numel: int, act: bool) -> int:
    """Convolution, batch norm (and activation), each allocating ``numel`` elements."""
    y = g.op([g.op([x], numel)], numel)  # convolution, batch norm
    return g.op([y], numel) if act else y


def layer_norm_op(g: OpGraph, x: int, tokens: int, c: int) -> int:
    """LayerNorm over ``c`` features of ``tokens`` tokens (+ its per-token mean and rstd)."""
    return g.op([x], tokens * c, tokens, tokens)


def mlp_ops(g: OpGraph, t: int, tokens: int, c: int, hidden: int) -> int:
    """LayerNorm -> linear -> GELU -> linear, then the residual add."""
    y = layer_norm_op(g, t, tokens, c)
    y = g.op([g.op([g.op([y], tokens * hidden)], tokens * hidden)], tokens * c)
    return g.op([t, y], tokens * c)


def unit_graph(units: Sequence[OpsUnit], input_numel: int) -> OpGraph:
    g = OpGraph()
    x = g.input(input_numel)
    for u in units:
        x = u.add_ops(g, x)
    return g


def peak_memory_bytes(units: Sequence[OpsUnit]) -> int:
    """Peak activation bytes of a network given as units (the first must be the stem)."""
    return unit_graph(units, units[0].input_numel()).peak_elements() * BYTES_PER_ELEMENT


def unit_peak_bytes(unit: OpsUnit, input_numel: int) -> int:
    """Peak bytes while one unit runs (its input alive from its first operator): the per-layer
    bound used by the MILP, since the network peak is the maximum over units."""
    return unit_graph([unit], input_numel).peak_elements() * BYTES_PER_ELEMENT
