"""Training data we make ourselves: compose songs as MIDI, render and mix them, write a corpus.

The whole path, in four calls:

    song = compose(seed=7, genre="house", seconds=30)      # MIDI stems + metadata
    audio = render_song(song)                              # FluidSynth + pedalboard mix
    prompt = make_prompt(song.metadata, random.Random(0))  # Stable Audio 2 style prompt
    build_corpus("corpus/", n_songs=100, seed=0)           # FLAC files + metadata.jsonl
"""

from __future__ import annotations

from .composer import STEMS, Song, compose
from .corpus import CorpusProgress, CorpusSummary, build_corpus, print_progress
from .errors import CorpusBuildError, DataError, SynthFailedError, SynthMissingError
from .genres import GENRES
from .prompts import make_prompt, sample_prompts
from .render import Rendered, Synth, find_synth, render_song

__all__ = [
    "CorpusBuildError",
    "CorpusProgress",
    "CorpusSummary",
    "DataError",
    "GENRES",
    "Rendered",
    "STEMS",
    "Song",
    "Synth",
    "SynthFailedError",
    "SynthMissingError",
    "build_corpus",
    "compose",
    "find_synth",
    "make_prompt",
    "print_progress",
    "render_song",
    "sample_prompts",
]
