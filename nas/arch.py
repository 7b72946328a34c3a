"""The architecture value: frozen, hashable, with JSON and short-string round trips.

An :class:`Architecture` is a resolution plus, per stage, a width and the list of its active layers
(the depth is the number of layers). Each layer is the layer value of a registered block kind
(:mod:`nas.blocks.registry`: ``ConvLayer``, ``AttnLayer``, ...). Whether it fits a given space is
checked by ``space.validate(arch)``.

Short string (timm-like, one stage per ``|`` group)::

    r32 | w16: ir_k3_e1 | w32: ir_k5_e4_se ir_k3_e6 | w64: at_h4_m2 mx_t0.5_c4 ir_k3_e4
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from nas.blocks.base import LayerValue
from nas.errors import SpaceError

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
