"""The fault harness's own pattern: what it forgives in a killed run's stderr, and what it does not."""

from __future__ import annotations

from tests.faults.harness import SPAWN_BOOTSTRAP

SPAWN = "/usr/lib/python3.11/multiprocessing/spawn.py"
HEAD = ('Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n'
        f'  File "{SPAWN}", line 122, in spawn_main\n    exitcode = _main(fd, parent_sentinel)\n'
        "               ^^^^^^^^^^^^^^^^^^^^^^^^^^\n")
LINE = "samples.csv: 0 of 8 drawn subnets already measured; measuring 8\n"


def test_a_whole_bootstrap_traceback_is_counted_and_removed():
    text = LINE + HEAD + "_pickle.UnpicklingError: pickle data was truncated\n" + LINE
    cleaned, n = SPAWN_BOOTSTRAP.subn("", text)
    assert n == 1 and cleaned == LINE + LINE


def test_a_bootstrap_traceback_cut_off_by_the_final_kill_is_counted():
    for cut in (HEAD, HEAD + f'  File "{SPAWN}", line 132, in _main\n', HEAD + '  File "/usr/li'):
        cleaned, n = SPAWN_BOOTSTRAP.subn("", LINE + cut)
        assert n == 1 and cleaned == LINE, cut


def test_a_traceback_through_nas_code_is_never_forgiven():
    nas_frame = '  File "/repo/nas/sample/run.py", line 10, in measure\n    raise ValueError\n'
    for text in (HEAD + nas_frame + "ValueError\n", HEAD + nas_frame,
                 HEAD + '  File "/repo/nas/sample/ru'):
        cleaned, _ = SPAWN_BOOTSTRAP.subn("", LINE + text)
        assert "Traceback" in cleaned, text
