"""Peak activation memory at batch 1, float32: the documented rule (pure Python, no torch).

Rule. A network runs as a sequence of operators, one at a time. Each operator allocates its output
(views such as reshape, permute, transpose and slicing allocate nothing and share their base). A
tensor is alive from the operator that creates it until the last operator that reads it (or any
view of it); the network input is alive from the first operator. The peak is the largest total of
bytes alive during any one operator. Weights are not activations and are not counted
(``Costs.param_memory_bytes`` counts them). Auxiliary outputs count too: LayerNorm's per-token mean
and reciprocal std (alive only during the LayerNorm).

The operator sequence of each unit mirrors the modules of :mod:`nas.supernet.static`; the test
``tests/test_memory.py`` checks the rule against a dispatch-level trace of the extracted model
(:func:`nas.memory_trace.measure_peak_memory`) for random subnets of every shipped space.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import singledispatch

from nas.spaces.schema import conv_out
from nas.units import (
    AttnUnit,
    ConvUnit,
    HeadUnit,
    MixerUnit,
    StemUnit,
    TransitionUnit,
    Unit,
    se_hidden,
)

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


def _conv_bn(g: OpGraph, x: int, numel: int, act: bool) -> int:
    y = g.op([g.op([x], numel)], numel)  # convolution, batch norm
    return g.op([y], numel) if act else y


@singledispatch
def add_unit(unit: Unit, g: OpGraph, x: int) -> int:
    """Append the operators of ``unit`` reading tensor ``x``; return the output tensor id."""
    raise TypeError(f"no memory rule for {type(unit).__name__}")


@add_unit.register
def _(u: StemUnit, g: OpGraph, x: int) -> int:
    return _conv_bn(g, x, u.c_out * conv_out(u.size, u.stride) ** 2, act=True)


@add_unit.register
def _(u: TransitionUnit, g: OpGraph, x: int) -> int:
    return _conv_bn(g, x, u.c_out * conv_out(u.size, u.stride) ** 2, act=False)


@add_unit.register
def _(u: ConvUnit, g: OpGraph, x: int) -> int:
    o2 = conv_out(u.size, u.stride) ** 2
    hid = u.hidden if u.expand != 1 else u.c_in
    h = _conv_bn(g, x, hid * u.size * u.size, act=True) if u.expand != 1 else x
    h = _conv_bn(g, h, hid * o2, act=True)
    if u.se:
        s = se_hidden(hid)
        gate = g.op(
            [g.op([g.op([g.op([g.op([h], hid)], s)], s)], hid)], hid
        )  # mean, fc1, relu, fc2, gate
        h = g.op([h, gate], hid * o2)
    y = _conv_bn(g, h, u.c_out * o2, act=False)
    return g.op([y, x], u.c_out * o2) if u.residual else y


def _mlp(g: OpGraph, t: int, tokens: int, c: int, hidden: int) -> int:
    """LayerNorm -> linear -> GELU -> linear, then the residual add."""
    y = g.op([t], tokens * c, tokens, tokens)
    y = g.op([g.op([g.op([y], tokens * hidden)], tokens * hidden)], tokens * c)
    return g.op([t, y], tokens * c)


@add_unit.register
def _(u: AttnUnit, g: OpGraph, x: int) -> int:
    tokens, c = u.size * u.size, u.c
    y = g.op([x], tokens * c, tokens, tokens)  # layer norm (+ mean, rstd)
    qkv = g.op([y], tokens * 3 * u.inner)
    scores = g.op([qkv], u.heads * tokens * tokens)  # q @ k^T
    scores = g.op([scores], u.heads * tokens * tokens)  # * scale
    attn = g.op([scores], u.heads * tokens * tokens)  # softmax
    o = g.op([attn, qkv], tokens * u.inner)  # attn @ v
    o = g.op([o], tokens * u.inner)  # merge heads (copy)
    t = g.op([x, g.op([o], tokens * c)], tokens * c)  # proj, residual add
    return _mlp(g, t, tokens, c, u.mlp_hidden)


@add_unit.register
def _(u: MixerUnit, g: OpGraph, x: int) -> int:
    tokens, c, p2 = u.size * u.size, u.c, u.padded * u.padded
    th = u.token_hidden
    windows = p2 // (u.window * u.window)
    y = g.op([x], tokens * c, tokens, tokens)  # layer norm
    if u.padded != u.size:
        y = g.op([y], p2 * c)  # zero pad
    z = g.op([y], p2 * c)  # window partition (copy)
    z = g.op([g.op([g.op([z], windows * c * th)], windows * c * th)], p2 * c)  # token MLP
    z = g.op([z], p2 * c)  # window merge (copy)
    t = g.op([x, z], tokens * c)  # residual add (of the cropped view)
    return _mlp(g, t, tokens, c, u.channel_hidden)


@add_unit.register
def _(u: HeadUnit, g: OpGraph, x: int) -> int:
    y = _conv_bn(g, x, u.width * u.size * u.size, act=True)
    y = g.op([y], u.width)  # global average pool
    if u.hidden:
        y = g.op([g.op([y], u.hidden)], u.hidden)
    return g.op([y], u.num_classes)


def unit_graph(units: list[Unit], input_numel: int) -> OpGraph:
    g = OpGraph()
    x = g.input(input_numel)
    for u in units:
        x = add_unit(u, g, x)
    return g


def peak_memory_bytes(units: list[Unit]) -> int:
    """Peak activation bytes of a network given as units (the first must be the stem)."""
    stem = units[0]
    assert isinstance(stem, StemUnit)
    return unit_graph(units, stem.c_in * stem.size * stem.size).peak_elements() * BYTES_PER_ELEMENT


def unit_peak_bytes(unit: Unit, input_numel: int) -> int:
    """Peak bytes while one unit runs (its input alive from its first operator): the per-layer
    bound used by the MILP, since the network peak is the maximum over units."""
    return unit_graph([unit], input_numel).peak_elements() * BYTES_PER_ELEMENT
