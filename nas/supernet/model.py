"""The weight-sharing supernet: one module holding the largest weights of every slot and kind."""

from __future__ import annotations

import torch
from torch import nn

from nas.arch import Architecture, AttnLayer, ConvLayer, MixerLayer
from nas.errors import SpaceError
from nas.spaces.schema import AttnSpec, ConvSpec, MixerSpec, SearchSpace
from nas.supernet import static
from nas.supernet.elastic import (
    ElasticAttention,
    ElasticConvBN,
    ElasticHead,
    ElasticMBConv,
    ElasticMixer,
)


class LayerSlot(nn.Module):
    """One layer position of a stage: an elastic block per allowed kind, plus a transition for the
    first position of a stage whose attention/mixer layers need a stride or width change."""

    def __init__(self, space: SearchSpace, stage_index: int, position: int, max_in: int) -> None:
        super().__init__()
        stage = space.stages[stage_index]
        max_out = max(stage.widths)
        self.first = position == 0
        self.stride = stage.stride if self.first else 1
        c_in = max_in if self.first else max_out
        self.blocks = nn.ModuleDict()
        self.transition: ElasticConvBN | None = None
        for spec in stage.blocks:
            if isinstance(spec, ConvSpec):
                self.blocks["conv"] = ElasticMBConv(
                    c_in, max_out, spec.kernels, spec.expands, spec.se, stage.act
                )
            elif isinstance(spec, AttnSpec):
                self.blocks["attn"] = ElasticAttention(
                    max_out, spec.heads, spec.head_dim, spec.mlp_ratios
                )
            elif isinstance(spec, MixerSpec):
                self.blocks["mixer"] = ElasticMixer(
                    max_out, spec.window, spec.token_ratios, spec.channel_ratios
                )
        if self.first and any(k in self.blocks for k in ("attn", "mixer")):
            self.transition = ElasticConvBN(c_in, max_out, 3 if self.stride > 1 else 1)

    def _needs_transition(self, c_in: int, c_out: int) -> bool:
        return self.first and (self.stride != 1 or c_in != c_out)

    def forward(self, x: torch.Tensor, layer, c_out: int) -> torch.Tensor:
        if isinstance(layer, ConvLayer):
            return self.blocks["conv"](x, layer, c_out, self.stride, residual=not self.first)
        if self._needs_transition(x.shape[1], c_out):
            x = self.transition(x, c_out, 3 if self.stride > 1 else 1, self.stride)
        return self.blocks[layer.kind](x, layer)

    def export(self, layer, c_in: int, c_out: int) -> list[nn.Module]:
        if isinstance(layer, ConvLayer):
            return [
                self.blocks["conv"].export(layer, c_in, c_out, self.stride, residual=not self.first)
            ]
        out: list[nn.Module] = []
        if self._needs_transition(c_in, c_out):
            out.append(
                self.transition.export(c_in, c_out, 3 if self.stride > 1 else 1, self.stride)
            )
        if isinstance(layer, AttnLayer | MixerLayer):
            out.append(self.blocks[layer.kind].export(layer, c_out))
        return out


class Supernet(nn.Module):
    """Hybrid elastic supernet over a :class:`SearchSpace`.

    ``forward(x, arch)`` runs the subnet ``arch`` with shared weights; nothing about the active
    subnet is stored on the module, so different architectures can run one after another or
    concurrently. ``extract(arch)`` returns a standalone :class:`static.StaticNet` with copied
    weights whose eval-mode output equals ``forward(x, arch)``.
    """

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.space = space
        self.space_hash = space.hash()
        s = space.stem
        self.stem = ElasticConvBN(space.in_channels, s.width, s.kernel)
        self.stages = nn.ModuleList()
        max_in = s.width
        for i, stage in enumerate(space.stages):
            self.stages.append(
                nn.ModuleList(LayerSlot(space, i, j, max_in) for j in range(stage.max_depth))
            )
            max_in = max(stage.widths)
        h = space.head
        self.head = ElasticHead(max_in, h.width, h.hidden, space.num_classes, h.act, h.dropout)

    def __repr__(self) -> str:  # short; print(supernet.modules) lists every module
        params = sum(p.numel() for p in self.parameters())
        return (
            f"Supernet(space={self.space.name!r}, hash={self.space_hash}, "
            f"stages={len(self.stages)}, slots={sum(len(s) for s in self.stages)}, "
            f"params={params:,})"
        )

    def _check(self, x: torch.Tensor, arch: Architecture) -> None:
        self.space.validate(arch)
        if x.dim() != 4 or x.shape[1] != self.space.in_channels:
            raise SpaceError(
                f"input of shape {tuple(x.shape)}; expected (B, {self.space.in_channels}, H, W)"
            )
        if x.shape[-1] != arch.resolution or x.shape[-2] != arch.resolution:
            raise SpaceError(
                f"input is {x.shape[-2]}x{x.shape[-1]} but the architecture's resolution is "
                f"{arch.resolution}; resize the batch first"
            )

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        self._check(x, arch)
        s = self.space.stem
        x = self.stem(x, s.width, s.kernel, s.stride, act=s.act)
        for slots, stage in zip(self.stages, arch.stages):
            for slot, layer in zip(slots, stage.layers):
                x = slot(x, layer, stage.width)
        return self.head(x)

    @torch.no_grad()
    def extract(self, arch: Architecture) -> static.StaticNet:
        """A standalone static model of ``arch`` with copied weights (in eval mode), on the
        supernet's device."""
        self.space.validate(arch)
        s = self.space.stem
        stem = self.stem.export(self.space.in_channels, s.width, s.kernel, s.stride, act=s.act)
        blocks: list[nn.Module] = []
        c_in = s.width
        for slots, stage in zip(self.stages, arch.stages):
            for slot, layer in zip(slots, stage.layers):
                blocks.extend(slot.export(layer, c_in, stage.width))
                c_in = stage.width
        model = static.StaticNet(stem, blocks, self.head.export(c_in), arch=arch.to_str())
        device = next(self.parameters()).device  # the parts are built on the CPU, then moved
        return model.to(device).eval()
