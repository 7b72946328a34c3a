"""Every numeric option of every ``nas`` subcommand, given out-of-range values (0, 1, -1, huge, and
nan/inf where it takes a float): exit code 0 or 2, never a traceback, one line on stderr with 2.

Subcommands and their numeric options are discovered from the argparse parser, so a command or
option added later is walked too; only a valid base invocation per command is kept by hand
(:data:`BASE`), and a test asserts it covers every subcommand.

Each value is parsed for every option (cheap). A value the parser accepts then runs the command on
hybrid-tiny and digits in a child forked from this process (tests/faults/harness.py), killed with
SIGKILL after a few seconds if it is still working (a legal value being honoured, such as
``--epochs 10**12``). A kill from outside cannot be swallowed: an in-process alarm could be (it
once fired inside a garbage-collector callback, and the command then ran on until CI's limit). The
default suite runs a seeded selection of those runs; the ``faults`` marker runs them all with a
longer allowance.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas.cli import build_parser, main
from nas.cli.types import numeric_kind
from tests.faults.harness import run_nas

HUGE = 10**12
INT_VALUES = ("0", "1", "-1", str(HUGE))
FLOAT_VALUES = (*INT_VALUES, "nan", "inf", "-inf", "1e300")


# ----------------------------------------------------------------------------- discovery
def leaf_commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
                  ) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every runnable subcommand path (``('latency', 'validate')``) and its parser."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return {path: parser}
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {}
    for action in subs:
        for name, sub in action.choices.items():
            if name in {alias for alias in action._name_parser_map if alias != name} and \
                    sub in found.values():
                continue
            found.update(leaf_commands(sub, (*path, name)))
    return found


def numeric_options(parser: argparse.ArgumentParser) -> list[tuple[str, type]]:
    """``(option string, int or float)`` for every option whose values are numbers: a plain
    ``type=int``/``float``, or one of :mod:`nas.cli.types` (which say their kind)."""
    found = []
    for action in parser._actions:
        kind = numeric_kind(action.type)
        if kind is not None and action.option_strings:
            found.append((max(action.option_strings, key=len), kind))
    return found


PARSER = build_parser()
COMMANDS = leaf_commands(PARSER)


# ----------------------------------------------------------------------------- inputs
PRELOAD = ("matplotlib", "matplotlib.pyplot", "onnx", "onnxruntime", "onnxscript", "optuna",
           "scipy.optimize", "sklearn.ensemble", "sklearn.linear_model", "skops.io", "pandas",
           "torch.onnx", "nas.export.pipeline", "nas.pipeline", "nas.search.space_search",
           "nas.latency.space_profile", "nas.sample.measure", "nas.train.loop")

@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_run) -> dict[str, Path]:
    from nas.sample.fit import fit_predictor
    from nas.spaces import load_space
    from tests.test_fit_cli import write_synthetic_samples
    from tests.test_search_space_problem import PER_KIND, fake_table

    for name in PRELOAD:  # imported once here, so that a forked command does not import them
        importlib.import_module(name)
    root = tmp_path_factory.mktemp("walk_inputs")
    write_synthetic_samples(root / "samples.csv", n=60)
    fit_predictor(root / "samples.csv", out=root / "ridge")
    fake_table(load_space("hybrid-tiny"), root / "lut.csv", calibration=PER_KIND)
    arch = load_space("hybrid-tiny").smallest().to_str()
    # a few-shot measurement file: suggested networks with made-up device times
    assert main(["latency", "suggest", "--space", "hybrid-tiny", "--prior",
                 str(root / "lut.csv"), "--n", "6", "--pool", "60",
                 "--out", str(root / "shots.csv")]) == 0
    shots = pd.read_csv(root / "shots.csv")
    shots["latency_ms"] = 1.5 * shots["prior_mean_ms"]
    shots.to_csv(root / "shots.csv", index=False)
    return {"samples": root / "samples.csv", "ridge": root / "ridge", "lut": root / "lut.csv",
            "shots": root / "shots.csv",
            "run": tiny_run, "arch": arch}


FAST_PROFILE = ["--warmup", "1", "--repeats", "2", "--rounds", "1", "--min-round-ms", "0",
                "--min-read-ms", "0", "--calibrate", "2", "--no-progress"]

# A valid, cheap invocation of each subcommand: f(inputs, fresh output folder) -> argv
BASE: dict[str, Callable[[dict, Path], list[str]]] = {
    "spaces": lambda i, o: ["spaces", "hybrid-tiny"],
    "train": lambda i, o: ["train", "--space", "hybrid-tiny", "--data", "digits", "--epochs",
                           "1", "--batch-size", "128", "--sandwich-n", "1", "--recal-batches",
                           "2", "--threads", "1", "--no-progress", "--out", str(o / "run")],
    "export": lambda i, o: ["export", "--run", str(i["run"]), "--arch", i["arch"],
                            "--out", str(o / "export"), "--formats", "pt", "--no-measure",
                            "--recal-batches", "1", "--threads", "1", "--quiet"],
    "sample": lambda i, o: ["sample", "--run", str(i["run"]), "--n", "2", "--out",
                            str(o / "s.csv"), "--recal-batches", "1", "--recal-batch-size", "16",
                            "--no-progress"],
    "fit": lambda i, o: ["fit", "--samples", str(i["samples"]), "--out", str(o / "pred"),
                         "--folds", "2"],
    "predictors evaluate": lambda i, o: ["predictors", "evaluate", "--samples", str(i["samples"]),
                                         "--model", "ridge", "--sizes", "10", "--test", "20",
                                         "--seeds", "1"],
    "predictors show": lambda i, o: ["predictors", "show", str(i["ridge"])],
    "profile": lambda i, o: ["profile", "--space", "hybrid-tiny", "--out", str(o / "lut.csv"),
                             *FAST_PROFILE],
    "latency validate": lambda i, o: ["latency", "validate", "--space", "hybrid-tiny", "--table",
                                      str(i["lut"]), "--n", "2", "--repeat-subset", "1",
                                      "--no-progress", "--out", str(o / "validate")],
    "latency merge": lambda i, o: ["latency", "merge", str(i["lut"]), "--out",
                                   str(o / "merged.csv")],
    "latency predict": lambda i, o: ["latency", "predict", "--space", "hybrid-tiny", "--table",
                                     str(i["lut"]), i["arch"]],
    "latency show": lambda i, o: ["latency", "show", str(i["lut"])],
    # no numeric options today; listed so that one added later is walked
    "compare": lambda i, o: ["compare", str(i["run"]), str(i["run"])],
    "show": lambda i, o: ["show", str(i["run"])],
    "runs": lambda i, o: ["runs", str(Path(i["run"]).parent)],
    "latency suggest": lambda i, o: ["latency", "suggest", "--space", "hybrid-tiny", "--prior",
                                     str(i["lut"]), "--n", "4", "--pool", "40",
                                     "--out", str(o / "suggest.csv")],
    "latency fewshot": lambda i, o: ["latency", "fewshot", "--space", "hybrid-tiny", "--measured",
                                     str(i.get("shots", "m")), "--prior", str(i["lut"]),
                                     "--out", str(o / "fewshot.csv")],
    "search": lambda i, o: ["search", "--space", "hybrid-tiny", "--predictor", str(i["ridge"]),
                            "--objective", "max:accuracy", "--budget", "20", "--no-progress",
                            "--out", str(o / "search")],
    "run": lambda i, o: ["run", "--quick", "--epochs", "1", "--n-samples", "10", "--budget", "10",
                         "--out", str(o / "nasrun")],
}


def with_option(argv: list[str], option: str, value: str) -> list[str]:
    """``argv`` with ``option`` set to ``value`` (replacing a given value, else appended)."""
    argv = list(argv)
    if option in argv:
        argv[argv.index(option) + 1] = value
        return argv
    return [*argv, option, value]


CASES = [
    (" ".join(path), option, value)
    for path, parser in COMMANDS.items()
    for option, kind in numeric_options(parser)
    for value in (FLOAT_VALUES if kind is float else INT_VALUES)
]


# ----------------------------------------------------------------------------- running
def invoke(argv: list[str], capsys) -> tuple[int | None, str]:
    """Exit code and stderr of parsing ``nas argv`` (the command is not executed)."""
    try:
        PARSER.parse_args(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    return code, capsys.readouterr().err


def run_forked(argv: list[str], log: Path, seconds: float) -> tuple[int | None, str]:
    """Exit code (``None``: still working after ``seconds``, then killed) and stderr of running
    ``nas argv`` in a forked child."""
    outcome = run_nas(argv, log, kill_after=seconds, grace=1.0)
    return outcome.code, outcome.stderr


def check_outcome(case: tuple[str, str, str], code: int | None, err: str) -> None:
    """No traceback; exit 0, 2 or still working; with 2, the error is one line (the last one on
    stderr, after any progress lines the command printed before it failed)."""
    assert "Traceback" not in err, (case, err)
    assert code in (None, 0, 2), (case, code, err)
    if code == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        errors = [line for line in lines if ": error: " in line]
        assert len(errors) == 1 and lines[-1] == errors[0], (case, err)


def accepted_cases() -> list[tuple[str, str, str]]:
    """The cases the parser accepts (those that run the command)."""
    out = []
    for case in CASES:
        command, option, value = case
        argv = with_option(BASE[command]({"run": "r", "samples": "s", "ridge": "p", "lut": "l",
                                          "arch": "a"}, Path("o")), option, value)
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                PARSER.parse_args(argv)
        except SystemExit:
            continue
        out.append(case)
    return out


# ----------------------------------------------------------------------------- tests
def test_the_base_table_covers_every_subcommand():
    assert set(BASE) == {" ".join(path) for path in COMMANDS}


def test_options_are_discovered():
    train = dict(numeric_options(COMMANDS[("train",)]))
    assert train["--epochs"] is int and train["--lr"] is float
    assert len(CASES) > 200


@pytest.mark.parametrize("command", sorted(BASE))
def test_every_numeric_value_is_parsed_or_refused_in_one_line(command, capsys):
    """Parser-level: every value of every numeric option is accepted or refused with exit 2 and
    one line (argparse's usage block is not printed)."""
    base = BASE[command]({"run": "r", "samples": "s", "ridge": "p", "lut": "l", "arch": "a"},
                         Path("o"))
    for case in [c for c in CASES if c[0] == command]:
        code, err = invoke(with_option(base, case[1], case[2]), capsys)
        check_outcome(case, code, err)


def _run_cases(cases, inputs, tmp_path, seconds):
    failures = []
    for n, case in enumerate(cases):
        command, option, value = case
        out = tmp_path / f"case{n}"
        out.mkdir()
        code, err = run_forked(with_option(BASE[command](inputs, out), option, value),
                               out / "log", seconds)
        try:
            check_outcome(case, code, err)
        except AssertionError as exc:
            failures.append((case, str(exc)[:300]))
    assert not failures, "\n".join(map(str, failures))


def default_selection(cases: list, k: int = 4) -> list:
    """A seeded selection of ``k`` accepted values, one of them a 0."""
    rng = np.random.default_rng(15)
    zeros = [c for c in cases if c[2] == "0"]
    others = [c for c in cases if c[2] != "0"]
    pick = rng.choice(len(others), size=min(k - 1, len(others)), replace=False)
    return [zeros[int(rng.integers(len(zeros)))], *(others[i] for i in sorted(pick))]


def test_accepted_values_run_without_a_traceback(inputs, tmp_path):
    """Accepted values run the command (killed after 1 s if still working)."""
    _run_cases(default_selection(accepted_cases()), inputs, tmp_path, 1.0)


@pytest.mark.faults
def test_every_accepted_value_runs_without_a_traceback(inputs, tmp_path):
    _run_cases(accepted_cases(), inputs, tmp_path, 6.0)


def test_workers_and_threads_refuse_huge_and_negative_before_running(capsys):
    """Counts that size the machine (workers, threads) are bounded by the parser, so a huge one
    never starts 10**12 processes; 0 is refused except where it means "in this process"."""
    names = {"r": "r"}
    dummy = {"run": "r", "samples": "s", "ridge": "p", "lut": "l", "arch": "a", **names}
    checked = 0
    for command in BASE:
        parser = COMMANDS[tuple(command.split())]
        for option, _ in numeric_options(parser):
            if "workers" not in option and "threads" not in option:
                continue
            # --data-workers 0 means "decode in this process", a legal count
            refused = (str(HUGE), "-1") if option == "--data-workers" else (str(HUGE), "-1", "0")
            for value in refused:
                code, err = invoke(with_option(BASE[command](dummy, Path("o")), option, value),
                                   capsys)
                assert code == 2 and len(err.strip().splitlines()) == 1, (command, option, err)
                checked += 1
    assert checked >= 15


def test_a_legal_zero_reaches_the_training_config_unchanged():
    """0 where it means something (no extra subnets, no weight decay, no clipping, seed 0, ...)
    is kept, never replaced by the default."""
    from nas.cli.train_cmd import build_config

    parser = COMMANDS[("train",)]
    dummy = {"run": "r", "samples": "s", "ridge": "p", "lut": "l", "arch": "a"}
    kept = []
    for action in parser._actions:
        if numeric_kind(action.type) is None or not action.option_strings:
            continue
        option = max(action.option_strings, key=len)
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                args = PARSER.parse_args(with_option(BASE["train"](dummy, Path("o")), option, "0"))
        except SystemExit:
            continue
        config = build_config(args)
        if hasattr(config, action.dest):
            assert getattr(config, action.dest) == 0, option
            kept.append(option)
    assert {"--sandwich-n", "--seed", "--grad-clip", "--weight-decay"} <= set(kept)
