"""Audio-to-audio hears its source at every door (issue 20, engine/groove.py): the CLI's
`--init-audio`, OSC `/longplay/transform` and the drop folder all record the tempo and phase the
source was heard at, and longplay-mini plays on the source's grid, keeping its hits."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from bridge.dropfolder import DropFolder
from bridge.naming import sidecar_path
from bridge.osc import OscServer
from bridge.queue import JobQueue

from .conftest import Client, wait_for

pytest.importorskip("librosa")
pytest.importorskip("mir_eval")

SR = 44100
BPM = 133.0  # no genre's default and no tempo the prompt names: only the source can give it
LEAD_IN = 0.12


def click_take(path: Path, bpm: float = BPM, seconds: float = 8.0, lead_in: float = LEAD_IN) -> np.ndarray:
    """A drum-machine take (kick on the beats, a noise hat on the off-beats) -> its onset times."""
    rng = np.random.default_rng(0)
    n = int(seconds * SR)
    out = np.zeros(n, dtype=np.float32)
    times = np.arange(lead_in, seconds - 0.05, 30.0 / bpm)
    for k, t in enumerate(times):
        i = int(round(t * SR))
        m = min(n - i, int(0.15 * SR))
        env = np.exp(-np.arange(m) / (0.03 * SR))
        if k % 2 == 0:
            hit = np.sin(2 * np.pi * 60 * np.arange(m) / SR) * env * (1.0 if k % 8 == 0 else 0.7)
            hit[:88] += rng.uniform(-0.5, 0.5, 88)
        else:
            hit = rng.uniform(-0.3, 0.3, m) * env**3
        out[i : i + m] += hit.astype(np.float32)
    out *= 0.5 / np.abs(out).max()
    sf.write(str(path), np.stack([out, out]).T, SR)
    return times


def test_the_cli_plays_on_the_source_grid_and_keeps_its_hits(tmp_path: Path) -> None:
    from bridge.cli import main
    from engine.beats import hear
    from lab.evaluation import music

    onsets = click_take(tmp_path / "take.wav")
    out = tmp_path / "drums.wav"
    argv = ["generate", "drums", "--init-audio", str(tmp_path / "take.wav"), "--seed", "1"]
    assert main([*argv, "--model", "longplay-mini", "--loudness", "off", "--out", str(out)]) == 0
    recipe = json.loads(out.with_suffix(".json").read_text())
    heard = recipe["source_tempo"]
    assert abs(heard["bpm"] / BPM - 1) < 0.01 and recipe["grid_bpm"] == pytest.approx(heard["bpm"], abs=1e-3)
    beat = 60 / BPM
    assert min((heard["first_downbeat_s"] - LEAD_IN) % beat, -(heard["first_downbeat_s"] - LEAD_IN) % beat) < 0.03
    audio, sr = sf.read(str(out), always_2d=True)
    played = hear(audio.T, sr, bpm_hint=BPM)
    assert played is not None and abs(played.bpm / BPM - 1) < 0.01  # the output's tempo: the take's
    f1 = music.onset_f_measure(onsets, music.detect_onsets(audio.T, sr)).f_measure
    # Its hits where the take's are (librosa's detector, +-50 ms). longplay-mini v1 passed 0.8 here;
    # v2's codec writes softer onsets: 0.66 (the held-out beatbox set: 0.886 -> 0.739; its model
    # card). Not hearing the source (`GrooveSettings(listen=False)`) scores 0.51 here.
    assert f1 >= 0.6, f1


def test_osc_transform_and_the_drop_folder_hear_the_source(
    make_queue: Callable[..., JobQueue], client_for: Callable[[OscServer], Client], tmp_path: Path
) -> None:
    click_take(tmp_path / "take.wav", seconds=4.0)
    queue = make_queue(model="longplay-mini")
    server = OscServer(queue, "127.0.0.1", 0)
    server.start()
    folder = DropFolder(queue, tmp_path / "drop", interval=0.05, default_prompt="drums")
    try:
        c = client_for(server)
        c.send("/longplay/transform", "g1", str(tmp_path / "take.wav"), 0.7, "prompt", "drums", "steps", 4)
        got = c.recv_until("g1")
        [file] = [args for a, args in got if a == "/longplay/file"]
        recipe = json.loads(sidecar_path(Path(file[2])).read_text())
        assert abs(recipe["source_tempo"]["bpm"] / BPM - 1) < 0.01 and recipe["grid_bpm"] is not None

        folder.start()
        (folder.inbox / "take.wav").write_bytes((tmp_path / "take.wav").read_bytes())
        status = wait_for(lambda: list(folder.outbox.glob("take-*.status")), what="a status file")[0]
        state = wait_for(
            lambda: (s := json.loads(status.read_text()))["state"] in ("done", "failed") and s, what="done"
        )
        assert state["state"] == "done", state
        recipe = json.loads(sidecar_path(Path(state["files"][0])).read_text())
        assert abs(recipe["source_tempo"]["bpm"] / BPM - 1) < 0.01
    finally:
        folder.stop()
        server.stop()
