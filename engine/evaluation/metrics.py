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
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..audio_io import conform
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
        return ReconstructionMetrics(float(self.stft(est, ref)), float(self.mel(est, ref)),
                                     -float(self.sisdr(est, ref)))


def reconstruction_metrics(reference: np.ndarray, estimate: np.ndarray, sample_rate: int,
                           scorer: ReconstructionScorer | None = None) -> ReconstructionMetrics:
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
    return audio[:, start:start + length]


Roundtrip = Callable[[Tensor], Tensor]  # audio [B, C, N] -> reconstruction [B, C, >= N]


def evaluate_reconstruction(roundtrip: Roundtrip, clips: Sequence[tuple[str, np.ndarray]],
                            sample_rate: int) -> dict[str, Any]:
    """Encode-decode each `(name, [C, N])` clip and average the Table-5 metrics over clips.

    -> {"items": [{"id", "stft", "mel", "sisdr"}...], "stft", "mel", "sisdr", "n", "silent_items"}.
    Silent clips are left out (listed in "silent_items"); the means are None when nothing is left.
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
        m = reconstruction_metrics(clip, y[0].float().cpu().numpy(), sample_rate, scorer)
        rows.append({"id": name, **m.as_dict()})
    out: dict[str, Any] = {"items": rows, "n": len(rows), "silent_items": silent}
    for key in ("stft", "mel", "sisdr"):
        out[key] = float(np.mean([r[key] for r in rows])) if rows else None
    return out
