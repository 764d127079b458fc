from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lab.evaluation.metrics import tone_fidelity
from lab.training.stft_codec import STFTCodec, STFTCodecConfig, analysis_loss, grow_codec, synthesize

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


def test_silence_reads_as_zero_features_and_a_sine_lights_its_bins() -> None:
    """The encoder's input must be sparse: silent bins 0, so different sines give different sums."""
    model = tiny()
    assert model.features(torch.zeros(1, 2, 8 * 2048)).abs().max() == 0
    t = torch.arange(8 * 2048) / SR
    feats = [model.features(0.25 * torch.sin(2 * math.pi * f * t).expand(1, 2, -1))[0, :, 16] for f in (220.0, 440.0)]
    assert (feats[0] - feats[1]).norm() > 0.5 * feats[0].norm()


N_FFT, HOP, N = 2048, 512, 4 * SR // 2048 * 2048


def sine_heads(f: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 0.25-amplitude sine -> (audio, its STFT, bin index column, exact deviation, log-magnitude)."""
    x = torch.from_numpy(0.25 * np.sin(2 * math.pi * f * np.arange(N) / SR))
    spec = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=torch.float64), return_complex=True)
    k = torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None]
    dev = (f * N_FFT / SR - k).clamp(-2, 2).expand_as(spec.real)
    return x, spec, k, dev, torch.log(spec.abs() + 1e-9)


def assert_the_sine_comes_back(y: torch.Tensor, x: torch.Tensor, f: float) -> None:
    """Level within 5 % and > 90 % of the middle 2 s's energy within 3 Hz of `f`."""
    mid = 2 * SR
    seg, ref = (a[(N - mid) // 2 : (N + mid) // 2].numpy() for a in (y, x))
    assert abs(seg.std() / ref.std() - 1) < 0.05  # level kept
    power = np.abs(np.fft.rfft(seg * np.hanning(mid))) ** 2
    freqs = np.fft.rfftfreq(mid, 1 / SR)
    assert power[np.abs(freqs - f) <= 3.0].sum() / power.sum() > 0.9


def test_synthesis_head_renders_a_given_sine_cleanly() -> None:
    """Exact magnitudes and deviation of a sine -> the deterministic phase vocoder renders it."""
    f = 330.7
    x, spec, k, dev, log_mag = sine_heads(f)
    log_mag[:, :2] = log_mag[:, 2:3]  # the centred edge frames see the padding, not the steady tone
    log_mag[:, -2:] = log_mag[:, -3:-2]
    vocoder = 2 * math.pi * HOP * (k + dev[:, :1]) * 3 / N_FFT + math.pi * k  # its phase at frame 2
    residual = (spec[:, 2].angle()[:, None] - vocoder).expand_as(dev)
    y = synthesize(log_mag[None], dev[None], residual[None], HOP, N_FFT, N)[0]
    assert_the_sine_comes_back(y, x, f)


def test_phase_vocoder_alone_renders_a_sine_from_magnitude_and_deviation() -> None:
    """No per-bin phase given (residual 0): the vocoder's own phase must keep a sine's neighbouring
    bins consistent, or the frames cancel under the synthesis window and the tone is lost."""
    f = 441.0
    x, _, _, dev, log_mag = sine_heads(f)
    y = synthesize(log_mag[None], dev[None], torch.zeros_like(dev)[None], HOP, N_FFT, N)[0]
    assert_the_sine_comes_back(y, x, f)


def test_phase_locking_keeps_a_sine_whose_side_bins_disagree() -> None:
    """Deviations off by up to a bin on the main lobe's side bins: unlocked, the side bins drift
    away from the peak's phase and the tone smears; locked to the loudest bin it comes back."""
    f = 441.0
    x, _, k, dev, log_mag = sine_heads(f)
    peak = round(f * N_FFT / SR)
    noisy = dev.clone()
    distance = (k[:, 0] - peak).abs()
    side = (distance >= 1) & (distance <= 2)
    noisy[side] += torch.linspace(-1, 1, int(side.sum()), dtype=noisy.dtype)[:, None]
    zero = torch.zeros_like(dev)[None]
    y = synthesize(log_mag[None], noisy[None], zero, HOP, N_FFT, N)[0]
    with pytest.raises(AssertionError):
        assert_the_sine_comes_back(y, x, f)
    y = synthesize(log_mag[None], noisy[None], zero, HOP, N_FFT, N, lock=True)[0]
    assert_the_sine_comes_back(y, x, f)


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


def test_stop_at_ends_a_stage_early_on_the_long_schedule(tmp_path) -> None:
    """`--stop-at` stops a stage at a step while the learning rate keeps falling over `--steps`."""
    from lab.training.loop import linear_decay, load_state
    from lab.training.stft_codec_train import main

    common = ["--synthetic", "1.0", "--batch", "1", "--crop-hops", "4", "--latent-dim", "8", "--dim", "32"]
    main([str(tmp_path), "--steps", "100", "--stop-at", "2", "--save-every", "1", "--lr", "1e-3", *common])
    state = load_state(tmp_path / "checkpoint.pt")
    assert state["step"] == 2
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(1e-3 * linear_decay(1, 100, 0.1))


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
    # `if_lags`: the phase advance over several hops too. Exact heads still score ~0 at every lag; a
    # partial 0.05 bins (1.1 Hz) off, too little for one hop's advance to notice (0.08 rad), costs
    # 16 times more at lags 1 and 16 together: the longer lag reads the error 16 times as large
    _, lagged = analysis_loss(log_mag, dev, x, hop, n_fft, if_lags=(1, 16))
    assert lagged < 0.02
    _, near = analysis_loss(log_mag, dev + 0.05, x, hop, n_fft)
    _, near_lagged = analysis_loss(log_mag, dev + 0.05, x, hop, n_fft, if_lags=(1, 16))
    assert near - l_if < 0.01 and near_lagged - lagged > 16 * (near - l_if)


def test_a_weights_only_export_resumes_with_a_fresh_optimizer(tmp_path) -> None:
    from lab.training.loop import load_state
    from lab.training.stft_codec_train import load_codec, main

    common = ["--synthetic", "1.0", "--batch", "1", "--crop-hops", "4", "--latent-dim", "8", "--dim", "32"]
    main([str(tmp_path / "a"), "--steps", "2", "--save-every", "1", *common])
    main([str(tmp_path / "a"), "--export", str(tmp_path / "export.pt")])
    exported = load_state(tmp_path / "export.pt")
    assert "optimizer" not in exported and exported["step"] == 2
    load_codec(tmp_path / "export.pt")  # measurable as it is
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "checkpoint.pt").write_bytes((tmp_path / "export.pt").read_bytes())
    main([str(tmp_path / "b"), "--steps", "3", "--save-every", "1", *common])
    assert load_state(tmp_path / "b" / "checkpoint.pt")["step"] == 3


def test_frequency_features_read_a_sines_offset_from_its_bin() -> None:
    """The phase-derived feature at a sine's loudest bin is its offset from that bin's centre."""
    model = STFTCodec(STFTCodecConfig(latent_dim=8, dim=32, enc_blocks=1, dec_blocks=1, if_bins=512))
    t = torch.arange(8 * 2048, dtype=torch.float64) / SR
    for f in (100.0, 441.0, 1234.5):
        feats = model.features(0.25 * torch.sin(2 * math.pi * f * t).expand(1, 2, -1))[0, :, 16]
        mag, dev = feats[:2049], feats[2049 : 2049 + 512]
        k = int(mag[:512].argmax())
        offset = f * 4096 / SR - k
        assert abs(dev[k] / mag[k] * 4 - offset) < 0.02, (f, k, float(dev[k] / mag[k] * 4), offset)
    silent = model.features(torch.zeros(1, 2, 8 * 2048, dtype=torch.float64))
    assert silent.abs().max() == 0


def test_growing_the_frequency_inputs_keeps_what_the_encoder_computed() -> None:
    """Resuming a magnitude-only codec with `if_bins`: same latents at first, the new inputs live."""
    small = tiny()
    grown = STFTCodec(STFTCodecConfig(latent_dim=8, dim=32, enc_blocks=1, dec_blocks=1, if_bins=64))
    grow_codec(grown, small.state_dict())
    x = torch.randn(1, 2, 8 * 2048) * 0.1
    assert torch.allclose(grown.encode(x), small.encode(x), atol=1e-6)
    assert grown.enc_in.weight.shape[1] == 2 * (2049 + 64)
    grown.encode(x).sum().backward()
    assert grown.enc_in.weight.grad.view(32, 2, -1)[:, :, 2049:].abs().sum() > 0


def test_stage_two_trains_the_adversary_and_resumes_it(tmp_path) -> None:
    """`--adv`/`--fm`: the discriminator learns beside the codec and its weights resume with it."""
    from lab.training.loop import load_state
    from lab.training.stft_codec_train import main

    common = ["--synthetic", "1.0", "--batch", "1", "--crop-hops", "4", "--latent-dim", "8", "--dim", "32"]
    stage2 = [
        "--rec",
        "0",
        "--adv",
        "0.1",
        "--fm",
        "5",
        "--disc-channels",
        "4",
        "--disc-lr",
        "1e-2",
        "--disc-crop",
        "6144",
    ]
    main([str(tmp_path), "--steps", "2", "--save-every", "1", *common, *stage2])
    first = load_state(tmp_path / "checkpoint.pt")
    assert "disc" in first and "disc_opt" in first
    main([str(tmp_path), "--steps", "3", "--save-every", "1", *common, *stage2])
    second = load_state(tmp_path / "checkpoint.pt")
    assert second["step"] == 3
    moved = [k for k, v in second["disc"].items() if not torch.equal(v, first["disc"][k])]
    assert moved, "the discriminator did not learn"
    assert second["disc_opt"]["state"][0]["step"] == 3  # its optimizer resumed, not restarted


def test_a_grown_resume_adds_the_frequency_inputs(tmp_path) -> None:
    from lab.training.loop import load_state
    from lab.training.stft_codec_train import load_codec, main

    common = ["--synthetic", "1.0", "--batch", "1", "--crop-hops", "4", "--latent-dim", "8", "--dim", "32"]
    main([str(tmp_path), "--steps", "1", "--save-every", "1", *common])
    main([str(tmp_path), "--steps", "2", "--save-every", "1", "--if-bins", "16", *common])
    assert load_state(tmp_path / "checkpoint.pt")["config"]["if_bins"] == 16
    assert load_codec(tmp_path / "checkpoint.pt").enc_in.weight.shape[1] == 2 * (2049 + 16)


def test_growing_a_hidden_head_keeps_what_the_decoder_computed_and_then_learns() -> None:
    small = tiny()
    grown = STFTCodec(STFTCodecConfig(latent_dim=8, dim=32, enc_blocks=1, dec_blocks=1, head_hidden=48))
    grow_codec(grown, small.state_dict())
    z = torch.randn(1, 8, 4)
    for a, b in zip(grown.heads(z), small.heads(z)):
        assert torch.allclose(a, b, atol=1e-6)
    grown.heads(z)[0].pow(2).sum().backward()
    assert grown.dec_mlp_out.weight.grad.abs().sum() > 0


def test_spectral_convergence_weighs_a_partials_peak_over_the_quiet_bins() -> None:
    """Over a noise floor (as in music, where every bin is above the log floor), a sine's peak bins
    2.5 nats low (20 dB quiet) cost the averaged terms less than every bin 0.05 nats off;
    spectral convergence ranks them the other way, by over 10x."""
    n_fft, hop, n = 2048, 512, 16 * 2048
    rng = np.random.default_rng(0)
    x = 0.25 * np.sin(2 * math.pi * 441.0 * np.arange(n) / SR) + 1e-3 * rng.standard_normal(n)
    x = torch.from_numpy(x).float()[None, None]
    spec = torch.stft(x[0], n_fft, hop, window=torch.hann_window(n_fft), return_complex=True)
    exact = torch.log(spec.abs() + 1e-5)
    dev = torch.zeros_like(exact)
    quiet_peak = exact.clone()
    quiet_peak[:, 19:23] -= 2.5
    spread = exact + 0.05
    plain = [analysis_loss(h, dev, x, hop, n_fft)[0] for h in (quiet_peak, spread)]
    sc = [analysis_loss(h, dev, x, hop, n_fft, convergence=1.0)[0] - p for h, p in zip((quiet_peak, spread), plain)]
    assert plain[0] < plain[1]  # the averaged terms hardly see the quiet partial
    assert sc[0] > 10 * sc[1]


def test_synthetic_notes_are_stacks_of_partials_and_repeat_per_seed() -> None:
    """`--notes`: held or struck harmonic notes. Same seed -> same crop; each crop lights many
    spectral peaks on the multiples of a few fundamentals, where a sine crop lights one to four."""
    import random

    from lab.training.stft_codec_train import synthetic_notes, synthetic_sines

    n = 2 * SR

    def peaks(x: np.ndarray) -> int:  # spectral peaks within 30 dB of the loudest
        power = np.abs(np.fft.rfft(x[0].astype(np.float64) * np.hanning(n))) ** 2
        mid = power[1:-1]
        return int(np.sum((mid > power[:-2]) & (mid >= power[2:]) & (mid > power.max() * 1e-3)))

    x = synthetic_notes(random.Random(3), 2, n)
    assert x.shape == (2, n) and x.dtype == np.float32 and 0.01 < np.abs(x).max() <= 1.0
    assert np.array_equal(x, synthetic_notes(random.Random(3), 2, n))
    assert min(peaks(synthetic_notes(random.Random(s), 1, n)) for s in range(8)) >= 5
    assert max(peaks(synthetic_sines(random.Random(s), 1, n)) for s in range(8)) <= 4
