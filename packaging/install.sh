#!/usr/bin/env bash
# Installs Longplay for the current user on Linux, from this checkout, without root:
#   - a virtualenv at $XDG_DATA_HOME/longplay/venv with the pinned CPU torch and Longplay itself
#     (a copy, not an editable install: the checkout may be deleted afterwards);
#   - the embedded model, longplay-mini, into $XDG_DATA_HOME/longplay/models (the user data dir
#     `longplay models` searches), and the DAW scripts into $XDG_DATA_HOME/longplay/daw;
#   - `longplay` and `longplay-app` linked into ~/.local/bin;
#   - a desktop entry and its icon (the app menu's "Longplay").
# It never touches renders (~/Music/Longplay) and lists what it installed in
# $XDG_DATA_HOME/longplay/installed.txt, which --uninstall removes again.
#
#   bash packaging/install.sh                  install (or update) for this user
#   bash packaging/install.sh --venv DIR       use an environment that already has Longplay (no pip)
#   bash packaging/install.sh --uninstall      remove what an install put there
#
# Environment: XDG_DATA_HOME (default ~/.local/share), LONGPLAY_BIN_DIR (default ~/.local/bin),
# PYTHON (default python3, 3.11 or newer).
set -euo pipefail

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
BIN=${LONGPLAY_BIN_DIR:-$HOME/.local/bin}
HOME_DIR=$DATA/longplay
MANIFEST=$HOME_DIR/installed.txt
PYTHON=${PYTHON:-python3}
# The CPU wheel, pinned where `make venv` pins it: a bare `torch` would pull a multi-GB CUDA build.
TORCH_PIN=$(sed -n 's/^TORCH_PIN := //p' "$SRC/Makefile")
# Debian packages the app needs at run time (playback, Qt's xcb platform); the rest is in the venv.
RUNTIME_APT="libportaudio2 libegl1 libgl1 libfontconfig1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 \
libxcb-keysyms1"

usage() {
  sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
  echo "install.sh: $*" >&2
  exit 2
}

VENV=""
UNINSTALL=0
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) [ $# -ge 2 ] || die "--venv needs a folder"; VENV=$2; shift 2 ;;
    --uninstall) UNINSTALL=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (try --help)" ;;
  esac
done

uninstall() {
  if [ ! -f "$MANIFEST" ]; then
    echo "Longplay is not installed for this user ($MANIFEST is missing)"
    return 0
  fi
  # Paths only ever inside the folders this script writes to, as it wrote them.
  while IFS= read -r path; do
    [ -n "$path" ] || continue
    case "$path" in
      "$HOME_DIR"/*|"$BIN"/*|"$DATA"/applications/*|"$DATA"/icons/*) rm -rf -- "$path" ;;
      *) echo "install.sh: leaving $path alone (outside the install folders)" >&2 ;;
    esac
  done < "$MANIFEST"
  rm -f -- "$MANIFEST"
  rmdir -- "$HOME_DIR/models" "$HOME_DIR" 2>/dev/null || true  # kept if the user put models there
  echo "Longplay removed (renders and models you added are kept)"
}

if [ "$UNINSTALL" = 1 ]; then
  uninstall
  exit 0
fi

[ -n "$TORCH_PIN" ] || die "could not read TORCH_PIN from $SRC/Makefile"
[ -f "$SRC/resources/models/longplay-mini/model_config.json" ] || die "no embedded model in $SRC/resources/models"
if [ -n "$VENV" ]; then  # checked before anything is written
  for exe in longplay longplay-app; do
    [ -x "$VENV/bin/$exe" ] || die "$VENV has no $exe (is Longplay installed in it?)"
  done
fi
for exe in longplay longplay-app; do
  if [ -e "$BIN/$exe" ] && [ ! -L "$BIN/$exe" ]; then die "$BIN/$exe exists and is not a link: move it away first"; fi
done
mkdir -p "$HOME_DIR" "$BIN" "$DATA/applications" "$DATA/icons/hicolor/scalable/apps"
: > "$MANIFEST.new"
note() { printf '%s\n' "$@" >> "$MANIFEST.new"; }

if [ -z "$VENV" ]; then
  VENV=$HOME_DIR/venv
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "$PYTHON is older than 3.11"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "$TORCH_PIN"
  "$VENV/bin/pip" install --quiet "$SRC"
  note "$VENV"
fi
VENV=$(cd "$VENV" && pwd)
for exe in longplay longplay-app; do
  [ -x "$VENV/bin/$exe" ] || die "the install in $VENV has no $exe"
  ln -sfn "$VENV/bin/$exe" "$BIN/$exe"
  note "$BIN/$exe"
done

mkdir -p "$HOME_DIR/models"
rm -rf "$HOME_DIR/models/longplay-mini.new"
cp -r "$SRC/resources/models/longplay-mini" "$HOME_DIR/models/longplay-mini.new"
rm -rf "$HOME_DIR/models/longplay-mini"
mv "$HOME_DIR/models/longplay-mini.new" "$HOME_DIR/models/longplay-mini"
note "$HOME_DIR/models/longplay-mini"
rm -rf "$HOME_DIR/daw"
cp -r "$SRC/resources/daw" "$HOME_DIR/daw"
note "$HOME_DIR/daw"

ICON=$DATA/icons/hicolor/scalable/apps/longplay.svg
cp "$SRC/desktop/icons/longplay.svg" "$ICON"
note "$ICON"
ENTRY=$DATA/applications/longplay.desktop
sed "s|@EXEC@|$BIN/longplay-app|" "$SRC/packaging/longplay.desktop.in" > "$ENTRY"
note "$ENTRY"
if command -v update-desktop-database >/dev/null 2>&1; then
  update-desktop-database --quiet "$DATA/applications" 2>/dev/null || true
fi
mv "$MANIFEST.new" "$MANIFEST"

missing=""
if command -v dpkg >/dev/null 2>&1; then
  for p in $RUNTIME_APT; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
fi
echo "Longplay installed: $BIN/longplay, $BIN/longplay-app, the app menu's \"Longplay\""
echo "  model longplay-mini in $HOME_DIR/models, DAW scripts in $HOME_DIR/daw"
case ":$PATH:" in *":$BIN:"*) ;; *) echo "  add $BIN to your PATH to type 'longplay'" ;; esac
if [ -n "$missing" ]; then
  echo "  the app also needs:$missing  (sudo apt-get install --no-install-recommends$missing)"
fi
