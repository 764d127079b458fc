"""Longplay inside a real DAW: Ardour's headless Lua session host (`ardour7-lua`, Dummy backend, no
sound card or display) runs the Ardour script's core (`resources/daw/longplay_ardour.lua`, through
`longplay_ardour_headless.lua`) against `longplay serve` on the embedded model. The script reads
the session's tempo and meter at the range, sends the request over OSC, waits for the file and
places it on a new track at the range's start; Ardour then opens the saved session again, finds
and reads the file, and saves it. The saved `.ardour` XML must hold the region at the range's
start, exactly as long as the bars asked for.

`make apt` installs Debian's `ardour` (it ships `ardour7-lua`); where Ardour cannot be installed
(no apt-get, not root) the test is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "resources" / "daw" / "longplay_ardour.lua"
HEADLESS = ROOT / "resources" / "daw" / "longplay_ardour_headless.lua"
ARDOUR_LUA = "ardour7-lua"
RATE = 44100  # the session's rate is the files' rate: Ardour places them unresampled
WAIT = 60.0  # for a process to start or stop
# A render's liveness bound, not a speed target (a render here takes ~4 s): a busy CI box once took
# over 50 s, and a bound that tight only tests the box.
RENDER_WAIT = 300


def _ardour_lua() -> str:
    path = shutil.which(ARDOUR_LUA)
    if path is not None:
        return path
    if shutil.which("apt-get") is None:
        pytest.skip(f"{ARDOUR_LUA} not found and no apt-get here to install Debian's ardour")
    if os.geteuid() != 0:
        pytest.skip(f"{ARDOUR_LUA} not found; `sudo make apt` installs Debian's ardour (not root here)")
    pytest.fail(f"{ARDOUR_LUA} not found: `make apt` installs Debian's ardour (`make test` runs it first)")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """`longplay serve -v` on a free loopback port with the embedded model -> (port, out folder).

    Its log (every request, and why one failed) is `serve.log` beside `out`; `_run` shows it on failure.
    """
    out, log = tmp_path / "out", (tmp_path / "serve.log").open("w")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge.cli", "serve", "-v", "--osc-port", "0", "--out", str(out), "--device", "cpu"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], WAIT)
        line = proc.stdout.readline() if ready else ""
        match = re.search(r"OSC on udp://127\.0\.0\.1:(\d+)", line)
        assert match, f"serve did not start: {line!r}; log: {(tmp_path / 'serve.log').read_text()}"
        yield int(match.group(1)), out
    finally:
        proc.terminate()
        proc.wait(WAIT)
        log.close()


def _run(ardour_lua: str, *args: str, script: Path = HEADLESS, serve_log: Path | None = None) -> str:
    done = subprocess.run(
        [ardour_lua, str(script), *args],
        capture_output=True,
        text=True,
        timeout=RENDER_WAIT + WAIT,
        cwd=ROOT,
        check=False,
    )
    server = f"\nserve.log:\n{serve_log.read_text()}" if serve_log is not None and serve_log.exists() else ""
    assert done.returncode == 0, f"{ARDOUR_LUA} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}{server}"
    return done.stdout


def _samples(value: str, superclocks: int) -> tuple[int, int]:
    """Ardour 7's audio-time `length="a<len>@a<pos>"` (superclock ticks) -> (length, position) in samples."""
    match = re.fullmatch(r"a(\d+)@a(\d+)", value)
    assert match, value
    length, position = (int(g) * RATE for g in match.groups())
    assert length % superclocks == 0 and position % superclocks == 0, value
    return length // superclocks, position // superclocks


