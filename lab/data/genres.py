"""The genre table: tempo ranges, modes, progressions, grooves, instruments and moods.

Patterns are strings with one character per 16th-note step, read by ``parts.py``:

* drums: ``X`` accent, ``x`` hit, ``o`` medium, ``g`` ghost, ``.`` rest;
* bass: ``r`` root, ``f`` fifth, ``o`` octave up, ``a`` third, ``s`` seventh, ``-`` hold, ``.`` rest;
* chords: ``x``/``X`` hit, ``-`` hold, ``.`` rest;
* arps: a digit is a chord-tone index (wrapping up an octave), ``-`` hold, ``.`` rest.

A 32-step pattern spans two bars. Keeping the music as data makes a new genre a table entry,
not new code.
"""

from __future__ import annotations

from dataclasses import dataclass

# GM percussion keys (channel 10).
KICK, SIDE, SNARE, CLAP, CHH, PHH, OHH, CRASH, RIDE, BELL = 36, 37, 38, 39, 42, 44, 46, 49, 51, 53
TOM_L, TOM_M, TOM_H, TAMB, COWBELL, SHAKER, CONGA_H, CONGA_L = 45, 47, 50, 54, 56, 70, 63, 64
# Voices a verse leaves out so the chorus lifts when they come in.
CHORUS_ONLY = {TAMB, SHAKER, COWBELL, CONGA_H, CONGA_L, OHH, CLAP}

Groove = dict[int, str]
Instrument = tuple[int, str]  # (GM program, name used in metadata and prompts)


@dataclass(frozen=True)
class Genre:
    name: str
    bpm: tuple[int, int]
    modes: tuple[str, ...]
    verse: tuple[tuple[int, ...], ...]  # candidate progressions as scale degrees (0 = tonic)
    chorus: tuple[tuple[int, ...], ...]
    bridge: tuple[tuple[int, ...], ...]
    chord_size: int  # 3 triads, 4 sevenths, 5 ninths
    beats_per_chord: int
    swing: tuple[float, float]  # (amount, unit in beats)
    kits: tuple[Instrument, ...]  # empty: the genre has no drums
    grooves: tuple[Groove, ...]
    bass_patterns: tuple[str, ...]  # "walk" and "hold" are generated, not read
    bass: tuple[Instrument, ...]
    chord_patterns: tuple[str, ...]
    chords: tuple[Instrument, ...]
    melody: tuple[Instrument, ...]
    melody_range: tuple[int, int]
    melody_density: float  # chance an 8th-note slot of the motif starts a note
    extra_kind: str  # "pad", "arp", "stabs" or "none"
    extra_patterns: tuple[str, ...]
    extra: tuple[Instrument, ...]
    moods: tuple[str, ...]
    electronic: bool  # club form: long intro/outro, breakdown bridge


FOUR = "x...x...x...x..."
BACKBEAT = "....x.......x..."
EIGHTHS = "x.x.x.x.x.x.x.x."
OFFBEAT = "..x...x...x...x."

