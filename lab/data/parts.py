"""Section parts: drums, bass, chords and the extra layer, read from the genre's step patterns.

Every function returns notes relative to the start of its section, so the composer can place
the same part at every occurrence of that section: that is what makes choruses repeat.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from .genres import CHH, CHORUS_ONLY, CLAP, CRASH, KICK, OHH, SIDE, SNARE, TOM_H, TOM_L, TOM_M, Groove
from .theory import BEATS_PER_BAR, Chord, Scale, diatonic_chord, nearest_pitch, power_chord, swing_beat, voice_chord

VELOCITY = {"X": 118, "x": 100, "o": 78, "g": 46}


@dataclass(frozen=True)
class Note:
    """One note: start and length in beats, MIDI pitch, velocity 1-127."""

    start: float
    length: float
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Span:
    """A chord held from ``start`` for ``length`` beats."""

    start: float
    length: float
    chord: Chord


@dataclass(frozen=True)
class Feel:
    """How a song's notes sit in time: swing and how loose the imaginary player is."""

    swing: float
    unit: float
    looseness: float  # 0 for machines; > 0 nudges timing and velocity like a player would

    def place(self, step: float) -> float:
        return swing_beat(step / 4, self.swing, self.unit)


def harmony(scale: Scale, progression: Sequence[int], size: int, beats_per_chord: int, bars: int) -> list[Span]:
    """The progression laid over ``bars`` bars, cycling; a short section plays its opening."""
    total = bars * BEATS_PER_BAR
    per = min(beats_per_chord, max(2, total // max(1, len(progression))))
    spans, t, i = [], 0.0, 0
    while t < total:
        length = min(per, total - t)
        spans.append(Span(t, length, diatonic_chord(scale, progression[i % len(progression)], size)))
        t, i = t + length, i + 1
    return spans


def chord_at(spans: Sequence[Span], beat: float) -> Chord:
    for span in spans:
        if span.start <= beat < span.start + span.length:
            return span.chord
    return spans[-1].chord


def _bar_cells(pattern: str, bar: int) -> str:
    """The 16 steps of ``pattern`` that bar ``bar`` plays (a 32-step pattern alternates)."""
    offset = (bar % max(1, len(pattern) // 16)) * 16
    return pattern[offset : offset + 16]


def _events(pattern: str, bar: int) -> list[tuple[int, int, str]]:
    """``(step, length in steps, char)`` of one bar of a 16- or 32-step pattern."""
    cells = _bar_cells(pattern, bar)
    events: list[tuple[int, int, str]] = []
    for step, char in enumerate(cells):
        if char in ".-":
            continue
        length = 1
        while step + length < len(cells) and cells[step + length] == "-":
            length += 1
        events.append((step, length, char))
    return events


def _human(rng: random.Random, feel: Feel, velocity: int) -> tuple[float, int]:
    if feel.looseness <= 0:
        return 0.0, velocity
    nudge = rng.uniform(-1, 1) * 0.02 * feel.looseness
    return nudge, max(1, min(127, velocity + rng.randint(-8, 8)))


def _note(
    feel: Feel, bar: int, step: int, length: int, pitch: int, velocity: int, rng: random.Random, legato: float = 0.92
) -> Note:
    start = bar * BEATS_PER_BAR + feel.place(step)
    end = bar * BEATS_PER_BAR + feel.place(step + length)
    nudge, vel = _human(rng, feel, velocity)
    return Note(max(0.0, start + nudge), max(0.06, (end - start) * legato), pitch, vel)


def drum_variant(groove: Groove, section: str, electronic: bool, rng: random.Random) -> Groove:
    """The groove as a section plays it: the chorus gets everything, the verse holds back,
    intros and outros thin out, the bridge breaks down. Chosen once per song and section."""
    if section == "chorus":
        return dict(groove)
    if section == "verse":
        kept = {k: v for k, v in groove.items() if k not in CHORUS_ONLY}
        if OHH in groove and CHH not in kept:
            kept[CHH] = groove[OHH]
        return kept
    hats = {k: v for k, v in groove.items() if k not in (KICK, SNARE, CLAP, TOM_L, TOM_M, SIDE)}
    if section in ("intro", "outro"):
        options = ["hats", "none"] + (["kick"] * 2 if electronic else [])
        pick = rng.choice(options)
        if pick == "none":
            return {}
        return {**hats, KICK: groove[KICK]} if pick == "kick" and KICK in groove else hats
    # bridge: a breakdown without the kick, or a half-time feel
    if rng.random() < 0.5 or KICK not in groove:
        return hats
    return {**hats, KICK: "x" + "." * 15, SNARE: "." * 8 + "x" + "." * 7}


FILLS = (
    {SNARE: "............xxxx"},
    {TOM_H: "............xx..", TOM_M: "..............x.", TOM_L: "...............x"},
    {SNARE: "........g.o.x.xX"},
    {CLAP: "........xxxxxxxx"},
)


def drum_part(
    groove: Groove, bars: int, feel: Feel, rng: random.Random, *, crash: bool, fill: int | None
) -> list[Note]:
    """Drum notes for a section; ``fill`` (an index into ``FILLS``) replaces the end of its
    last bar so the section leads into the next one."""
    notes: list[Note] = []
    for bar in range(bars):
        voices = {key: _bar_cells(pattern, bar) for key, pattern in groove.items()}
        if bar == bars - 1 and fill is not None:
            fill_voices = FILLS[fill % len(FILLS)]
            for key in voices:  # clear the groove under the fill, keep the hats ticking
                if key not in (CHH, OHH) and key not in fill_voices:
                    voices[key] = voices[key][:8] + "." * 8
            voices.update(fill_voices)
        for key, cells in sorted(voices.items()):
            for step, _, char in _events(cells, 0):
                notes.append(_note(feel, bar, step, 1, key, VELOCITY.get(char, 100), rng, legato=0.5))
        if crash and bar == 0:
            notes.append(_note(feel, 0, 0, 4, CRASH, 105, rng))
    return notes


def bass_part(
    pattern: str, spans: Sequence[Span], bars: int, scale: Scale, feel: Feel, rng: random.Random, low: int = 31
) -> list[Note]:
    """Bass that follows the chords: step patterns, a walking line, or one note per chord."""
    if pattern == "hold":
        return [Note(s.start, s.length * 0.95, low + (s.chord.root - low) % 12, 92) for s in spans]
    if pattern == "walk":
        return _walk(spans, bars, scale, feel, rng, low)
    notes: list[Note] = []
    for bar in range(bars):
        for step, length, char in _events(pattern, bar):
            chord = chord_at(spans, bar * BEATS_PER_BAR + step / 4)
            root = low + (chord.root - low) % 12
            pitch = {
                "r": root,
                "o": root + 12,
                "f": nearest_pitch(chord.pcs[2], root + 7),
                "a": nearest_pitch(chord.pcs[1], root + 4),
                "s": nearest_pitch(chord.pcs[3], root + 10) if len(chord.pcs) > 3 else root + 12,
            }.get(char, root)
            notes.append(_note(feel, bar, step, length, pitch, 100 if step % 4 == 0 else 88, rng))
    return notes


def _walk(spans: Sequence[Span], bars: int, scale: Scale, feel: Feel, rng: random.Random, low: int) -> list[Note]:
    """Quarter-note walking line: root on one, chord tones on two and three, an approach note
    (a half step or scale step from the next root) on four."""
    notes: list[Note] = []
    prev = low + 5
    for bar in range(bars):
        for beat in range(4):
            t = bar * 4 + beat
            chord = chord_at(spans, t)
            if beat == 0:
                pitch = nearest_pitch(chord.root, prev)
            elif beat == 3:
                target = nearest_pitch(chord_at(spans, t + 1).root, prev)
                pitch = target + rng.choice((-1, 1)) if rng.random() < 0.6 else scale.step(target, rng.choice((-1, 1)))
            else:
                pitch = nearest_pitch(rng.choice(chord.pcs[1:]), prev + rng.choice((-3, 3)))
            pitch = max(low - 3, min(low + 19, pitch))
            nudge, vel = _human(rng, feel, 92 if beat % 2 == 0 else 84)
            notes.append(Note(t + feel.place(0) + max(0.0, nudge), 0.9, pitch, vel))
            prev = pitch
    return notes


def chord_part(
    pattern: str,
    spans: Sequence[Span],
    bars: int,
    feel: Feel,
    rng: random.Random,
    *,
    low: int,
    high: int,
    power: bool = False,
    rootless: bool = False,
    strum: float = 0.0,
    velocity: int = 84,
) -> list[Note]:
    """Block chords on a step pattern, voice-led from chord to chord; guitars strum."""
    notes: list[Note] = []
    previous: list[int] | None = None
    for bar in range(bars):
        for step, length, char in _events(pattern, bar):
            beat = bar * BEATS_PER_BAR + step / 4
            chord = chord_at(spans, beat)
            # A held chord must stop where its chord does, or it smears across the change.
            span_end = next((s.start + s.length for s in spans if s.start <= beat < s.start + s.length), beat + 4)
            length = min(length, int(round((span_end - beat) * 4)) or 1)
            voicing = power_chord(chord.root, low) if power else voice_chord(chord, previous, low, high, rootless)
            previous = voicing
            base = _note(feel, bar, step, length, 0, VELOCITY.get(char, velocity) - 100 + velocity, rng)
            for i, pitch in enumerate(voicing):
                notes.append(Note(base.start + i * strum, max(0.06, base.length - i * strum), pitch, base.velocity))
    return notes


def arp_part(
    pattern: str,
    spans: Sequence[Span],
    bars: int,
    feel: Feel,
    rng: random.Random,
    *,
    low: int,
    high: int,
    velocity: int = 72,
) -> list[Note]:
    """Arpeggios: each digit picks a chord tone, counted upward from a voicing near ``low``."""
    notes: list[Note] = []
    for bar in range(bars):
        for step, length, char in _events(pattern, bar):
            chord = chord_at(spans, bar * BEATS_PER_BAR + step / 4)
            tones = voice_chord(chord, None, low, high)
            index = int(char) if char.isdigit() else 0
            pitch = tones[index % len(tones)] + 12 * (index // len(tones))
            notes.append(_note(feel, bar, step, length, pitch, velocity, rng, legato=0.85))
    return notes
