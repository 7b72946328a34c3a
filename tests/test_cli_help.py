"""The command line's surface: help without heavy imports, defaults in help, one flag name per
concept with the old spellings still working (and warning), the shell-safe constraint form,
``nas run --config`` with --constraint/--objective, progress bars only on a terminal."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from nas.cli import build_parser, main
from nas.cli.options import DEPRECATED_FLAGS
from nas.cli.run_cmd import plan_from_args
from nas.errors import UserError
from nas.search.constraints import parse_constraint

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "pandas", "scipy", "optuna", "onnx", "onnxruntime", "ray")

_PROBE = """
import contextlib, io, sys
from nas.cli import build_parser, main
import argparse
parser = build_parser()
def commands(p, prefix=()):
    for a in p._actions:
        if isinstance(a, argparse._SubParsersAction):
            for name, sub in a.choices.items():
                yield (*prefix, name)
                yield from commands(sub, (*prefix, name))
paths = [()] + list(commands(parser))
for path in paths:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main([*path, "--help"])
        except SystemExit as exc:
            assert exc.code == 0, path
    assert "usage: nas" in out.getvalue(), path
print(len(paths), sorted(m for m in %r if m in sys.modules))
"""


def test_every_help_prints_without_heavy_imports():
    out = subprocess.run([sys.executable, "-c", _PROBE % (HEAVY,)], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout.split(maxsplit=1)
    assert int(out[0]) >= 12 and out[1].strip() == "[]"


def test_console_script_help_and_version():
    nas = Path(sys.executable).with_name("nas")
    exe = [str(nas)] if nas.exists() else [sys.executable, "-m", "nas.cli"]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    assert "COMMAND" in subprocess.run([*exe, "--help"], capture_output=True, text=True,
                                       env=env, check=True).stdout
    assert subprocess.run([*exe, "--version"], capture_output=True, text=True, env=env,
                          check=True).stdout.startswith("nas ")


def _subparser(*path: str) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = action.choices[name]
    return parser


def test_help_states_defaults():
    text = " ".join(_subparser("run").format_help().split())
    assert "supernet training epochs (default: default 15, quick 10, fashion-mnist 4)" in text
    profile = " ".join(_subparser("profile").format_help().split())
    assert "--latency-device" in profile and "(default: cpu)" in profile


build_parser()  # registers the deprecated spellings


@pytest.mark.parametrize(("command", "old"), sorted(DEPRECATED_FLAGS))
def test_old_flag_spellings_parse_to_the_new_and_warn(command, old, capsys):
    new = DEPRECATED_FLAGS[(command, old)]
    parser = _subparser(command)
    action = next(a for a in parser._actions if new in a.option_strings)
    value = [] if action.nargs == 0 else [(action.choices and list(action.choices)[-1]) or "7"]
    required = {"export": ["--run", "r", "--arch", "a", "--out", "o"],
                "sample": ["--run", "r", "--n", "1", "--out", "o"],
                "search": ["--space", "s", "--out", "o", "--objective", "flops"],
                "profile": ["--space", "s", "--out", "o"], "run": []}[command]
    old_ns = build_parser().parse_args([command, *required, old, *value])
    err = capsys.readouterr().err
    new_ns = build_parser().parse_args([command, *required, new, *value])
    assert f"{old} is deprecated; use {new}" in err
    assert getattr(old_ns, action.dest) == getattr(new_ns, action.dest)
    assert getattr(old_ns, action.dest) not in (None, False)


def test_shell_safe_constraints_equal_the_symbolic_ones():
    for safe, symbolic in [("latency_ms:le:5", "latency_ms<=5"), ("flops:LE:60M", "flops<=60M"),
                           ("memory:le:512KB", "memory<=512KB"), ("accuracy:ge:70", "accuracy>=70")]:
        assert parse_constraint(safe) == parse_constraint(symbolic)
    with pytest.raises(UserError, match="shell-safe"):
        parse_constraint("flops:lt:5")


def _run_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["run", *argv])


def test_run_config_file_then_options(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("preset: quick\nepochs: 3\nconstraints: ['flops<=2M']\nbudget: 500\n")
    plan = plan_from_args(_run_args("--config", str(config), "--budget", "300",
                                    "--constraint", "params:le:20K",
                                    "--objective", "max:val_acc", "--objective", "min:flops"))
    assert (plan.space, plan.epochs, plan.budget) == ("hybrid-tiny", 3, 300)
    assert plan.constraints == ("params:le:20K",)  # options given replace the file's list
    assert plan.objectives == ("max:val_acc", "min:flops")
    assert plan_from_args(_run_args("--config", str(config))).constraints == ("flops<=2M",)


@pytest.mark.parametrize(("text", "match"), [
    ("epochz: 3\n", "unknown settings \\['epochz'\\]"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("epochs: [\n", "not valid YAML"),
])
def test_run_config_errors_are_one_line(tmp_path, capsys, text, match):
    config = tmp_path / "run.yaml"
    config.write_text(text)
    assert main(["run", "--config", str(config), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    with pytest.raises(UserError, match=match):
        plan_from_args(_run_args("--config", str(config)))


def test_run_objectives_must_keep_val_acc(capsys, tmp_path):
    assert main(["run", "--quick", "--objective", "min:flops", "--out", str(tmp_path)]) == 2
    assert "max:val_acc" in capsys.readouterr().err
    assert main(["run", "--quick", "--constraint", "flops<5", "--out", str(tmp_path)]) == 2


def test_progress_off_when_stderr_is_not_a_terminal(monkeypatch, tmp_path):
    from nas.progress import progress_enabled

    with open(tmp_path / "log", "w") as log:
        monkeypatch.setattr(sys, "stderr", log)
        assert progress_enabled() is False and progress_enabled(True) is True
