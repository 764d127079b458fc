"""Autoencoder reconstruction metrics as in Stable Audio 2, Table 5 (section 4.3).

The paper: "STFT distance, MEL distance and SI-SDR (as in AuraLoss library, with its default
parameters)", computed at 44.1 kHz. stable-audio-tools' autoencoder validation builds the same
three from auraloss (`MelSTFTLoss(sample_rate, **cfg)`, `SISDRLoss()` with the sign flipped), so:

* STFT distance: `auraloss.freq.MultiResolutionSTFTLoss()` with every default (FFT 1024/2048/512,
  hops 120/240/50, windows 600/1200/240; spectral convergence + log-magnitude L1).
* MEL distance: `auraloss.freq.MelSTFTLoss(44100)` with its defaults (FFT 1024, hop 256,
  128 mel bands; same two terms on the mel spectrogram). A multi-resolution mel variant would
  give other numbers; we keep the library default the paper names.
* SI-SDR: `auraloss.time.SISDRLoss()` (zero-mean), negated to dB, higher is better.

Stereo `[B, 2, N]` is scored as auraloss does it: each channel is a row, rows are averaged.

Two measures of our own beside them, because Table 5's three did not see the worst fault our
decoder had (every frame of output alike, a buzz on the latent rate's harmonics):

* hop-periodic energy (`hop_periodic_db`): the share of a signal's energy that repeats every latent
  hop, in dB. Music has about -15 dB (what passes a comb of 33-hop averages by chance); a decoder
  that renders each latent frame alike approaches 0 dB.
* tone fidelity (`tone_fidelity`): sine tones placed half-way between the latent rate's harmonics,
  through the autoencoder; the share of the output's energy within 3 Hz of the tone (1 is perfect,
  a hop-periodic decoder gets ~0 however good its mel distance).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from engine.audio_io import conform

from .errors import require

METRIC_RATE = 44100
# Table 5, "Ours" row (Stable Audio 2 autoencoder on Song Describer, no singing).
PAPER_TABLE5: dict[str, float] = {"stft": 1.19, "mel": 0.71, "sisdr": 7.14, "latent_rate_hz": 21.5}
SILENCE_RMS = 1e-4  # -80 dBFS: SI-SDR of a silent reference is meaningless, such crops are skipped


@dataclass(frozen=True)
class ReconstructionMetrics:
    stft: float  # lower is better
    mel: float  # lower is better
    sisdr: float  # dB, higher is better

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


class ReconstructionScorer:
    """The three auraloss modules, built once. Call with `[B, C, N]` tensors at 44.1 kHz."""

    def __init__(self, sample_rate: int = METRIC_RATE):
        require("librosa")  # auraloss builds its mel filterbank with librosa
        import auraloss

        self.sample_rate = sample_rate
        self.stft = auraloss.freq.MultiResolutionSTFTLoss()
        self.mel = auraloss.freq.MelSTFTLoss(sample_rate)
        self.sisdr = auraloss.time.SISDRLoss()

    @torch.no_grad()
    def __call__(self, reference: Tensor, estimate: Tensor) -> ReconstructionMetrics:
        if reference.shape != estimate.shape:
            raise ValueError(f"reference {tuple(reference.shape)} and estimate {tuple(estimate.shape)} differ in shape")
        ref, est = reference.float(), estimate.float()
        # auraloss takes (input, target) = (estimate, reference).
        return ReconstructionMetrics(
            float(self.stft(est, ref)), float(self.mel(est, ref)), -float(self.sisdr(est, ref))
        )


def reconstruction_metrics(
    reference: np.ndarray, estimate: np.ndarray, sample_rate: int, scorer: ReconstructionScorer | None = None
) -> ReconstructionMetrics:
    """Table-5 metrics of one `[C, N]` pair, resampled to 44.1 kHz first when needed."""
    ref, est = np.asarray(reference, np.float32), np.asarray(estimate, np.float32)
    if ref.ndim == 1:
        ref, est = ref[None], est[None]
    n = min(ref.shape[-1], est.shape[-1])
    ref, est = ref[:, :n], est[:, :n]
    if sample_rate != METRIC_RATE:
        ref = conform(ref, sample_rate, METRIC_RATE, ref.shape[0])
        est = conform(est, sample_rate, METRIC_RATE, est.shape[0])
    scorer = scorer or ReconstructionScorer()
    return scorer(torch.from_numpy(ref)[None], torch.from_numpy(est)[None])


def middle_crop(audio: np.ndarray, length: int) -> np.ndarray:
    """The middle `length` samples of `[C, N]` audio, zero-padded at the end when shorter."""
    n = audio.shape[-1]
    if n <= length:
        return np.pad(audio, ((0, 0), (0, length - n)))
    start = (n - length) // 2
    return audio[:, start : start + length]


Roundtrip = Callable[[Tensor], Tensor]  # audio [B, C, N] -> reconstruction [B, C, >= N]

HOP_SPAN = 16  # hops each side averaged by `hop_periodic_db`: 33 hops, ~1.5 s at 21.5 Hz


def hop_periodic_db(audio: np.ndarray, hop: int, span: int = HOP_SPAN) -> float:
    """10 log10 of the share of `[C, N]` (or `[N]`) audio's energy that repeats every `hop` samples.

    The repeating part at each sample is the mean of the samples 1..`span` hops before and after it
    and itself (a comb filter with teeth on the harmonics of sample_rate / hop, ~1/(2 span + 1)
    of the spectrum wide); the share is its energy over the signal's. White noise gives
    10 log10(1 / 33) = -15.2 dB, a signal made of one repeated hop 0 dB. Written here: a moving
    average over a reshaped axis, no library names it.
    """
    from scipy.ndimage import uniform_filter1d

    a = np.atleast_2d(np.asarray(audio, np.float64))
    frames = a.shape[-1] // hop
    if frames < 2:
        raise ValueError(f"hop_periodic_db needs at least two hops of {hop} samples, got {a.shape[-1]} samples")
    x = a[:, : frames * hop].reshape(a.shape[0], frames, hop)
    periodic = uniform_filter1d(x, size=2 * span + 1, axis=1, mode="reflect")
    energy = float(np.sum(x**2))
    return 10.0 * np.log10(max(float(np.sum(periodic**2)), 1e-30) / max(energy, 1e-30))


def between_harmonic_tones(sample_rate: int, hop: int, multiples: Sequence[int] = (5, 10, 20, 40)) -> list[float]:
    """Frequencies (k + 1/2) x sample_rate / hop: half-way between the latent rate's harmonics
    (118, 226, 441 and 872 Hz at 44.1 kHz and hop 2,048), where a decoder that repeats every hop
    can put no energy."""
    return [(k + 0.5) * sample_rate / hop for k in multiples]


def comb_share(
    audio: np.ndarray, sample_rate: int, hop: int, low_hz: float = 30.0, high_hz: float = 2000.0, band_hz: float = 0.5
) -> float:
    """Share of `[C, N]` (or `[N]`) audio's `low_hz`-`high_hz` energy within `band_hz` of a multiple
    of the latent rate (sample_rate / hop, 21.53 Hz at 44.1 kHz and hop 2,048), on the whole
    signal's spectrum (resolution 1 / duration). The buzz of a decoder that repeats every hop puts
    its energy there; music does not (the corpus's mixes: 2-8 %, a flat spectrum ~4.6 %)."""
    a = np.atleast_2d(np.asarray(audio, np.float64))
    power = np.sum(np.abs(np.fft.rfft(a, axis=-1)) ** 2, axis=0)
    freqs = np.fft.rfftfreq(a.shape[-1], 1.0 / sample_rate)
    rate = sample_rate / hop
    band = (freqs >= low_hz) & (freqs <= high_hz)
    on = band & (np.abs(freqs - np.round(freqs / rate) * rate) <= band_hz)
    return float(power[on].sum() / max(power[band].sum(), 1e-30))


TONE_BAND_HZ = 3.0  # the band counted as "at the tone": the Hann main lobe of 2 s is +-1 Hz


def _sines_through(
    roundtrip: Roundtrip, tones: Sequence[float], sample_rate: int, n: int, channels: int, amplitude: float
) -> tuple[list[float], list[np.ndarray]]:
    """Each of `tones` as a steady `n`-sample sine through `roundtrip` -> per tone the share of the
    output's energy (middle 2 s, Hann window) within `TONE_BAND_HZ` of it, and that middle `[C, 2 s]`."""
    t = np.arange(n) / sample_rate
    mid = int(2.0 * sample_rate)
    start = (n - mid) // 2
    window = np.hanning(mid)
    freqs = np.fft.rfftfreq(mid, 1.0 / sample_rate)
    shares, middles = [], []
    for f in tones:
        x = np.repeat((amplitude * np.sin(2 * np.pi * f * t)).astype(np.float32)[None], channels, axis=0)
        with torch.no_grad():
            y = roundtrip(torch.from_numpy(x)[None])[0, :, :n].float().cpu().numpy()
        middle = y[:, start : start + mid]
        power = np.sum(np.abs(np.fft.rfft(middle * window, axis=-1)) ** 2, axis=0)
        shares.append(float(power[np.abs(freqs - f) <= TONE_BAND_HZ].sum() / max(power.sum(), 1e-30)))
        middles.append(middle)
    return shares, middles


def tone_fidelity(
    roundtrip: Roundtrip, sample_rate: int, hop: int, channels: int = 2, seconds: float = 4.0, amplitude: float = 0.25
) -> dict[str, Any]:
    """Each of `between_harmonic_tones` as a steady sine, through `roundtrip`; the share of the
    output's energy (middle 2 s, Hann window) within `TONE_BAND_HZ` of the tone, and the output's
    `hop_periodic_db` (the input's own: ~-30 dB, the tone flips sign every hop).

    -> {"tones_hz": [...], "share": [...], "mean": float, "hop_periodic_db": [...],
    "hop_periodic_db_mean": float}. The input itself scores ~1.0 and ~-30 dB."""
    n = max(4 * hop, int(seconds * sample_rate) // hop * hop)
    tones = between_harmonic_tones(sample_rate, hop)
    shares, middles = _sines_through(roundtrip, tones, sample_rate, n, channels, amplitude)
    periodic = [float(hop_periodic_db(m, hop)) for m in middles]
    return {
        "tones_hz": [round(f, 1) for f in tones],
        "share": shares,
        "mean": float(np.mean(shares)),
        "hop_periodic_db": periodic,
        "hop_periodic_db_mean": float(np.mean(periodic)),
    }


def sweep_tones(sample_rate: int, hop: int, count: int = 16) -> list[float]:
    """`count` frequencies log-spaced over 55-1,760 Hz, each moved to (k + u) x sample_rate / hop
    with u stepping from 0.25 to 0.75: off the latent rate's harmonics by at least a quarter of
    it (5.4 Hz at 21.5 Hz, beyond `TONE_BAND_HZ`), so a decoder that repeats every hop keeps none,
    and at every offset from them, not only half-way (`between_harmonic_tones`)."""
    rate = sample_rate / hop
    offsets = np.linspace(0.25, 0.75, count)
    return [float((np.floor(f / rate) + u) * rate) for f, u in zip(np.geomspace(55.0, 1760.0, count), offsets)]


def tone_sweep(
    roundtrip: Roundtrip, sample_rate: int, hop: int, channels: int = 2, seconds: float = 4.0, amplitude: float = 0.25
) -> dict[str, Any]:
    """`sweep_tones` as steady sines through `roundtrip`, scored as `tone_fidelity` scores its four,
    which pass or fail whole. Sixteen spread the same question wider; between decoder checkpoints
    2,000 steps apart both still swung (four tones 0.17-0.75, sixteen 0.44-0.87: the decoder's
    pitch wobbles by a few hertz; lab/runs/stftcodec/README.md, session 22).

    -> {"tones_hz": [...], "share": [...], "mean": float}."""
    n = max(4 * hop, int(seconds * sample_rate) // hop * hop)
    tones = sweep_tones(sample_rate, hop)
    shares, _ = _sines_through(roundtrip, tones, sample_rate, n, channels, amplitude)
    return {"tones_hz": [round(f, 1) for f in tones], "share": shares, "mean": float(np.mean(shares))}


def evaluate_reconstruction(
    roundtrip: Roundtrip, clips: Sequence[tuple[str, np.ndarray]], sample_rate: int, hop: int | None = None
) -> dict[str, Any]:
    """Encode-decode each `(name, [C, N])` clip and average the Table-5 metrics over clips.

    -> {"items": [{"id", "stft", "mel", "sisdr"}...], "stft", "mel", "sisdr", "n", "silent_items"}.
    Silent clips are left out (listed in "silent_items"); the means are None when nothing is left.
    With the latent `hop`, items and means also get "hop_periodic_db" of the reconstruction and
    "reference_hop_periodic_db" of the clip.
    """
    scorer = ReconstructionScorer()
    rows: list[dict[str, Any]] = []
    silent: list[str] = []
    for name, clip in clips:
        if float(np.sqrt(np.mean(clip.astype(np.float64) ** 2))) < SILENCE_RMS:
            silent.append(name)
            continue
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(clip, dtype=np.float32))[None]  # [1, C, N]
            y = roundtrip(x)[..., : x.shape[-1]]
        estimate = y[0].float().cpu().numpy()
        m = reconstruction_metrics(clip, estimate, sample_rate, scorer)
        rows.append({"id": name, **m.as_dict()})
        if hop is not None:
            rows[-1].update(
                hop_periodic_db=hop_periodic_db(estimate, hop), reference_hop_periodic_db=hop_periodic_db(clip, hop)
            )
    out: dict[str, Any] = {"items": rows, "n": len(rows), "silent_items": silent}
    keys = ("stft", "mel", "sisdr") + (("hop_periodic_db", "reference_hop_periodic_db") if hop is not None else ())
    for key in keys:
        out[key] = float(np.mean([r[key] for r in rows])) if rows else None
    return out
