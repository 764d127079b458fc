"""Render a composed song: FluidSynth (CLI) per stem, then the pedalboard mix.

Each stem is synthesised on its own (one after another in a single FluidSynth run) so the
corpus can hold isolated stems that add up to the mix. FluidSynth's own reverb and chorus are off: the mixer adds the room, the same way for every
stem. Rendering writes only to a private temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .composer import STEMS, Song, rng_for
from .errors import SynthFailedError, SynthMissingError
from .midi import stacked_file
from .mixing import mix, plan_mix
from .theory import BEATS_PER_BAR

SAMPLE_RATE = 44100
GAP_BEATS = 4.0  # silence between stems in the stacked render
SOUNDFONT_ENV = "LONGPLAY_SOUNDFONT"
# Where Debian/Ubuntu (fluid-soundfont-gm), Fedora and Homebrew put a General MIDI soundfont.
SOUNDFONT_PATHS = (
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
)
INSTALL_HINT = (
    "install it with `sudo apt-get install --no-install-recommends fluidsynth fluid-soundfont-gm` "
    "(or `make apt` as root; macOS: `brew install fluid-synth`)"
)


@dataclass(frozen=True)
class Synth:
    """A usable FluidSynth binary and General MIDI soundfont."""

    binary: str
    soundfont: Path


def find_synth(soundfont: str | os.PathLike[str] | None = None) -> Synth:
    """Locate FluidSynth and a GM soundfont (argument, then $LONGPLAY_SOUNDFONT, then the
    usual package paths); raise ``SynthMissingError`` saying how to install what is missing."""
    binary = shutil.which("fluidsynth")
    if binary is None:
        raise SynthMissingError(f"the `fluidsynth` program is not on PATH; {INSTALL_HINT}")
    candidates = [Path(p) for p in ((soundfont,) if soundfont else ())]
    if not candidates and os.environ.get(SOUNDFONT_ENV):
        candidates = [Path(os.environ[SOUNDFONT_ENV])]
    if not candidates:
        candidates = [Path(p) for p in SOUNDFONT_PATHS]
    for path in candidates:
        if path.is_file():
            return Synth(binary, path)
    looked = ", ".join(str(p) for p in candidates)
    raise SynthMissingError(
        f"no General MIDI soundfont found (looked at {looked}); {INSTALL_HINT}, "
        f"or point ${SOUNDFONT_ENV} at a .sf2 file"
    )


@dataclass
class Rendered:
    """A rendered song: master and stems as float32 ``[2, N]`` at ``sample_rate``."""

    mix: np.ndarray
    stems: dict[str, np.ndarray]
    sample_rate: int
    seconds: float
    synth_s: float  # wall time in FluidSynth
    mix_s: float  # wall time in the mixer
    drumless: np.ndarray | None = None  # the master without the drum stem (``render_song(drumless=True)``)

    @property
    def realtime(self) -> float:
        """How many seconds of audio one second of wall time produced."""
        return self.seconds / max(1e-9, self.synth_s + self.mix_s)


def synthesize(midi_path: Path, wav_path: Path, synth: Synth, sample_rate: int, gain: float, timeout: float) -> None:
    """Run FluidSynth's fast file renderer on one MIDI file."""
    # Dynamic sample loading reads only the patches a song uses: a third of the start-up time.
    cmd = [
        synth.binary,
        "-ni",
        "-q",
        "-o",
        "synth.dynamic-sample-loading=1",
        "-g",
        f"{gain:g}",
        "-R",
        "0",
        "-C",
        "0",
        "-O",
        "float",
        "-T",
        "wav",
        "-F",
        str(wav_path),
        "-r",
        str(sample_rate),
        str(synth.soundfont),
        str(midi_path),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise SynthFailedError(f"fluidsynth took over {timeout:.0f} s on {midi_path.name}") from err
    if proc.returncode != 0 or not wav_path.is_file():
        tail = " ".join((proc.stderr or proc.stdout or "").split())[-300:]
        raise SynthFailedError(f"fluidsynth failed on {midi_path.name} (exit {proc.returncode}): {tail}")


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """``[N', C]`` file data → ``[2, n]``: trim the release tail or pad silence."""
    out = np.zeros((2, n), dtype=np.float32)
    data = audio.T if audio.shape[1] == 2 else np.repeat(audio.T[:1], 2, axis=0)  # [2, N']
    m = min(n, data.shape[1])
    out[:, :m] = data[:, :m]
    return out


def render_song(
    song: Song,
    *,
    sample_rate: int = SAMPLE_RATE,
    synth: Synth | None = None,
    stems: Sequence[str] | None = None,
    gain: float = 0.5,
    drumless: bool = False,
) -> Rendered:
    """Synthesise every stem of ``song``, mix, and return the master plus the stems named in
    ``stems`` (default: all the song has), each exactly ``song.length_s`` long.

    ``drumless`` also mixes a second master from every stem but the drums (when the song has
    drums and something else): the same channel strips, pans and room, levelled to the same
    loudness -- the "instrumental without drums" version a producer would bounce. Subtracting
    the drum stem from the master would not do: the limiter's gain reduction at each hit would
    leave a ghost of the drums behind.
    """
    synth = synth or find_synth()
    present = [s for s in STEMS if s in song.tracks]
    if not present:
        raise SynthFailedError(f"song {song.seed} has no notes to render")
    keep = [s for s in (stems if stems is not None else present) if s in song.tracks]
    n = int(round(song.length_s * sample_rate))
    song_beats = song.bars * BEATS_PER_BAR
    region_s = (song_beats + GAP_BEATS) * song.seconds_per_beat
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="longplay-synth-") as tmp:
        mid, wav = Path(tmp) / "stems.mid", Path(tmp) / "stems.wav"
        stacked_file([song.tracks[s] for s in present], song.tempo, song_beats, GAP_BEATS).save(str(mid))
        synthesize(mid, wav, synth, sample_rate, gain, timeout=60 + 2 * region_s * len(present))
        data, sr = sf.read(str(wav), dtype="float32", always_2d=True)  # [N', C]
    if sr != sample_rate:
        raise SynthFailedError(f"fluidsynth wrote {sr} Hz, asked for {sample_rate} Hz")
    # FluidSynth's player dispatches events on 64-sample blocks, so a region can start up to
    # 1.5 ms off the exact sample: far below what a listener (or the mix) notices.
    dry = {stem: _fit(data[int(round(k * region_s * sample_rate)) :], n) for k, stem in enumerate(present)}
    t1 = time.perf_counter()
    plan = plan_mix(song.genre, present, rng_for(song.seed, "mix"))
    master, kept = mix(dry, sample_rate, plan, keep)
    without = None
    if drumless and "drums" in dry and len(dry) > 1:
        without, _ = mix({s: a for s, a in dry.items() if s != "drums"}, sample_rate, plan)
    t2 = time.perf_counter()
    return Rendered(master, kept, sample_rate, n / sample_rate, t1 - t0, t2 - t1, without)
