#!/usr/bin/env bash
# Runs Ji XiaoAn on the bundled demo capture (assets/demo/capture.pcap) with the shipped model
# (models/default) on a fresh Debian/Ubuntu machine: installs the Qt runtime libraries and a
# virtual environment, then opens the monitor window replaying the demo. Without a display it
# runs the same analysis headless and prints the per-device verdicts.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
for pkg in libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-xkb1 libxcb-render-util0 \
           libxcb-image0 libxkbcommon-x11-0 libegl1 libgl1 libdbus-1-3 libfontconfig1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e .
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
  exec .venv/bin/python main.py --demo
fi
echo "No display found: analysing the demo capture headless instead (the window needs a desktop)."
db=$(mktemp -d)/demo.db
.venv/bin/jixiaoan analyze assets/demo/capture.pcap --db "$db"
echo "Verdicts per device are in $db; replay it live with:"
echo "  .venv/bin/jixiaoan monitor --replay assets/demo/capture.pcap --speed 10 --adapt-after 20 --db $db"
