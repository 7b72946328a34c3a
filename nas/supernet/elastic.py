"""Elastic blocks: each stores its largest weights and runs any smaller configuration by slicing.

Width is elastic by keeping the first k channels (OFA/BigNAS), kernels by centre crop of the
largest kernel, heads by the first h heads of q, k and v (head dim fixed). A block's forward
takes the configuration as arguments: nothing about the active subnet is stored on a module.
``export(...)`` returns the static module (see :mod:`nas.supernet.static`) with copied weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.arch import AttnLayer, ConvLayer, MixerLayer
from nas.supernet import static
from nas.units import conv_hidden, ratio_hidden, se_hidden

_ACT = {
    "relu": F.relu,
    "hswish": F.hardswish,
    "gelu": F.gelu,
    "silu": F.silu,
}


def _conv_weight(c_out: int, c_in_per_group: int, k: int) -> nn.Parameter:
    w = torch.empty(c_out, c_in_per_group, k, k)
    nn.init.kaiming_normal_(w, mode="fan_out")
    return nn.Parameter(w)


def _linear(c_in: int, c_out: int) -> nn.Linear:
    layer = nn.Linear(c_in, c_out)
    nn.init.trunc_normal_(layer.weight, std=0.02)
    nn.init.zeros_(layer.bias)
    return layer


def _copy_(dst: torch.Tensor, src: torch.Tensor) -> None:
    with torch.no_grad():
        dst.copy_(src)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first C channels of its largest statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        training = self.training or not self.track_running_stats
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average (used by BN recalibration)
                momentum = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(
            x,
            self.running_mean[:c] if self.track_running_stats else None,
            self.running_var[:c] if self.track_running_stats else None,
            self.weight[:c],
            self.bias[:c],
            training,
            momentum,
            self.eps,
        )

    def export(self, c: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(c, eps=self.eps, momentum=self.momentum)
        _copy_(bn.weight, self.weight[:c])
        _copy_(bn.bias, self.bias[:c])
        _copy_(bn.running_mean, self.running_mean[:c])
        _copy_(bn.running_var, self.running_var[:c])
        _copy_(bn.num_batches_tracked, self.num_batches_tracked)
        return bn


class ElasticConvBN(nn.Module):
    """Conv2d (no bias) + elastic BN (+ act): first-k channels in and out, centre-cropped kernel."""

    def __init__(self, max_in: int, max_out: int, max_kernel: int, depthwise: bool = False) -> None:
        super().__init__()
        self.depthwise = depthwise
        self.weight = _conv_weight(max_out, 1 if depthwise else max_in, max_kernel)
        self.bn = ElasticBatchNorm2d(max_out)

    def _weight(self, c_in: int, c_out: int, kernel: int) -> torch.Tensor:
        k_max = self.weight.shape[-1]
        start = (k_max - kernel) // 2
        w = self.weight[:c_out] if self.depthwise else self.weight[:c_out, :c_in]
        return w[:, :, start : start + kernel, start : start + kernel]

    def forward(
        self, x: torch.Tensor, c_out: int, kernel: int, stride: int = 1, act: str | None = None
    ) -> torch.Tensor:
        c_in = x.shape[1]
        groups = c_in if self.depthwise else 1
        y = F.conv2d(x, self._weight(c_in, c_out, kernel), None, stride, kernel // 2, 1, groups)
        y = self.bn(y)
        return _ACT[act](y) if act else y

    def export(
        self, c_in: int, c_out: int, kernel: int, stride: int = 1, act: str | None = None
    ) -> static.ConvBN:
        m = static.ConvBN(
            c_in, c_out, kernel, stride, groups=c_in if self.depthwise else 1, act=act
        )
        _copy_(m[0].weight, self._weight(c_in, c_out, kernel))
        m[1] = self.bn.export(c_out)
        return m


class ElasticLinear(nn.Module):
    """Linear layer using the first ``out`` rows and first ``in`` columns of its largest weights."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        layer = _linear(max_in, max_out)
        self.weight, self.bias = layer.weight, layer.bias

    def forward(self, x: torch.Tensor, c_out: int) -> torch.Tensor:
        return F.linear(x, self.weight[:c_out, : x.shape[-1]], self.bias[:c_out])

    def export(self, c_in: int, c_out: int) -> nn.Linear:
        m = nn.Linear(c_in, c_out)
        _copy_(m.weight, self.weight[:c_out, :c_in])
        _copy_(m.bias, self.bias[:c_out])
        return m


class ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm over the first C features of its largest affine parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)

    def export(self, c: int) -> nn.LayerNorm:
        m = nn.LayerNorm(c, eps=self.eps)
        _copy_(m.weight, self.weight[:c])
        _copy_(m.bias, self.bias[:c])
        return m


