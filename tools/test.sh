#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian/Ubuntu machine, then runs
# ruff, the import contracts and pytest. Usage: bash tools/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
for pkg in tcpreplay xvfb libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-xkb1 \
           libxcb-render-util0 libxcb-image0 libxkbcommon-x11-0 libegl1 libgl1 libdbus-1-3 \
           libfontconfig1 iproute2 tshark; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# the lab's network tools, IoT daemons and attack tools (used by the lab and live tests)
bash tools/lab-deps.sh --with-telnet
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[test]"
echo "== ruff"; .venv/bin/ruff check jixiaoan tests tools benchmarks main.py
echo "== import contracts"; .venv/bin/lint-imports
echo "== pytest"
set +e
QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -ra "$@"
rc=$?
set -e
# exit code 5 means no test ran at all: that is a failure here, never a silent pass
[ $rc -eq 5 ] && { echo "pytest collected no tests"; exit 1; }
exit $rc
