"""The architecture value: frozen, hashable, with JSON and short-string round trips.

An :class:`Architecture` is a resolution plus, per stage, a width and the list of its active layers
(the depth is the number of layers). Each layer is one of :class:`ConvLayer`, :class:`AttnLayer`,
:class:`MixerLayer`. Whether it fits a given space is checked by ``space.validate(arch)``.

Short string (timm-like, one stage per ``|`` group)::

    r32 | w16: ir_k3_e1 | w32: ir_k5_e4_se ir_k3_e6 | w64: at_h4_m2 mx_t0.5_c4 ir_k3_e4
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from nas.errors import SpaceError


def _fmt(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _num(text: str, where: str) -> int | float:
    try:
        return int(text) if re.fullmatch(r"-?\d+", text) else float(text)
    except ValueError:
        raise SpaceError(f"{where}: {text!r} is not a number") from None


@dataclass(frozen=True)
class ConvLayer:
    """MBConv layer: depthwise kernel, expand ratio, squeeze-excite on/off."""

    kind: ClassVar[str] = "conv"
    tag: ClassVar[str] = "ir"
    kernel: int
    expand: int | float
    se: bool = False

    def options(self) -> dict[str, Any]:
        return {"kernel": self.kernel, "expand": self.expand, "se": self.se}

    def to_str(self) -> str:
        return f"ir_k{self.kernel}_e{_fmt(self.expand)}" + ("_se" if self.se else "")


@dataclass(frozen=True)
class AttnLayer:
    """Multi-head self-attention layer: number of heads (head dim fixed by the space), MLP ratio."""

    kind: ClassVar[str] = "attn"
    tag: ClassVar[str] = "at"
    heads: int
    mlp_ratio: int | float

    def options(self) -> dict[str, Any]:
        return {"heads": self.heads, "mlp_ratio": self.mlp_ratio}

    def to_str(self) -> str:
        return f"at_h{self.heads}_m{_fmt(self.mlp_ratio)}"


@dataclass(frozen=True)
class MixerLayer:
    """Windowed MLP-Mixer layer: token-MLP and channel-MLP hidden ratios."""

    kind: ClassVar[str] = "mixer"
    tag: ClassVar[str] = "mx"
    token_ratio: int | float
    channel_ratio: int | float

    def options(self) -> dict[str, Any]:
        return {"token_ratio": self.token_ratio, "channel_ratio": self.channel_ratio}

    def to_str(self) -> str:
        return f"mx_t{_fmt(self.token_ratio)}_c{_fmt(self.channel_ratio)}"


Layer = ConvLayer | AttnLayer | MixerLayer
LAYER_TYPES: dict[str, type] = {"conv": ConvLayer, "attn": AttnLayer, "mixer": MixerLayer}


def make_layer(kind: str, **options: Any) -> Layer:
    """Build a layer of ``kind`` from its options; unknown kinds or options raise SpaceError."""
    if kind not in LAYER_TYPES:
        raise SpaceError(f"unknown layer kind {kind!r}; allowed: {', '.join(LAYER_TYPES)}")
    cls = LAYER_TYPES[kind]
    fields = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(options) - set(fields))
    missing = [f for f in fields if f not in options and f != "se"]
    if unknown or missing:
        problems = ([f"unknown option(s) {unknown}"] if unknown else []) + (
            [f"missing option(s) {missing}"] if missing else []
        )
        raise SpaceError(f"layer of kind {kind!r}: {'; '.join(problems)}; expected {fields}")
    return cls(**options)


def parse_layer(token: str) -> Layer:
    """Inverse of ``layer.to_str()``."""
    parts = token.split("_")
    tag, fields = parts[0], parts[1:]
    where = f"layer {token!r}"
    if tag == "ir":
        opts = {"se": False}
        for f in fields:
            if f == "se":
                opts["se"] = True
            elif f[:1] == "k":
                opts["kernel"] = _num(f[1:], where)
            elif f[:1] == "e":
                opts["expand"] = _num(f[1:], where)
            else:
                raise SpaceError(f"{where}: unknown field {f!r}; expected k<kernel>, e<expand>, se")
        return make_layer("conv", **opts)
    if tag == "at":
        names = {"h": "heads", "m": "mlp_ratio"}
    elif tag == "mx":
        names = {"t": "token_ratio", "c": "channel_ratio"}
    else:
        raise SpaceError(f"{where}: unknown layer tag {tag!r}; expected ir_, at_ or mx_")
    opts = {}
    for f in fields:
        if f[:1] not in names:
            raise SpaceError(f"{where}: unknown field {f!r}; expected one of {sorted(names)}")
        opts[names[f[:1]]] = _num(f[1:], where)
    return make_layer("attn" if tag == "at" else "mixer", **opts)


@dataclass(frozen=True)
class Stage:
    """One stage of an architecture: its width and its active layers (depth = len(layers))."""

    width: int
    layers: tuple[Layer, ...]

    @property
    def depth(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class Architecture:
    """A subnet: input resolution and, per stage, width and layers."""

    resolution: int
    stages: tuple[Stage, ...]

    # ----- JSON -----
    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "stages": [
                {
                    "width": s.width,
                    "layers": [{"kind": layer.kind, **layer.options()} for layer in s.layers],
                }
                for s in self.stages
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        try:
            stages = []
            for i, s in enumerate(data["stages"]):
                layers = []
                for j, layer in enumerate(s["layers"]):
                    opts = dict(layer)
                    kind = opts.pop("kind")
                    try:
                        layers.append(make_layer(kind, **opts))
                    except SpaceError as exc:
                        raise SpaceError(f"stages[{i}].layers[{j}]: {exc}") from None
                stages.append(Stage(width=int(s["width"]), layers=tuple(layers)))
            return cls(resolution=int(data["resolution"]), stages=tuple(stages))
        except (KeyError, TypeError) as exc:
            raise SpaceError(
                f"architecture JSON: missing or malformed field {exc}; expected "
                '{"resolution": int, "stages": [{"width": int, "layers": [{"kind": ..., ...}]}]}'
            ) from None

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpaceError(f"architecture JSON is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    # ----- short string -----
    def to_str(self) -> str:
        groups = [f"r{self.resolution}"]
        for s in self.stages:
            groups.append(f"w{s.width}: " + " ".join(layer.to_str() for layer in s.layers))
        return " | ".join(groups)

    @classmethod
    def from_str(cls, text: str) -> Architecture:
        groups = [g.strip() for g in text.strip().split("|")]
        if not groups or not re.fullmatch(r"r\d+", groups[0]):
            raise SpaceError(
                f"architecture string {text!r}: expected it to start with r<resolution>"
            )
        stages = []
        for g in groups[1:]:
            head, sep, body = g.partition(":")
            if not sep or not re.fullmatch(r"w\d+", head.strip()):
                raise SpaceError(f"architecture string: stage {g!r}: expected 'w<width>: <layers>'")
            layers = tuple(parse_layer(tok) for tok in body.split())
            stages.append(Stage(width=int(head.strip()[1:]), layers=layers))
        return cls(resolution=int(groups[0][1:]), stages=tuple(stages))

    def __str__(self) -> str:
        return self.to_str()

    def __repr__(self) -> str:  # short: the string Architecture.from_str reads back
        return f"Architecture({self.to_str()!r})"

    @property
    def depths(self) -> tuple[int, ...]:
        return tuple(s.depth for s in self.stages)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(s.width for s in self.stages)

    def arch_id(self) -> str:
        """A short stable identifier (first 12 hex digits of the SHA-256 of the canonical JSON)."""
        import hashlib

        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]
