#!/usr/bin/env bash
# The package as users get it: builds the wheel, installs it in a fresh venv outside the checkout
# (torch==2.13.0 CPU first, then the wheel; its other dependencies come from PyPI) and runs
# .ci/wheel_check.py with that venv's Python from a directory outside the checkout.
# `make wheel-check` runs it; so does CI (.ci/run), after the tests.
# BUILD_PY: the Python that builds the wheel (pip wheel); PY: the one that creates the fresh venv.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
BUILD_PY=${BUILD_PY:-$PY}
TORCH=${TORCH:-torch==2.13.0}
work=$(mktemp -d "${TMPDIR:-/tmp}/seqgan-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

rm -rf build  # setuptools reuses build/lib: a file deleted from the source would still reach the wheel
"$BUILD_PY" -m pip wheel . --no-deps -q -w "$work/dist"
rm -rf build
wheels=("$work"/dist/seqgan_env-*.whl)
[ "${#wheels[@]}" -eq 1 ] && [ -f "${wheels[0]}" ] || { echo "expected one seqgan_env wheel, got: ${wheels[*]}" >&2; exit 1; }
echo "built ${wheels[0]##*/} ($(du -k "${wheels[0]}" | cut -f1) KiB)"

"$PY" -m venv "$work/venv"
VPY="$work/venv/bin/python"
"$VPY" -m pip install -q --upgrade pip
"$VPY" -m pip install -q "$TORCH"
echo "$TORCH" > "$work/constraints.txt"  # nothing the wheel asks for may replace that torch
"$VPY" -m pip install -q -c "$work/constraints.txt" "${wheels[0]}"

cp .ci/wheel_check.py "$work/wheel_check.py"
cd "$work"
# -I: no PYTHONPATH, no user site, no script folder on sys.path; only the venv's install is importable.
"$VPY" -I wheel_check.py
