"""Pitch through the autoencoder, on instruments: single held General MIDI notes (piano, strings,
bass, lead; 55-1,760 Hz) rendered with FluidSynth, encoded and decoded, and the share of their
energy that stays on the note's harmonics.

A sine (`metrics.tone_fidelity`) is the hardest case for a decoder that repeats every hop; a
note from a sampled instrument is what a producer hears. Its own spectrum is not a pure comb of
harmonics (vibrato, chorus, slightly stretched piano partials), so each note is scored against
itself: the share of the output's energy on the input's first harmonics (`partial_mask`),
divided by the input's own share there, 1.0 for a perfect round trip.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.midi import Track, midi_file
from ..data.parts import Note
from ..data.render import Synth, find_synth, synthesize

Roundtrip = Callable[[torch.Tensor], torch.Tensor]

# (name, GM program, MIDI notes), each instrument in its range, 55-1,760 Hz. The notes are chosen
# so that f0, 2 f0 and 3 f0 sit >= 2.3 Hz (most >= 4 Hz) from every multiple of the latent rate
# (44,100 / 2,048 = 21.53 Hz): a note on one of those teeth would pass through a decoder that
# only buzzes (A5 = 880 Hz is 2.9 Hz from the 41st), which is what this measure is for.
NOTE_PROBES: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("bass", 33, (33, 37, 47)),  # electric bass (finger): 55, 69, 123 Hz
    ("piano", 0, (47, 65, 91)),  # acoustic grand: 123, 349, 1,568 Hz (its A6 sample sits on a tooth)
    ("strings", 50, (57, 65, 84)),  # synth strings 1: 220, 349, 1,047 Hz (ensemble 1's vibrato leaves
    # too little on any harmonic for a ratio to mean much)
    ("lead", 80, (65, 84, 93)),  # lead 1 (square): 349, 1,047, 1,760 Hz
)
# The same four programs at 8 other pitches each (55-1,760 Hz): a wider probe to choose decoder
# checkpoints on. The 12 notes above pass or fail a few at a time, and which ones moves between
# neighbouring checkpoints by more than the runs differ (lab/runs/stftcodec/README.md, session 22).
WIDE_NOTE_PROBES: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("bass", 33, (34, 38, 41, 44, 50, 53, 56, 59)),
    ("piano", 0, (45, 52, 58, 62, 70, 76, 82, 88)),
    ("strings", 50, (52, 55, 60, 63, 68, 72, 77, 80)),
    ("lead", 80, (53, 58, 62, 69, 74, 79, 86, 90)),
)
HARMONIC_BAND_HZ = 1.5  # +-: the Hann main lobe of 2 s is +-1 Hz
TOP_HZ = 8000.0  # harmonics counted up to here
HARMONICS = 8


def midi_hz(note: int) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


def render_note(program: int, note: int, seconds: float, sample_rate: int, folder: Path, synth: Synth) -> np.ndarray:
    """One held note (velocity 100) of a GM program through FluidSynth -> `[2, N]` float32."""
    import soundfile as sf

    beats = seconds * 2.0  # 120 BPM: two beats a second
    track = Track("melody", program, f"program {program}", (Note(0.0, beats, note, 100),))
    mid = midi_file([track], tempo=500_000, end_beat=beats + 1.0, title=f"p{program}n{note}")
    path = folder / f"p{program}n{note}.mid"
    mid.save(str(path))
    wav = folder / f"p{program}n{note}.wav"
    synthesize(path, wav, synth, sample_rate, gain=0.5, timeout=60.0)
    audio, _ = sf.read(str(wav), dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T[:, : int(seconds * sample_rate)])


def _spectrum(audio: np.ndarray, sample_rate: int, start: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    seg = audio[:, start : start + length] * np.hanning(length)
    return np.fft.rfftfreq(length, 1.0 / sample_rate), np.sum(np.abs(np.fft.rfft(seg, axis=-1)) ** 2, axis=0)


def partial_mask(freqs: np.ndarray, power: np.ndarray, f0: float) -> np.ndarray:
    """Bins within `HARMONIC_BAND_HZ` of k x f1, k = 1 .. `HARMONICS` (and below `TOP_HZ`), where
    f1 is the input's own fundamental: its strongest bin within 3 % of the nominal `f0` (a sample
    tuned a little off still counts as itself). Low harmonics only: a piano's upper partials
    stretch away from k x f1."""
    near = np.abs(freqs / f0 - 1.0) <= 0.03
    f1 = float(freqs[near][np.argmax(power[near])])
    mask = np.zeros(freqs.shape, bool)
    for k in range(1, HARMONICS + 1):
        if k * f1 <= TOP_HZ:
            mask |= np.abs(freqs - k * f1) <= HARMONIC_BAND_HZ
    return mask


def note_fidelity(
    roundtrip: Roundtrip,
    sample_rate: int,
    hop: int,
    seconds: float = 4.0,
    probes: tuple[tuple[str, int, tuple[int, ...]], ...] = NOTE_PROBES,
) -> dict[str, Any]:
    """Each of `probes` (`NOTE_PROBES`, or `WIDE_NOTE_PROBES`) through `roundtrip`; per note the
    share of the output's energy on the input's partials over the input's own share (capped at 1),
    on the 2 s after the first 0.5 s (the attack left out).

    -> {"notes": [{"instrument", "hz", "input", "output", "fidelity"}...], "mean", "by_instrument"}.
    Raises `SynthMissingError` (an `EngineError`) where FluidSynth or a GM soundfont is missing."""
    n = max(4 * hop, int(seconds * sample_rate) // hop * hop)
    start, length = int(0.5 * sample_rate), int(2.0 * sample_rate)
    rows = []
    synth = find_synth()  # once: it looks FluidSynth and the soundfont up on disk
    with tempfile.TemporaryDirectory(prefix="longplay-notes-") as tmp:
        for name, program, notes in probes:
            for note in notes:
                x = render_note(program, note, n / sample_rate, sample_rate, Path(tmp), synth)
                x = np.pad(x, ((0, 0), (0, max(0, n - x.shape[1]))))[:, :n]
                with torch.no_grad():
                    y = roundtrip(torch.from_numpy(x)[None])[0, :, :n].float().cpu().numpy()
                f0 = midi_hz(note)
                freqs, p_in = _spectrum(x, sample_rate, start, length)
                _, p_out = _spectrum(y, sample_rate, start, length)
                mask = partial_mask(freqs, p_in, f0)
                inp = float(p_in[mask].sum() / max(p_in.sum(), 1e-30))
                out = float(p_out[mask].sum() / max(p_out.sum(), 1e-30))
                rows.append(
                    {
                        "instrument": name,
                        "hz": round(f0, 1),
                        "input": inp,
                        "output": out,
                        "fidelity": min(1.0, out / max(inp, 1e-9)),
                    }
                )
    by = {name: float(np.mean([r["fidelity"] for r in rows if r["instrument"] == name])) for name, _, _ in probes}
    return {"notes": rows, "mean": float(np.mean([r["fidelity"] for r in rows])), "by_instrument": by}
