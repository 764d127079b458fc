"""Training side of the STFT codec (issue 19; the modules are `engine/stft_codec.py`): the heads'
direct targets from the input's own STFT, and growing a trained codec's input."""

from __future__ import annotations

import math

import torch

from engine.stft_codec import MAX_LOG_MAG, STFTCodec, lock_phase, phase_vocoder_phase, synthesize
from engine.stft_codec_config import STFTCodecConfig

__all__ = [
    "MAX_LOG_MAG",
    "STFTCodec",
    "STFTCodecConfig",
    "analysis_loss",
    "grow_codec",
    "lock_phase",
    "phase_vocoder_phase",
    "synthesize",
]


def grow_codec(model: STFTCodec, state: dict[str, torch.Tensor]) -> None:
    """Load into `model` the `state` of a codec without (or with fewer) frequency features, or
    without the head's hidden layer: the new input columns and the hidden branch's output start at
    zero, so the grown codec computes what the old one did."""
    c = model.config
    w = state["enc_in.weight"]
    per_channel = w.shape[1] // c.channels
    if per_channel != c.enc_fft // 2 + 1 + c.if_bins:
        grown = torch.zeros_like(model.enc_in.weight)
        view, old = grown.view(grown.shape[0], c.channels, -1), w.view(w.shape[0], c.channels, per_channel)
        view[:, :, :per_channel] = old
        state = {**state, "enc_in.weight": grown}
    own = model.state_dict()
    state = {**{k: v for k, v in own.items() if k.startswith("dec_mlp_")}, **state}
    model.load_state_dict(state)


def analysis_loss(
    log_mag: torch.Tensor,
    dev: torch.Tensor,
    audio: torch.Tensor,
    hop: int,
    n_fft: int,
    floor: float = -7.0,
    compressed: float = 1.0,
    convergence: float = 0.0,
    if_lags: tuple[int, ...] = (1,),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Direct targets for the heads from the input's own STFT (the synthesis STFT, so these are
    exactly what reproduces it): L1 on log-magnitudes (floored at `floor`), `compressed` x L1 on
    |X|^0.3, `convergence` x spectral convergence, and a wrapped
    instantaneous-frequency loss 1 - cos(predicted phase advance - measured advance), weighted by
    the root magnitude, averaged over `if_lags` (the advance over that many hops; see below). The
    multi-resolution STFT losses alone moved the deviation head so slowly that a sine kept none of
    its energy at its frequency after 300 steps.

    `log_mag`, `dev`: `[B * C, K, T]` from `STFTCodec.heads`; `audio` `[B, C, N]`, N = (T - 1) hop."""
    window = torch.hann_window(n_fft, device=audio.device, dtype=audio.dtype)
    spec = torch.stft(audio.reshape(-1, audio.shape[-1]), n_fft, hop, window=window, return_complex=True)
    edge = n_fft // (2 * hop)  # frames whose window reaches into the crop's reflect padding: no target
    spec, log_mag, dev = spec[..., edge:-edge], log_mag[..., edge:-edge], dev[..., edge:-edge]
    mag = spec.abs()
    # L1 on log magnitude (floored) plus L1 on compressed magnitude |X|^0.3, which weighs the loud
    # bins: averaged over 1,025 bins the log term alone let the decoder learn "quiet everywhere"
    # and miss a sine's own bins by 9 nats after 270 steps.
    target = torch.log(mag + 1e-5).clamp(min=floor)
    l_mag = (log_mag.clamp(min=floor) - target).abs().mean()
    l_mag = l_mag + compressed * (torch.exp(0.3 * log_mag) - (mag + 1e-5).pow(0.3)).abs().mean()
    if convergence:
        # Spectral convergence ||Y| - |X||_F / ||X||_F per item: weighs bins by their level. Both
        # terms above average over 1,025 bins, so a partial's 3 bins count for ~0.3 % of them: a
        # stage-1 codec placed loud steady sines right but 2.5-3.7 nats (20-30 dB) too quiet.
        err = (torch.exp(log_mag) - mag).flatten(1).norm(dim=1)
        l_mag = l_mag + convergence * (err / mag.flatten(1).norm(dim=1).clamp(min=1e-3)).mean()
    # The vocoder's phase is the running sum of the deviations, so a partial's pitch is their mean
    # over many hops. One hop's advance reads an error of d bins as (pi / 2) d rad (hop = n_fft / 4):
    # 1 - cos of that is ~0.003 at the 1 Hz a held note must be within, so session 21's codec left
    # partials 2-18 Hz off. The advance over m hops reads the same error m times as large.
    k = torch.arange(spec.shape[1], device=audio.device, dtype=audio.dtype)[:, None]
    drift = torch.cumsum(dev, dim=-1) if max(if_lags) > 1 else dev
    l_if = torch.zeros((), device=audio.device, dtype=audio.dtype)
    for m in if_lags:
        advance = torch.angle(spec[..., m:] * spec[..., :-m].conj())  # measured advance over m hops, wrapped
        moved = dev[..., 1:] if m == 1 else drift[..., m:] - drift[..., :-m]  # lag 1: as before, to the bit
        predicted = 2 * math.pi * hop * (m * k + moved) / n_fft
        weight = (mag[..., m:] * mag[..., :-m]).pow(0.25)  # root magnitude of both frames
        l_if = l_if + ((1 - torch.cos(predicted - advance)) * weight).sum() / weight.sum().clamp(min=1e-8)
    return l_mag, l_if / len(if_lags)
