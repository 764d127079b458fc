"""Motif-based melodies: a one-bar idea, restated over the changing chords, varied, cadenced.

A melody that is a fresh random walk every bar sounds like noise; one built from a repeated
motif sounds written. So the motif (rhythm + scale-step contour) is drawn once per section type
and each bar re-aims it at the chord of the moment: A A A' B in every four bars.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .parts import Feel, Note, Span, chord_at
from .theory import BEATS_PER_BAR, Scale, nearest_pitch


@dataclass(frozen=True)
class Motif:
    """One bar of melody: onset steps, lengths in steps, and scale-step moves between notes."""

    steps: tuple[int, ...]
    lengths: tuple[int, ...]
    moves: tuple[int, ...]


MOVES = (-3, -2, -1, -1, 0, 1, 1, 2, 2, 3, 4)


def make_motif(rng: random.Random, density: float, sixteenths: bool = False) -> Motif:
    """Draw a motif: onsets on an 8th grid (16ths too when the genre is busy), at least three."""
    slots = range(0, 16, 1 if sixteenths else 2)
    chance = density / (2 if sixteenths else 1)
    steps = [s for s in slots if s == 0 or rng.random() < chance]
    while len(steps) < 3:
        extra = rng.choice([s for s in slots if s not in steps])
        steps = sorted(steps + [extra])
    lengths = [nxt - cur for cur, nxt in zip(steps, steps[1:])] + [min(4, 16 - steps[-1])]
    if rng.random() < 0.4:  # detached phrasing: leave air between notes
        lengths = [max(1, n // 2) for n in lengths]
    moves = [0] + [rng.choice(MOVES) for _ in steps[1:]]
    return Motif(tuple(steps), tuple(lengths), tuple(moves))


def vary(motif: Motif, rng: random.Random) -> Motif:
    """A relative of ``motif``: same rhythm, the second half of its contour redrawn or inverted."""
    half = len(motif.moves) // 2
    tail = motif.moves[half:]
    new_tail = tuple(-m for m in tail) if rng.random() < 0.5 else tuple(rng.choice(MOVES) for _ in tail)
    return Motif(motif.steps, motif.lengths, motif.moves[:half] + new_tail)


def cadence(motif: Motif) -> Motif:
    """The phrase ending: the motif's first half, then one long note that resolves."""
    keep = max(1, len(motif.steps) // 2)
    steps = motif.steps[:keep]
    last = steps[-1]
    lengths = motif.lengths[: keep - 1] + (16 - last,)
    return Motif(steps, lengths, motif.moves[:keep])


def melody_part(
    motif: Motif,
    spans: list[Span],
    bars: int,
    scale: Scale,
    feel: Feel,
    low: int,
    high: int,
    *,
    variation: random.Random | None = None,
    velocity: int = 92,
) -> list[Note]:
    """Lay ``motif`` over ``bars`` bars as A A A' B phrases.

    ``variation`` (None for the first statement) redraws the A' and B bars, so a second verse
    is recognisably the same tune without being a copy-paste.
    """
    alt = vary(motif, variation if variation is not None else random.Random(hash_motif(motif)))
    ending = cadence(alt if variation is not None else motif)
    notes: list[Note] = []
    anchor = (low + high) // 2
    for bar in range(bars):
        role = bar % 4
        last_bar = bar == bars - 1
        shape = ending if role == 3 or last_bar else (alt if role == 2 else motif)
        pitch = anchor
        for i, (step, length, move) in enumerate(zip(shape.steps, shape.lengths, shape.moves)):
            beat = bar * BEATS_PER_BAR + step / 4
            chord = chord_at(spans, beat)
            if i == 0:
                # Re-aim the motif at the chord: start on the chord tone nearest the last anchor.
                pitch = min((nearest_pitch(pc, anchor) for pc in chord.pcs), key=lambda p: abs(p - anchor))
            else:
                pitch = scale.step(pitch, move) if move else pitch
                if step % 4 == 0 and not chord.contains(pitch):  # strong beats land on chord tones
                    pitch = min((nearest_pitch(pc, pitch) for pc in chord.pcs), key=lambda p: abs(p - pitch))
            if pitch > high or pitch < low:  # fold back into range rather than clipping the line
                pitch += -12 if pitch > high else 12
            if (role == 3 or last_bar) and i == len(shape.steps) - 1:
                pitch = nearest_pitch(chord.root if last_bar else chord.pcs[rng_index(bar, len(chord.pcs))], pitch)
            start = bar * BEATS_PER_BAR + feel.place(step)
            end = bar * BEATS_PER_BAR + feel.place(step + length)
            accent = 8 if step % 4 == 0 else 0
            notes.append(Note(start, max(0.08, (end - start) * 0.9), pitch, min(127, velocity - 6 + accent)))
        anchor = pitch if low + 3 <= pitch <= high - 3 else (low + high) // 2
    return notes


def hash_motif(motif: Motif) -> str:
    """A stable seed for the motif's own A' variation (``hash()`` of a tuple is stable, but a
    string keeps it obviously independent of PYTHONHASHSEED)."""
    return ",".join(map(str, motif.steps + motif.moves))


def rng_index(bar: int, n: int) -> int:
    """Which chord tone a mid-section cadence lands on; varies by bar, fixed by position."""
    return (bar // 4) % n
