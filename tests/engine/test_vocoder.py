"""The phase-vocoder decoder: integrated phase keeps held tones, chunked == whole, config errors, training."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from engine import tiny_config
from engine.autoencoder import AutoencoderPretransform
from engine.config import parse_autoencoder
from engine.errors import ConfigError
from engine.evaluation.metrics import hop_periodic_db, tone_fidelity
from engine.vocoder import PhaseVocoderDecoder, phase_derivative_loss

SR = 44100
LATENT_HOP = 2048  # longplay-mini's: the STFT frame rate is 4x the latent rate


TINY_DECODER = tiny_config()["model"]["pretransform"]["config"]["decoder"]["config"]


def _config(**dec: object) -> dict:
    raw = json.loads(json.dumps(tiny_config()["model"]["pretransform"]["config"]))  # hop 256
    raw["decoder"] = {"type": "phase_vocoder", "config": {"out_channels": 2, "latent_dim": 8, "channels": 16,
                                                           "latent_layers": 1, "frame_layers": 1,
                                                           "n_fft": 128, "hop_length": 64, **dec}}
    return raw


def _vocoder() -> PhaseVocoderDecoder:
    raw = json.loads(json.dumps(tiny_config()["model"]["pretransform"]["config"]))
    raw.update(downsampling_ratio=LATENT_HOP, latent_dim=8)
    raw["encoder"]["config"].update(strides=[4, 8, 64])
    raw["decoder"] = {"type": "phase_vocoder", "config": {"out_channels": 2, "latent_dim": 8, "channels": 8,
                                                           "latent_layers": 0, "frame_layers": 0}}
    return PhaseVocoderDecoder(parse_autoencoder(raw).decoder).eval()


def _analysed(voc: PhaseVocoderDecoder, audio: torch.Tensor, integrate: bool) -> torch.Tensor:
    """Analysis-resynthesis through `synthesize`: each frame's magnitude and, if `integrate`, the
    measured phase advance between frames (else the bin centre's: what a frame-by-frame phase gives)."""
    cfg = voc.cfg
    x = audio.float()
    spec = torch.stft(x, cfg.n_fft, cfg.hop_length, window=voc.window, center=True, return_complex=True)
    frames = x.shape[-1] // cfg.hop_length
    log_mag = torch.log(spec.abs()[..., :frames] + 1e-7)  # [C, F, T]
    measured = torch.angle(spec[0, :, 1:frames + 1] * spec[0, :, :frames].conj()).double()
    dev = torch.remainder(measured - voc.centre_advance.double()[:, None] + math.pi, 2 * math.pi) - math.pi
    dev = dev if integrate else torch.zeros_like(dev)
    feats = torch.cat([log_mag.reshape(-1, frames), torch.atanh((dev / math.pi).clamp(-0.999, 0.999)).float(),
                       torch.full_like(log_mag[0], -30.0),  # no noise
                       torch.ones_like(log_mag[0]), torch.zeros_like(log_mag[0])])  # phase offsets of 0
    with torch.no_grad():
        return voc.synthesize(feats[None])[0]


def test_integrated_phase_keeps_a_held_tone_where_a_per_frame_phase_makes_a_comb() -> None:
    """Tones half-way between the latent rate's harmonics: resynthesised with the phase integrated
    they stay tones; with every bin advancing at its centre frequency (a signal that repeats every
    n_fft = latent hop) nothing is left at the tone and the output repeats every hop."""
    voc = _vocoder()
    integrated = tone_fidelity(lambda a: _analysed(voc, a[0], True)[None], SR, LATENT_HOP)
    comb = tone_fidelity(lambda a: _analysed(voc, a[0], False)[None], SR, LATENT_HOP)
    assert integrated["mean"] > 0.99, integrated  # measured 0.9999
    assert comb["mean"] < 1e-3, comb  # measured 1e-8
    t = np.arange(4 * SR) / SR
    tone = torch.from_numpy(np.stack([0.25 * np.sin(2 * np.pi * 441.4 * t)] * 2))
    assert hop_periodic_db(_analysed(voc, tone, True).numpy(), LATENT_HOP) < -20  # -30.4
    assert hop_periodic_db(_analysed(voc, tone, False).numpy(), LATENT_HOP) > -0.1  # -0.005


def test_chunked_decode_equals_whole_decode_and_renders_repeat() -> None:
    torch.manual_seed(0)
    vae = AutoencoderPretransform(parse_autoencoder(_config())).eval()
    dec = vae.model.decoder
    assert isinstance(dec, PhaseVocoderDecoder) and dec.cfg.frames_per_latent == 4
    with torch.no_grad():  # noise wide enough to matter: it must be the same noise in every chunk
        dec.head.bias[-dec.bins:] = 1.0
        z = torch.randn(1, 8, 200)
        whole = vae.decode(z, chunk_frames=400)
        chunked = vae.decode(z, chunk_frames=64, overlap_frames=32)
        again = vae.decode(z)
        prefix = vae.decode(z[..., :100], chunk_frames=400)
    assert whole.shape == (1, 2, 200 * 256)
    assert ((whole - chunked).abs().max() / whole.abs().max()) < 1e-5
    assert torch.equal(whole, again)
    # The noise is laid out frame by frame: a shorter render is the same away from its end.
    assert ((whole[..., :80 * 256] - prefix[..., :80 * 256]).abs().max() / whole.abs().max()) < 1e-5


@pytest.mark.parametrize("source", [False, True])
def test_synthesis_in_chunks_equals_one_pass(source: bool) -> None:
    """The inverse STFT runs in chunks of frames (bounded memory on long renders); with each
    chunk's margin the audio is the one-pass audio, with or without a source's phase."""
    torch.manual_seed(0)
    extra = {"source": {"type": "oobleck", "config": TINY_DECODER}} if source else {}
    dec = AutoencoderPretransform(parse_autoencoder(_config(**extra))).model.decoder.eval()
    assert isinstance(dec, PhaseVocoderDecoder) and dec.uses_source_phase == source
    feats = torch.randn(1, dec.feature_channels, 300, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = dec.synthesize(feats, chunk_frames=None)
        chunked = dec.synthesize(feats, chunk_frames=37)  # (9 chunks)
    assert whole.shape == (1, 2, 300 * 64)
    assert ((whole - chunked).abs().max() / whole.abs().max()) < 1e-5


@pytest.mark.parametrize("change, message", [
    ({"hop_length": 96}, "must divide the downsampling_ratio"),
    ({"n_fft": 64, "hop_length": 64}, "at most half of n_fft"),
    ({"out_channels": 8}, "io_channels is 2"),
    ({"kernel": 5}, "unsupported key"),
    ({"source": {"type": "oobleck", "config": {**TINY_DECODER, "latent_dim": 4}}}, "Oobleck decoder of latent_dim 8"),
    ({"source": {"type": "oobleck", "config": {**TINY_DECODER, "strides": [4, 8, 4]}}}, "and hop 256"),
    ({"source": {"type": "oobleck", "config": {**TINY_DECODER, "out_channels": 1}}}, "out_channels is 1"),
])
def test_phase_vocoder_config_errors_name_the_key(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_autoencoder(_config(**change))


def test_phase_derivative_loss_sees_frequency_and_delay_not_the_absolute_phase() -> None:
    voc = _vocoder()
    g = torch.Generator().manual_seed(3)
    x = 0.1 * torch.randn(2, 2, 64 * voc.cfg.hop_length, generator=g)
    frames = x.shape[-1] // voc.cfg.hop_length
    own = torch.stft(x.mean(1), voc.cfg.n_fft, voc.cfg.hop_length, window=voc.window, center=True,
                     return_complex=True)[..., :frames].angle()[:, None]  # [B, 1, bins, T]
    assert phase_derivative_loss(own, x, voc) < 1e-5
    assert phase_derivative_loss(own + 2.5, x, voc) < 1e-5  # a constant offset: nothing the latents could tell
    random = 2 * math.pi * torch.rand(own.shape, generator=g)
    assert abs(phase_derivative_loss(random, x, voc).item() - math.pi) < 0.15  # pi/2 for each derivative
    shifted = own + 0.5 * torch.arange(frames)  # every bin 0.5 rad per frame off in frequency
    assert abs(phase_derivative_loss(shifted, x, voc).item() - 0.5) < 0.01  # (frame 0 has no difference)
    each = torch.stft(x.reshape(4, -1), voc.cfg.n_fft, voc.cfg.hop_length, window=voc.window, center=True,
                      return_complex=True)[..., :frames].angle().reshape(2, 2, voc.bins, frames)
    assert phase_derivative_loss(each, x, voc) < 1e-5  # a phase per channel is held to its own channel
    assert phase_derivative_loss(each.flip(1), x, voc) > 1.0