class ElasticMBConv(nn.Module):
    def __init__(
        self,
        max_in: int,
        max_out: int,
        kernels: tuple[int, ...],
        expands: tuple[float, ...],
        se: tuple[bool, ...],
        act: str,
    ) -> None:
        super().__init__()
        self.act = act
        max_hidden = max(conv_hidden(max_in, max(expands)), max_in)
        self.expand = ElasticConvBN(max_in, max_hidden, 1) if any(e != 1 for e in expands) else None
        self.dw = ElasticConvBN(max_hidden, max_hidden, max(kernels), depthwise=True)
        if any(se):
            s = se_hidden(max_hidden)
            self.se_fc1 = ElasticConv1x1(max_hidden, s)
            self.se_fc2 = ElasticConv1x1(s, max_hidden)
        self.project = ElasticConvBN(max_hidden, max_out, 1)

    def forward(
        self, x: torch.Tensor, layer: ConvLayer, c_out: int, stride: int, residual: bool
    ) -> torch.Tensor:
        c_in = x.shape[1]
        hidden = conv_hidden(c_in, layer.expand) if layer.expand != 1 else c_in
        h = self.expand(x, hidden, 1, act=self.act) if layer.expand != 1 else x
        h = self.dw(h, hidden, layer.kernel, stride, act=self.act)
        if layer.se:
            s = h.mean((2, 3), keepdim=True)
            s = F.relu(self.se_fc1(s, se_hidden(hidden)))
            h = h * F.hardsigmoid(self.se_fc2(s, hidden))
        h = self.project(h, c_out, 1)
        return h + x if residual else h

    def export(
        self, layer: ConvLayer, c_in: int, c_out: int, stride: int, residual: bool
    ) -> static.MBConv:
        hidden = conv_hidden(c_in, layer.expand) if layer.expand != 1 else c_in
        se = se_hidden(hidden) if layer.se else None
        m = static.MBConv(
            c_in,
            c_out,
            hidden,
            layer.kernel,
            stride,
            self.act,
            se,
            expand=layer.expand != 1,
            residual=residual,
        )
        if layer.expand != 1:
            m.expand = self.expand.export(c_in, hidden, 1, act=self.act)
        m.dw = self.dw.export(hidden, hidden, layer.kernel, stride, act=self.act)
        if se:
            for dst, src, (i, o) in (
                (m.se.fc1, self.se_fc1, (hidden, se)),
                (m.se.fc2, self.se_fc2, (se, hidden)),
            ):
                _copy_(dst.weight, src.weight[:o, :i])
                _copy_(dst.bias, src.bias[:o])
        m.project = self.project.export(hidden, c_out, 1)
        return m


