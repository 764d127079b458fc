"""Metadata → text prompt, the way Stable Audio 2 §3.1 trains its text conditioning.

A random subset of the metadata fields, in random order. Half the prompts name the field
(``Genre: house|BPM: 124|Moods: warm, uplifting``), half are a bare comma list
(``house, 124 BPM, warm, uplifting``). List values are shuffled and the case is randomly
changed, so at inference time any subset, order or spelling of these properties works.

Stems name themselves ("drums only", ``Instruments: Drums``): the sound designer's
beatbox → drums restyle needs a model that knows what a drum stem alone sounds like.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

LABELS = {"genre": "Genre", "bpm": "BPM", "key": "Key", "instruments": "Instruments", "moods": "Moods"}
KEEP_CHANCE = 0.6  # each field's chance to appear; at least one always does
ONLY = {
    "drums": ("drums only", "drum stem", "isolated drums", "just drums", "solo drums"),
    "bass": ("bass only", "bass stem", "isolated bass", "just bass"),
    "chords": ("chords only", "{inst} chords only", "isolated {inst}", "chord stem"),
    "melody": ("melody only", "solo {inst}", "{inst} melody only", "lead only"),
    "extra": ("{inst} only", "isolated {inst}", "solo {inst}"),
}
NO_DRUMS = ("no drums", "without drums", "no percussion", "beatless")
# How often a prompt says NO_DRUMS: a genre without drums (ambient) mostly says it by its name;
# a drum genre's mix with the kit taken out (corpus kind ``mix:nodrums``) has only these words
# to tell it from the full mix, so they nearly always come ("house, 124 BPM" should keep
# its kit).
NO_DRUMS_CHANCE = 0.4
DRUMS_REMOVED_CHANCE = 0.9


def _instruments(meta: Mapping[str, Any], stem: str | None, rng: random.Random) -> list[str]:
    if stem is None:
        return list(meta["instruments"])
    name = str(meta["stems"][stem])
    if stem == "drums" and name != "Drums":
        # Always let "drums" be said: it is the word a user types.
        return [rng.choice(("Drums", name))] if "Drum" in name else [rng.choice(("Drums", "Drums", name))]
    return [name]


def _fields(meta: Mapping[str, Any], stem: str | None, rng: random.Random) -> list[tuple[str, list[str]]]:
    fields: list[tuple[str, list[str]]] = [
        ("genre", [str(meta["genre"])]),
        ("bpm", [str(meta["bpm"])]),
        ("instruments", _instruments(meta, stem, rng)),
        ("moods", list(meta["moods"])),
    ]
    if stem != "drums":  # a drum stem has no key; saying one would teach the model noise
        fields.append(("key", [str(meta["key"])]))
    return fields


def _case(text: str, rng: random.Random) -> str:
    mode = rng.choices(("keep", "lower", "title", "upper"), weights=(5, 3, 1.5, 0.5))[0]
    if mode == "lower":
        return text.lower()
    if mode == "upper":
        return text.upper()
    if mode == "title":
        return " ".join(w if w.isupper() else w[:1].upper() + w[1:] for w in text.split(" "))
    return text


def make_prompt(meta: Mapping[str, Any], rng: random.Random, *, stem: str | None = None) -> str:
    """One prompt for a song's metadata (or one of its stems); a pure function of ``rng``'s state."""
    fields = _fields(meta, stem, rng)
    chosen = [f for f in fields if rng.random() < KEEP_CHANCE or (stem is not None and f[0] == "instruments")]
    if not chosen:
        chosen = [rng.choice(fields)]
    rng.shuffle(chosen)
    for _, values in chosen:
        rng.shuffle(values)
    keyed = rng.random() < 0.5
    extras: list[str] = []
    if stem is not None and rng.random() < (0.4 if keyed else 0.8):
        inst = str(meta["stems"][stem])
        extras.append(rng.choice(ONLY[stem]).format(inst=inst))
    has_drums = bool(meta.get("has_drums", True))
    chance = DRUMS_REMOVED_CHANCE if meta.get("drums_removed") else NO_DRUMS_CHANCE
    if (stem is None and not has_drums and rng.random() < chance) or (
        stem not in (None, "drums") and rng.random() < 0.15
    ):
        extras.append(rng.choice(NO_DRUMS))
    if keyed:
        parts = [f"{LABELS[name]}: {', '.join(values)}" for name, values in chosen]
    else:
        parts = []
        for name, values in chosen:
            if name == "bpm":
                parts.append(f"{values[0]} BPM")
            elif name == "key":
                parts.append(rng.choice(("{}", "in {}", "key of {}")).format(values[0]))
            else:
                parts.extend(values)
    for extra in extras:
        parts.insert(rng.randrange(len(parts) + 1), extra)
    return _case(("|" if keyed else ", ").join(parts), rng)


def sample_prompts(meta: Mapping[str, Any], rng: random.Random, n: int, *, stem: str | None = None) -> list[str]:
    """``n`` independent prompts for the same item (a corpus stores a few per file)."""
    return [make_prompt(meta, rng, stem=stem) for _ in range(n)]
