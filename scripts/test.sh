#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine, then runs every check:
# ruff, mypy (strict, the whole package), the front end's type check (tsc) and unit tests (vitest),
# and pytest (engine, demo, widget, the model zoo,
# browser tests).
# .ci/run calls this same script. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

step() { printf '\n== %s (%s)\n' "$1" "$(date +%H:%M:%S)"; }

step "torch and torchvision (the model zoo's tests)"
# The zoo (tests/zoo) runs real torchvision, timm and transformers models. torchvision imports
# only beside torch 2.14.1 (a CUDA build that runs on the CPU; the package itself needs neither
# and works with torch >= 2.2). Pinned, so that no bare requirement downloads another build.
if ! $PY -c 'import torch, torchvision' 2>/dev/null; then
  $PY -m pip install -q torch==2.14.1 torchvision==0.29.1
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

step "mypy --strict on the whole package (the engines, the protocol, the widget side, the demo)"
$PY -m mypy --strict --follow-imports=silent samplelens_widget

step "tsc (esbuild bundles without type-checking)"
npm run typecheck --silent

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