def test_ardour_places_a_bar_exact_render_at_the_range(serve: tuple[int, Path], tmp_path: Path) -> None:
    ardour_lua = _ardour_lua()
    port, out = serve
    session = tmp_path / "song"
    # 3/4 at 100 BPM, a range of 3 bars from bar 3: the file starts 2 bars in (3.6 s) and lasts 5.4 s.
    bpm, beats_per_bar, start_bar, bars = 100, 3, 3, 3
    log = _run(
        ardour_lua,
        f"session={session}",
        "prompt=warm pads",
        f"out={out}",
        f"port={port}",
        f"bpm={bpm}",
        f"meter={beats_per_bar}/4",
        f"rate={RATE}",
        f"start_bar={start_bar}",
        f"bars={bars}",
        "steps=4",
        "seed=7",
        f"timeout={RENDER_WAIT}",
        serve_log=tmp_path / "serve.log",
    )
    log += _run(ardour_lua, f"session={session}", "reload=1")  # Ardour opens it again, reads the file, saves

    bar = beats_per_bar * 60 / bpm * RATE
    start, length = round((start_bar - 1) * bar), round(bars * bar)
    root = ET.parse(session / "song.ardour").getroot()
    assert root.get("sample-rate") == str(RATE)
    tempo_map = root.find("TempoMap")
    assert tempo_map is not None
    superclocks = int(tempo_map.get("superclocks-per-second", ""))

    [wav] = out.glob("*.wav")
    assert sf.info(str(wav)).frames == length and sf.info(str(wav)).samplerate == RATE
    recipe = json.loads(wav.with_suffix(".json").read_text())
    assert (recipe["bpm"], recipe["bars"], recipe["beats_per_bar"]) == (bpm, bars, beats_per_bar)

    # A new track (besides Master), its playlist holding exactly the render at the range's start.
    routes = [r for r in root.iter("Route") if r.get("name") != "Master"]
    assert [r.get("name") for r in routes] == [wav.stem], log
    playlist = next(p for p in root.iter("Playlist") if p.get("id") == routes[0].get("audio-playlist"))
    [region] = playlist.findall("Region")
    assert _samples(region.get("length", ""), superclocks) == (length, start), log
    sources = {s.get("id"): s for s in root.iter("Source")}
    assert {sources[region.get(f"source-{c}")].get("name") for c in (0, 1)} == {wav.name}
    assert f"file {wav}, peak" in log  # Ardour found the file and read its audio (peak > 0 checked)

    # The range the script read is the one saved with the session.
    [marker] = [loc for loc in root.iter("Location") if loc.get("name") == "longplay"]
    first, last = (int(marker.get(k, "a")[1:]) * RATE // superclocks for k in ("start", "end"))
    assert (first, last - first) == (start, length)


# The editor action itself, in ardour7-lua with the GUI's objects stubbed (Editor, LuaDialog and
# Editing exist only in Ardour's GUI): a real session and tempo map, a range selected from bar 2 to
# bar 4, the dialog answered with its own defaults, Editor:do_import recorded.
GUI_STUB = r"""
local session, out, port = arg[1], arg[2], arg[3]
AudioEngine:set_backend ("None (Dummy)", "", "")
create_session (session, "gui", 44100)
local tm = Temporal.TempoMap.fetch_writable ()
tm:set_tempo (Temporal.Tempo (120, 120, 4), Temporal.timepos_t (0))
Temporal.TempoMap.update (tm)
tm = Temporal.TempoMap.read ()
local function bar (n) return tm:sample_at_beats (tm:quarters_at_bbt (Temporal.BBT_TIME (n, 1, 0))) end
local range = { start_sample = function () return bar (2) end, end_sample = function () return bar (4) end }
Editor = {
  get_selection = function () return { time = range } end,
  do_import = function (_, files, _, mode, _, _, _, pos)
    print (string.format ("do_import %s at %d as %s", files:at (0), pos:samples (), mode))
  end,
}
Editing = { ImportDistinctFiles = "distinct", ImportAsTrack = "track" }
LuaDialog = {
  Dialog = function (_, fields) return { run = function ()
    local rv = {}
    for _, f in ipairs (fields) do if f.key then rv[f.key] = f.default or f.path end end
    rv.prompt, rv.seed = "warm pads", 3
    print (string.format ("dialog bars=%d out=%s port=%d", rv.bars, rv.out, rv.port))
    return rv
  end } end,
  ProgressWindow = function () return { progress = function () return false end, done = function () end } end,
  Message = function (_, text) return { run = function () print ("message " .. text) end } end,
  MessageType = {}, ButtonType = {},
}
ardour = function () end
dofile (ACTION)
factory ({ host = "127.0.0.1", port = port, out = out }) ()
close_session ()
"""


def test_ardour_action_imports_at_the_selected_range(serve: tuple[int, Path], tmp_path: Path) -> None:
    ardour_lua = _ardour_lua()
    port, out = serve
    stub = tmp_path / "gui_stub.lua"
    stub.write_text(GUI_STUB.replace("ACTION", json.dumps(str(ACTION))))
    log = _run(ardour_lua, str(tmp_path / "gui"), str(out), str(port), script=stub, serve_log=tmp_path / "serve.log")
    bar = 4 * 60 / 120 * RATE  # 4/4 at 120 BPM: 88,200 samples a bar
    assert f"dialog bars=2 out={out} port={port}" in log, log  # the range's 2 bars, the action's params
    [wav] = out.glob("*.wav")
    assert f"do_import {wav} at {round(bar)} as track" in log, log  # a new track at the range's start
    assert sf.info(str(wav)).frames == round(2 * bar)


def test_ardour_script_refuses_a_tempo_longplay_cannot_play(tmp_path: Path) -> None:
    """The script cannot hear `/longplay/error`, so it refuses what the server would, at once."""
    done = subprocess.run(
        [
            _ardour_lua(),
            str(HEADLESS),
            f"session={tmp_path / 'fast'}",
            "prompt=speedcore",
            f"out={tmp_path / 'out'}",
            "port=9",
            "bpm=310",
            "start_bar=1",
            "bars=1",
        ],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 1, done
    assert "Longplay plays 20-300 beats of the bar a minute; the session has 310 here" in done.stderr
