"""The training-data generator: composer properties, prompts, FluidSynth render, corpus folder.

Composer and prompt tests are pure Python. Render and corpus tests need the FluidSynth CLI and
a GM soundfont (`make apt` installs both) and are skipped, saying so, where they are missing.
"""

from __future__ import annotations

import io
import json
import random
import re
import shutil
from collections import Counter
from pathlib import Path

import mido
import numpy as np
import pytest

from engine.keys import parse_key, scale_of
from lab.data import (
    GENRES,
    CorpusBuildError,
    SynthMissingError,
    build_corpus,
    compose,
    find_synth,
    make_prompt,
    render_song,
    sample_prompts,
)
from lab.data.composer import transposed
from lab.data.corpus import drumless_metadata, plan_songs, shifts
from lab.data.mixing import CEILING_DBTP, active_rms_db, true_peak
from lab.evaluation.music import tonal_in_scale_share

SR = 44100


def _synth_or_skip() -> None:
    try:
        find_synth()
    except SynthMissingError as err:
        pytest.skip(f"FluidSynth render not testable here: {err}")


def _note_ons(song_bytes: bytes) -> tuple[list[tuple[str, int, int, int]], float]:
    """(track name, tick, pitch, velocity) of every note-on read back from the MIDI bytes, and
    seconds per tick. Comparing in ticks keeps millisecond rounding out of the equality tests."""
    mid = mido.MidiFile(file=io.BytesIO(song_bytes))
    tempo = next(m.tempo for m in mid.tracks[0] if m.type == "set_tempo")
    out = []
    for track in mid.tracks[1:]:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                out.append((track.name, tick, msg.note, msg.velocity))
    return out, tempo / 1e6 / mid.ticks_per_beat


# --- composer ---------------------------------------------------------------------------------


def test_same_seed_same_midi_different_seed_different_song() -> None:
    a, b = compose(11, "house", 40.0), compose(11, "house", 40.0)
    assert a.midi_bytes() == b.midi_bytes()
    assert a.metadata == b.metadata
    assert compose(12, "house", 40.0).midi_bytes() != a.midi_bytes()
    assert compose(11, None, 40.0).midi_bytes() == compose(11, None, 40.0).midi_bytes()


@pytest.mark.parametrize("genre", sorted(GENRES))
def test_every_genre_composes_a_structured_song(genre: str) -> None:
    song = compose(3, genre, 60.0)
    meta = song.metadata
    assert meta["genre"] == genre and meta["seed"] == 3
    assert {"bass", "chords", "melody"} <= set(song.tracks)
    assert meta["instruments"] and meta["moods"] and re.fullmatch(r"[A-G][b#]? \w+", meta["key"])
    lo, hi = GENRES[genre].bpm
    assert 60 <= lo <= meta["bpm"] <= hi <= 180
    # The structure tiles the song exactly: from 0, section after section, to the last sample.
    starts = [s for _, s, _ in meta["structure"]]
    ends = [e for _, _, e in meta["structure"]]
    assert starts[0] == 0.0 and starts[1:] == ends[:-1]
    assert ends[-1] == pytest.approx(song.length_s, abs=1e-3) == meta["length_s"]
    assert 30.0 <= song.length_s <= 60.0
    assert {name for name, _, _ in meta["structure"]} <= {"intro", "verse", "chorus", "bridge", "outro"}
    # No note may outlive the song: a renderer trims there.
    for track in song.tracks.values():
        assert all(0 <= n.start and n.start + n.length <= song.bars * 4 + 1e-6 for n in track.notes)


def test_tempos_stay_in_each_genres_range() -> None:
    seen: dict[str, set[int]] = {}
    for seed in range(40):
        song = compose(seed, None, 10.0)
        lo, hi = GENRES[song.genre].bpm
        assert lo <= song.bpm <= hi, (song.genre, song.bpm)
        seen.setdefault(song.genre, set()).add(song.bpm)
    assert len(seen) >= 8  # the seed picks genres across the table
    assert any(len(bpms) > 1 for bpms in seen.values())


@pytest.mark.parametrize("seconds", [10.0, 47.0, 120.0, 285.0])
def test_song_length_follows_the_target(seconds: float) -> None:
    for seed in range(8):
        song = compose(seed, None, seconds)
        assert 0.6 * seconds <= song.length_s <= seconds + 1e-6
        assert song.metadata["structure"][-1][2] == pytest.approx(song.length_s, abs=1e-3)


