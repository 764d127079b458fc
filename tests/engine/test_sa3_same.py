"""The SAME autoencoder: band attention in linear time equals diffusers' full-mask attention; the
release's chunked attention (SAME-S) equals the same layers run over the whole sequence under
block-diagonal masks; a windowed decode equals a whole one. Tiny widths, release strides and chunks.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

pytest.importorskip("diffusers")

from engine.sa3 import SAMEConfig  # noqa: E402
from engine.sa3.attention import band_attention  # noqa: E402
from engine.sa3.same import SAMEAutoencoder, SAMEResampler  # noqa: E402
from tests.engine import sa3_helpers as h  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*is deprecated:FutureWarning")
TOL = 1e-5  # fp32 relative; the target is 1e-4


def _same(cfg: SAMEConfig, seed: int = 0) -> SAMEAutoencoder:
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ae = SAMEAutoencoder(cfg).eval()
    h.randomize(ae, seed + 1)
    return ae


@pytest.mark.parametrize("n,left,right", [(50, 17, 17), (700, 17, 17), (700, 5, 30), (1000, 0, 40)])
def test_sa3_band_attention_equals_full_mask(n: int, left: int, right: int) -> None:
    g = torch.Generator().manual_seed(n)
    q, k, v = (torch.randn(2, n, 3, 8, generator=g) for _ in range(3))
    idx = torch.arange(n)
    delta = idx[None, :] - idx[:, None]
    mask = (delta >= -left) & (delta <= right)
    want = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask
    ).transpose(1, 2)
    got = band_attention(q, k, v, left, right, block=64)
    assert h.rel_err(got, want) < TOL


def test_sa3_band_same_equals_diffusers_full_mask() -> None:
    """SAME-L-style band attention: our linear-time layers vs diffusers' AutoencoderSAME (N x N mask)."""
    model = h.tiny_model()
    ref = h.diffusers_vae(model)
    g = torch.Generator().manual_seed(7)
    audio = torch.randn(1, 2, 41 * model.config.same.downsampling_ratio + 5, generator=g) * 0.3
    latents = torch.randn(1, 16, 41, generator=g)
    with torch.no_grad():
        enc, enc_ref = model.same.encode(audio), ref.encode(audio).latents
        dec, dec_ref = model.same.decode_whole(latents), ref.decode(latents).sample
        windowed = model.same.decode(latents, window=8)  # 3 windows + context
    assert latents.shape[-1] * 17 > 8 * 17 * 4  # the band is cut into several query blocks
    assert h.rel_err(enc, enc_ref) < TOL
    assert h.rel_err(dec, dec_ref) < TOL
    assert h.rel_err(windowed, dec_ref) < TOL


def _chunked_oracle(block: SAMEResampler, x: Tensor) -> Tensor:
    """The release's TransformerResamplingBlock with chunk_midpoint_shift, written as full-length
    attention under block-diagonal masks (RoPE over absolute positions: it is relative, so the
    chunks' scores are the same), with the release's zero padding and edge repeats."""
    s, e = block.stride, block.chunk_latents * (block.stride + 1)
    if block.mode == "encoder":
        b, _, t = x.shape
        x = F.pad(x, (0, (-t) % (block.chunk_latents * s)))
        x = block.mapping(x)
        n = x.shape[-1] // s
        seq = torch.cat([x.transpose(1, 2).reshape(b, n, s, -1), block.new_tokens.expand(b, n, 1, -1)], dim=2)
    else:
        b, _, t = x.shape
        x = F.pad(x.transpose(1, 2), (0, 0, 0, (-t) % block.chunk_latents))
        n = x.shape[1]
        seq = torch.cat([x[:, :, None], block.new_tokens.expand(b, n, s, -1)], dim=2)
    seq = seq.reshape(b, n * (s + 1), -1)

    def blocks_mask(length: int) -> Tensor:
        ids = torch.arange(length) // e
        return (ids[:, None] == ids[None, :])[None, None]  # [1, 1, N, N]

    layers = list(block.transformers)
    half = len(layers) // 2
    for layer in layers[:half]:
        seq = layer(seq, attn_mask=blocks_mask(seq.shape[1]))
    shift = e // 2
    seq = torch.cat([seq[:, :shift], seq, seq[:, -shift:]], dim=1)
    for layer in layers[half:]:
        seq = layer(seq, attn_mask=blocks_mask(seq.shape[1]))
    seq = seq[:, shift:-shift].reshape(b, n, s + 1, -1)
    if block.mode == "encoder":
        return seq[:, :, -1].transpose(1, 2)
    out = seq[:, :, 1:].reshape(b, n * s, -1).transpose(1, 2)
    return block.mapping(out)[..., : t * s]


