"""Music theory the composer needs: modes, keys, diatonic chords, voice-led voicings, swing.

Time is counted in beats (quarter notes) from the start of a section or song; a bar is 4 beats
and a step is a 16th note (0.25 beat). MIDI pitch 60 is middle C.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.keys import (
    MODE_STEPS,
    PITCH_NAMES as PITCH_NAMES,  # the composer's charts name keys so
)

# The diatonic modes the composer writes in, in this order (songs draw from it: the order is part of
# the corpus seed), with their intervals (engine/keys.py). Chords are stacked thirds inside the
# mode, so a progression written as scale degrees sounds right in every mode it is allowed in.
MODES: dict[str, tuple[int, ...]] = {
    m: MODE_STEPS[m] for m in ("major", "minor", "dorian", "mixolydian", "phrygian", "lydian")
}

STEPS_PER_BAR = 16
BEATS_PER_BAR = 4


@dataclass(frozen=True)
class Scale:
    """A key: tonic pitch class (0 = C) and mode name."""

    tonic: int
    mode: str

    @property
    def intervals(self) -> tuple[int, ...]:
        return MODES[self.mode]

    @property
    def name(self) -> str:
        return f"{PITCH_NAMES[self.tonic % 12]} {self.mode}"

    def pitch_classes(self) -> set[int]:
        return {(self.tonic + i) % 12 for i in self.intervals}

    def degree_pitch(self, degree: int, octave_base: int = 48) -> int:
        """MIDI pitch of a (possibly negative or > 6) scale degree above ``octave_base``'s C."""
        octave, idx = divmod(degree, 7)
        return octave_base + self.tonic + 12 * octave + self.intervals[idx]

    def step(self, pitch: int, steps: int) -> int:
        """Move ``steps`` scale steps from ``pitch`` (snapped to the scale first)."""
        pitch = self.snap(pitch)
        pcs = sorted(self.pitch_classes())
        direction = 1 if steps > 0 else -1
        for _ in range(abs(steps)):
            pitch += direction
            while pitch % 12 not in pcs:
                pitch += direction
        return pitch

    def snap(self, pitch: int) -> int:
        """Nearest scale tone, preferring the one below on a tie (keeps melodies from creeping up)."""
        pcs = self.pitch_classes()
        for delta in (0, -1, 1, -2, 2):
            if (pitch + delta) % 12 in pcs:
                return pitch + delta
        return pitch


@dataclass(frozen=True)
class Chord:
    """A diatonic chord: root pitch class and its pitch classes, root first."""

    root: int
    pcs: tuple[int, ...]
    degree: int

    def contains(self, pitch: int) -> bool:
        return pitch % 12 in self.pcs


def diatonic_chord(scale: Scale, degree: int, size: int = 3) -> Chord:
    """Stack ``size`` thirds on ``degree`` (3 = triad, 4 = seventh, 5 = ninth)."""
    pcs = tuple((scale.tonic + scale.intervals[(degree + 2 * k) % 7]) % 12 for k in range(size))
    return Chord(root=pcs[0], pcs=pcs, degree=degree % 7)


def voice_chord(chord: Chord, previous: Sequence[int] | None, low: int, high: int, rootless: bool = False) -> list[int]:
    """Close voicing of ``chord`` inside ``[low, high]`` that moves least from ``previous``.

    Voice leading is what makes block chords sound like a player rather than a sequencer:
    each candidate inversion is scored by the total distance its notes travel.
    """
    pcs = list(chord.pcs[1:] if rootless and len(chord.pcs) > 3 else chord.pcs)
    candidates: list[list[int]] = []
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        for base in range(low, low + 12):
            if base % 12 != order[0]:
                continue
            notes = [base]
            for pc in order[1:]:
                nxt = notes[-1] + 1
                while nxt % 12 != pc:
                    nxt += 1
                notes.append(nxt)
            if notes[-1] <= high:
                candidates.append(notes)
    if not candidates:  # range narrower than the chord: fall back to a stacked voicing from low
        return sorted(low + (pc - low) % 12 for pc in pcs)
    if not previous:
        centre = (low + high) / 2
        return min(candidates, key=lambda n: abs(sum(n) / len(n) - centre))
    prev_sorted = sorted(previous)

    def cost(notes: list[int]) -> float:
        # Compare voice by voice on the sorted lists; unequal sizes compare against the nearest.
        return sum(min(abs(n - p) for p in prev_sorted) for n in notes)

    return min(candidates, key=cost)


def power_chord(root_pc: int, low: int) -> list[int]:
    """Root, fifth and octave: the rock guitar voicing, which stays clean under distortion."""
    root = low + (root_pc - low) % 12
    return [root, root + 7, root + 12]


def nearest_pitch(pc: int, target: int) -> int:
    """The pitch of class ``pc`` closest to ``target``."""
    base = target - ((target - pc) % 12)
    return base if target - base <= 6 else base + 12


def fit_range(pitch: int, low: int, high: int) -> int:
    while pitch < low:
        pitch += 12
    while pitch > high:
        pitch -= 12
    return pitch


def swing_beat(beat: float, amount: float, unit: float) -> float:
    """Delay every second ``unit`` (0.5 = 8ths, 0.25 = 16ths) by ``amount`` of a unit.

    amount 0 is straight, 1/3 is a triplet feel. Applied to every part of a song alike, so the
    drums, bass and comping swing together.
    """
    if amount <= 0:
        return beat
    pair = 2 * unit
    position = beat % pair
    if abs(position - unit) < 1e-6:
        return beat + amount * unit
    return beat
