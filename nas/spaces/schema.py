"""The search-space schema: frozen dataclasses validated on construction.

A space is data (loaded from YAML, see :mod:`nas.spaces.loader`), never code. Every list of choices
is a sorted tuple without duplicates; validation errors name the field and the allowed values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from nas.errors import SpaceError

ACTIVATIONS: tuple[str, ...] = ("relu", "hswish", "gelu", "silu")
KINDS: tuple[str, ...] = ("conv", "attn", "mixer")


def _choices(
    value: object, where: str, *, kind: type | tuple[type, ...], positive: bool = True
) -> tuple:
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
        if positive and not isinstance(v, bool) and v <= 0:
            raise SpaceError(f"{where}: {v!r} must be > 0")
        out.append(v)
    if len(set(out)) != len(out):
        raise SpaceError(f"{where}: duplicate values in {list(value)!r}")
    return tuple(sorted(out))


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {"int": "an integer", "float": "a number", "bool": "true/false"}.get(k.__name__, k.__name__)
        for k in kinds
    )


def _check_act(act: str, where: str) -> str:
    if act not in ACTIVATIONS:
        raise SpaceError(f"{where}: unknown activation {act!r}; allowed: {', '.join(ACTIVATIONS)}")
    return act


@dataclass(frozen=True)
class ConvSpec:
    """MBConv / inverted residual: elastic kernel (centre crop), expand ratio, squeeze-excite."""

    kind: ClassVar[str] = "conv"
    kernels: tuple[int, ...]
    expands: tuple[int | float, ...]
    se: tuple[bool, ...] = (False,)

    def __post_init__(self) -> None:
        for k in self.kernels:
            if k % 2 == 0:
                raise SpaceError(f"conv.kernels: {k} is even; expected odd kernel sizes (3, 5, 7)")

    @property
    def option_names(self) -> tuple[str, ...]:
        return ("kernel", "expand", "se")

    def option_choices(self) -> dict[str, tuple]:
        return {"kernel": self.kernels, "expand": self.expands, "se": self.se}


@dataclass(frozen=True)
class AttnSpec:
    """Pre-norm multi-head self-attention over spatial tokens + MLP. Head dim is fixed."""

    kind: ClassVar[str] = "attn"
    heads: tuple[int, ...]
    mlp_ratios: tuple[int | float, ...]
    head_dim: int = 16

    @property
    def option_names(self) -> tuple[str, ...]:
        return ("heads", "mlp_ratio")

    def option_choices(self) -> dict[str, tuple]:
        return {"heads": self.heads, "mlp_ratio": self.mlp_ratios}


@dataclass(frozen=True)
class MixerSpec:
    """MLP-Mixer block: token mixing inside fixed w x w windows (zero-padded), then a channel MLP."""

    kind: ClassVar[str] = "mixer"
    token_ratios: tuple[int | float, ...]
    channel_ratios: tuple[int | float, ...]
    window: int = 4

    @property
    def option_names(self) -> tuple[str, ...]:
        return ("token_ratio", "channel_ratio")

    def option_choices(self) -> dict[str, tuple]:
        return {"token_ratio": self.token_ratios, "channel_ratio": self.channel_ratios}


BlockSpec = ConvSpec | AttnSpec | MixerSpec


@dataclass(frozen=True)
class StemSpec:
    width: int
    kernel: int = 3
    stride: int = 1
    act: str = "relu"


@dataclass(frozen=True)
class HeadSpec:
    """1x1 conv to ``width`` + BN + act, global average pool, optional hidden linear + act, classifier."""

    width: int
    hidden: int | None = None
    act: str = "relu"
    dropout: float = 0.0


@dataclass(frozen=True)
class StageSpec:
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    stride: int
    blocks: tuple[BlockSpec, ...]
    act: str = "relu"
    name: str = ""

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(b.kind for b in self.blocks)

    def block(self, kind: str) -> BlockSpec:
        for b in self.blocks:
            if b.kind == kind:
                return b
        raise SpaceError(
            f"stage {self.name!r}: block kind {kind!r} not allowed; allowed: {', '.join(self.kinds)}"
        )

    @property
    def max_depth(self) -> int:
        return self.depths[-1]


@dataclass(frozen=True)
class SearchSpace:
    """A declarative space of hybrid conv/attention/mixer networks (see DESIGN.md)."""

    name: str
    in_channels: int
    num_classes: int
    resolutions: tuple[int, ...]
    stem: StemSpec
    stages: tuple[StageSpec, ...]
    head: HeadSpec
    description: str = ""
    source: str = field(default="", compare=False)

    # Sampling, mutation, counting and hashing live in nas.spaces.ops to keep this module data-only;
    # they are re-exported as methods for convenience.
    def sample(self, rng):
        from nas.spaces import ops

        return ops.sample(self, rng)

    def mutate(self, arch, rng, prob: float = 0.1):
        from nas.spaces import ops

        return ops.mutate(self, arch, rng, prob=prob)

    def crossover(self, a, b, rng):
        from nas.spaces import ops

        return ops.crossover(self, a, b, rng)

    def contains(self, arch) -> bool:
        from nas.spaces import ops

        return ops.contains(self, arch)

    def validate(self, arch) -> None:
        from nas.spaces import ops

        ops.validate(self, arch)

    def size(self) -> int | float:
        from nas.spaces import ops

        return ops.size(self)

    def largest(self):
        from nas.spaces import ops

        return ops.largest(self)

    def smallest(self):
        from nas.spaces import ops

        return ops.smallest(self)

    def hash(self) -> str:
        from nas.spaces import ops

        return ops.space_hash(self)

    def __repr__(self) -> str:  # short; the whole definition is nas.train.rundir.space_to_dict
        stages = " ".join(f"{s.name}[{'/'.join(s.kinds)}]" for s in self.stages)
        res = list(self.resolutions)
        resolutions = str(res) if len(res) <= 6 else f"[{res[0]}..{res[-1]}] ({len(res)})"
        return (
            f"SearchSpace({self.name!r}, in_channels={self.in_channels}, "
            f"classes={self.num_classes}, resolutions={resolutions}, "
            f"stages: {stages}, hash={self.hash()})"
        )


def conv_out(size: int, stride: int) -> int:
    """Output size of a 'same'-padded conv with odd kernel: ceil(size / stride)."""
    return -(-size // stride)


def stage_input_sizes(space: SearchSpace, resolution: int) -> list[int]:
    """Spatial input size of each stage at a given resolution (after the stem)."""
    size = conv_out(resolution, space.stem.stride)
    sizes = []
    for stage in space.stages:
        sizes.append(size)
        size = conv_out(size, stage.stride)
    sizes.append(size)  # head input
    return sizes


def validate_space(space: SearchSpace, where: str) -> None:
    """Cross-field checks; raises SpaceError naming the file and field."""
    if space.in_channels <= 0 or space.num_classes <= 1:
        raise SpaceError(f"{where}: in_channels must be > 0 and num_classes > 1")
    _check_act(space.stem.act, f"{where}: stem.act")
    _check_act(space.head.act, f"{where}: head.act")
    if not space.stages:
        raise SpaceError(f"{where}: stages: empty; expected at least one stage")
    for i, stage in enumerate(space.stages):
        _check_act(stage.act, f"{where}: stages[{i}].act")
        if stage.stride not in (1, 2):
            raise SpaceError(f"{where}: stages[{i}].stride = {stage.stride}; allowed: 1, 2")
        if not stage.blocks:
            raise SpaceError(
                f"{where}: stages[{i}].blocks: empty; allowed kinds: {', '.join(KINDS)}"
            )
        for b in stage.blocks:
            if isinstance(b, AttnSpec) and b.head_dim <= 0:
                raise SpaceError(f"{where}: stages[{i}].blocks.attn.head_dim must be > 0")
            if isinstance(b, MixerSpec) and b.window <= 0:
                raise SpaceError(f"{where}: stages[{i}].blocks.mixer.window must be > 0")
    smallest = space.resolutions[0]
    sizes = stage_input_sizes(space, smallest)
    total_stride = space.stem.stride
    for s in space.stages:
        total_stride *= s.stride
    if smallest < total_stride:
        raise SpaceError(
            f"{where}: resolutions: the smallest resolution {smallest} is below the total stride "
            f"{total_stride}; the feature map would vanish (last stage would see {sizes[-1]}x{sizes[-1]} "
            f"from an input smaller than its stride). Use resolutions >= {total_stride}"
        )
