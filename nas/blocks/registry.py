"""One registry and one front door for the block kinds: ``block_kind("attn")``, ``kind_names()``,
``make_layer``, ``parse_layer``.

A kind registers itself with :func:`~nas.blocks.base.register_block` in a module of
:mod:`nas.blocks.kinds`; importing that package imports every module in it, so adding a kind is one
new file there. Nothing else lists the kinds: the YAML loader, the architecture strings, units,
costs, memory, latency keys, the supernet, training and the conformance tests read this registry.
"""

from __future__ import annotations

from typing import Any

import nas.blocks.kinds  # noqa: F401  (registers every kind)
from nas.blocks.base import REGISTERED, BlockKind, LayerValue, register_block
from nas.errors import SpaceError

__all__ = ["BlockKind", "block_kind", "kind_names", "kinds", "layer_types", "make_layer",
           "parse_layer", "register_block"]


def kinds() -> tuple[BlockKind, ...]:
    """Every registered kind, in canonical order (a stage's layer choices follow it)."""
    return tuple(sorted(REGISTERED.values(), key=lambda k: k.order))


def kind_names() -> tuple[str, ...]:
    """The registered kind names in canonical order (``conv``, ``attn``, ``mixer``, ...)."""
    return tuple(k.name for k in kinds())


def block_kind(name: str) -> BlockKind:
    """The kind called ``name``; a SpaceError naming the registered kinds if there is none."""
    if name not in REGISTERED:
        raise SpaceError(f"unknown layer kind {name!r}; allowed: {', '.join(kind_names())}")
    return REGISTERED[name]


def layer_types() -> dict[str, type[LayerValue]]:
    """Kind name -> its layer value class."""
    return {k.name: k.layer for k in kinds()}


def make_layer(kind: str, **options: Any) -> LayerValue:
    """Build a layer of ``kind`` from its options; unknown kinds or options raise SpaceError."""
    return block_kind(kind).layer.build(options)


def parse_layer(token: str) -> LayerValue:
    """Inverse of ``layer.to_str()`` (``ir_k3_e4_se``, ``at_h2_m2``, ...)."""
    tag, *fields = token.split("_")
    by_tag = {k.layer.tag: k for k in kinds()}
    where = f"layer {token!r}"
    if tag not in by_tag:
        expected = ", ".join(f"{t}_" for t in by_tag)
        raise SpaceError(f"{where}: unknown layer tag {tag!r}; expected {expected}")
    layer_cls = by_tag[tag].layer
    return make_layer(by_tag[tag].name, **layer_cls.parse_fields(fields, where))

