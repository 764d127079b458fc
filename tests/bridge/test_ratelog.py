"""The rate-limited log: a flood of one warning becomes one line per interval with a count."""

from __future__ import annotations

import logging

import pytest

from bridge.ratelog import RateLimitedLog

LOGGER = "longplay.test.ratelog"


def _messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_repeats_inside_the_interval_are_counted_and_reported_with_the_next_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    log = RateLimitedLog(logging.getLogger(LOGGER), interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for i in range(413):
            now[0] += 0.01
            log.warning("malformed", "malformed packet %d", i)
        log.warning("unknown", "unknown address")  # another key is not held back by the first
        now[0] += 10.0
        log.warning("malformed", "malformed packet %d", 413)
    assert _messages(caplog) == [
        "malformed packet 0",
        "unknown address",
        "malformed packet 413 (… 412 more suppressed)",
    ]


def test_flush_reports_what_is_still_held_back_and_levels_are_kept(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger(LOGGER), interval=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for _ in range(5):
            log.info("refused", "refused %s", "x")
        log.flush()
        log.flush()  # nothing left: no second line
    assert _messages(caplog) == ["refused x", "… 4 more suppressed: refused x"]
    assert {r.levelno for r in caplog.records if r.name == LOGGER} == {logging.INFO}


def test_keys_are_bounded(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger(LOGGER), interval=10.0, max_keys=4, clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for i in range(1000):  # e.g. one key per spoofed source address
            log.warning(f"host-{i}", "from host %d", i)
    assert len(log) <= 5
    assert len(_messages(caplog)) <= 5


def test_exceptions_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    log = RateLimitedLog(logging.getLogger(LOGGER), interval=10.0, clock=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        try:
            raise KeyError("boom")
        except KeyError:
            log.exception("bug", "handler failed")
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.ERROR and record.exc_info is not None
