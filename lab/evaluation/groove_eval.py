"""Scoring audio-to-audio on the held-out beatbox set (`beatbox_set.py`): hits, tempo, kits.

- onset F1: the output's onsets (librosa's detector, `music.detect_onsets`, independent of the
  engine's own onset weighting only in its peak picking: the engine never sees the score) against
  the take's known onsets, mir_eval, +-50 ms;
- tempo: `engine.beats.hear` on the output, hinted at the take's BPM as the tempo check hints at
  the asked one; relative error against the take's BPM;
- mel distance from the input (auraloss `MelSTFTLoss`, the autoencoder table's), against a floor:
  the same distance for the input through the autoencoder alone (what strength 0 returns). What
  "the input returned" sounds like in this system is that strength-0 render, so an output is
  counted apart from it when its mel distance from that render exceeds the autoencoder's own loss
  on the take (the floor): nearer than that, the autoencoder could not tell the two apart. The
  distance from the input itself is reported beside it; with a lossy autoencoder (floor ~2.4 on
  these takes) an output can sit nearer the input than the round trip does and still be far from
  the round trip (2.9-4.2 on every take in session 12);
- kit distance: between long-term mel spectra (dB, 64 bands, mean absolute difference) of the
  same take restyled with different kit prompts, against the distance between two seeds of one
  prompt (what chance alone moves).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from engine.beats import hear

from . import music
from .beatbox import BeatboxClip

KIT_PROMPTS = ("808 drums", "acoustic jazz kit", "techno drums")
_MEL: Any = None


def score_take(clip: BeatboxClip, audio: np.ndarray, sample_rate: int) -> dict[str, float]:
    """Onset F1 / precision / recall, tempo and mel distance of one output against its take."""
    n = min(audio.shape[-1], clip.audio.shape[-1])
    est = music.detect_onsets(audio[:, :n], sample_rate)
    score = music.onset_f_measure(clip.onsets, est)
    # How late the output's hits sound: median offset of the nearest output onset within 100 ms.
    near = [est[np.argmin(np.abs(est - t))] - t for t in clip.onsets] if len(est) else []
    lags = [d for d in near if abs(d) <= 0.1]
    beats = hear(audio[:, :n], sample_rate, bpm_hint=clip.bpm)
    err = abs(beats.bpm / clip.bpm - 1.0) if beats is not None else float("nan")
    return {
        "f1": score.f_measure,
        "f1_superflux": music.onset_f_measure(clip.onsets, superflux_onsets(audio[:, :n], sample_rate)).f_measure,
        "precision": score.precision,
        "recall": score.recall,
        "bpm_out": beats.bpm if beats is not None else float("nan"),
        "tempo_error": err,
        "mel_from_input": mel_distance(clip.audio[:, :n], audio[:, :n], sample_rate),
        "lag_s": float(np.median(lags)) if lags else float("nan"),
    }


def superflux_onsets(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """A second onset detector: SuperFlux (Böck & Widmer 2013; spectral flux with a maximum filter
    over frequency and a lag of 2 frames, which ignores vibrato), as librosa's documentation builds
    it (96 log-mel bands from 27.5 Hz, 10 ms hop)."""
    import librosa

    rate, hop = 22050, 220
    y = music.to_mono(audio, sample_rate)
    if not np.any(y):
        return np.zeros(0)
    mel = librosa.feature.melspectrogram(y=y, sr=rate, n_fft=2048, hop_length=hop, fmin=27.5, fmax=rate / 2, n_mels=96)
    odf = librosa.onset.onset_strength(
        S=librosa.power_to_db(mel, ref=np.max), sr=rate, hop_length=hop, lag=2, max_size=3
    )
    return np.asarray(librosa.onset.onset_detect(onset_envelope=odf, sr=rate, hop_length=hop, units="time"))


def mel_distance(reference: np.ndarray, estimate: np.ndarray, sample_rate: int) -> float:
    """auraloss's `MelSTFTLoss` (FFT 1024, hop 256, 128 bands) between two `[C, N]` signals."""
    from .metrics import reconstruction_metrics

    return reconstruction_metrics(reference, estimate, sample_rate).mel


