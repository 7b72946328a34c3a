"""Enormous but valid spaces: counted in polynomial time, printed in scientific notation, and
refused before allocation (exact supernet size, activation estimate) unless --force."""

from __future__ import annotations

import math
import time

import pytest

from nas import budget
from nas.cli import main
from nas.spaces import load_space
from nas.spaces.loader import shipped_spaces
from nas.spaces.ops import format_size, log10_size

TEMPLATE = """name: {name}
in_channels: 3
num_classes: 10
resolutions: [16]
stem: {{width: 8, kernel: 3, stride: 1, act: relu}}
stages:
  - name: s
    widths: [{widths}]
    depths: [1, {depth}]
    stride: 2
    act: relu
    blocks:
      conv: {{kernels: [3, 5], expands: [1, 2]}}
      attn: {{heads: [1, 2], mlp_ratios: [2], head_dim: 8}}
head: {{width: 16, act: relu}}
"""


def write_space(tmp_path, name: str, depth: int, widths: str = "8, 16") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TEMPLATE.format(name=name, depth=depth, widths=widths))
    return str(path)


@pytest.mark.parametrize("name", shipped_spaces())
def test_supernet_params_is_exact(name):
    from nas.supernet import Supernet

    space = load_space(name)
    assert budget.supernet_params(space) == sum(p.numel() for p in Supernet(space).parameters())


def test_supernet_params_is_exact_for_a_deep_custom_space(tmp_path):
    from nas.supernet import Supernet

    space = load_space(write_space(tmp_path, "deep7", 7, "8, 24"))
    assert budget.supernet_params(space) == sum(p.numel() for p in Supernet(space).parameters())


@pytest.mark.parametrize(
    ("depth", "shown"),
    [(60, "9.775e+46"), (100_000, "2.667e+77815"), (10**30, "10^7.7815e+29")],
)
def test_nas_spaces_answers_fast_for_deep_spaces(tmp_path, capsys, depth, shown):
    path = write_space(tmp_path, f"deep{depth}", depth)
    start = time.perf_counter()
    assert main(["spaces", path]) == 0
    assert time.perf_counter() - start < 2.0
    out = capsys.readouterr().out
    assert f"{shown} distinct subnets" in out
    assert "# supernet: " in out and "# training " in out and "needs at least" in out


def test_counts_are_exact_where_small_and_scientific_where_huge(tmp_path):
    tiny = load_space("hybrid-tiny")
    assert format_size(tiny) == "6,720" and format_size(tiny, exact=False) == "6.720e+03"
    assert math.isclose(log10_size(tiny), math.log10(6720))
    deep = load_space(write_space(tmp_path, "deep", 10**30))
    assert deep.size() == math.inf  # comparisons (n > size) still work
    space = load_space(write_space(tmp_path, "d60", 60))
    assert space.size() == 2 * (6 + 6**60)


def test_train_profile_and_sample_refuse_a_supernet_too_big_to_allocate(tmp_path, capsys):
    path = write_space(tmp_path, "wide", 2, "8, 1000000000000")
    out = tmp_path / "run"
    assert main(["train", "--space", path, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "training wide at batch 16 needs at least" in err
    assert "1.200e+25 parameters" in err and "--force" in err
    assert not out.exists()
    table = tmp_path / "t.csv"
    assert main(["profile", "--space", path, "--out", str(table), "--no-progress"]) == 2
    assert "profiling wide at batch 1 needs at least" in capsys.readouterr().err
    out.mkdir()
    (out / "space.yaml").write_text((tmp_path / "wide.yaml").read_text())
    argv = ["sample", "--run", str(out), "--n", "2", "--out", str(tmp_path / "s.csv")]
    assert main(argv) == 2
    assert "sampling wide at batch 64 needs at least" in capsys.readouterr().err


def test_force_goes_past_the_memory_check(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(budget, "available_memory_bytes", lambda: 1024)
    out = tmp_path / "run"
    argv = ["train", "--space", "hybrid-tiny", "--out", str(out), "--data", "npz:nowhere.npz"]
    assert main(argv) == 2
    assert "needs at least" in capsys.readouterr().err
    # with --force the memory check passes and the next check (the data) speaks
    assert main([*argv, "--force"]) == 2
    err = capsys.readouterr().err
    assert "needs at least" not in err and "nowhere.npz" in err


def test_format_count_never_converts_a_huge_int_to_decimal():
    assert budget.format_count(10**100_000) == "1.000e+100000"
    assert budget.format_bytes(5 * 1024**3) == "5.0 GiB"
