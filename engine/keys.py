"""Musical keys named in text: "D dorian", "Key: Bb minor", "in f# major", "key of Eb lydian".

One parser for the runtime (the key conditioner reads the key a prompt names, engine/conditioners.py)
and the lab (judges score a render against the key it was asked for). Torch-free.
"""

from __future__ import annotations

import re

# Interval patterns of the church modes, as the corpus composes them (lab/data/theory.py), plus
# their other names.
MODE_STEPS: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "lydian": (0, 2, 4, 6, 7, 9, 11),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "locrian": (0, 1, 3, 5, 6, 8, 10),
}
MODE_STEPS |= {"ionian": MODE_STEPS["major"], "aeolian": MODE_STEPS["minor"]}
# Which of the two 24-key answers (major / minor third) a mode is heard as.
QUALITY = {m: "major" if steps[2] == 4 else "minor" for m, steps in MODE_STEPS.items()}

# Names a musician would write: flats for the black keys except F#, as the corpus's charts do.
PITCH_NAMES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_PITCH = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_NOTE = r"[A-Ga-g](?:#|b|♯|♭)?"
_MODES = "|".join(sorted(MODE_STEPS, key=len, reverse=True))
# A note name standing alone, then a mode word: "Key: D dorian", "in f# major", "Bb minor".
_IN_TEXT = re.compile(rf"(?<![\w#♯♭])({_NOTE})\s*({_MODES})\b", re.IGNORECASE)


def pitch_class(name: str) -> int:
    """'C', 'Db', 'f#', 'G♯' -> 0..11."""
    rest = name[1:]
    return (_PITCH[name[0].upper()] + rest.count("#") + rest.count("♯") - rest.count("b") - rest.count("♭")) % 12


def parse_key(text: str) -> tuple[int, str] | None:
    """'D dorian', 'Bb major', 'g# minor' (the whole text) -> (tonic pitch class, mode); None if not a key."""
    m = re.fullmatch(rf"\s*({_NOTE})\s+([A-Za-z]+)\s*", text or "")
    if not m or m.group(2).lower() not in MODE_STEPS:
        return None
    return pitch_class(m.group(1)), m.group(2).lower()


def prompt_key(prompt: str) -> tuple[int, str] | None:
    """The first key a prompt names anywhere in it ("warm house, 124 BPM, in F minor") -> (tonic
    pitch class, mode), or None. A note name must stand alone: "Am" or "Cmaj7" are not keys here
    (and prose like "a major hit" reads as A major)."""
    m = _IN_TEXT.search(prompt or "")
    return None if m is None else (pitch_class(m.group(1)), m.group(2).lower())


def key_name(key: tuple[int, str] | None) -> str | None:
    """(6, 'minor') -> 'F# minor'."""
    return None if key is None else f"{PITCH_NAMES[key[0] % 12]} {key[1]}"


def scale_of(key: tuple[int, str]) -> frozenset[int]:
    """(2, 'dorian') -> its seven pitch classes."""
    tonic, mode = key
    return frozenset((tonic + s) % 12 for s in MODE_STEPS[mode])


def scale_pitch_classes(key: str) -> frozenset[int] | None:
    """'D dorian' -> its seven pitch classes; None if not a key."""
    parsed = parse_key(key)
    return None if parsed is None else scale_of(parsed)
