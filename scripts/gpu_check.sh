#!/usr/bin/env bash
# Run every CUDA path of the project on this machine's GPU and write the GPU report.
#
#   bash scripts/gpu_check.sh [--out DIR] [--budget SECONDS] [--python PY] [--venv DIR]
#                             [--wheels DIR] [--fashion-mnist DIR] [--install auto|never]
#                             [--dry-run]
#
# Steps (one line each, with the elapsed time):
#   1. the GPU (nvidia-smi);
#   2. a Python whose torch sees CUDA: --python (default python3) when its torch already has CUDA
#      (a GPU image's own torch: nothing is installed, this tree is put on PYTHONPATH); else the
#      virtualenv --venv (default .venv-gpu) with torch pinned as in scripts/install.sh
#      (torch==2.13.0: PyPI's Linux x86_64 wheel is the CUDA build, with its nvidia-* libraries)
#      and the project with the same constraints file, as scripts/install.sh does (needs PyPI);
#   3. missing Python packages from --wheels (default .whl, if present), offline, into a
#      folder on PYTHONPATH; Ray, optuna and skops are optional (the Ray part is skipped);
#   4. python -m nas.benchmarks.gpu: `pytest -m gpu`, then supernet training, CUDA latency tables,
#      `nas sample` throughput and Ray Train NCCL vs gloo, each part with its own time limit, all
#      within --budget seconds (default 480), gpu.md / gpu.json rewritten after every part.
# Step 4 is stopped at budget + 120 s whatever happens; the report stays valid. Paths given to
# --out, --venv, --wheels and --fashion-mnist are relative to where the script is called from.
# --dry-run needs no GPU: it checks the environment (any torch) and writes the plan as the report.
# The script's own log goes to OUT/gpu_check.log (results/run-gpu/ when OUT is results/benchmarks).
#
# Through the device tool (the GPU machine reaches no package registry; it has python3 with a
# CUDA torch, pytest and hypothesis, but not Ray): first, here, once (.data/ is gitignored),
#     mkdir -p .data && cp -r /usr/share/datasets/fashion-mnist .data/
# then run with carry [".data"] (add ".whl" for wheels, see --wheels) and timeout_s 600:
#     bash scripts/gpu_check.sh --out $OUT --budget 420
# and copy $OUT/gpu.md, gpu.json and the latency_cuda_b* reports with their CSV and plots (files_at)
# to results/benchmarks/. The tool brings back at most 8 files: give --out $OUT/gpu and end the
# command with `tar czf $OUT/gpu.tgz -C $OUT gpu`. Without .data the training part uses digits and
# says so.
set -uo pipefail
CALLER=$PWD
cd "$(dirname "$0")/.."
REPO=$PWD
START=$(date +%s)
OUT=results/benchmarks
BUDGET=480
PY=python3
VENV=.venv-gpu
WHEELS=.whl
INSTALL=auto
DRY=()
FASHION=()

absolute() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER/$1" ;; esac; }
step() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*"; }
die() { echo "gpu_check: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$(absolute "${2:?--out needs a folder}"); shift 2 ;;
    --budget) BUDGET=${2:?--budget needs seconds}; shift 2 ;;
    --python) PY=${2:?--python needs an interpreter}; shift 2 ;;
    --venv) VENV=$(absolute "${2:?--venv needs a folder}"); shift 2 ;;
    --wheels) WHEELS=$(absolute "${2:?--wheels needs a folder}"); shift 2 ;;
    --fashion-mnist) FASHION+=("--fashion-mnist=$(absolute "${2:?--fashion-mnist needs a folder}")")
                     shift 2 ;;
    --install) INSTALL=${2:?--install needs auto or never}; shift 2 ;;
    --dry-run) DRY=(--dry-run); shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
case "$BUDGET" in ''|*[!0-9]*) die "--budget $BUDGET: expected whole seconds" ;; esac
case "$INSTALL" in auto|never) ;; *) die "--install $INSTALL: expected auto or never" ;; esac
mkdir -p "$OUT" || die "cannot create --out $OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$REPO/results/run-gpu
mkdir -p "$WORK"
LOG_DIR=$OUT
[ "$OUT" = "$REPO/results/benchmarks" ] && LOG_DIR=$WORK  # keep logs out of the committed folder
exec > >(tee "$LOG_DIR/gpu_check.log") 2>&1

TORCH_PIN=$(grep -o 'torch==[0-9][0-9.]*' scripts/install.sh | head -n 1)
[ -n "$TORCH_PIN" ] || die "no torch pin found in scripts/install.sh"