@pytest.mark.parametrize("genre", ["house", "hip hop", "rock", "jazz", "cinematic", "ambient", "funk"])
def test_choruses_repeat(genre: str) -> None:
    """Every chorus has the same notes at the same offsets (read back from the MIDI), apart from
    the drum fill in its last bar, which depends on what follows."""
    checked = 0
    for seed in range(6):
        song = compose(seed, genre, 100.0)
        choruses = [(s, e) for name, s, e in song.metadata["structure"] if name == "chorus"]
        if len(choruses) < 2:
            continue
        events, tick_s = _note_ons(song.midi_bytes())
        fill = 4 * 480 + 30  # the last bar, and the humanised hits that lean into it

        def content(
            start_s: float,
            end_s: float,
            events: list[tuple[str, int, int, int]] = events,
            tick_s: float = tick_s,
            fill: int = fill,
        ) -> Counter[tuple[str, int, int, int]]:
            start, end = round(start_s / tick_s), round(end_s / tick_s)
            return Counter(
                (name, t - start, pitch, vel)
                for name, t, pitch, vel in events
                if start <= t < end and not (name.startswith("drums") and t >= end - fill)
            )

        first = content(*choruses[0])
        assert sum(first.values()) > 0
        for other in choruses[1:]:
            assert content(*other) == first, f"{genre} seed {seed}: chorus at {other[0]:.1f} s differs"
        checked += 1
        if checked == 2:
            break
    assert checked >= 2, f"too few {genre} songs with two choruses to check"


def test_verses_recur_with_variation_not_as_copies() -> None:
    song = compose(5, "rock", 100.0)
    verses = [(s, e) for name, s, e in song.metadata["structure"] if name == "verse"]
    assert len(verses) >= 2
    notes, tick_s = _note_ons(song.midi_bytes())
    events = [(t * tick_s, p) for name, t, p, _ in notes if name.startswith("melody")]
    shapes = [sorted((round((t - s) * 1000), p) for t, p in events if s <= t < e) for s, e in verses]
    assert shapes[0] != shapes[1]
    overlap = len(set(shapes[0]) & set(shapes[1])) / max(1, len(shapes[0]))
    assert overlap > 0.4  # recognisably the same tune


def test_ambient_has_no_drums() -> None:
    for seed in range(6):
        song = compose(seed, "ambient", 45.0)
        assert "drums" not in song.tracks and song.metadata["has_drums"] is False
        mid = mido.MidiFile(file=io.BytesIO(song.midi_bytes()))
        assert not any(m.type == "note_on" and m.channel == 9 for t in mid.tracks for m in t)


def test_drum_genres_put_drums_on_channel_10() -> None:
    song = compose(1, "drum and bass", 30.0)
    mid = mido.MidiFile(file=io.BytesIO(song.midi_bytes(["drums"])))
    channels = {m.channel for t in mid.tracks for m in t if m.type == "note_on"}
    assert channels == {9}


# --- prompts ----------------------------------------------------------------------------------

KEYED = re.compile(r"(?i)\b(genre|bpm|key|instruments|moods): ")


def test_prompts_mix_both_formats_shuffle_and_change_case() -> None:
    meta = compose(4, "house", 60.0).metadata
    rng = random.Random(0)
    prompts = [make_prompt(meta, rng) for _ in range(300)]
    keyed = [p for p in prompts if KEYED.search(p)]
    assert 0.35 < len(keyed) / len(prompts) < 0.65
    assert all("|" in p for p in keyed if p.count(":") > 1)
    plain = [p for p in prompts if not KEYED.search(p)]
    assert any(", " in p for p in plain)
    # List values are shuffled: the instruments appear in more than one order.
    orders = {
        tuple(sorted(meta["instruments"], key=lambda i: p.lower().find(i.lower())))
        for p in prompts
        if all(i.lower() in p.lower() for i in meta["instruments"])
    }
    assert len(orders) > 3
    assert any(p == p.lower() for p in prompts) and any(p != p.lower() for p in prompts)
    assert len(set(prompts)) > 200


