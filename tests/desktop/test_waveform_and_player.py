"""Peaks per pixel, computed once off the GUI thread; the waveform view; playback that fails soft."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QDrag

from desktop.player import Player, sounddevice_stream
from desktop.waveform import PeakCache, WaveformView, bin_peaks

from .conftest import StreamFactory, write_wav


@pytest.mark.parametrize("width", [1, 7, 100, 4096, 5000])
def test_binned_peaks_keep_every_extreme(width: int) -> None:
    rng = np.random.default_rng(0)
    lo = rng.uniform(-1, 0, size=(2, 4096)).astype(np.float32)
    peaks = np.stack([lo, lo + rng.uniform(0, 1, size=lo.shape).astype(np.float32)], axis=-1)  # [2, 4096, 2]
    out = bin_peaks(peaks, width)
    assert out.shape == (2, width, 2)
    # The overall min and max survive any width; each pixel's range lies within the data's.
    assert np.allclose(out[..., 0].min(axis=1), peaks[..., 0].min(axis=1))
    assert np.allclose(out[..., 1].max(axis=1), peaks[..., 1].max(axis=1))
    assert (out[..., 0] <= out[..., 1]).all()


def test_peaks_are_computed_once_off_the_gui_thread_and_cached(tmp_path: Path, qtbot: Any) -> None:
    wav = str(write_wav(tmp_path / "a.wav", seconds=1.0))
    cache = PeakCache()
    assert cache.get(wav) is None and cache.pending == 1  # asked for: computing in the background
    with qtbot.waitSignal(cache.ready, timeout=30_000) as ready:
        pass
    assert ready.args == [wav]
    peaks = cache.get(wav)
    assert peaks is not None and peaks.frames == 44100 and peaks.peaks.shape == (2, 4096, 2)
    assert peaks.peaks[..., 1].max() == pytest.approx(0.5, abs=1e-3)
    assert cache.get(wav) is peaks and cache.computed == 1


def test_unreadable_files_give_a_reason_instead_of_peaks(tmp_path: Path, qtbot: Any) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("not audio")
    cache = PeakCache()
    with qtbot.waitSignal(cache.failed, timeout=30_000):
        cache.get(str(bad))
    view = WaveformView(cache)
    qtbot.addWidget(view)
    view.set_path(str(bad))
    assert "not an audio file Longplay can read" in view.message()


def test_waveform_view_draws_seeks_and_drags_the_file(tmp_path: Path, qtbot: Any, monkeypatch: Any) -> None:
    wav = str(write_wav(tmp_path / "b.wav", seconds=2.0))
    cache = PeakCache()
    view = WaveformView(cache)
    qtbot.addWidget(view)
    view.resize(412, 120)
    view.show()
    view.set_path(wav)
    qtbot.waitUntil(lambda: view.peaks is not None, timeout=30_000)
    image = view.grab().toImage()
    row = [image.pixelColor(x, 33).blue() for x in range(20, 390)]
    assert max(row) > 150  # the tone's envelope is drawn in the upper lane
    view.set_position(1.0)
    view.grab()

    with qtbot.waitSignal(view.seek_requested) as seek:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(view.width() // 2, 40))
    assert seek.args[0] == pytest.approx(1.0, abs=0.05)

    dragged: list[list[str]] = []
    monkeypatch.setattr(
        QDrag,
        "exec",
        lambda self, *a: dragged.append([u.toLocalFile() for u in self.mimeData().urls()]) or Qt.DropAction.CopyAction,
    )
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=QPoint(100, 40))
    qtbot.mouseMove(view, QPoint(160, 40))
    assert dragged == [[str(Path(wav).resolve())]]


def _loaded_player(tmp_path: Path, qtbot: Any, streams: StreamFactory, seconds: float = 0.1) -> Player:
    player = Player(stream_factory=streams)
    player.play(str(write_wav(tmp_path / "p.wav", seconds=seconds)))
    qtbot.waitUntil(lambda: player.playing, timeout=30_000)
    return player


def test_playback_copies_blocks_stops_at_the_end_and_seeks(tmp_path: Path, qtbot: Any, streams: StreamFactory) -> None:
    player = _loaded_player(tmp_path, qtbot, streams)  # 4410 frames
    stream = streams.streams[-1]
    assert stream.started and (stream.sample_rate, stream.channels) == (44100, 2)
    block = stream.pull(1024)
    assert np.array_equal(block, player.audio[:1024]) and player.position == pytest.approx(1024 / 44100)
    player.seek(0.09)
    stream.pull(1024)
    tail = stream.pull(1024)
    assert not np.isnan(tail).any() and (tail == 0).all()  # past the end: silence, then it stops
    qtbot.waitUntil(lambda: not player.playing, timeout=5_000)
    assert stream.closed and player.position == 0.0


def test_looping_wraps_around(tmp_path: Path, qtbot: Any, streams: StreamFactory) -> None:
    player = _loaded_player(tmp_path, qtbot, streams)
    player.set_loop(True)
    stream = streams.streams[-1]
    for _ in range(6):  # 6144 frames from a 4410-frame file
        block = stream.pull(1024)
    assert player.playing and player._pos == 6 * 1024 - 4410
    assert np.array_equal(block, player.audio[player._pos - 1024 : player._pos])  # wrapped in block 5
    player.toggle(player.path)
    assert not player.playing


def test_no_audio_device_is_a_message_not_a_crash(tmp_path: Path, qtbot: Any) -> None:
    def no_device(*_: Any) -> Any:
        raise RuntimeError("no audio output device (Error querying device -1)")

    player = Player(stream_factory=no_device)
    player.play(str(write_wav(tmp_path / "q.wav")))
    qtbot.waitUntil(lambda: bool(player.message), timeout=30_000)
    assert "Playback is off: no audio output device" in player.message and not player.playing


def test_the_real_stream_factory_fails_soft_without_a_device() -> None:
    import sounddevice as sd

    try:
        sd.query_devices(kind="output")
    except Exception:  # noqa: BLE001 - no device: the case this test is about
        with pytest.raises(RuntimeError, match="no audio output"):
            sounddevice_stream(44100, 2, lambda *a: None)
    else:
        pytest.skip("this machine has an audio output device")
