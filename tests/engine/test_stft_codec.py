"""The STFT codec as the engine runs it (issue 19): its config in a model folder, the pretransform's
chunked encode/decode equal to the whole-signal codec, and a whole diffusion model around it that
renders, is deterministic, and survives a save and a load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import Generator, RenderRequest, build_model, diffusion_config, load_model, save_model
from engine.autoencoder import vae_sample
from engine.errors import ConfigError
from engine.stft_codec import STFTCodecPretransform, synthesize, synthesize_chunked
from engine.stft_codec_config import STFTCodecConfig, parse_stft_codec

SMALL = STFTCodecConfig(latent_dim=8, dim=32, enc_blocks=1, dec_blocks=2, if_bins=16, phase_lock=True, scale=1.7)


def _codec(seed: int = 0) -> STFTCodecPretransform:
    """A small codec whose heads are not at their (silent, all-zero) start."""
    torch.manual_seed(seed)
    pre = STFTCodecPretransform(SMALL)
    with torch.no_grad():
        for p in pre.model.dec_out.parameters():
            p.normal_(0, 0.05)
    return pre.eval()


def test_config_round_trips_and_refuses_what_it_cannot_build() -> None:
    block = SMALL.to_json()
    assert block["downsampling_ratio"] == 2048 and block["io_channels"] == 2
    assert parse_stft_codec(block) == SMALL
    assert parse_stft_codec({}) == STFTCodecConfig()  # absent fields take the defaults
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['strides'\]"):
        parse_stft_codec({**block, "strides": [2, 4]})
    with pytest.raises(ConfigError, match="downsampling_ratio is 1024, but the codec's fields give 2048"):
        parse_stft_codec({**block, "downsampling_ratio": 1024})
    with pytest.raises(ConfigError, match="latent_dim must be int, got '8'"):
        parse_stft_codec({**block, "latent_dim": "8"})
    with pytest.raises(ConfigError, match="scale must be positive"):
        parse_stft_codec({**block, "scale": 0})


def test_chunked_encode_and_decode_equal_the_whole_signal() -> None:
    pre = _codec()
    frames = 40
    audio = 0.3 * torch.randn(1, 2, frames * pre.downsampling_ratio)
    with torch.no_grad():
        whole = pre.model.encode(audio) / pre.scale
        chunked = pre.encode(audio, sample=False, chunk_frames=16, overlap_frames=12)
        assert chunked.shape == (1, SMALL.latent_dim, frames)
        torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=1e-4)
        out = pre.decode(whole, chunk_frames=16, overlap_frames=12)
        assert out.shape == audio.shape
        torch.testing.assert_close(out, pre.model.decode(whole * pre.scale), atol=1e-5, rtol=1e-4)


def test_sampled_latents_spread_as_the_codec_posterior() -> None:
    pre = _codec()
    audio = 0.3 * torch.randn(1, 2, 8 * pre.downsampling_ratio)
    with torch.no_grad():
        mean, log_scale = pre.model.encode_dist(audio)
        stats = pre.model.encode_pre(audio)
        assert stats.shape[1] == pre.model.pre_channels == 2 * SMALL.latent_dim
        torch.testing.assert_close(stats[:, : SMALL.latent_dim], mean)
        # The Oobleck's convention (std = softplus(scale) + 1e-4) gives the codec's own std back.
        draws = torch.stack([vae_sample(*stats.chunk(2, 1), torch.Generator().manual_seed(s))[0] for s in range(400)])
    std = draws.std(0)
    ratio = (std / torch.exp(log_scale)).flatten()
    assert abs(float(ratio.median()) - 1.0) < 0.1, float(ratio.median())


def _codec_model(seed: int = 0) -> torch.nn.Module:
    cfg = diffusion_config(
        SMALL.to_json(),
        window_seconds=2.0,
        embed_dim=32,
        depth=1,
        num_heads=1,
        text_width=32,
        text_depth=1,
        pretransform_type="stft_codec",
    )
    torch.manual_seed(seed)
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.pretransform.model.dec_out.parameters():
            p.normal_(0, 0.05)
    return model.eval()


def test_a_model_on_the_codec_renders_deterministically_and_reloads(tmp_path: Path) -> None:
    model = _codec_model()
    assert isinstance(model.pretransform, STFTCodecPretransform) and model.pretransform.scale == SMALL.scale
    gen = Generator(model, device="cpu")
    request = RenderRequest(prompt="warm pads in A minor", seconds=1.0, steps=3, seed=5)
    a, b = gen.render(request)[0].audio, gen.render(request)[0].audio
    assert a.shape == (2, 44100) and np.isfinite(a).all() and np.abs(a).max() > 0
    np.testing.assert_array_equal(a, b)
    folder = save_model(model, tmp_path / "codec-model", {"description": "tiny codec model"})
    again = load_model(folder)
    assert isinstance(again.pretransform, STFTCodecPretransform)
    assert again.config.autoencoder == model.config.autoencoder
    np.testing.assert_allclose(Generator(again, device="cpu").render(request)[0].audio, a, atol=1e-5)


def test_phase_vocoder_decode_keeps_a_sine_continuous_across_chunks() -> None:
    """Heads set by hand to one steady partial: the chunked decode renders it as one sinusoid of
    constant level (the phase integrates over the whole sequence, not per chunk)."""
    pre = STFTCodecPretransform(STFTCodecConfig(latent_dim=4, dim=8, enc_blocks=1, dec_blocks=1, phase_lock=True))
    k, frames = 20, 40  # bin 20 of 2,048 at 44.1 kHz: 430.66 Hz
    bins = pre.cfg.dec_fft // 2 + 1
    with torch.no_grad():
        for p in pre.model.parameters():
            p.zero_()
        bias = pre.model.dec_out.bias
        assert bias is not None
        log_mag = bias.view(2, 3, bins)[:, 0]
        log_mag.fill_(-2.0)  # x mag_gain 8 - 4 = -20: silent
        log_mag[:, k - 1 : k + 2] = 0.8  # 6.4 - 4 = 2.4: a partial's main lobe ...
        log_mag[:, k] = 1.0  # ... peaking at bin k (phase locking gives the lobe the loudest bin's phase)
        out = pre.decode(torch.zeros(1, 4, frames), chunk_frames=16, overlap_frames=8)[0, 0].numpy()
    mid = out[4096:-4096]
    spectrum = np.abs(np.fft.rfft(mid * np.hanning(len(mid))))
    peak_hz = np.argmax(spectrum) * 44100 / len(mid)
    assert abs(peak_hz - k * 44100 / 2048) < 2.0, peak_hz
    level = np.array([np.sqrt(np.mean(c**2)) for c in np.array_split(mid, 16)])
    assert level.min() > 0.8 * level.max(), level  # no dips where chunks meet
    assert math.isfinite(float(level.mean())) and level.mean() > 1e-3


@pytest.mark.parametrize("lock", [False, True])
def test_chunked_synthesis_equals_the_whole_istft(lock: bool) -> None:
    """Chunks of frames, the phase carried across them, overlap-added by hand: torch.istft's audio."""
    gen = torch.Generator().manual_seed(1)
    frames, bins, hop, n_fft = 301, 1025, 512, 2048
    log_mag = torch.randn(2, bins, frames, generator=gen) - 2.0
    dev = 2 * torch.rand(2, bins, frames, generator=gen) - 1
    residual = 0.3 * torch.randn(2, bins, frames, generator=gen)
    n = (frames - 1) * hop
    whole = synthesize(log_mag, dev, residual, hop, n_fft, n, lock=lock)
    chunked = synthesize_chunked(
        lambda a, b: (log_mag[..., a:b], dev[..., a:b], residual[..., a:b]), frames, hop, n_fft, n, lock, chunk=64
    )
    assert chunked.shape == whole.shape == (2, n)
    torch.testing.assert_close(chunked, whole, atol=2e-5 * float(whole.abs().max()), rtol=1e-4)
