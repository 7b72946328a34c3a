"""The reliability benchmark's one pytest call (nas/benchmarks/reliability.py) collects the whole
suite: every file exists and the marker expression is one pytest accepts (a removed marker made the
benchmark stop at once, with exit code 4)."""

from __future__ import annotations

import subprocess

from nas.benchmarks import reliability


def test_the_suite_call_collects_every_group(tmp_path):
    argv = [*reliability.suite_argv(tmp_path / "report.xml"), "--collect-only"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    collected = [line for line in done.stdout.splitlines() if "::" in line]
    for files in reliability.SUITE.values():
        assert any(line.startswith(files) for line in collected), files
    assert sum("test_kill_and_resume.py::" in line for line in collected) >= 100