class ElasticConv1x1(nn.Module):
    """1x1 conv with bias (squeeze-excite), first-k channels."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.weight = _conv_weight(max_out, max_in, 1)
        self.bias = nn.Parameter(torch.zeros(max_out))

    def forward(self, x: torch.Tensor, c_out: int) -> torch.Tensor:
        return F.conv2d(x, self.weight[:c_out, : x.shape[1]], self.bias[:c_out])


class ElasticAttention(nn.Module):
    def __init__(
        self, max_c: int, heads: tuple[int, ...], head_dim: int, mlp_ratios: tuple[float, ...]
    ) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.max_heads = max(heads)
        inner = self.max_heads * head_dim
        self.norm1 = ElasticLayerNorm(max_c)
        self.qkv = ElasticLinear(max_c, 3 * inner)
        self.proj = ElasticLinear(inner, max_c)
        self.norm2 = ElasticLayerNorm(max_c)
        self.fc1 = ElasticLinear(max_c, ratio_hidden(max_c, max(mlp_ratios)))
        self.fc2 = ElasticLinear(ratio_hidden(max_c, max(mlp_ratios)), max_c)

    def _qkv_rows(self, heads: int) -> torch.Tensor:
        inner_max, inner = self.max_heads * self.head_dim, heads * self.head_dim
        device = self.qkv.weight.device  # index on the weights' device (no host-device copy)
        return torch.cat(
            [torch.arange(i * inner_max, i * inner_max + inner, device=device) for i in range(3)]
        )

    def forward(self, x: torch.Tensor, layer: AttnLayer) -> torch.Tensor:
        b, c, h, w = x.shape
        heads, hd = layer.heads, self.head_dim
        t = x.flatten(2).transpose(1, 2)  # (B, T, C)
        inner_max = self.max_heads * hd
        wq = self.qkv.weight.view(3, inner_max, -1)[:, : heads * hd, :c].reshape(3 * heads * hd, c)
        bq = self.qkv.bias.view(3, inner_max)[:, : heads * hd].reshape(-1)
        qkv = F.linear(self.norm1(t), wq, bq).reshape(b, h * w, 3, heads, hd)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (B, nh, T, hd)
        attn = torch.softmax((q @ k.transpose(-2, -1)) * hd**-0.5, dim=-1)
        o = (attn @ v).transpose(1, 2).reshape(b, h * w, heads * hd)
        t = t + self.proj(o, c)
        hidden = ratio_hidden(c, layer.mlp_ratio)
        t = t + self.fc2(F.gelu(self.fc1(self.norm2(t), hidden)), c)
        return t.transpose(1, 2).reshape(b, c, h, w)

    def export(self, layer: AttnLayer, c: int) -> static.AttentionBlock:
        hidden = ratio_hidden(c, layer.mlp_ratio)
        inner = layer.heads * self.head_dim
        m = static.AttentionBlock(c, layer.heads, self.head_dim, hidden)
        m.norm1, m.norm2 = self.norm1.export(c), self.norm2.export(c)
        rows = self._qkv_rows(layer.heads)
        _copy_(m.qkv.weight, self.qkv.weight[rows, :c])
        _copy_(m.qkv.bias, self.qkv.bias[rows])
        m.proj = self.proj.export(inner, c)
        m.fc1 = self.fc1.export(c, hidden)
        m.fc2 = self.fc2.export(hidden, c)
        return m


class ElasticMixer(nn.Module):
    def __init__(
        self,
        max_c: int,
        window: int,
        token_ratios: tuple[float, ...],
        channel_ratios: tuple[float, ...],
    ) -> None:
        super().__init__()
        self.window = window
        tokens = window * window
        self.max_token_hidden = max(1, round(tokens * max(token_ratios)))
        self.norm1 = ElasticLayerNorm(max_c)
        self.token_fc1 = ElasticLinear(tokens, self.max_token_hidden)
        self.token_fc2 = ElasticLinear(self.max_token_hidden, tokens)
        self.norm2 = ElasticLayerNorm(max_c)
        self.fc1 = ElasticLinear(max_c, ratio_hidden(max_c, max(channel_ratios)))
        self.fc2 = ElasticLinear(ratio_hidden(max_c, max(channel_ratios)), max_c)

    def forward(self, x: torch.Tensor, layer: MixerLayer) -> torch.Tensor:
        c = x.shape[1]
        tokens = self.window * self.window
        token_hidden = max(1, round(tokens * layer.token_ratio))
        t = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        y = static.mix_tokens(
            self.norm1(t),
            self.window,
            lambda z: self.token_fc2(F.gelu(self.token_fc1(z, token_hidden)), tokens),
        )
        t = t + y
        hidden = ratio_hidden(c, layer.channel_ratio)
        t = t + self.fc2(F.gelu(self.fc1(self.norm2(t), hidden)), c)
        return t.permute(0, 3, 1, 2)

    def export(self, layer: MixerLayer, c: int) -> static.MixerBlock:
        tokens = self.window * self.window
        token_hidden = max(1, round(tokens * layer.token_ratio))
        hidden = ratio_hidden(c, layer.channel_ratio)
        m = static.MixerBlock(c, self.window, token_hidden, hidden)
        m.norm1, m.norm2 = self.norm1.export(c), self.norm2.export(c)
        m.token_fc1 = self.token_fc1.export(tokens, token_hidden)
        m.token_fc2 = self.token_fc2.export(token_hidden, tokens)
        m.fc1 = self.fc1.export(c, hidden)
        m.fc2 = self.fc2.export(hidden, c)
        return m


class ElasticHead(nn.Module):
    def __init__(
        self,
        max_in: int,
        width: int,
        hidden: int | None,
        num_classes: int,
        act: str,
        dropout: float,
    ) -> None:
        super().__init__()
        self.act, self.width, self.hidden_width, self.dropout_p = act, width, hidden, dropout
        self.conv = ElasticConvBN(max_in, width, 1)
        self.hidden = _linear(width, hidden) if hidden else None
        self.classifier = _linear(hidden or width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x, self.width, 1, act=self.act).mean((2, 3))
        if self.hidden is not None:
            x = _ACT[self.act](self.hidden(x))
        x = F.dropout(x, self.dropout_p, self.training)
        return self.classifier(x)

    def export(self, c_in: int) -> static.Head:
        m = static.Head(
            c_in,
            self.width,
            self.hidden_width,
            self.classifier.out_features,
            self.act,
            self.dropout_p,
        )
        m.conv = self.conv.export(c_in, self.width, 1, act=self.act)
        if self.hidden is not None:
            m.hidden[0].load_state_dict(self.hidden.state_dict())
        m.classifier.load_state_dict(self.classifier.state_dict())
        return m


__all__ = [
    "ElasticAttention",
    "ElasticBatchNorm2d",
    "ElasticConvBN",
    "ElasticHead",
    "ElasticLayerNorm",
    "ElasticLinear",
    "ElasticMBConv",
    "ElasticMixer",
]
