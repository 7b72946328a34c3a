"""What a block kind is made of, and how it registers: :class:`BlockKind` and :func:`register_block`.

A block kind (``conv``, ``attn``, ``mixer``, ...) is one module of :mod:`nas.blocks.kinds` holding
four things, each generic code elsewhere asks for:

- a **spec** (a :class:`BlockSpec` dataclass): its YAML fields under ``blocks: {<kind>: {...}}``,
  declared with :func:`choices` and :func:`scalar` so loading, validation, YAML dump and the
  progressive-shrinking restriction come for free;
- a **layer** value (a :class:`LayerValue` dataclass): one choice of the spec's options, with a
  short-string tag (``ir_k3_e4_se``) parsed and formatted from :attr:`LayerValue.letters`;
- a **unit** (a :class:`Unit` dataclass): the layer at one input shape, with its latency-table key,
  exact MACs and parameters, the operators of its memory rule, its DeepMAD entropy and its static
  torch module;
- the **kind** itself (a :class:`BlockKind` subclass): builds the unit of a layer, the elastic
  (weight-sharing) module of a stage slot, its zero-init rule and its supernet parameter count.

This module imports no kind (and no torch), so there is no import circle; read the registry
through :mod:`nas.blocks.registry`, which imports every kind first.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from nas.errors import SpaceError

if TYPE_CHECKING:
    from torch import nn

    from nas.memory import OpGraph

NUMBER = (int, float)


# ----- numbers and channel arithmetic (shared with the supernet, so costs and modules agree) -----
def fmt_number(value: float | int) -> str:
    """``4.0`` -> ``4``; ``0.5`` -> ``0.5`` (keys and short strings)."""
    return str(int(value)) if float(value).is_integer() else str(value)


def parse_number(text: str, where: str) -> int | float:
    try:
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    except ValueError:
        raise SpaceError(f"{where}: {text!r} is not a number") from None


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``divisor``), never below 90%."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def conv_out(size: int, stride: int) -> int:
    """Output size of a 'same'-padded conv with odd kernel: ceil(size / stride)."""
    return -(-size // stride)


def conv_bn_params(c_in: int, c_out: int, kernel: int, depthwise: bool = False) -> int:
    """Parameters of a conv (no bias) + BN: weight, BN scale and shift."""
    return c_out * (1 if depthwise else c_in) * kernel * kernel + 2 * c_out


def linear_params(c_in: int, c_out: int) -> int:
    return c_out * c_in + c_out


def ratio_hidden(c: int, ratio: float) -> int:
    """Hidden width of an MLP (or an MBConv expansion) of ``ratio`` times ``c``: at least 1."""
    return max(1, round(c * ratio))


# ----- spec fields ------------------------------------------------------------------------------
def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {"int": "an integer", "float": "a number", "bool": "true/false"}.get(k.__name__, k.__name__)
        for k in kinds
    )


def check_choices(
    value: object, where: str, *, kind: type | tuple[type, ...], positive: bool = True
) -> tuple:
    """A YAML choice list as a sorted tuple without duplicates; errors name ``where``."""
    if not isinstance(value, list | tuple):
        value = [value]
    if len(value) == 0:
        raise SpaceError(f"{where}: empty choice list; expected at least one value")
    out = []
    for v in value:
        if isinstance(v, bool) and kind is not bool:
            raise SpaceError(f"{where}: {v!r} is a boolean; expected {_kind_name(kind)}")
        if not isinstance(v, kind):
            raise SpaceError(f"{where}: {v!r} is not {_kind_name(kind)}")
        if positive and isinstance(v, int | float) and not isinstance(v, bool) and v <= 0:
            raise SpaceError(f"{where}: {v!r} must be > 0")
        out.append(v)
    if len(set(out)) != len(out):
        raise SpaceError(f"{where}: duplicate values in {list(value)!r}")
    return tuple(sorted(out))


def check_int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpaceError(f"{where}: {value!r} is not an integer")
    return value


def choices(
    kind: type | tuple[type, ...], option: str, *, default: tuple | None = None,
    hidden_size: bool = False,
) -> Any:
    """A spec field listing the choices of one layer option (YAML: a list).

    ``option``: the layer field it gives choices for. ``hidden_size``: the option sets a hidden
    width (expand ratio, heads, MLP ratios), which progressive shrinking pins to its maximum until
    the last phase; other options (kernel, squeeze-excite, pool size) are operator choices.
    """
    meta = {"choices": kind, "option": option, "hidden_size": hidden_size}
    if default is None:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def scalar(default: int) -> Any:
    """A fixed positive integer of the spec (YAML: a number), the same for every layer."""
    return dataclasses.field(default=default, metadata={"scalar": int})


@dataclass(frozen=True)
class BlockSpec:
    """Base of a kind's spec: the YAML mapping under ``blocks: {<kind>: ...}`` of a stage."""

    kind: ClassVar[str]

    def option_choices(self) -> dict[str, tuple]:
        """Layer option name -> its allowed values, in the layer's field order."""
        return {
            f.metadata["option"]: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if "option" in f.metadata
        }

    @property
    def option_names(self) -> tuple[str, ...]:
        return tuple(self.option_choices())

    @classmethod
    def yaml_keys(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls)}

    @classmethod
    def from_yaml(cls, data: Any, where: str) -> BlockSpec:
        """Build from the parsed YAML mapping; errors name ``where`` and the field."""
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SpaceError(f"{where}: expected a mapping, got {type(data).__name__}")
        unknown = set(data) - cls.yaml_keys()
        if unknown:
            raise SpaceError(
                f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(cls.yaml_keys())}"
            )
        values: dict[str, Any] = {}
        try:
            for f in dataclasses.fields(cls):
                has_default = f.default is not dataclasses.MISSING
                if f.name not in data and not has_default:
                    raise SpaceError(f"{where}: missing field {f.name!r}")
                raw = data.get(f.name, f.default)
                field_where = f"{where}.{f.name}"
                if "choices" in f.metadata:
                    values[f.name] = check_choices(raw, field_where, kind=f.metadata["choices"])
                else:
                    values[f.name] = check_int(raw, field_where)
                    if values[f.name] <= 0:
                        raise SpaceError(f"{field_where} must be > 0")
            return cls(**values)
        except SpaceError as exc:
            msg = str(exc)
            raise SpaceError(msg if msg.startswith(where) else f"{where}: {msg}") from None

    def to_yaml(self) -> dict[str, Any]:
        """The YAML mapping :meth:`from_yaml` turns back into this spec."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in dataclasses.fields(self)
        }

    def restricted(self) -> BlockSpec:
        """This spec with every hidden-size option pinned to its largest value."""
        pinned = {
            f.name: (max(getattr(self, f.name)),)
            for f in dataclasses.fields(self)
            if f.metadata.get("hidden_size")
        }
        return dataclasses.replace(self, **pinned)


# ----- layer values -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerValue:
    """Base of a kind's layer value: frozen, hashable, one choice per option.

    ``letters`` maps the short-string letter of each numeric option to its field
    (``{"k": "kernel", "e": "expand"}`` gives ``ir_k3_e4``); a boolean option is written as its bare
    name when true (``_se``).
    """

    kind: ClassVar[str]
    tag: ClassVar[str]
    letters: ClassVar[dict[str, str]]

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_str(self) -> str:
        parts = [self.tag]
        by_name = {name: letter for letter, name in self.letters.items()}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in by_name:
                parts.append(f"{by_name[f.name]}{fmt_number(value)}")
            elif value:
                parts.append(f.name)
        return "_".join(parts)

    @classmethod
    def flags(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in cls.letters.values())

    @classmethod
    def parse_fields(cls, fields: list[str], where: str) -> dict[str, Any]:
        """Options from the ``_``-separated fields after the tag."""
        opts: dict[str, Any] = {flag: False for flag in cls.flags()}
        for f in fields:
            if f in opts:
                opts[f] = True
            elif f[:1] in cls.letters:
                opts[cls.letters[f[:1]]] = parse_number(f[1:], where)
            else:
                expected = [f"{k}<{v}>" for k, v in cls.letters.items()] + list(cls.flags())
                raise SpaceError(f"{where}: unknown field {f!r}; expected {', '.join(expected)}")
        return opts

    @classmethod
    def build(cls, options: dict[str, Any]) -> LayerValue:
        """The layer of these options; unknown or missing options raise SpaceError."""
        fields = [f.name for f in dataclasses.fields(cls)]
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING]
        unknown = sorted(set(options) - set(fields))
        missing = [f for f in required if f not in options]
        if unknown or missing:
            problems = ([f"unknown option(s) {unknown}"] if unknown else []) + (
                [f"missing option(s) {missing}"] if missing else []
            )
            raise SpaceError(f"layer of kind {cls.kind!r}: {'; '.join(problems)}; expected {fields}")
        return cls(**options)


# ----- units ------------------------------------------------------------------------------------
class Unit:
    """One layer configuration at one input shape: what costs sum over, what the latency table
    stores (:attr:`key`), what the MILP chooses between. Subclasses (frozen dataclasses with a
    ``size`` field, the spatial input size) give every rule below."""

    kind: ClassVar[str]  # the text before the key's first ':'
    size: int

    @property
    def in_channels(self) -> int:
        raise NotImplementedError

    @property
    def key(self) -> str:
        raise NotImplementedError

    def input_numel(self) -> int:
        return self.in_channels * self.size * self.size

    def macs(self) -> int:
        """Multiply-accumulates of its convolutions, linear layers and matmuls (nas.costs)."""
        raise NotImplementedError

    def params(self) -> int:
        """Trainable parameters of its static module."""
        raise NotImplementedError

    def add_ops(self, g: OpGraph, x: int) -> int:
        """Append its allocating operators (nas.memory's rule) reading ``x``; return the output."""
        raise NotImplementedError

    def entropy(self) -> float:
        """DeepMAD's per-unit term: half the summed log fan-ins of its learned linear operators."""
        raise NotImplementedError

    def module(self) -> nn.Module:
        """Its static module (the class ``Supernet.extract`` produces), torch-initialised."""
        raise NotImplementedError


class TokenUnit(Unit):
    """A unit of a kind behind a transition: input and output have the same width ``c`` and
    size (subclasses declare the ``c`` field)."""

    c: int

    @property
    def in_channels(self) -> int:
        return self.c


def mlp_params(c: int, hidden: int) -> int:
    """Parameters of the two biased linear maps ``c -> hidden -> c`` of a channel MLP."""
    return c * hidden + hidden + hidden * c + c


def half_log(*fan_ins: float) -> float:
    """``0.5 * sum(log(fan_in))``: the DeepMAD entropy of a chain of linear maps."""
    import math

    return 0.5 * sum(math.log(f) for f in fan_ins)


# ----- kinds ------------------------------------------------------------------------------------
class BlockKind:
    """A registered block kind. Subclasses set the class attributes and implement the methods.

    ``order``: where the kind sorts among kinds (the order of a stage's layer choices, hence of
    genomes, so a kind's order never changes once files exist). ``transition``: the block keeps
    its width and stride, so the first slot of a stage that changes either gets a transition
    (3x3 stride-2 or 1x1 conv + BN) before it; otherwise the block changes them itself.
    """

    name: ClassVar[str]
    order: ClassVar[int]
    spec: ClassVar[type[BlockSpec]]
    layer: ClassVar[type[LayerValue]]
    transition: ClassVar[bool] = True

    def unit(
        self, spec: Any, layer: Any, *, c_in: int, c_out: int, size: int, stride: int,
        act: str, first: bool,
    ) -> Unit:
        """The unit of ``layer`` (after its transition, if any: then ``c_in == c_out`` and
        ``stride == 1``); ``first``: the stage's first slot (no residual connection)."""
        raise NotImplementedError

    def elastic(self, spec: Any, *, c_in: int, max_out: int, act: str) -> nn.Module:
        """The weight-sharing module of one slot: ``forward(x, layer, c_out, stride, first)`` runs
        any layer of ``spec``; ``export(layer, c_in, c_out, stride, first)`` returns its static
        module with copied weights."""
        raise NotImplementedError

    def zero_init_(self, block: Any, first: bool) -> int:
        """Zero the last scale of each residual branch of ``block`` (BigNAS init); how many."""
        raise NotImplementedError

    def elastic_params(self, spec: Any, *, c_in: int, max_out: int) -> int:
        """Parameters of :meth:`elastic` without building it (nas.budget)."""
        raise NotImplementedError


REGISTERED: dict[str, BlockKind] = {}  # filled by the modules of nas.blocks.kinds

K = TypeVar("K", bound=type[BlockKind])


def register_block(cls: K) -> K:
    """Class decorator: register a :class:`BlockKind` subclass under its ``name``."""
    name = cls.name
    if name in REGISTERED and type(REGISTERED[name]) is not cls:
        raise ValueError(f"block kind {name!r} is registered twice")
    for other in REGISTERED.values():
        if other.name != name and (other.layer.tag == cls.layer.tag or other.order == cls.order):
            raise ValueError(f"block kind {name!r}: tag or order taken by {other.name!r}")
    if cls.spec.kind != name or cls.layer.kind != name:
        raise ValueError(f"block kind {name!r}: its spec and layer must name the same kind")
    REGISTERED[name] = cls()
    return cls


UnitCost = Callable[[Unit], float]
