#!/usr/bin/env bash
# Create (or update) the project's virtualenv with a CPU torch pin, then install the package.
# A torch already present in the venv (e.g. a CUDA build) is kept: the constraints file pins
# whatever torch version is installed, so no dependency can replace it.
#
#   scripts/install.sh                  the virtualenv only (what `make run` / `make test` do)
#   scripts/install.sh --fashion-mnist  also the Fashion-MNIST IDX files (Debian's package
#                                       dataset-fashion-mnist, into /usr/share/datasets/fashion-mnist)
set -euo pipefail
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
FASHION_DIR=/usr/share/datasets/fashion-mnist

install_fashion_mnist() {
  if [ -f "$FASHION_DIR/train-images-idx3-ubyte.gz" ] || [ -f "$FASHION_DIR/train-images-idx3-ubyte" ]; then
    echo "Fashion-MNIST: already in $FASHION_DIR"
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "Fashion-MNIST: no apt-get here. Put the four IDX files (train-images-idx3-ubyte.gz," \
         "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) in a" \
         "folder and pass --data fashion-mnist:FOLDER" >&2
    return 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "Fashion-MNIST: run as root (or with sudo): apt-get install -y dataset-fashion-mnist" >&2
      return 1
    fi
  fi
  $sudo apt-get update -q && $sudo apt-get install -y -q dataset-fashion-mnist
  echo "Fashion-MNIST: installed in $FASHION_DIR"
}

WITH_FASHION=0
for arg in "$@"; do
  case "$arg" in
    --fashion-mnist) WITH_FASHION=1 ;;
    *) echo "scripts/install.sh: unknown option $arg (expected --fashion-mnist)" >&2; exit 2 ;;
  esac
done

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
if [ "$WITH_FASHION" -eq 1 ]; then install_fashion_mnist; fi
