"""Notes → standard MIDI files (mido), one track per stem, channel 10 for drums."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import mido

from .parts import Note

TICKS_PER_BEAT = 480
CHANNELS = {"bass": 0, "chords": 1, "melody": 2, "extra": 3, "drums": 9}


@dataclass(frozen=True)
class Track:
    """One stem: its GM program (the kit number for drums), display name and notes in beats."""

    stem: str
    program: int
    instrument: str
    notes: tuple[Note, ...]

    @property
    def channel(self) -> int:
        return CHANNELS[self.stem]


def tidy(notes: Sequence[Note], end_beat: float) -> list[Note]:
    """Sorted notes with no same-pitch overlaps and nothing past ``end_beat``.

    A note-off that lands after the next note-on of the same pitch would cut that next note
    short in every synth, so overlapping repeats are shortened here, once, for all stems.
    """
    kept = sorted((n for n in notes if n.start < end_beat - 1e-6), key=lambda n: (n.pitch, n.start))
    out: list[Note] = []
    for i, note in enumerate(kept):
        end = min(note.start + note.length, end_beat)
        if i + 1 < len(kept) and kept[i + 1].pitch == note.pitch:
            end = min(end, kept[i + 1].start - 0.01)
        if end - note.start > 0.02:
            out.append(Note(note.start, end - note.start, note.pitch, note.velocity))
    return sorted(out, key=lambda n: (n.start, n.pitch))


def to_ticks(beat: float) -> int:
    return int(round(beat * TICKS_PER_BEAT))


def midi_file(tracks: Sequence[Track], tempo: int, end_beat: float, title: str) -> mido.MidiFile:
    """A type-1 file: a conductor track (tempo, meter) then one track per stem.

    Every track ends at ``end_beat`` so a player (FluidSynth) runs for the whole song even when
    a stem falls silent early, and all stems render to the same length.
    """
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    end_tick = to_ticks(end_beat)
    conductor = mido.MidiTrack(
        [
            mido.MetaMessage("track_name", name=title, time=0),
            mido.MetaMessage("set_tempo", tempo=tempo, time=0),
            mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0),
            mido.MetaMessage("end_of_track", time=end_tick),
        ]
    )
    mid.tracks.append(conductor)
    for track in tracks:
        mid.tracks.append(_stem_track(track, end_tick))
    return mid


def stacked_file(tracks: Sequence[Track], tempo: int, song_beats: float, gap_beats: float) -> mido.MidiFile:
    """All stems one after another in one file: stem k starts at ``k * (song_beats + gap_beats)``.

    Starting FluidSynth costs more than synthesising a short stem, so a song's stems go through
    one process; an all-sound-off at the end of each region keeps release tails from leaking
    into the next stem's region.
    """
    mid = midi_file([], tempo, len(tracks) * (song_beats + gap_beats), "stems")
    end_tick = to_ticks(len(tracks) * (song_beats + gap_beats))
    for k, track in enumerate(tracks):
        offset = k * (song_beats + gap_beats)
        mid.tracks.append(
            _stem_track(track, end_tick, offset_tick=to_ticks(offset), cut_tick=to_ticks(offset + song_beats))
        )
    return mid


def _stem_track(track: Track, end_tick: int, offset_tick: int = 0, cut_tick: int | None = None) -> mido.MidiTrack:
    ch = track.channel
    events: list[tuple[int, int, int, mido.Message]] = []
    for note in track.notes:
        on = offset_tick + to_ticks(note.start)
        off = max(on + 1, offset_tick + to_ticks(note.start + note.length))
        # Sort key puts note-offs before note-ons on the same tick, so a repeated note re-strikes.
        events.append((on, 1, note.pitch, mido.Message("note_on", channel=ch, note=note.pitch, velocity=note.velocity)))
        events.append((off, 0, note.pitch, mido.Message("note_off", channel=ch, note=note.pitch, velocity=0)))
    if cut_tick is not None:
        events.append((cut_tick, 2, 0, mido.Message("control_change", channel=ch, control=120, value=0)))
    events.sort(key=lambda e: e[:3])
    out = mido.MidiTrack(
        [
            mido.MetaMessage("track_name", name=f"{track.stem}: {track.instrument}", time=0),
            mido.Message("program_change", channel=ch, program=track.program, time=0),
            # Centre pan and full expression: the mixer pans the stems, not the synth.
            mido.Message("control_change", channel=ch, control=10, value=64, time=0),
            mido.Message("control_change", channel=ch, control=7, value=100, time=0),
        ]
    )
    now = 0
    for tick, _, _, msg in events:
        out.append(msg.copy(time=tick - now))
        now = tick
    out.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
    return out


def midi_bytes(mid: mido.MidiFile) -> bytes:
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()
