"""Block-local attention equals dense attention under the equivalent mask, and is local."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from engine.local_attention import block_local_attention, dense_equivalent_mask


@pytest.mark.parametrize(("t", "block", "g"), [(41, 4, 1), (64, 8, 1), (30, 7, 0), (10, 16, 2), (129, 32, 1)])
def test_matches_dense_attention_with_the_equivalent_mask(t: int, block: int, g: int) -> None:
    gen = torch.Generator().manual_seed(t)
    q, k, v = (torch.randn(2, 3, t, 16, generator=gen) for _ in range(3))
    ours = block_local_attention(q, k, v, block, g)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=dense_equivalent_mask(t, block, g))
    assert torch.allclose(ours, dense, atol=1e-5)


def test_far_tokens_are_invisible_and_global_tokens_see_all() -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 101, 8, generator=gen) for _ in range(3))
    v2 = v.clone()
    v2[:, :, 1] += 10.0  # the first non-global frame
    a = block_local_attention(q, k, v, 10, 1)
    b = block_local_attention(q, k, v2, 10, 1)
    assert torch.equal(a[:, :, 50:], b[:, :, 50:])  # blocks far from frame 0 never see it
    assert not torch.allclose(a[:, :, 0], b[:, :, 0])  # the global token does
    assert not torch.allclose(a[:, :, 5], b[:, :, 5])  # a neighbour does
