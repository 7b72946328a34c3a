"""What the token-mixer kinds (``attn``, ``mixer``, ``pool``) share: MetaFormer's block shape.

A token-mixer block keeps its width ``c`` (a transition precedes a stage's first slot when the
width or stride changes) and runs two pre-norm residual branches::

    x = x + TokenMixer(Norm(x))             # what the kind is about
    x = x + fc2(GELU(fc1(Norm(x))))         # channel MLP, hidden round(c * ratio)

Here is everything but the token mixer: the unit's MACs and parameters (:class:`TokenMixerUnit`:
two norms and the channel MLP around the mixer's own terms), the kind's zero-init rule and
supernet parameter count (:class:`TokenMixerKind`), and, for the LayerNorm kinds, the elastic
module's norms and channel MLP (:class:`ElasticChannelMLP`). A kind's module declares only its
token mixer on top.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.base import BlockKind, TokenUnit, mlp_params, ratio_hidden
from nas.supernet.elastic import ElasticLayerNorm, ElasticLinear

__all__ = ["ElasticChannelMLP", "TokenMixerKind", "TokenMixerUnit"]


class TokenMixerUnit(TokenUnit):
    """A token-mixer block at one shape; subclasses (frozen dataclasses with ``c`` and ``size``
    fields) give the channel MLP's hidden width and the token mixer's own MACs and parameters."""

    @property
    def mlp_hidden(self) -> int:
        """Hidden width of the channel MLP."""
        raise NotImplementedError

    def mixer_macs(self) -> int:
        """MACs of the token mixer alone."""
        raise NotImplementedError

    def mixer_params(self) -> int:
        """Parameters of the token mixer alone (0: a fixed operator such as pooling)."""
        raise NotImplementedError

    def macs(self) -> int:
        return self.mixer_macs() + 2 * self.size * self.size * self.c * self.mlp_hidden

    def params(self) -> int:  # two norms (weight and bias each), the mixer, the channel MLP
        return 2 * (2 * self.c) + self.mixer_params() + mlp_params(self.c, self.mlp_hidden)


class TokenMixerKind(BlockKind):
    """A token-mixer kind. ``branch_outputs``: the last layer of each residual branch of its
    elastic module, zeroed (weight and bias) by the BigNAS init; ``mlp_ratios_field``: the spec's
    field of channel-MLP ratios."""

    branch_outputs: ClassVar[tuple[str, ...]]
    mlp_ratios_field: ClassVar[str] = "mlp_ratios"

    def mixer_elastic_params(self, spec: Any, max_out: int) -> int:
        """Parameters of the elastic token mixer alone."""
        raise NotImplementedError

    def zero_init_(self, block: Any, first: bool) -> int:
        for name in self.branch_outputs:
            layer = getattr(block, name)
            layer.weight.zero_()
            layer.bias.zero_()
        return len(self.branch_outputs)

    def elastic_params(self, spec: Any, *, c_in: int, max_out: int) -> int:
        hidden = ratio_hidden(max_out, max(getattr(spec, self.mlp_ratios_field)))
        return 4 * max_out + self.mixer_elastic_params(spec, max_out) + mlp_params(max_out, hidden)


class ElasticChannelMLP(nn.Module):
    """Base of the LayerNorm kinds' elastic modules (channels last: tokens ``(..., C)``):
    ``norm1`` before the token mixer, and the channel branch ``norm2``, ``fc1``, ``fc2``. A
    subclass makes ``norm1`` and its mixer's layers first, then calls :meth:`add_channel_mlp` (the
    order the parameters are made, initialised and listed in)."""

    norm1: ElasticLayerNorm

    def add_channel_mlp(self, max_c: int, ratios: tuple[float, ...]) -> None:
        hidden = ratio_hidden(max_c, max(ratios))
        self.norm2 = ElasticLayerNorm(max_c)
        self.fc1 = ElasticLinear(max_c, hidden)
        self.fc2 = ElasticLinear(hidden, max_c)

    def channel_mlp(self, t: torch.Tensor, ratio: float) -> torch.Tensor:
        """``t`` plus the channel branch at MLP ratio ``ratio`` (``t``: ``(..., C)``)."""
        c = t.shape[-1]
        return t + self.fc2(F.gelu(self.fc1(self.norm2(t), ratio_hidden(c, ratio))), c)

    def export_channel_mlp(self, m: nn.Module, c: int, ratio: float) -> None:
        """Copy both norms and the channel MLP at width ``c`` into the static module ``m``."""
        hidden = ratio_hidden(c, ratio)
        m.norm1, m.norm2 = self.norm1.export(c), self.norm2.export(c)
        m.fc1 = self.fc1.export(c, hidden)
        m.fc2 = self.fc2.export(hidden, c)
