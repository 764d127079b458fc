"""The composer: a whole song with real structure, as a deterministic function of a seed.

Form first (intro, verses, choruses, bridge, outro sized to the target length), then one set of
parts per section *type*, placed at every occurrence of that type. A chorus is therefore the
same music each time it comes round; only the drum fill in its last bar may change with what
follows. That repetition is what a long-context model has to learn, so the data must have it.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import mido

from .genres import GENRES, MODE_MOODS, Genre, Instrument
from .melody import make_motif, melody_part
from .midi import Track, midi_bytes, midi_file, tidy
from .parts import Feel, Note, arp_part, bass_part, chord_part, drum_part, drum_variant, harmony
from .theory import BEATS_PER_BAR, PITCH_NAMES, Scale

STEMS = ("drums", "bass", "chords", "melody", "extra")
SECTIONS = ("intro", "verse", "chorus", "bridge", "outro")

# Allowed lengths in bars; growth walks up these lists, so choruses stay 4- or 8-bar phrases.
SIZES = {
    "intro": (1, 2, 4, 8),
    "verse": (2, 4, 8, 12, 16),
    "chorus": (2, 4, 8, 12, 16),
    "bridge": (2, 4, 8),
    "outro": (1, 2, 4, 8),
}
CLUB_SIZES = {**SIZES, "intro": (1, 2, 4, 8, 16), "outro": (1, 2, 4, 8, 16), "chorus": (2, 4, 8, 16, 24)}
TYPICAL = {"intro": 2, "verse": 4, "chorus": 4, "bridge": 4, "outro": 2}
GROWTH_WEIGHT = {"intro": 1, "verse": 3, "chorus": 4, "bridge": 1, "outro": 1}

SONG_FORMS = (
    ("intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
    ("intro", "verse", "chorus", "verse", "chorus", "outro"),
    ("intro", "verse", "verse", "chorus", "bridge", "chorus", "outro"),
    ("intro", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
    ("intro", "verse", "chorus", "outro"),
    ("intro", "chorus", "outro"),
    ("verse", "chorus"),
    ("chorus",),
)
CLUB_FORMS = (
    ("intro", "verse", "chorus", "bridge", "chorus", "outro"),
    ("intro", "verse", "chorus", "verse", "chorus", "bridge", "chorus", "outro"),
    ("intro", "chorus", "bridge", "chorus", "outro"),
    ("intro", "chorus", "outro"),
    ("chorus",),
)


@dataclass(frozen=True)
class Section:
    name: str
    start_bar: int
    bars: int


@dataclass
class Song:
    """A composed song: one MIDI track per stem plus the metadata prompts are made from."""

    seed: int
    genre: str
    bpm: int
    scale: Scale
    sections: list[Section]
    tracks: dict[str, Track]
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def tempo(self) -> int:
        """Microseconds per beat as written in the file; all seconds derive from it."""
        return int(mido.bpm2tempo(self.bpm))

    @property
    def seconds_per_beat(self) -> float:
        return self.tempo / 1e6

    @property
    def bars(self) -> int:
        return sum(s.bars for s in self.sections)

    @property
    def length_s(self) -> float:
        return self.bars * BEATS_PER_BAR * self.seconds_per_beat

    def midi(self, stems: Sequence[str] | None = None) -> mido.MidiFile:
        """The song (or just ``stems``) as a type-1 MIDI file."""
        chosen = [self.tracks[s] for s in (stems or STEMS) if s in self.tracks]
        return midi_file(chosen, self.tempo, self.bars * BEATS_PER_BAR, f"{self.genre} {self.seed}")

    def midi_bytes(self, stems: Sequence[str] | None = None) -> bytes:
        return midi_bytes(self.midi(stems))


def rng_for(seed: int, *keys: object) -> random.Random:
    """An independent, reproducible stream per decision (str seeds hash with SHA-512, not
    ``hash()``, so they do not depend on PYTHONHASHSEED)."""
    return random.Random(":".join(map(str, (seed,) + keys)))


def plan_form(rng: random.Random, genre: Genre, n_bars: int) -> list[tuple[str, int]]:
    """Pick a form and size its sections to fill at most ``n_bars`` bars."""
    if n_bars < 2:
        return [("chorus", max(1, n_bars))]
    sizes = CLUB_SIZES if genre.electronic else SIZES
    forms = CLUB_FORMS if genre.electronic else SONG_FORMS
    fitting = [f for f in forms if sum(TYPICAL[s] for s in f) <= n_bars] or [
        f for f in forms if sum(sizes[s][0] for s in f) <= n_bars
    ]
    longest = max(len(f) for f in fitting)
    form = list(rng.choice([f for f in fitting if len(f) >= longest - 2]))
    # Long songs at fast tempos need more than one form's worth: add verse-chorus pairs.
    while sum(sizes[s][-1] for s in form) < n_bars and "verse" in form:
        at = len(form) - form[::-1].index("chorus")
        form[at:at] = ["verse", "chorus"]
    length = {s: sizes[s][0] for s in set(form)}
    counts = Counter(form)
    total = sum(length[s] for s in form)
    while True:
        options = []
        for s in counts:
            bigger = [b for b in sizes[s] if b > length[s]]
            if bigger and total + counts[s] * (bigger[0] - length[s]) <= n_bars and _balanced({**length, s: bigger[0]}):
                options.append((s, bigger[0]))
        if not options:
            break
        name, size = rng.choices(options, weights=[GROWTH_WEIGHT[s] for s, _ in options])[0]
        total += counts[name] * (size - length[name])
        length[name] = size
    # Short forms leave bars unused that no section can grow into: a lead-in or tail takes them.
    for name in ("intro", "outro"):
        slack = n_bars - total
        if slack >= 1 and name not in length:
            length[name] = max(b for b in sizes[name] if b <= slack)
            total += length[name]
            form.insert(0 if name == "intro" else len(form), name)
    return [(s, length[s]) for s in form]


def _balanced(length: dict[str, int]) -> bool:
    """Proportions a listener expects: the chorus is the main event (no two-bar chorus after
    an eight-bar verse), and intro, outro and bridge never outlast it."""
    chorus = length.get("chorus")
    if chorus is None:
        return True
    verse = length.get("verse")
    if verse is not None and (verse > 2 * chorus or chorus > 2 * verse):
        return False
    return all(length.get(s, 0) <= chorus for s in ("intro", "outro", "bridge"))


def _pick(rng: random.Random, palette: Sequence[Instrument], avoid: int | None = None) -> Instrument:
    choices = [i for i in palette if i[0] != avoid] or list(palette)
    return rng.choice(choices)


def compose(seed: int, genre: str | None = None, seconds: float | None = None) -> Song:
    """Compose a song. ``genre`` None picks one; ``seconds`` None picks 10-285 s. The result
    is a pure function of the arguments."""
    if genre is not None and genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}; choose one of {sorted(GENRES)}")
    rng = rng_for(seed, "song")
    spec = GENRES[genre] if genre is not None else GENRES[rng.choice(sorted(GENRES))]
    bpm = rng.randint(*spec.bpm)
    weights = [len(spec.modes) - i for i in range(len(spec.modes))]  # the first mode is the idiom
    scale = Scale(rng.randrange(12), rng.choices(spec.modes, weights=weights)[0])
    target = seconds if seconds is not None else rng.uniform(10.0, 285.0)
    bar_s = BEATS_PER_BAR * mido.bpm2tempo(bpm) / 1e6
    form = plan_form(rng_for(seed, "form"), spec, int(math.floor(target / bar_s + 1e-9)))
    sections, bar = [], 0
    for name, bars in form:
        sections.append(Section(name, bar, bars))
        bar += bars
    tracks = _arrange(seed, spec, scale, sections)
    song = Song(seed, spec.name, bpm, scale, sections, tracks)
    song.metadata = _metadata(song, spec, rng_for(seed, "moods"))
    return song


def transposed(song: Song, semitones: int) -> Song:
    """The same song ``semitones`` higher (lower when negative): every pitched note and the key
    move, the drums (GM kit notes name drums, not pitches) and everything else stay. Prompts
    built from its metadata name the new key, so a model trained on both versions hears the one
    difference a key makes."""
    tracks = {
        stem: track
        if stem == "drums"
        else replace(track, notes=tuple(replace(n, pitch=n.pitch + semitones) for n in track.notes))
        for stem, track in song.tracks.items()
    }
    scale = Scale((song.scale.tonic + semitones) % 12, song.scale.mode)
    out = Song(song.seed, song.genre, song.bpm, scale, song.sections, tracks)
    out.metadata = {**song.metadata, "key": scale.name, "tonic": PITCH_NAMES[scale.tonic], "transposed": semitones}
    return out


def _arrange(seed: int, spec: Genre, scale: Scale, sections: list[Section]) -> dict[str, Track]:
    """Write each section type's parts once, then place them at every occurrence."""
    rng = rng_for(seed, "instruments")
    kit = rng.choice(spec.kits) if spec.kits else None
    chords_inst = _pick(rng, spec.chords)
    picks: dict[str, Instrument | None] = {
        "drums": kit,
        "bass": _pick(rng, spec.bass),
        "chords": chords_inst,
        "melody": _pick(rng, spec.melody, avoid=chords_inst[0]),
        "extra": _pick(rng, spec.extra, avoid=chords_inst[0]) if spec.extra_kind != "none" else None,
    }
    feel = Feel(spec.swing[0], spec.swing[1], 0.0 if spec.electronic else 1.0)
    arr = rng_for(seed, "arrangement")
    groove = arr.choice(spec.grooves) if spec.grooves else {}
    roles = _roles(spec, arr, bool(groove))
    motifs = {
        s: make_motif(
            rng_for(seed, "motif", s),
            spec.melody_density * (0.7 if s == "verse" else 1.0),
            sixteenths=spec.electronic and s == "chorus",
        )
        for s in SECTIONS
    }
    lo, hi = spec.melody_range
    placed: dict[str, list[Note]] = {s: [] for s in STEMS}
    bars_of = {s.name: s.bars for s in sections}
    occurrence: Counter[str] = Counter()
    for i, sec in enumerate(sections):
        name, k = sec.name, occurrence[sec.name]
        occurrence[name] += 1
        nxt = sections[i + 1].name if i + 1 < len(sections) else None
        r = rng_for(seed, "section", name)
        source = {"intro": spec.verse, "outro": spec.chorus}.get(name, getattr(spec, name, spec.verse))
        spans = harmony(scale, r.choice(source), spec.chord_size, spec.beats_per_chord, bars_of[name])
        parts: dict[str, list[Note]] = {}
        if "drums" in roles[name] and groove:
            variant = drum_variant(groove, name, spec.electronic, rng_for(seed, "drumvar", name))
            fill_rng = rng_for(seed, "fill", name, nxt)
            fill = fill_rng.randrange(4) if nxt not in (None, name) and fill_rng.random() < 0.75 else None
            parts["drums"] = drum_part(
                variant,
                sec.bars,
                feel,
                rng_for(seed, "drums", name),
                crash=name in ("chorus", "outro") or (name == "verse" and k == 0),
                fill=fill,
            )
        if "bass" in roles[name]:
            pattern = "hold" if name in ("bridge", "intro") and r.random() < 0.5 else r.choice(spec.bass_patterns)
            low = 28 if spec.name == "drum and bass" else 31
            parts["bass"] = bass_part(pattern, spans, sec.bars, scale, feel, rng_for(seed, "bass", name), low)
        if "chords" in roles[name]:
            program = chords_inst[0]
            parts["chords"] = chord_part(
                r.choice(spec.chord_patterns),
                spans,
                sec.bars,
                feel,
                rng_for(seed, "chords", name),
                low=40 if program in (29, 30) else 52,
                high=76,
                power=program in (29, 30),
                rootless=spec.name == "jazz",
                strum=0.015 if 24 <= program <= 31 else 0.0,
                velocity=76 if name in ("intro", "outro") else 84,
            )
        if "melody" in roles[name]:
            variation = rng_for(seed, "vary", name, k) if name == "verse" and k > 0 else None
            parts["melody"] = melody_part(motifs[name], spans, sec.bars, scale, feel, lo, hi, variation=variation)
        if "extra" in roles[name] and picks["extra"] is not None:
            pattern = r.choice(spec.extra_patterns)
            erng = rng_for(seed, "extra", name)
            parts["extra"] = (
                arp_part(pattern, spans, sec.bars, feel, erng, low=60, high=79)
                if spec.extra_kind == "arp"
                else chord_part(
                    pattern,
                    spans,
                    sec.bars,
                    feel,
                    erng,
                    low=60,
                    high=84,
                    velocity=68 if spec.extra_kind == "pad" else 82,
                )
            )
        offset = sec.start_bar * BEATS_PER_BAR
        for stem, notes in parts.items():
            placed[stem] += [Note(n.start + offset, n.length, n.pitch, n.velocity) for n in notes]
    end = sum(s.bars for s in sections) * BEATS_PER_BAR
    tracks: dict[str, Track] = {}
    for stem in STEMS:
        inst = picks[stem]
        notes = tidy(placed[stem], end)
        if inst is not None and notes:
            tracks[stem] = Track(stem, inst[0], inst[1], tuple(notes))
    return tracks


