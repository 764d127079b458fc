"""Playback through sounddevice, behind a small service that fails soft.

The audio callback only copies frames out of the decoded buffer (friture's rule: no allocation,
no locks, no Python objects made per block beyond numpy views); the GUI pulls the play position
on a QTimer. Where there is no audio device (or no PortAudio) ``message`` says so and nothing
crashes; the file can still be dragged into a DAW.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from bridge.media import load_audio

from .workers import run_task

log = logging.getLogger("longplay.desktop")

BLOCK = 1024  # frames per callback: ~23 ms at 44.1 kHz


class Stream(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


StreamFactory = Callable[[int, int, Callable[..., None]], Stream]


def sounddevice_stream(sample_rate: int, channels: int, callback: Callable[..., None]) -> Stream:
    """An output stream on the default device. Raises ``RuntimeError`` with a readable reason."""
    try:
        import sounddevice as sd  # type: ignore[import-untyped]
    except OSError as err:  # the PortAudio library itself is missing
        raise RuntimeError(f"no audio output: PortAudio is not installed ({err})") from None
    try:
        stream: Stream = sd.OutputStream(
            samplerate=sample_rate, channels=channels, dtype="float32", blocksize=BLOCK, callback=callback
        )
    except Exception as err:  # noqa: BLE001 - PortAudioError, ValueError: all mean "cannot play here"
        raise RuntimeError(f"no audio output device ({' '.join(str(err).split()) or type(err).__name__})") from None
    return stream


class Player(QObject):
    """Plays one file at a time. ``toggle(path)`` is Space; ``seek`` works while playing."""

    state_changed = Signal()  # playing / path / loop / message changed
    position_changed = Signal(float)  # seconds, while playing (~30 per second)

    def __init__(self, stream_factory: StreamFactory = sounddevice_stream, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.stream_factory = stream_factory
        self.path = ""
        self.loop = False
        self.message = ""
        self.audio: np.ndarray | None = None  # [N, C] float32, the layout the callback writes
        self.sample_rate = 0
        self._pos = 0  # next frame to play; written by the callback and by seek (ints: atomic under the GIL)
        self._stream: Stream | None = None
        self._finished = False
        self._want_play = False
        self._timer = QTimer(self)
        self._timer.setInterval(33)
        self._timer.timeout.connect(self._poll)

    # ------------------------------------------------------------------ state
    @property
    def playing(self) -> bool:
        return self._stream is not None

    @property
    def position(self) -> float:
        return self._pos / self.sample_rate if self.sample_rate else 0.0

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate if self.audio is not None and self.sample_rate else 0.0

    def set_loop(self, loop: bool) -> None:
        if loop != self.loop:
            self.loop = loop
            self.state_changed.emit()

    def _set_message(self, text: str) -> None:
        if text != self.message:
            self.message = text
            self.state_changed.emit()

    # ------------------------------------------------------------------ control
    def toggle(self, path: str) -> None:
        if self.playing or self._want_play:
            self.stop()
        else:
            self.play(path)

    def play(self, path: str) -> None:
        """Play ``path`` from the current position (from the start for a new file); the file is
        decoded off the GUI thread first."""
        if not path:
            return
        if path != self.path or self.audio is None:
            self.stop()
            self.path, self.audio, self._pos, self._want_play = path, None, 0, True
            self.state_changed.emit()
            run_task(lambda: load_audio(path), lambda r, e: self._loaded(path, r, e))
            return
        self._start()

    def _loaded(self, path: str, result: tuple[np.ndarray, int] | None, error: BaseException | None) -> None:
        if path != self.path:
            return  # another file was asked for meanwhile
        if result is None:
            self._want_play = False
            self._set_message(f"Cannot play {path.rsplit('/', 1)[-1]}: {error}")
            return
        audio, sr = result
        self.audio = np.ascontiguousarray(audio.T, dtype=np.float32)  # [N, C]
        self.sample_rate = sr
        if self._want_play:
            self._start()

    def _start(self) -> None:
        self._want_play = False
        if self.audio is None or self.playing:
            return
        if self._pos >= len(self.audio):
            self._pos = 0
        self._finished = False
        try:
            stream = self.stream_factory(self.sample_rate, self.audio.shape[1], self._callback)
            stream.start()
        except Exception as err:  # noqa: BLE001 - any failure to open a device is a message, not a crash
            log.info("playback unavailable: %s", err)
            self._set_message(f"Playback is off: {err}. Drag the file into your DAW to hear it.")
            return
        self._stream = stream
        self.message = ""
        self._timer.start()
        self.state_changed.emit()

    def stop(self) -> None:
        self._want_play = False
        stream, self._stream = self._stream, None
        self._timer.stop()
        if stream is not None:
            try:
                stream.stop()
                stream.close()
            except Exception as err:  # noqa: BLE001 - a device that vanished mid-play
                log.info("closing the audio stream: %s", err)
            self.state_changed.emit()

    def seek(self, seconds: float) -> None:
        if self.audio is None or not self.sample_rate:
            return
        self._pos = int(np.clip(seconds * self.sample_rate, 0, len(self.audio)))
        self.position_changed.emit(self.position)

    def unload(self, path: str) -> None:
        """Forget ``path`` (it was deleted)."""
        if path == self.path:
            self.stop()
            self.path, self.audio, self._pos = "", None, 0
            self.state_changed.emit()

    # ------------------------------------------------------------------ the audio thread
    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        """PortAudio's thread: copy the next ``frames`` frames; wrap when looping."""
        audio = self.audio
        if audio is None:
            outdata.fill(0)
            return
        pos, n, written = self._pos, len(audio), 0
        while written < frames:
            take = min(frames - written, n - pos)
            if take > 0:
                outdata[written : written + take] = audio[pos : pos + take]
                written += take
                pos += take
            if pos >= n:
                if self.loop and n > 0:
                    pos = 0
                    continue
                outdata[written:].fill(0)
                self._finished = True
                break
        self._pos = pos

    def _poll(self) -> None:
        self.position_changed.emit(self.position)
        if self._finished:
            self.stop()
            self._pos = 0
            self.position_changed.emit(0.0)
