"""Load exported files in a fresh interpreter that cannot import this package, and run them.

This is what a user without ``nas`` installed does: ``torch.jit.load``, ``torch.export.load`` and
an ONNX Runtime session, each fed the example input. The child is ``python -I`` (no PYTHONPATH, no
user site, no current directory on ``sys.path``); the folders that hold this package (an editable
install puts the repository on ``sys.path`` through a ``.pth`` file) are removed from ``sys.path``
before anything is loaded, the child asserts that ``import nas`` fails, and afterwards that no module
was loaded from those folders.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from nas.errors import UserError

STANDALONE_KINDS: tuple[str, ...] = ("torchscript", "pt2", "onnx")

_CHILD = r"""
import importlib.abc, importlib.util, json, os, sys
args = json.loads(sys.argv[1])
roots = {os.path.realpath(r) for r in args["exclude"]}
pkg_dirs = [os.path.realpath(d) for d in args["package_dirs"]]

def _under(path):
    path = os.path.realpath(path)
    return any(path == d or path.startswith(d + os.sep) for d in pkg_dirs)

# Exact matches only: a virtualenv may live inside the repository, its site-packages must stay.
sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) not in roots]
blocked = False
if importlib.util.find_spec(args["package"]) is not None:
    # Installed into site-packages (not editable): removing paths is not enough, refuse the import.
    class _Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == args["package"] or name.startswith(args["package"] + "."):
                raise ModuleNotFoundError(f"{name} is blocked in this standalone check")
            return None
    sys.meta_path.insert(0, _Block())
    blocked = True
try:
    __import__(args["package"])
except ImportError:
    pass
else:
    print(json.dumps({"error": f"import {args['package']} still works in the child"}))
    sys.exit(3)

import numpy as np
data = np.load(args["example"], allow_pickle=False)
x, expected = data["input"], data["output"].astype(np.float64)
diffs, errors = {}, {}

def _diff(y):
    y = np.asarray(y, dtype=np.float64)
    return float("inf") if y.shape != expected.shape else float(np.abs(y - expected).max(initial=0.0))

for kind, path in args["files"].items():
    try:
        if kind == "onnx":
            import onnxruntime as ort
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
            diffs[kind] = _diff(sess.run(None, {sess.get_inputs()[0].name: x})[0])
        else:
            import torch
            torch.set_num_threads(1)
            if kind == "torchscript":
                module = torch.jit.load(path, map_location="cpu")
            else:
                module = torch.export.load(path).module()
            with torch.no_grad():
                diffs[kind] = _diff(module(torch.from_numpy(x)).numpy())
    except Exception as exc:
        errors[kind] = f"{type(exc).__name__}: {str(exc).strip()[:500]}"

leaked = sorted(
    name for name, mod in list(sys.modules.items())
    if getattr(mod, "__file__", None) and _under(mod.__file__)
)
print(json.dumps({"diffs": diffs, "errors": errors, "leaked_modules": leaked, "blocked": blocked}))
"""


class StandaloneCheckError(UserError):
    """An exported file does not load or does not reproduce the expected output without ``nas``."""


def package_dirs() -> list[str]:
    """The folders of this package (``nas.__path__``), resolved."""
    import nas

    return sorted({str(Path(p).resolve()) for p in nas.__path__})


def package_roots() -> list[str]:
    """The ``sys.path`` entries that make this package importable (its parent folders).

    A site-packages folder is never listed (removing it would remove torch too); a package
    installed there is blocked in the child by an import hook instead.
    """
    site_dirs = {str(Path(p).resolve()) for p in site.getsitepackages()}
    site_dirs.add(str(Path(site.getusersitepackages()).resolve()))
    return sorted({str(Path(d).parent) for d in package_dirs()} - site_dirs)


def verify_standalone(
    paths: Mapping[str, str | os.PathLike],
    example_input: torch.Tensor,
    expected_output: torch.Tensor,
    atol: float = 1e-4,
    *,
    timeout_s: float = 300.0,
    raise_on_mismatch: bool = True,
) -> dict[str, float]:
    """Run the ``torchscript``/``pt2``/``onnx`` entries of ``paths`` without this package.

    Returns ``{kind: max abs difference to expected_output}``. Other keys of ``paths`` (state
    dict, manifest) are ignored. Raises :class:`StandaloneCheckError` if the child can still import
    ``nas``, if a file fails to load or run, or (with ``raise_on_mismatch``) if a difference
    exceeds ``atol``.
    """
    files = {k: str(Path(p).resolve()) for k, p in paths.items() if k in STANDALONE_KINDS}
    if not files:
        raise UserError(f"verify_standalone: no file of kind {', '.join(STANDALONE_KINDS)} "
                        f"in {sorted(paths)}")
    for kind, path in files.items():
        if not Path(path).is_file():
            raise UserError(f"verify_standalone: {kind} file {path} does not exist")
    x = example_input.detach().cpu().numpy()
    y = expected_output.detach().cpu().numpy()
    with tempfile.TemporaryDirectory(prefix="nas-standalone-") as tmp:
        example = Path(tmp) / "example.npz"
        np.savez(example, input=x, output=y)
        args = {"exclude": package_roots(), "package_dirs": package_dirs(), "package": "nas",
                "example": str(example), "files": files}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-c", _CHILD, json.dumps(args)],
                cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout_s,
            )
        except subprocess.TimeoutExpired as exc:
            raise StandaloneCheckError(
                f"standalone check did not finish within {timeout_s:g} s") from exc
    result = _parse_child(proc)
    if result.get("leaked_modules"):
        raise StandaloneCheckError(
            f"standalone check loaded modules from this package: {result['leaked_modules']}")
    if result["errors"]:
        raise StandaloneCheckError(
            "exported files failed to load or run without this package: "
            + "; ".join(f"{k}: {v}" for k, v in sorted(result["errors"].items())))
    diffs = {k: float(v) for k, v in result["diffs"].items()}
    bad = {k: v for k, v in diffs.items() if not v <= atol}
    if bad and raise_on_mismatch:
        raise StandaloneCheckError(
            "without this package, outputs differ from the expected output by more than "
            f"{atol:g} (max abs): " + ", ".join(f"{k}={v:.3g}" for k, v in sorted(bad.items())))
    return diffs


def _parse_child(proc: subprocess.CompletedProcess) -> dict:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr or proc.stdout).strip()[-1500:]
        raise StandaloneCheckError(
            f"standalone check process exited with code {proc.returncode} and no result: {tail}")
    result = json.loads(lines[-1])
    if "error" in result:
        raise StandaloneCheckError(f"standalone check: {result['error']}")
    return result