def _roles(spec: Genre, rng: random.Random, has_drums: bool) -> dict[str, set[str]]:
    """Which stems play in which section: the arrangement's build and release."""
    roles = {
        "intro": {"chords", "extra", "drums"} | ({"bass"} if spec.electronic and rng.random() < 0.5 else set()),
        "verse": {"drums", "bass", "chords"}
        | ({"melody"} if not spec.electronic or rng.random() < 0.5 else set())
        | ({"extra"} if spec.extra_kind in ("arp", "pad") and rng.random() < 0.6 else set()),
        "chorus": set(STEMS),
        "bridge": {"chords", "extra", "drums"}
        | ({"melody"} if rng.random() < 0.6 else set())
        | ({"bass"} if rng.random() < 0.5 else set()),
        "outro": {"chords", "bass", "extra", "drums"},
    }
    if spec.name == "cinematic":  # the percussion enters with the first chorus
        roles["intro"].discard("drums")
        if rng.random() < 0.5:
            roles["verse"].discard("drums")
    if not has_drums:
        for stems in roles.values():
            stems.discard("drums")
    return roles


def _metadata(song: Song, spec: Genre, rng: random.Random) -> dict[str, Any]:
    moods = rng.sample(spec.moods, rng.randint(2, 3))
    if rng.random() < 0.6:
        moods.append(rng.choice(MODE_MOODS[song.scale.mode]))
    spb = song.seconds_per_beat
    structure = [
        [s.name, round(s.start_bar * 4 * spb, 4), round((s.start_bar + s.bars) * 4 * spb, 4)] for s in song.sections
    ]
    return {
        "genre": song.genre,
        "bpm": song.bpm,
        "key": song.scale.name,
        "tonic": PITCH_NAMES[song.scale.tonic],
        "mode": song.scale.mode,
        "time_signature": "4/4",
        "instruments": list(dict.fromkeys(song.tracks[s].instrument for s in STEMS if s in song.tracks)),
        "stems": {s: song.tracks[s].instrument for s in STEMS if s in song.tracks},
        "moods": list(dict.fromkeys(moods)),
        "structure": structure,
        "bars": song.bars,
        "length_s": round(song.length_s, 4),
        "has_drums": "drums" in song.tracks,
        "seed": song.seed,
    }
