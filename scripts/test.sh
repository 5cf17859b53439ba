#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs every check:
# ruff, the front end's unit tests (vitest), and pytest (engine, demo, widget, browser tests).
# .ci/run calls this same script. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

step() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

step "torch"
# The local CPU build first: a bare 'torch' requirement would download a multi-GB CUDA build.
if ! $PY -c 'import sys, torch; v = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]); sys.exit(v < (2, 2))' 2>/dev/null; then
  $PY -m pip install -q torch==2.13.0
fi

step "chromium (browser tests)"
if [ ! -x /usr/bin/chromium ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

step "front-end toolchain"
npm ci --no-audit --no-fund --loglevel=error

step "the package and its test extra (the build bundles js/ into samplelens_widget/static/)"
rm -rf samplelens_widget/static
$PY -m pip install -q -e ".[test]"
test -s samplelens_widget/static/widget.js || { echo "the bundle was not built" >&2; exit 1; }

step "ruff"
$PY -m ruff check .

step "vitest"
npm test --silent

step "pytest"
set +e
$PY -m pytest -ra "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$rc"
