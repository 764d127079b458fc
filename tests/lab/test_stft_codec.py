from __future__ import annotations

import math

import numpy as np
import torch

from lab.evaluation.metrics import tone_fidelity
from lab.training.stft_codec import STFTCodec, STFTCodecConfig, synthesize

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
    residual = (spec[:, 2].angle()[:, None] - 2 * math.pi * hop * (k + dev[:, :1]) * 3 / n_fft).expand_as(dev)
    y = synthesize(log_mag[None], dev[None], residual[None], hop, n_fft, n)[0]
    mid = 2 * SR
    seg = y[(n - mid) // 2 : (n + mid) // 2].numpy() * np.hanning(mid)
    power = np.abs(np.fft.rfft(seg)) ** 2
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
