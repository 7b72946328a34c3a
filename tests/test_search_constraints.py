"""Constraint and objective parsing: units, operators, bad strings, violation values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nas.errors import UserError
from nas.search.constraints import (
    Constraint,
    metric_kind,
    parse_constraint,
    parse_constraints,
    parse_objective,
    total_violation,
)


@pytest.mark.parametrize(
    ("text", "metric", "op", "bound"),
    [
        ("latency_ms<=5", "latency_ms", "<=", 5.0),
        ("latency_ms <= 500us", "latency_ms", "<=", 0.5),
        ("latency_ms<=0.2s", "latency_ms", "<=", 200.0),
        ("lat_ms_pixel3<=10.68", "lat_ms_pixel3", "<=", 10.68),
        ("lat_ms_raspi4<=25ms", "lat_ms_raspi4", "<=", 25.0),
        ("flops<=60M", "flops", "<=", 60e6),
        ("flops<=1.5G", "flops", "<=", 1.5e9),
        ("macs<=300k", "macs", "<=", 300e3),
        ("params<=1.5M", "params", "<=", 1.5e6),
        ("params<=2000", "params", "<=", 2000.0),
        ("memory<=512KB", "memory", "<=", 512 * 1024.0),
        ("memory<=512KiB", "memory", "<=", 512 * 1024.0),
        ("memory<=1.5MB", "memory", "<=", 1.5 * 1024**2),
        ("peak_memory<=2GB", "peak_memory", "<=", 2 * 1024.0**3),
        ("memory<=100B", "memory", "<=", 100.0),
        ("memory<=4096", "memory", "<=", 4096.0),
        ("accuracy>=70", "accuracy", ">=", 70.0),
        ("accuracy >= 70%", "accuracy", ">=", 70.0),
        ("c10valid_valid_accuracy=>90", "c10valid_valid_accuracy", ">=", 90.0),
        ("cifar10_test_acc>=9e1", "cifar10_test_acc", ">=", 90.0),
    ],
)
def test_parse_units(text: str, metric: str, op: str, bound: float) -> None:
    c = parse_constraint(text)
    assert (c.metric, c.op) == (metric, op)
    assert c.bound == pytest.approx(bound, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("latency_ms<5", "only '<=' and '>='"),
        ("latency_ms==5", "only '<=' and '>='"),
        ("flops<=60MB", "allowed units: none, K, M, G"),
        ("memory<=5M", "allowed units: B, KB, MB, GB"),
        ("latency_ms<=5KB", "allowed units: ms (default), us, s"),
        ("accuracy>=70ms", "allowed units: none or %"),
        ("speed<=5", "unknown metric 'speed'"),
        ("flops", "expected METRIC<=VALUE[UNIT]"),
        ("<=5", "expected METRIC<=VALUE[UNIT]"),
        ("flops<=", "expected METRIC<=VALUE[UNIT]"),
        ("flops<=abc", "expected METRIC<=VALUE[UNIT]"),
        ("", "expected METRIC<=VALUE[UNIT]"),
    ],
)
def test_bad_strings_name_what_is_allowed(text: str, fragment: str) -> None:
    with pytest.raises(UserError) as info:
        parse_constraint(text)
    assert fragment in str(info.value)


def test_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(UserError, match="flops, macs, params"):
        parse_constraint("throughput>=5")


def test_non_string_is_a_user_error() -> None:
    with pytest.raises(UserError):
        parse_constraint(5)  # type: ignore[arg-type]


def test_violation_is_relative_and_signed() -> None:
    c = parse_constraint("latency_ms<=10")
    np.testing.assert_allclose(c.violation(np.array([5.0, 10.0, 12.0])), [-0.5, 0.0, 0.2])
    a = parse_constraint("accuracy>=80")
    np.testing.assert_allclose(a.violation(np.array([90.0, 80.0, 60.0])), [-0.125, 0.0, 0.25])
    z = Constraint("params", "<=", 0.0)
    np.testing.assert_allclose(z.violation(np.array([0.0, 3.0])), [0.0, 3.0])


@given(
    bound=st.floats(1e-3, 1e9),
    value=st.floats(0, 1e10),
    op=st.sampled_from(["<=", ">="]),
)
def test_violation_sign_matches_satisfied(bound: float, value: float, op: str) -> None:
    c = Constraint("flops", op, bound)
    assert bool(c.violation(np.array([value]))[0] <= 0) == bool(c.satisfied(np.array([value]))[0])


def test_round_trip_through_str() -> None:
    for text in ("flops<=60M", "memory<=512KB", "accuracy>=71.5", "lat_ms_pixel3<=10.6756"):
        c = parse_constraint(text)
        assert parse_constraint(str(c)) == c


def test_parse_constraints_accepts_objects_and_strings() -> None:
    c = Constraint("params", "<=", 1e6)
    assert parse_constraints([c, "flops<=1G"]) == (c, Constraint("flops", "<=", 1e9))


def test_constraint_rejects_bad_fields() -> None:
    with pytest.raises(UserError):
        Constraint("flops", "<", 5.0)
    with pytest.raises(UserError):
        Constraint("flops", "<=", float("inf"))
    with pytest.raises(UserError):
        Constraint("bogus", "<=", 1.0)


def test_objectives() -> None:
    assert parse_objective("accuracy").direction == "maximize"
    assert parse_objective("latency_ms").direction == "minimize"
    assert parse_objective("max:c10valid_valid_accuracy").sign == -1.0
    assert parse_objective("min:flops").sign == 1.0
    assert str(parse_objective("lat_ms_pixel3")) == "min:lat_ms_pixel3"
    with pytest.raises(UserError, match="max:METRIC or min:METRIC"):
        parse_objective("best:accuracy")
    with pytest.raises(UserError, match="unknown metric"):
        parse_objective("max:bogus")


def test_metric_kinds() -> None:
    assert metric_kind("lat_ms_titan_rtx_1") == "time_ms"
    assert metric_kind("weights_bytes") == "bytes"
    assert metric_kind("imagenet16_120_test_acc") == "percent"


def test_total_violation() -> None:
    np.testing.assert_allclose(total_violation(np.array([[-1.0, 0.5], [0.0, 0.0], [2.0, 1.0]])),
                               [0.5, 0.0, 3.0])
    assert total_violation(np.zeros((3, 0))).tolist() == [0.0, 0.0, 0.0]
