"""``nas.benchmarks.search_hybrid`` runs end to end and writes its report, on hybrid-tiny with
synthetic samples, a fake latency table and tiny budgets (its real inputs take hours to make)."""

from __future__ import annotations

import pytest

from nas.benchmarks import search_hybrid
from tests.test_fit_cli import write_synthetic_samples
from tests.test_search_space_problem import PER_KIND, fake_table


@pytest.mark.long  # 10-20 s: make test's second pass runs it (keeps the default run under 10 min)
def test_the_report_path_runs_on_a_tiny_space(tmp_path, monkeypatch):
    from nas.spaces import load_space

    monkeypatch.setattr(search_hybrid, "SPACE", "hybrid-tiny")
    monkeypatch.setattr(search_hybrid, "BUDGETS", (20, 40))
    monkeypatch.setattr(search_hybrid, "OPTUNA_BUDGETS", (20, 40))
    samples = write_synthetic_samples(tmp_path / "samples.csv", n=60)
    fake_table(load_space("hybrid-tiny"), tmp_path / "lut.csv", calibration=PER_KIND)
    out = tmp_path / "report.md"
    rc = search_hybrid.main(["--samples", str(samples), "--lut", str(tmp_path / "lut.csv"),
                             "--run", str(tmp_path / "no-run"), "--seeds", "2",
                             "--optuna-seeds", "1", "--out", str(out)])
    assert rc == 0
    report = out.read_text()
    assert "## Findings" in report and search_hybrid.COMMAND in report
    assert out.with_suffix(".csv").is_file()


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
