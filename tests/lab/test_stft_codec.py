from __future__ import annotations

import math

import numpy as np
import torch

from lab.evaluation.metrics import tone_fidelity
from lab.training.stft_codec import STFTCodec, STFTCodecConfig, analysis_loss, synthesize

SR = 44100


def tiny() -> STFTCodec:
    torch.manual_seed(0)
    return STFTCodec(STFTCodecConfig(latent_dim=8, dim=32, enc_blocks=1, dec_blocks=1))


def test_latents_at_hop_2048_and_shapes() -> None:
    model = tiny()
    x = torch.randn(2, 2, 4 * 2048) * 0.1
    z = model.encode(x)
    assert z.shape == (2, 8, 4)
    assert model.decode(z).shape == x.shape


def test_synthesis_head_renders_a_given_sine_cleanly() -> None:
    """Exact magnitudes and deviation of a sine -> the deterministic phase vocoder renders it."""
    n_fft, hop, n = 2048, 512, 4 * SR // 2048 * 2048
    f = 330.7
    t = np.arange(n) / SR
    x = torch.from_numpy(0.25 * np.sin(2 * math.pi * f * t))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft, dtype=torch.float64), return_complex=True)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    dev = (f * n_fft / SR - k).clamp(-2, 2).expand_as(spec.real)
    log_mag = torch.log(spec.abs() + 1e-9)
    log_mag[:, :2] = log_mag[:, 2:3]  # the centred edge frames see the padding, not the steady tone
    log_mag[:, -2:] = log_mag[:, -3:-2]
    vocoder = 2 * math.pi * hop * (k + dev[:, :1]) * 3 / n_fft + math.pi * k  # its phase at frame 2
    residual = (spec[:, 2].angle()[:, None] - vocoder).expand_as(dev)
    y = synthesize(log_mag[None], dev[None], residual[None], hop, n_fft, n)[0]
    mid = 2 * SR
    seg = y[(n - mid) // 2 : (n + mid) // 2].numpy()
    assert abs(seg.std() / x.numpy().std() - 1) < 0.05  # level kept
    seg = seg * np.hanning(mid)
    power = np.abs(np.fft.rfft(seg)) ** 2
    freqs = np.fft.rfftfreq(mid, 1 / SR)
    assert power[np.abs(freqs - f) <= 3.0].sum() / power.sum() > 0.9


def test_phase_vocoder_alone_renders_a_sine_from_magnitude_and_deviation() -> None:
    """No per-bin phase given (residual 0): the vocoder's own phase must keep a sine's neighbouring
    bins consistent, or the frames cancel under the synthesis window and the tone is lost."""
    n_fft, hop, n = 2048, 512, 4 * SR // 2048 * 2048
    f = 441.0
    t = np.arange(n) / SR
    x = torch.from_numpy(0.25 * np.sin(2 * math.pi * f * t))
    spec = torch.stft(x, n_fft, hop, window=torch.hann_window(n_fft, dtype=torch.float64), return_complex=True)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None]
    dev = (f * n_fft / SR - k).clamp(-2, 2).expand_as(spec.real)
    log_mag = torch.log(spec.abs() + 1e-9)
    y = synthesize(log_mag[None], dev[None], torch.zeros_like(dev)[None], hop, n_fft, n)[0]
    mid = 2 * SR
    seg = y[(n - mid) // 2 : (n + mid) // 2].numpy()
    ref = x[(n - mid) // 2 : (n + mid) // 2].numpy()
    assert abs(np.sqrt(np.mean(seg**2)) / np.sqrt(np.mean(ref**2)) - 1) < 0.05  # level kept
    power = np.abs(np.fft.rfft(seg * np.hanning(mid))) ** 2
    freqs = np.fft.rfftfreq(mid, 1 / SR)
    assert power[np.abs(freqs - f) <= 3.0].sum() / power.sum() > 0.9


def test_untrained_codec_runs_through_tone_fidelity() -> None:
    model = tiny()
    result = tone_fidelity(lambda a: model.decode(model.encode(a)), SR, 2048, seconds=2.5)
    assert 0.0 <= result["mean"] <= 1.0


def test_resume_continues_at_the_right_step(tmp_path) -> None:
    from lab.training.loop import load_state
    from lab.training.stft_codec_train import main

    common = ["--synthetic", "1.0", "--batch", "1", "--crop-hops", "4", "--latent-dim", "8", "--dim", "32"]
    main([str(tmp_path), "--steps", "2", "--save-every", "1", *common])
    assert load_state(tmp_path / "checkpoint.pt")["step"] == 2
    main([str(tmp_path), "--steps", "3", "--save-every", "1", *common])
    assert load_state(tmp_path / "checkpoint.pt")["step"] == 3


def test_analysis_loss_is_zero_at_the_sines_own_heads_and_grows_off_them() -> None:
    n_fft, hop, n = 2048, 512, 16 * 2048
    f = 441.0
    x = torch.from_numpy(0.25 * np.sin(2 * math.pi * f * np.arange(n) / SR)).float()[None, None]
    spec = torch.stft(x[0], n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float32)[:, None]
    dev = torch.remainder(f * n_fft / SR - k + 2, 4) - 2  # bins further off alias into +-2 (hop = n_fft / 4)
    dev = dev.expand_as(spec.real)
    log_mag = torch.log(spec.abs() + 1e-5)
    l_mag, l_if = analysis_loss(log_mag, dev, x, hop, n_fft)
    assert l_mag < 1e-4 and l_if < 0.02
    off_mag, off_if = analysis_loss(log_mag + 1.0, dev + 0.5, x, hop, n_fft)
    assert off_mag > 0.05 and off_if > 0.3  # (most bins sit at the floor either way)
