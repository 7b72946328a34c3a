"""The architecture value: frozen, hashable, with JSON and short-string round trips.

An :class:`Architecture` is a resolution plus, per stage, a width and the list of its active layers
(the depth is the number of layers). Each layer is the layer value of a registered block kind
(:mod:`nas.blocks.registry`: ``ConvLayer``, ``AttnLayer``, ...). Whether it fits a given space is
checked by ``space.validate(arch)``.

Short string (timm-like, one stage per ``|`` group)::

    r32 | w16: ir_k3_e1 | w32: ir_k5_e4_se ir_k3_e6 | w64: at_h4_m2 mx_t0.5_c4 ir_k3_e4

A layer, the stem and the head also carry a precision gene (:mod:`nas.precision`): ``fp32`` (the
default, written nowhere) or ``int8``, shown as a suffix (``ir_k3_e4@int8``) and, for stem and head,
as tokens of the first group (``r32 stem@int8 head@int8 | ...``); in JSON as ``"precision"`` of a
layer and ``"stem_precision"`` / ``"head_precision"``, present only when not ``fp32``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from nas.blocks.base import LayerValue
from nas.errors import SpaceError
from nas.precision import FP32, check_precision, split_suffix, with_suffix

Layer = LayerValue  # a registered kind's layer value (nas.blocks.kinds.*)

__all__ = ["Architecture", "Layer", "Stage", "make_layer", "parse_layer"]


# The registry is imported on first use: its kinds hold torch modules, and this module is
# imported where torch is not wanted (e.g. 'nas --help').
def make_layer(kind: str, **options: Any) -> Layer:
    """Build a layer of a registered ``kind`` (:func:`nas.blocks.registry.make_layer`)."""
    from nas.blocks import registry

    return registry.make_layer(kind, **options)


def parse_layer(token: str) -> Layer:
    """Inverse of ``layer.to_str()`` (:func:`nas.blocks.registry.parse_layer`)."""
    from nas.blocks import registry

    return registry.parse_layer(token)


@dataclass(frozen=True)
class Stage:
    """One stage of an architecture: its width, its active layers (depth = len(layers)) and each
    layer's precision (empty: all ``fp32``; normalised to one name per layer)."""

    width: int
    layers: tuple[Layer, ...]
    precisions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        precisions = tuple(self.precisions) or (FP32,) * len(self.layers)
        if len(precisions) != len(self.layers):
            raise SpaceError(
                f"stage: {len(precisions)} precisions for {len(self.layers)} layers"
            )
        for p in precisions:
            check_precision(p, "stage precisions")
        object.__setattr__(self, "precisions", precisions)

    @property
    def depth(self) -> int:
        return len(self.layers)


@dataclass(frozen=True)
class Architecture:
    """A subnet: input resolution and, per stage, width and layers; stem and head precisions."""

    resolution: int
    stages: tuple[Stage, ...]
    stem_precision: str = FP32
    head_precision: str = FP32

    def __post_init__(self) -> None:
        check_precision(self.stem_precision, "stem_precision")
        check_precision(self.head_precision, "head_precision")

    # ----- precision -----
    def precisions(self) -> tuple[str, ...]:
        """Every precision gene in order: stem, each layer of each stage, head."""
        layers = tuple(p for s in self.stages for p in s.precisions)
        return (self.stem_precision, *layers, self.head_precision)

    def with_precisions(self, precisions: tuple[str, ...] | list[str]) -> Architecture:
        """The same architecture with the genes of :meth:`precisions` replaced."""
        genes = list(precisions)
        if len(genes) != len(self.precisions()):
            raise SpaceError(
                f"{len(genes)} precisions for an architecture with {len(self.precisions())} genes"
            )
        stages, pos = [], 1
        for s in self.stages:
            stages.append(Stage(s.width, s.layers, tuple(genes[pos : pos + s.depth])))
            pos += s.depth
        return Architecture(self.resolution, tuple(stages), genes[0], genes[-1])

    def at_precision(self, precision: str) -> Architecture:
        """Every gene set to ``precision`` (e.g. the all-INT8 version of an FP32 search result)."""
        return self.with_precisions([precision] * len(self.precisions()))

    # ----- JSON -----
    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "resolution": self.resolution,
            "stages": [
                {
                    "width": s.width,
                    "layers": [
                        {"kind": layer.kind, **layer.options(),
                         **({} if p == FP32 else {"precision": p})}
                        for layer, p in zip(s.layers, s.precisions)
                    ],
                }
                for s in self.stages
            ],
        }
        for name in ("stem_precision", "head_precision"):
            if getattr(self, name) != FP32:
                data[name] = getattr(self, name)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Architecture:
        try:
            stages = []
            for i, s in enumerate(data["stages"]):
                layers, precisions = [], []
                for j, layer in enumerate(s["layers"]):
                    opts = dict(layer)
                    kind = opts.pop("kind")
                    try:
                        precisions.append(check_precision(opts.pop("precision", FP32), "precision"))
                        layers.append(make_layer(kind, **opts))
                    except SpaceError as exc:
                        raise SpaceError(f"stages[{i}].layers[{j}]: {exc}") from None
                stages.append(Stage(int(s["width"]), tuple(layers), tuple(precisions)))
            return cls(
                resolution=int(data["resolution"]),
                stages=tuple(stages),
                stem_precision=check_precision(data.get("stem_precision", FP32), "stem_precision"),
                head_precision=check_precision(data.get("head_precision", FP32), "head_precision"),
            )
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
        first = [f"r{self.resolution}"]
        first += [with_suffix(name, p) for name, p in
                  (("stem", self.stem_precision), ("head", self.head_precision)) if p != FP32]
        groups = [" ".join(first)]
        for s in self.stages:
            groups.append(f"w{s.width}: " + " ".join(
                with_suffix(layer.to_str(), p) for layer, p in zip(s.layers, s.precisions)))
        return " | ".join(groups)

    @classmethod
    def from_str(cls, text: str) -> Architecture:
        groups = [g.strip() for g in text.strip().split("|")]
        first = groups[0].split() if groups else []
        if not first or not re.fullmatch(r"r\d+", first[0]):
            raise SpaceError(
                f"architecture string {text!r}: expected it to start with r<resolution>"
            )
        ends = {"stem": FP32, "head": FP32}
        for tok in first[1:]:
            name, precision = split_suffix(tok, "architecture string")
            if name not in ends or "@" not in tok:
                raise SpaceError(
                    f"architecture string: {tok!r} after r<resolution>: expected stem@<precision> "
                    "or head@<precision>"
                )
            ends[name] = precision
        stages = []
        for g in groups[1:]:
            head, sep, body = g.partition(":")
            if not sep or not re.fullmatch(r"w\d+", head.strip()):
                raise SpaceError(f"architecture string: stage {g!r}: expected 'w<width>: <layers>'")
            pairs = [split_suffix(tok, f"stage {head.strip()}") for tok in body.split()]
            layers = tuple(parse_layer(tok) for tok, _ in pairs)
            stages.append(Stage(int(head.strip()[1:]), layers, tuple(p for _, p in pairs)))
        return cls(int(first[0][1:]), tuple(stages), ends["stem"], ends["head"])

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
