"""`longplay eval` wiring: arguments reach `lab.run_eval`, engine errors become one-line failures."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import BridgeError
from bridge.eval_cli import add_eval_parser, run_eval_command


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="longplay")
    add_eval_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_eval_arguments_reach_run_eval(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = pytest.importorskip("lab")
    seen: dict[str, Any] = {}

    def fake(model: str, corpus: str, out: str, quick: bool = False, **kw: Any) -> dict[str, Any]:
        seen.update(model=model, corpus=corpus, out=out, quick=quick)
        kw["log"]("working")
        return {}

    monkeypatch.setattr(lab, "run_eval", fake)
    args = _parse(["eval", "tiny", "--corpus", "c", "--out", str(tmp_path), "--quick"])
    assert run_eval_command(args) == 0
    assert seen == {"model": "tiny", "corpus": "c", "out": str(tmp_path), "quick": True}
    captured = capsys.readouterr()
    assert captured.out.strip() == str(tmp_path / "eval.md") and "working" in captured.err


def test_engine_errors_become_bridge_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = pytest.importorskip("engine")
    lab = pytest.importorskip("lab")

    def broken(*a: Any, **kw: Any) -> dict[str, Any]:
        raise engine.ModelLoadError("model 'nope' not found")

    monkeypatch.setattr(lab, "run_eval", broken)
    with pytest.raises(BridgeError, match="nope"):
        run_eval_command(_parse(["eval", "nope", "--corpus", "c", "--out", "o"]))
    assert _parse(["eval", "m", "--corpus", "c", "--out", "o"]).quick is False