def long_term_spectrum(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mean mel power spectrum in dB (64 bands to 16 kHz), normalized to 0 dB total power."""
    import librosa

    y = np.asarray(audio, np.float32).mean(axis=0)
    mel = librosa.feature.melspectrogram(y=y, sr=sample_rate, n_fft=2048, hop_length=512, n_mels=64, fmax=16000)
    spec = mel.mean(axis=1)
    spec = spec / max(float(spec.sum()), 1e-12)
    return np.asarray(10 * np.log10(spec + 1e-10))


def spectrum_distance(a: np.ndarray, b: np.ndarray, sample_rate: int) -> float:
    """Mean absolute difference (dB) of two signals' long-term mel spectra."""
    return float(np.mean(np.abs(long_term_spectrum(a, sample_rate) - long_term_spectrum(b, sample_rate))))


def kit_distances(
    gen: Any,
    takes: list[Any],
    paths: list[Path],
    strength: float,
    sample_rate: int,
    seed: int = 0,
    steps: int | None = None,
) -> dict[str, Any]:
    """Each take restyled with every `KIT_PROMPTS` prompt (and the first one again, another seed):
    spectrum distances between kits, from the input, and between the two seeds (the noise floor)."""
    import engine

    rows = []
    for t, p in zip(takes, paths, strict=True):
        outs = {}
        for k, prompt in enumerate((*KIT_PROMPTS, KIT_PROMPTS[0])):
            s = seed + (1 if k == len(KIT_PROMPTS) else 0)
            req = engine.RenderRequest(
                prompt, seconds=t.clip.seconds, seed=s, steps=steps, init_audio=str(p), init_strength=strength
            )
            [res] = gen.render(req)
            outs[f"{prompt}#{s}"] = res.audio
        kits = [outs[f"{q}#{seed}"] for q in KIT_PROMPTS]
        pairs = [
            spectrum_distance(kits[i], kits[j], sample_rate) for i in range(len(kits)) for j in range(i + 1, len(kits))
        ]
        rows.append(
            {
                "take": t.name,
                "between_kits": float(np.mean(pairs)),
                "min_between_kits": float(np.min(pairs)),
                "same_prompt_other_seed": spectrum_distance(
                    outs[f"{KIT_PROMPTS[0]}#{seed}"], outs[f"{KIT_PROMPTS[0]}#{seed + 1}"], sample_rate
                ),
                "from_input": float(np.mean([spectrum_distance(t.clip.audio, k, sample_rate) for k in kits])),
            }
        )
    keys = ("between_kits", "min_between_kits", "same_prompt_other_seed", "from_input")
    return {"items": rows, "summary": {k: round(float(np.mean([r[k] for r in rows])), 3) for k in keys}}


def held_out_set(
    gen: Any,
    out_dir: Path,
    takes: int,
    seconds: float,
    strength: float,
    kits: int,
    steps: int | None = None,
    prompt: str = "drums",
) -> dict[str, Any]:
    """The held-out beatbox set restyled with `prompt` (no BPM) at `strength`: mean onset F1,
    tempo errors, mel distance from the input and its floor, kit distances. Takes and renders are
    written under `out_dir`."""
    import engine

    from . import beatbox_set

    sr = gen.model.config.sample_rate
    out_dir.mkdir(parents=True, exist_ok=True)
    clips = beatbox_set.make_set(takes, seconds=seconds, sample_rate=sr, channels=gen.model.config.audio_channels)
    paths, rows = [], []
    for i, t in enumerate(clips):
        path = engine.write_audio_atomic(out_dir / f"{t.name}.wav", t.clip.audio, sr, "pcm16")
        paths.append(path)
        req = engine.RenderRequest(
            prompt, seconds=seconds, seed=i, steps=steps, init_audio=str(path), init_strength=strength
        )
        [res] = gen.render(req)
        engine.write_audio_atomic(out_dir / f"{t.name}_out.wav", res.audio, sr, "pcm16")
        # The floor: the take through the autoencoder alone (strength 0 returns exactly that).
        [same] = gen.render(replace_strength(req, 0.0))
        rows.append(
            {
                "take": t.name,
                "bpm": t.clip.bpm,
                "swing": t.swing,
                **score_take(t.clip, res.audio, sr),
                "mel_floor": mel_distance(t.clip.audio, same.audio, sr),
                "mel_from_return": mel_distance(same.audio, res.audio, sr),
                "source_tempo": res.recipe.get("source_tempo"),
            }
        )
    err = np.asarray([r["tempo_error"] for r in rows], dtype=float)
    out: dict[str, Any] = {
        "prompt": prompt,
        "strength": strength,
        "takes": len(rows),
        "seconds": seconds,
        "mean_f1": float(np.mean([r["f1"] for r in rows])),
        "mean_f1_superflux": float(np.mean([r["f1_superflux"] for r in rows])),
        "mean_f1_straight": _mean_where(rows, lambda r: r["swing"] == 0.5),
        "mean_f1_swung": _mean_where(rows, lambda r: r["swing"] != 0.5),
        "median_tempo_error": float(np.nanmedian(err)) if np.any(np.isfinite(err)) else None,
        "within_1pct": int(np.sum(err <= 0.01)),
        "mean_mel_from_input": float(np.mean([r["mel_from_input"] for r in rows])),
        "mean_mel_floor": float(np.mean([r["mel_floor"] for r in rows])),
        "above_floor": sum(r["mel_from_input"] > r["mel_floor"] for r in rows),
        "apart_from_return": sum(r["mel_from_return"] > r["mel_floor"] for r in rows),
        "items": rows,
    }
    if kits:
        out["kits"] = kit_distances(gen, clips[:kits], paths[:kits], strength, sr, steps=steps)
    return out


def replace_strength(req: Any, strength: float) -> Any:
    from dataclasses import replace

    return replace(req, init_strength=strength)


def _mean_where(rows: list[dict[str, Any]], keep: Any) -> float | None:
    vals = [r["f1"] for r in rows if keep(r)]
    return float(np.mean(vals)) if vals else None