def test_prompts_are_deterministic_for_a_given_rng() -> None:
    meta = compose(4, "jazz", 60.0).metadata
    assert sample_prompts(meta, random.Random(9), 20) == sample_prompts(meta, random.Random(9), 20)
    assert sample_prompts(meta, random.Random(9), 20) != sample_prompts(meta, random.Random(10), 20)


def test_stem_prompts_name_the_stem() -> None:
    meta = compose(2, "hip hop", 60.0).metadata
    rng = random.Random(1)
    drums = [make_prompt(meta, rng, stem="drums") for _ in range(100)]
    assert all("drum" in p.lower() for p in drums)
    assert not any(meta["key"].lower() in p.lower() for p in drums)  # a drum stem has no key
    assert any(re.search(r"(?i)instruments: [^|]*drums", p) for p in drums)
    assert any("drums only" in p.lower() for p in drums)
    bass = [make_prompt(meta, rng, stem="bass") for _ in range(50)]
    assert all(meta["stems"]["bass"].lower() in p.lower() for p in bass)


def test_drumless_songs_sometimes_say_so() -> None:
    ambient = compose(0, "ambient", 30.0).metadata
    house = compose(0, "house", 30.0).metadata
    rng = random.Random(3)
    no_drums = re.compile(r"(?i)no drums|without drums|no percussion|beatless")
    said = [p for p in (make_prompt(ambient, rng) for _ in range(200)) if no_drums.search(p)]
    assert 20 < len(said) < 180
    # A house mix with its kit taken out says so more often: the genre alone would promise drums.
    removed = [p for p in (make_prompt(drumless_metadata(house), rng) for _ in range(200)) if no_drums.search(p)]
    assert len(removed) > len(said) + 30
    assert not any("drum" in p.lower() and not no_drums.search(p) for p in removed)
    assert not any(re.search(r"(?i)no drums|without drums|beatless", make_prompt(house, rng)) for _ in range(200))


# --- render -----------------------------------------------------------------------------------


@pytest.mark.parametrize("semitones", [-5, 3, 6])
def test_a_transposed_song_moves_every_pitched_note_and_its_key_not_its_drums(semitones: int) -> None:
    from engine.keys import parse_key, prompt_key

    song = compose(9, "house", 20.0)
    moved = transposed(song, semitones)
    assert moved.tracks["drums"] == song.tracks["drums"]
    for stem, track in song.tracks.items():
        if stem != "drums":
            got = moved.tracks[stem].notes
            assert [n.pitch - semitones for n in got] == [n.pitch for n in track.notes]
            assert [(n.start, n.length, n.velocity) for n in got] == [
                (n.start, n.length, n.velocity) for n in track.notes
            ]
    old, new = parse_key(song.metadata["key"]), parse_key(moved.metadata["key"])
    assert old is not None and new == ((old[0] + semitones) % 12, old[1])
    assert moved.metadata["tonic"] == moved.metadata["key"].split()[0] and moved.metadata["transposed"] == semitones
    assert {k: v for k, v in moved.metadata.items() if k not in ("key", "tonic", "transposed")} == {
        k: v for k, v in song.metadata.items() if k not in ("key", "tonic")
    }
    named = [prompt_key(p) for p in sample_prompts(moved.metadata, random.Random(1), 40)]
    assert new in named and old not in named  # prompts that name a key name the new one


def test_transpositions_are_a_prefix_stable_draw_for_training_songs_only() -> None:
    plans = plan_songs(40, 3, min_seconds=10, max_seconds=20, held_out_fraction=0.3, genres=sorted(GENRES))
    train = [p for p in plans if p.split == "train"]
    assert train and len(train) < len(plans)
    for p in train:
        all11 = shifts(p, 11)
        assert sorted(all11) == [-5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6]  # every other tonic once
        assert shifts(p, 3) == all11[:3] and shifts(p, 0) == []
    assert len({tuple(shifts(p, 2)) for p in train}) > len(train) // 2  # drawn per song
    assert all(shifts(p, 5) == [] for p in plans if p.split != "train")


def test_missing_synth_is_a_typed_actionable_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(SynthMissingError, match="apt-get install"):
        find_synth()
    monkeypatch.undo()
    if shutil.which("fluidsynth"):
        with pytest.raises(SynthMissingError, match="LONGPLAY_SOUNDFONT"):
            find_synth(tmp_path / "missing.sf2")


