#!/usr/bin/env bash
# Create (or update) the project's virtualenv with a CPU torch pin, then install the package.
# A torch already present in the venv (e.g. a CUDA build) is kept: the constraints file pins
# whatever torch version is installed, so no dependency can replace it.
set -euo pipefail
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip
if ! "$PY" -c "import torch" 2>/dev/null; then
  "$PY" -m pip install -q "torch==2.13.0"
fi
TORCH_VERSION=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
mkdir -p "$VENV/etc"
echo "torch==${TORCH_VERSION}" > "$VENV/etc/constraints.txt"
"$PY" -m pip install -q -c "$VENV/etc/constraints.txt" -e ".[dev]"
touch "$VENV/.installed"
