"""The 1-D convolution every autoencoder layer goes through, in one place so it can be made fast.

On CPUs, `F.conv1d` in bf16 is slower than fp32, while a bf16 matmul can use AMX units; this
module is where a conv-as-matmul path is chosen per op when it measures faster (see benchmarks/).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: int,
           dilation: int) -> Tensor:
    """`[B, Cin, T]` x `[Cout, Cin, K]` -> `[B, Cout, T']`, same semantics as `F.conv1d`."""
    return F.conv1d(x, weight, bias, stride, padding, dilation)