GENRES: dict[str, Genre] = {
    g.name: g
    for g in (
        Genre(
            "house",
            (118, 128),
            ("minor", "dorian", "major"),
            ((0, 5, 3, 4), (0, 3, 5, 4), (0, 6, 5, 6)),
            ((5, 3, 0, 4), (0, 3, 5, 4)),
            ((3, 4, 5, 5), (5, 3, 4, 4)),
            4,
            4,
            (0.0, 0.25),
            ((24, "Drum Machine"), (25, "808 Drums"), (0, "Drums")),
            (
                {KICK: FOUR, CLAP: BACKBEAT, OHH: OFFBEAT, SHAKER: "gogogogogogogogo"},
                {KICK: FOUR, CLAP: BACKBEAT, CHH: "x.X.x.X.x.X.x.X.", TAMB: OFFBEAT},
            ),
            ("..r-..r-..r-..o-", "r-..r-.or-..r-.o", "..r.o.r...r.o.r."),
            ((38, "Synth Bass"), (39, "Synth Bass"), (33, "Electric Bass")),
            ("..x...x...x...x.", "x..x..x...x..x..", "x---------------"),
            ((4, "Rhodes"), (0, "Piano"), (16, "Organ"), (5, "Electric Piano")),
            ((81, "Saw Lead"), (80, "Square Lead"), (4, "Rhodes"), (11, "Vibraphone")),
            (64, 84),
            0.45,
            "pad",
            ("x---------------",),
            ((89, "Warm Pad"), (50, "Synth Strings"), (90, "Poly Synth Pad")),
            ("uplifting", "energetic", "warm", "groovy", "euphoric", "danceable"),
            True,
        ),
        Genre(
            "techno",
            (124, 140),
            ("minor", "phrygian", "dorian"),
            ((0, 0, 0, 0), (0, 0, 6, 6), (0, 5, 0, 5)),
            ((0, 5, 6, 0), (0, 0, 5, 6)),
            ((5, 5, 6, 6), (3, 3, 4, 4)),
            3,
            4,
            (0.0, 0.25),
            ((24, "Drum Machine"), (25, "808 Drums")),
            (
                {KICK: FOUR, OHH: OFFBEAT, CHH: "g.o.g.o.g.o.g.o.", CLAP: BACKBEAT},
                {KICK: FOUR, BELL: OFFBEAT, CHH: "xoxoxoxoxoxoxoxo", SIDE: "......o.......o."},
            ),
            ("..rr..rr..rr..rr", "..r.r.r...r.r.r.", "r.rrr.rrr.rrr.rr"),
            ((38, "Synth Bass"), (39, "Acid Bass"), (87, "Bass Lead")),
            ("...x.....x....x.", "x.....x.....x...", "x---------------"),
            ((90, "Poly Synth"), (50, "Synth Strings"), (62, "Synth Brass")),
            ((81, "Saw Lead"), (80, "Square Lead"), (84, "Synth Lead")),
            (60, 79),
            0.3,
            "arp",
            ("0123012301230123", "0.1.2.0.1.2.0.1.", "0.0.1.0.2.0.1.0."),
            ((81, "Synth Arp"), (80, "Square Arp"), (98, "Crystal Synth")),
            ("dark", "hypnotic", "driving", "relentless", "minimal", "industrial"),
            True,
        ),
        Genre(
            "hip hop",
            (80, 100),
            ("minor", "dorian", "phrygian"),
            ((0, 5, 3, 4), (0, 3, 0, 3), (0, 6, 5, 4)),
            ((5, 3, 0, 4), (0, 5, 3, 6)),
            ((3, 3, 4, 4), (5, 6, 0, 0)),
            4,
            4,
            (0.22, 0.25),
            ((25, "808 Drums"), (0, "Drums"), (8, "Drums")),
            (
                {KICK: "x.......x.x.....x.x.......x..x..", SNARE: BACKBEAT * 2, CHH: "x.o.x.o.x.o.x.o."},
                {
                    KICK: "x..x......x.....x..x....x.x.....",
                    SNARE: "....x.......x..g....x.......x...",
                    CHH: EIGHTHS,
                    TAMB: BACKBEAT,
                },
            ),
            ("r-------..r-f---", "r-----.r--..r---", "r---..r---r-....", "hold"),
            ((38, "Synth Bass"), (33, "Electric Bass"), (34, "Bass Guitar")),
            ("x-------x-------", "x---------x-----", "x---------------"),
            ((4, "Rhodes"), (0, "Piano"), (48, "Strings"), (11, "Vibraphone")),
            ((4, "Rhodes"), (73, "Flute"), (80, "Synth Lead"), (66, "Tenor Sax")),
            (62, 81),
            0.35,
            "stabs",
            ("x-......x-......", "x-..............", "x---....x---...."),
            ((61, "Brass"), (48, "Strings"), (56, "Trumpet")),
            ("laid-back", "gritty", "confident", "nostalgic", "dark", "moody"),
            False,
        ),
        Genre(
            "lo-fi",
            (70, 90),
            ("major", "dorian", "minor"),
            ((1, 4, 0, 5), (3, 2, 1, 0), (0, 5, 1, 4)),
            ((3, 4, 2, 5), (1, 4, 0, 0)),
            ((3, 3, 2, 5), (5, 1, 4, 4)),
            5,
            4,
            (0.28, 0.25),
            ((40, "Brush Drums"), (32, "Jazz Drums"), (0, "Drums")),
            (
                {KICK: "x.......x.......x......xx.......", SIDE: BACKBEAT * 2, CHH: "x.o.x.o.x.o.x.o."},
                {
                    KICK: "x......x..x.....x.........x.....",
                    SNARE: "....x.......x..g",
                    CHH: EIGHTHS,
                    SHAKER: "gogogogogogogogo",
                },
            ),
            ("r-------f---r---", "r-----------a---", "r---------r-----"),
            ((33, "Electric Bass"), (32, "Upright Bass"), (35, "Fretless Bass")),
            ("x---------------", "x-------x-------", "x-----x---------"),
            ((4, "Rhodes"), (0, "Piano"), (5, "Electric Piano"), (26, "Jazz Guitar")),
            ((11, "Vibraphone"), (26, "Jazz Guitar"), (73, "Flute"), (4, "Rhodes")),
            (64, 81),
            0.3,
            "arp",
            ("0.1.2.3.........", "....0.1.2.......", "0...2...1...3..."),
            ((24, "Nylon Guitar"), (11, "Vibraphone"), (10, "Music Box")),
            ("chill", "mellow", "nostalgic", "relaxed", "dreamy", "cozy"),
            False,
        ),
        Genre(
            "ambient",
            (60, 80),
            ("major", "lydian", "minor", "dorian"),
            ((0, 3), (0, 5), (0, 4)),
            ((3, 0), (5, 3), (3, 4)),
            ((5, 3), (1, 4)),
            5,
            8,
            (0.0, 0.25),
            (),
            (),
            ("hold",),
            ((89, "Warm Pad"), (38, "Synth Bass"), (42, "Cello")),
            ("x---------------",),
            ((88, "New Age Pad"), (89, "Warm Pad"), (94, "Halo Pad"), (92, "Bowed Pad")),
            ((8, "Celesta"), (10, "Music Box"), (98, "Crystal Synth"), (73, "Flute"), (0, "Piano")),
            (67, 88),
            0.15,
            "arp",
            ("0...1...2...3...", "0.......2.......", "2...1...0...1..."),
            ((46, "Harp"), (8, "Celesta"), (11, "Vibraphone"), (99, "Atmosphere Synth")),
            ("calm", "ethereal", "meditative", "spacious", "peaceful", "dreamy"),
            False,
        ),
        Genre(
            "rock",
            (100, 160),
            ("major", "mixolydian", "minor"),
            ((0, 4, 5, 3), (0, 3, 4, 3), (0, 6, 3, 0)),
            ((3, 4, 0, 0), (5, 3, 0, 4), (0, 4, 5, 3)),
            ((5, 4, 3, 4), (3, 5, 4, 4)),
            3,
            4,
            (0.0, 0.25),
            ((0, "Drums"), (16, "Rock Drums"), (8, "Drums")),
            (
                {KICK: "x.......x.x.....", SNARE: BACKBEAT, CHH: EIGHTHS},
                {KICK: "x.....x.x.......", SNARE: BACKBEAT, RIDE: EIGHTHS, OHH: "..............x."},
            ),
            ("r-r-r-r-r-r-r-r-", "r-r-r-r-r-r-f-o-", "r.r.r.r.r.r.r.r."),
            ((34, "Bass Guitar"), (33, "Electric Bass")),
            ("x-x-x-x-x-x-x-x-", "x--x--x-x--x--x-", "x-----x-x-------"),
            ((29, "Overdriven Guitar"), (30, "Distorted Guitar"), (25, "Acoustic Guitar")),
            ((29, "Lead Guitar"), (30, "Distorted Guitar"), (16, "Organ")),
            (62, 84),
            0.4,
            "pad",
            ("x-------x-------",),
            ((16, "Organ"), (0, "Piano"), (48, "Strings")),
            ("energetic", "powerful", "rebellious", "upbeat", "anthemic", "driving"),
            False,
        ),
        Genre(
            "jazz",
            (90, 180),
            ("major", "dorian", "minor"),
            ((1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4)),
            ((1, 4, 0, 5), (3, 6, 2, 5)),
            ((3, 3, 2, 5), (1, 4, 2, 5)),
            4,
            4,
            (1 / 3, 0.5),
            ((32, "Jazz Drums"), (40, "Brush Drums")),
            (
                {RIDE: "x...x.x.x...x.x.", PHH: BACKBEAT, KICK: "g.......g.......", SNARE: "......g........g"},
                {RIDE: "x...x.x.x...x.x.", PHH: BACKBEAT, KICK: "g.....g.g.......", SNARE: "..g...g.....g.g."},
            ),
            ("walk",),
            ((32, "Upright Bass"), (32, "Double Bass")),
            ("...x-.....x-....", "x-....x-..x-....", "..x-....x-......", "x-.x-.......x-.."),
            ((0, "Piano"), (4, "Rhodes"), (26, "Jazz Guitar")),
            ((65, "Alto Sax"), (66, "Tenor Sax"), (56, "Trumpet"), (71, "Clarinet"), (11, "Vibraphone")),
            (58, 82),
            0.5,
            "none",
            (),
            (),
            ("smooth", "sophisticated", "relaxed", "swinging", "late-night", "elegant"),
            False,
        ),
        Genre(
            "cinematic",
            (60, 110),
            ("minor", "major", "dorian", "lydian"),
            ((0, 5, 3, 4), (0, 3, 5, 4), (0, 2, 5, 4)),
            ((5, 3, 0, 4), (3, 0, 4, 5)),
            ((5, 6, 3, 4), (3, 4, 5, 5)),
            3,
            8,
            (0.0, 0.25),
            ((48, "Orchestral Percussion"),),
            (
                {KICK: "x.......x.......", TOM_L: "x..x..x...x.x...", CRASH: "x..............................."},
                {KICK: "x.....x.x.......", TOM_L: "x..x..x.x..x..x.", TOM_M: "..........x.x.x.", SNARE: BACKBEAT},
            ),
            ("hold",),
            ((48, "Low Strings"), (42, "Cello"), (32, "Contrabass")),
            ("x---------------",),
            ((48, "Strings"), (49, "Strings"), (52, "Choir"), (89, "Warm Pad")),
            ((60, "French Horn"), (73, "Flute"), (42, "Cello"), (40, "Violin"), (68, "Oboe")),
            (55, 84),
            0.25,
            "arp",
            ("0.1.2.1.0.1.2.1.", "0120012001200120", "0.2.1.2.0.2.1.2."),
            ((46, "Harp"), (45, "Pizzicato Strings"), (0, "Piano"), (48, "Staccato Strings")),
            ("epic", "dramatic", "emotional", "tense", "heroic", "majestic"),
            False,
        ),
        Genre(
            "drum and bass",
            (160, 180),
            ("minor", "dorian"),
            ((0, 5, 3, 4), (0, 0, 5, 6)),
            ((5, 3, 0, 4), (0, 5, 6, 4)),
            ((3, 3, 4, 4),),
            4,
            8,
            (0.0, 0.25),
            ((0, "Drums"), (8, "Drums"), (25, "808 Drums")),
            (
                {KICK: "x.........x.....", SNARE: "....x.......x...", CHH: EIGHTHS},
                {
                    KICK: "x.x.......x.....x.........x.x...",
                    SNARE: "....x..g.g..x..g....x..g.g..x...",
                    CHH: "x.x.x.x.x.x.x.x.",
                    RIDE: "..x...x...x...x.",
                },
            ),
            ("r-------...r----", "r---------r-----", "hold"),
            ((38, "Sub Bass"), (39, "Reese Bass"), (87, "Bass Lead")),
            ("x---------------", "x-------x-------"),
            ((89, "Warm Pad"), (4, "Rhodes"), (50, "Synth Strings")),
            ((81, "Saw Lead"), (80, "Square Lead"), (4, "Rhodes"), (52, "Choir")),
            (62, 84),
            0.3,
            "pad",
            ("x---------------",),
            ((95, "Sweep Pad"), (94, "Halo Pad"), (50, "Synth Strings")),
            ("energetic", "fast", "intense", "rolling", "dark", "futuristic"),
            True,
        ),
        Genre(
            "reggae",
            (68, 90),
            ("major", "minor", "mixolydian"),
            ((0, 3, 0, 4), (0, 3, 4, 3), (0, 5, 3, 4)),
            ((3, 4, 0, 0), (0, 4, 5, 3)),
            ((5, 3, 4, 4),),
            3,
            4,
            (0.18, 0.25),
            ((0, "Drums"), (8, "Drums")),
            (
                {KICK: "........x.......", SIDE: "........x.......", CHH: EIGHTHS},
                {KICK: FOUR, SIDE: "........x.......", CHH: "x.xxx.xxx.xxx.xx", CONGA_H: "......o.......o."},
            ),
            ("....r-f-o---r.f.", "..r-.f-.r-..a-f-", "r---..r-f---a---"),
            ((33, "Electric Bass"), (34, "Bass Guitar")),
            ("....x-......x-..", "....xx......xx.."),
            ((27, "Clean Guitar"), (4, "Electric Piano")),
            ((22, "Harmonica"), (56, "Trumpet"), (73, "Flute"), (16, "Organ")),
            (62, 81),
            0.35,
            "stabs",
            ("..x.x...xx.x..x.", "..x...x...x...x."),
            ((16, "Organ"), (17, "Percussive Organ")),
            ("relaxed", "sunny", "positive", "laid-back", "uplifting", "summery"),
            False,
        ),
        Genre(
            "funk",
            (95, 118),
            ("mixolydian", "dorian", "minor"),
            ((0, 0, 3, 3), (0, 3, 0, 4), (0, 6, 3, 0)),
            ((3, 4, 0, 0), (0, 3, 4, 3)),
            ((3, 3, 4, 4), (1, 4, 1, 4)),
            4,
            4,
            (0.1, 0.25),
            ((0, "Drums"), (8, "Drums")),
            (
                {KICK: "x.....x...x..x..", SNARE: "....x..g.g..x..g", CHH: "xoxoxoxoxoxoxoxo"},
                {
                    KICK: "x.x...x...x..x..",
                    SNARE: "....x..g.g..x..g",
                    CHH: "xoxoxoxoxoxoxoxo",
                    TAMB: BACKBEAT,
                    OHH: "..............x.",
                },
            ),
            ("r..ro..rr.o.r.fo", "r.r...o.r..rs.o.", "r--.r.o..rr.f.o."),
            ((36, "Slap Bass"), (33, "Electric Bass"), (37, "Slap Bass")),
            ("x.xx.x.xx.x.x.xx", "..x...x...x.x.x.", "x..x..x...x.x..."),
            ((27, "Clean Guitar"), (7, "Clavinet"), (4, "Rhodes")),
            ((66, "Tenor Sax"), (81, "Synth Lead"), (56, "Trumpet"), (65, "Alto Sax")),
            (60, 82),
            0.45,
            "stabs",
            ("x-......x-..x-..", "......x-......x-", "x-...........x-."),
            ((61, "Brass Section"), (62, "Synth Brass"), (56, "Trumpet")),
            ("groovy", "funky", "playful", "upbeat", "energetic", "feel-good"),
            False,
        ),
    )
}

# Moods that follow from the mode rather than the genre.
MODE_MOODS = {
    "major": ("bright", "happy", "hopeful"),
    "lydian": ("dreamy", "bright", "wondrous"),
    "mixolydian": ("bluesy", "upbeat"),
    "minor": ("melancholic", "dark", "emotional"),
    "dorian": ("soulful", "moody"),
    "phrygian": ("dark", "tense", "exotic"),
}
