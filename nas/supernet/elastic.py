"""Elastic layers: each stores its largest weights and runs any smaller configuration by slicing.

Width is elastic by keeping the first k channels (OFA/BigNAS), kernels by centre crop of the
largest kernel, heads by the first h heads of q, k and v (head dim fixed). A layer's forward
takes the configuration as arguments: nothing about the active subnet is stored on a module.
The elastic block of each kind (built from these layers) lives in the kind's module of
:mod:`nas.blocks.kinds`.
``export(...)`` returns the static module (see :mod:`nas.supernet.static`) with copied weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.blocks.base import conv_bn_params, linear_params
from nas.supernet import static

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


def copy_(dst: torch.Tensor, src: torch.Tensor) -> None:
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
        copy_(bn.weight, self.weight[:c])
        copy_(bn.bias, self.bias[:c])
        copy_(bn.running_mean, self.running_mean[:c])
        copy_(bn.running_var, self.running_var[:c])
        copy_(bn.num_batches_tracked, self.num_batches_tracked)
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
        copy_(m[0].weight, self._weight(c_in, c_out, kernel))
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
        copy_(m.weight, self.weight[:c_out, :c_in])
        copy_(m.bias, self.bias[:c_out])
        return m


class ElasticLayerNorm(nn.LayerNorm):
    """LayerNorm over the first C features of its largest affine parameters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        return F.layer_norm(x, (c,), self.weight[:c], self.bias[:c], self.eps)

    def export(self, c: int) -> nn.LayerNorm:
        m = nn.LayerNorm(c, eps=self.eps)
        copy_(m.weight, self.weight[:c])
        copy_(m.bias, self.bias[:c])
        return m


class ElasticConv1x1(nn.Module):
    """1x1 conv with bias (squeeze-excite, channel MLPs), first-k channels."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.weight = _conv_weight(max_out, max_in, 1)
        self.bias = nn.Parameter(torch.zeros(max_out))

    def forward(self, x: torch.Tensor, c_out: int) -> torch.Tensor:
        return F.conv2d(x, self.weight[:c_out, : x.shape[1]], self.bias[:c_out])

    def export(self, c_in: int, c_out: int) -> nn.Conv2d:
        m = nn.Conv2d(c_in, c_out, 1)
        copy_(m.weight, self.weight[:c_out, :c_in])
        copy_(m.bias, self.bias[:c_out])
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
    "ElasticBatchNorm2d",
    "ElasticConv1x1",
    "ElasticConvBN",
    "ElasticHead",
    "ElasticLayerNorm",
    "ElasticLinear",
    "conv_bn_params",
    "copy_",
    "linear_params",
]