@pytest.mark.parametrize("frames", [12, 13])
def test_sa3_chunked_same_equals_block_diagonal_full_mask(frames: int) -> None:
    """SAME-S as released: two-latent chunks, second half shifted, kernel-3 decoder mapping; odd
    lengths pad to the chunk grid."""
    ae = _same(h.TINY_SAME_CHUNKED)
    assert ae.decoder.blocks[0].mapping.weight_v.shape[-1] == 3
    g = torch.Generator().manual_seed(frames)
    latents = torch.randn(1, 16, frames, generator=g)
    patched = torch.randn(1, 4, frames * 16 + 3, generator=g) * 0.3
    with torch.no_grad():
        x = ae.decoder.proj(ae.bottleneck.decode(latents).transpose(1, 2)).transpose(1, 2)
        dec, dec_ref = ae.decoder.blocks[0](x), _chunked_oracle(ae.decoder.blocks[0], x)
        enc, enc_ref = ae.encoder.blocks[0](patched), _chunked_oracle(ae.encoder.blocks[0], patched)
    assert dec.shape == (1, 4, frames * 16)
    assert h.rel_err(dec, dec_ref) < TOL
    assert h.rel_err(enc, enc_ref) < TOL


@pytest.mark.parametrize("cfg", ["band", "chunked"])
def test_sa3_windowed_decode_equals_whole(cfg: str) -> None:
    ae = _same(h.TINY_SAME_BAND if cfg == "band" else h.TINY_SAME_CHUNKED)
    g = torch.Generator().manual_seed(3)
    latents = torch.randn(2, 16, 75, generator=g)  # odd: the last window pads
    seen: list[dict[str, int]] = []
    with torch.no_grad():
        whole = ae.decode_whole(latents)
        windowed = ae.decode(latents, window=8, callback=seen.append)
    assert len(seen) == 10 and seen[-1] == {"i": 10, "n": 10}
    assert windowed.shape == whole.shape == (2, 2, 75 * ae.downsampling_ratio)
    assert h.rel_err(windowed, whole) < TOL


def test_sa3_chunked_same_needs_even_chunks() -> None:
    from dataclasses import replace

    from engine.errors import ConfigError
    from engine.sa3.config import check_same_side

    with pytest.raises(ConfigError, match="even number"):
        check_same_side(replace(h.CHUNKED, chunk_size=48), "test")


def test_sa3_bf16_decoder_copy_stays_close_and_windows_agree() -> None:
    ae = _same(h.TINY_SAME_CHUNKED)
    latents = torch.randn(1, 16, 40, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        fp32 = ae.decode_whole(latents)
        bf16 = ae.decode(latents, window=8, dtype=torch.bfloat16)
        whole = ae.decode_whole(latents, torch.bfloat16)
    assert bf16.dtype == torch.float32 and "_half_decoders" in ae.__dict__
    snr = 10 * torch.log10(fp32.pow(2).sum() / (bf16 - fp32).pow(2).sum())
    assert snr > 30, f"bf16 decoder SNR {snr:.1f} dB"
    assert h.rel_err(bf16, whole) < 1e-2  # windows in bf16: rounding differs, the math does not
    assert all(p.dtype == torch.float32 for p in ae.parameters())  # the model itself stays fp32
    assert ae.half_decoder(torch.bfloat16) is ae.half_decoder(torch.bfloat16)  # made once