def test_render_a_short_song() -> None:
    _synth_or_skip()
    song = compose(21, "house", 6.5)
    out = render_song(song, drumless=True)
    n = int(round(song.length_s * SR))
    assert out.sample_rate == SR and out.mix.shape == (2, n) and out.mix.dtype == np.float32
    assert set(out.stems) == set(song.tracks)
    assert all(s.shape == (2, n) and s.dtype == np.float32 for s in out.stems.values())
    rms = float(np.sqrt(np.mean(out.mix**2)))
    assert 20 * np.log10(rms) > -30  # clearly not silent
    assert true_peak(out.mix) <= 10 ** (CEILING_DBTP / 20) * 1.001
    assert not np.allclose(out.mix[0], out.mix[1])  # panned stems make a real stereo image
    # The stems add up to (nearly) the mix: only the master limiter stands between them.
    total = sum(out.stems.values())
    assert np.corrcoef(total.ravel(), out.mix.ravel())[0, 1] > 0.9
    # Drums: sharp rises of the 5 ms envelope, at least one per beat of four-on-the-floor.
    mono = out.stems["drums"].mean(axis=0)
    env = 10 * np.log10(np.mean(mono[: len(mono) // 220 * 220].reshape(-1, 220) ** 2, axis=1) + 1e-12)
    rises = np.flatnonzero(env[2:] - env[:-2] > 9)
    onsets = np.count_nonzero(np.diff(rises) > 10) + 1 if rises.size else 0
    beats = song.length_s / song.seconds_per_beat
    assert onsets >= 0.75 * beats
    # Bass: most of its energy below 300 Hz.
    spectrum = np.abs(np.fft.rfft(out.stems["bass"].mean(axis=0))) ** 2
    freqs = np.fft.rfftfreq(n, 1 / SR)
    assert spectrum[freqs < 300].sum() / spectrum.sum() > 0.6
    assert out.realtime > 0
    # The drumless master: the other stems, not the drums, at the master's loudness.
    assert out.drumless is not None and out.drumless.shape == (2, n)
    others = sum(a for s, a in out.stems.items() if s != "drums")
    corr = lambda a, b: float(np.corrcoef(a.ravel(), b.ravel())[0, 1])  # noqa: E731
    assert corr(out.drumless, others) > 0.9 and abs(corr(out.drumless, out.stems["drums"])) < 0.2
    # As loud as the song, not a quiet sub-mix (same loudness target; the limiter has fewer peaks to take).
    assert 0 <= active_rms_db(out.drumless, SR) - active_rms_db(out.mix, SR) < 6
    assert true_peak(out.drumless) <= 10 ** (CEILING_DBTP / 20) * 1.001
    assert render_song(compose(21, "ambient", 4.0)).drumless is None  # asked only when wanted


# --- corpus -----------------------------------------------------------------------------------


def test_build_corpus_writes_a_resumable_deterministic_folder(tmp_path: Path) -> None:
    import soundfile as sf

    _synth_or_skip()
    out = tmp_path / "corpus"
    kwargs = dict(stems_per_song=1, min_seconds=4.0, max_seconds=8.0, held_out_fraction=0.34)
    summary = build_corpus(out, 3, seed=5, **kwargs)
    assert summary.songs_built == 3 and summary.files_written == 6
    lines = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and len({item["id"] for item in lines}) == 6
    for item in lines:
        info = sf.info(str(out / item["path"]))
        assert (info.samplerate, info.channels, info.format, info.subtype) == (SR, 2, "FLAC", "PCM_24")
        assert info.frames == int(round(item["seconds"] * SR))
        assert item["seconds"] <= 8.0 and len(item["prompts"]) == 3
        assert item["kind"] == "mix" or item["kind"].startswith("stem:")
        assert item["metadata"]["genre"] in GENRES
    by_song: dict[str, set[str]] = {}
    for item in lines:
        by_song.setdefault(item["song_id"], set()).add(item["split"])
    assert all(len(splits) == 1 for splits in by_song.values())  # a song and its stems share a split
    plans = plan_songs(3, 5, min_seconds=4.0, max_seconds=8.0, held_out_fraction=0.34, genres=sorted(GENRES))
    assert {p.song_id: p.split for p in plans} == {s: next(iter(v)) for s, v in by_song.items()}
    assert len({p.genre for p in plans}) == 3

    # Resume: nothing new; then a crash that tore the last song's lines is repaired without a render.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "audio").iterdir()}
    again = build_corpus(out, 3, seed=5, **kwargs)
    assert again.songs_built == 0 and again.files_written == 0
    jsonl = (out / "metadata.jsonl").read_text()
    (out / "metadata.jsonl").write_text(jsonl[: jsonl.rstrip("\n").rfind("\n") + 1] + '{"id": "torn')
    repaired = build_corpus(out, 3, seed=5, **kwargs)
    assert repaired.files_written == 0 and repaired.songs_built == 1
    assert sorted((out / "metadata.jsonl").read_text().splitlines()) == sorted(jsonl.splitlines())
    assert {p.name: p.stat().st_mtime_ns for p in (out / "audio").iterdir()} == before

    with pytest.raises(CorpusBuildError, match="other settings"):
        build_corpus(out, 3, seed=6, **kwargs)

    # --drumless on the finished corpus adds a drumless mix per drummed song and touches nothing else.
    drummed = [item for item in lines if item["kind"] == "mix" and item["metadata"]["has_drums"]]
    assert drummed
    more = build_corpus(out, 3, seed=5, drumless=True, **kwargs)
    assert more.files_written == len(drummed) and more.songs_built == len(drummed)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "audio").iterdir() if p.name in before} == before
    new = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()][len(lines) :]
    assert sorted(item["id"] for item in new) == sorted(f"{item['id']}-nodrums" for item in drummed)
    for item in new:
        meta = item["metadata"]
        assert item["kind"] == "mix:nodrums" and not meta["has_drums"] and meta["drums_removed"]
        assert "drums" not in meta["stems"] and set(meta["instruments"]) == set(meta["stems"].values())
        assert sf.info(str(out / item["path"])).frames == int(round(item["seconds"] * SR))
    assert build_corpus(out, 3, seed=5, drumless=True, **kwargs).songs_built == 0
    with pytest.raises(CorpusBuildError, match="drumless True → False"):
        build_corpus(out, 3, seed=5, **kwargs)  # half the songs would lack theirs

    # --transpose on the finished corpus adds moved mixes of the training songs and nothing else.
    before = {p.name: p.stat().st_mtime_ns for p in (out / "audio").iterdir()}
    count = len((out / "metadata.jsonl").read_text().splitlines())
    mixes = {item["song_id"]: item for item in lines if item["kind"] == "mix"}
    train = [p for p in plans if p.split == "train"]
    build_corpus(out, 3, seed=5, drumless=True, transpose=2, **kwargs)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "audio").iterdir() if p.name in before} == before
    new = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()][count:]
    assert sorted(item["id"] for item in new) == sorted(f"{p.song_id}-t{k:+d}" for p in train for k in shifts(p, 2))
    for item in new:
        source = mixes[item["song_id"]]
        k = item["metadata"]["transposed"]
        assert item["kind"] == "mix:transposed" and item["split"] == "train" and item["seconds"] == source["seconds"]
        tonic, mode = parse_key(source["metadata"]["key"]) or (0, "")
        assert parse_key(item["metadata"]["key"]) == ((tonic + k) % 12, mode)
        audio, _ = sf.read(str(out / item["path"]), always_2d=True)
        original, _ = sf.read(str(out / source["path"]), always_2d=True)
        assert audio.shape == original.shape
        # The audio moved with the key: more of its tonal energy on the new scale than on the old.
        moved_key, old_key = scale_of(((tonic + k) % 12, mode)), scale_of((tonic, mode))
        if moved_key != old_key and source["metadata"]["stems"].keys() - {"drums"}:
            share = tonal_in_scale_share(audio.T.astype(np.float32), SR, moved_key)
            assert share is not None and share > (tonal_in_scale_share(audio.T.astype(np.float32), SR, old_key) or 0)
    assert build_corpus(out, 3, seed=5, drumless=True, transpose=2, **kwargs).songs_built == 0
    with pytest.raises(CorpusBuildError, match="transpose 2 → 1"):
        build_corpus(out, 3, seed=5, drumless=True, transpose=1, **kwargs)
    with pytest.raises(CorpusBuildError, match="transpose must be between 0 and 11"):
        build_corpus(out, 3, seed=5, transpose=12, **kwargs)
