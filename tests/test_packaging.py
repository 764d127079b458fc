"""packaging/: the per-user install a producer runs once, and its undo.

The install runs against this checkout's own environment (`--venv`), so no pip is involved; the
files it writes, the links it makes and the desktop entry are what is checked, and that
`--uninstall` takes back exactly what the install put there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "packaging" / "install.sh"


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def home(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LONGPLAY_", "XDG_"))}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_DATA_HOME=str(tmp_path / "home" / ".local" / "share"),
        LONGPLAY_BIN_DIR=str(tmp_path / "home" / ".local" / "bin"),
    )
    (tmp_path / "home").mkdir()
    return env


def _entry(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    assert lines[0] == "[Desktop Entry]"
    return dict(line.split("=", 1) for line in lines[1:] if line and not line.startswith("#"))


def test_install_puts_the_app_in_reach_and_uninstall_takes_it_back(home: dict[str, str], tmp_path: Path) -> None:
    venv = Path(sys.prefix)  # this checkout's environment, which has longplay installed
    data, bin_dir = Path(home["XDG_DATA_HOME"]), Path(home["LONGPLAY_BIN_DIR"])
    renders = Path(home["HOME"]) / "Music" / "Longplay"
    renders.mkdir(parents=True)
    (renders / "keep.wav").write_bytes(b"RIFF")
    own_model = data / "longplay" / "models" / "my-model"
    own_model.mkdir(parents=True)

    done = _run("--venv", str(venv), env=home)
    assert done.returncode == 0, done.stderr
    assert "Longplay installed" in done.stdout
    for exe in ("longplay", "longplay-app"):
        link = bin_dir / exe
        assert link.is_symlink() and link.resolve() == (venv / "bin" / exe).resolve()

    # The menu entry starts the installed app and names an installed icon.
    entry_path = data / "applications" / "longplay.desktop"
    entry = _entry(entry_path)
    assert entry["Exec"] == str(bin_dir / "longplay-app") and entry["Icon"] == "longplay"
    assert entry["Type"] == "Application" and entry["Terminal"] == "false"
    icon = data / "icons" / "hicolor" / "scalable" / "apps" / "longplay.svg"
    assert ET.parse(icon).getroot().tag.endswith("svg")
    if shutil.which("desktop-file-validate"):
        check = subprocess.run(["desktop-file-validate", str(entry_path)], capture_output=True, text=True)
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout

    # The installed `longplay` finds longplay-mini in the user data dir, with the checkout's
    # own models hidden: an install does not depend on the checkout.
    empty = tmp_path / "no-builtin"
    empty.mkdir()
    listed = subprocess.run(
        [str(bin_dir / "longplay"), "models"],
        env={**home, "LONGPLAY_BUILTIN_MODELS": str(empty)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert str(data / "longplay" / "models" / "longplay-mini") in listed.stdout
    assert (data / "longplay" / "daw" / "longplay_client.py").is_file()

    again = _run("--venv", str(venv), env=home)  # an update: the same files, no error
    assert again.returncode == 0, again.stderr

    gone = _run("--uninstall", env=home)
    assert gone.returncode == 0, gone.stderr
    assert not entry_path.exists() and not icon.exists() and not (bin_dir / "longplay").exists()
    assert not (data / "longplay" / "models" / "longplay-mini").exists() and not (data / "longplay" / "daw").exists()
    assert (renders / "keep.wav").is_file() and own_model.is_dir()  # the user's own files stay
    assert venv.is_dir()  # an environment the install was given is not the install's to remove
    assert "not installed" in _run("--uninstall", env=home).stdout


def test_install_refuses_what_it_cannot_do(home: dict[str, str], tmp_path: Path) -> None:
    bad = _run("--frobnicate", env=home)
    assert bad.returncode == 2 and "unknown option '--frobnicate'" in bad.stderr
    no_longplay = tmp_path / "empty-venv"
    (no_longplay / "bin").mkdir(parents=True)
    bad = _run("--venv", str(no_longplay), env=home)
    assert bad.returncode == 2 and "has no longplay" in bad.stderr
    assert not Path(home["XDG_DATA_HOME"]).exists()  # refused before anything was written
    # A file of the user's own where a link would go is not overwritten.
    bin_dir = Path(home["LONGPLAY_BIN_DIR"])
    bin_dir.mkdir(parents=True)
    (bin_dir / "longplay").write_text("#!/bin/sh\necho mine\n")
    bad = _run("--venv", sys.prefix, env=home)
    assert bad.returncode == 2 and "exists and is not a link" in bad.stderr
    assert (bin_dir / "longplay").read_text().endswith("mine\n")
    helped = _run("--help", env=home)
    assert helped.returncode == 0 and "--uninstall" in helped.stdout