step "1/4 GPU"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
else
  echo "nvidia-smi not found"
fi

# "VERSION CUDA_VERSION" of the torch of Python $1 when it will do (it sees a CUDA device; in a
# dry run any torch), else nothing and a non-zero status
torch_info() {
  "$1" -c 'import sys, torch
ok = torch.cuda.is_available() or "--dry-run" in sys.argv
print(torch.__version__, torch.version.cuda) if ok else sys.exit(1)' ${DRY[@]+"${DRY[@]}"} 2>/dev/null
}

step "2/4 Python with a CUDA torch (pin $TORCH_PIN)"
if INFO=$(torch_info "$PY"); then
  if [ ${#DRY[@]} -gt 0 ]; then echo "dry run: using $PY as it is"
  else echo "using $PY as it is (its torch sees CUDA: nothing to install)"; fi
elif [ "$INSTALL" = never ]; then
  die "$PY has no CUDA torch and --install never was given"
else
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" || die "cannot create $VENV"
  PY=$VENV/bin/python
  if ! torch_info "$PY" >/dev/null; then
    echo "installing $TORCH_PIN (PyPI's CUDA build) into $VENV: several GB, minutes"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q "$TORCH_PIN" || die "pip could not install $TORCH_PIN"
  fi
  mkdir -p "$VENV/etc"
  echo "torch==$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")" \
    > "$VENV/etc/constraints.txt"
  "$PY" -m pip install -q -c "$VENV/etc/constraints.txt" -e ".[dev]" \
    || die "pip could not install the project into $VENV"
  INFO=$(torch_info "$PY") || die "$VENV's torch does not see a CUDA device"
fi
read -r TORCH_USED TORCH_CUDA <<< "$INFO"
echo "torch $TORCH_USED (CUDA $TORCH_CUDA)"
NOTE="torch $TORCH_USED; the project pins $TORCH_PIN"
[ "${TORCH_USED%%+*}" = "${TORCH_PIN#torch==}" ] || NOTE="$NOTE (the pin could not be installed here: the numbers are for $TORCH_USED)"

step "3/4 Python packages"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [ -d "$WHEELS" ] && ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  SITE=$(mktemp -d /tmp/gpu-check-site.XXXXXX)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl \
    || die "could not install the wheels in $WHEELS"
  export PYTHONPATH="$PYTHONPATH:$SITE"
  echo "wheels from $WHEELS installed into $SITE"
fi
"$PY" - ${DRY[@]+"${DRY[@]}"} <<'EOF' || die "required packages are missing (install them, or carry wheels: --wheels)"
import importlib, importlib.util, sys
required = ["numpy", "pandas", "scipy", "sklearn", "yaml", "tqdm", "matplotlib", "onnx",
            "onnxruntime", "pytest", "hypothesis", "nas"]
optional = ["ray", "optuna", "skops", "onnxscript"]
dry = "--dry-run" in sys.argv  # a dry run only looks the packages up, without importing them
missing = []
for name in required + optional:
    try:
        if dry:
            if importlib.util.find_spec(name) is None:
                raise ImportError("not found")
        else:
            importlib.import_module(name)
    except Exception as exc:  # a broken install counts as missing
        if name in required:
            missing.append(name)
        print(f"{'MISSING' if name in required else 'optional, missing'}: {name} ({exc})")
sys.exit(1 if missing else 0)
EOF

step "4/4 GPU benchmark (budget ${BUDGET}s)"
COMMAND="bash scripts/gpu_check.sh --budget $BUDGET"
timeout -k 10 $((BUDGET + 120)) "$PY" -m nas.benchmarks.gpu --out "$OUT" --budget "$BUDGET" \
  --work "$WORK" --command "$COMMAND" --note "$NOTE" ${FASHION[@]+"${FASHION[@]}"} \
  ${DRY[@]+"${DRY[@]}"}
RC=$?
if [ "$LOG_DIR" = "$OUT" ]; then  # the test log and the latency validation reports beside gpu.md
  [ -f "$WORK/tests.txt" ] && cp "$WORK/tests.txt" "$OUT/gpu_tests.txt"
  for f in "$WORK"/latency_cuda_b*.md "$WORK"/latency_cuda_b*.csv "$WORK"/latency_cuda_b*.png; do
    [ -f "$f" ] && cp "$f" "$OUT/"
  done
fi
step "done (exit code $RC): $OUT/gpu.md"
exit $RC
