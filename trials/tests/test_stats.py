"""The statistical helpers against textbook values (Newcombe 1998 for single proportions and differences)."""

from __future__ import annotations

import pytest

from trials.measurement.stats import (
    MIN_GROUP,
    Interval,
    Verdict,
    compare,
    difference_interval,
    proportion,
    ratio_interval,
    verdict,
    wilson_interval,
    z_value,
)


def approx(interval: Interval, low: float, high: float, tolerance: float = 5e-5) -> None:
    assert interval.low == pytest.approx(low, abs=tolerance)
    assert interval.high == pytest.approx(high, abs=tolerance)


def test_z_value() -> None:
    assert z_value() == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.90) == pytest.approx(1.644854, abs=1e-6)
    with pytest.raises(ValueError):
        z_value(1.0)


@pytest.mark.parametrize(
    ("successes", "trials", "low", "high"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_newcombe(successes: int, trials: int, low: float, high: float) -> None:
    approx(wilson_interval(successes, trials), low, high)


def test_empty_groups_give_no_interval_and_bad_counts_are_refused() -> None:
    assert wilson_interval(0, 0) == Interval(None, None)
    assert proportion(0, 0) is None
    assert not Interval(None, None).excludes(0.0)
    with pytest.raises(ValueError):
        wilson_interval(5, 4)
    with pytest.raises(ValueError):
        difference_interval(-1, 10, 1, 10)


def test_difference_interval_matches_newcombe_wald() -> None:
    # Newcombe (1998b), example (a): 56/70 − 48/80, simple asymptotic interval 0.0575 to 0.3425.
    approx(difference_interval(56, 70, 48, 80), 0.0575, 0.3425)


def test_ratio_interval_log_method() -> None:
    # RR = 0.2 / 0.1 = 2; SE(ln RR) = sqrt(1/20 − 1/100 + 1/10 − 1/100) = 0.3606 → 2·exp(±1.96·0.3606).
    approx(ratio_interval(20, 100, 10, 100), 0.9866, 4.0545, tolerance=1e-4)
    assert ratio_interval(0, 100, 10, 100) == Interval(None, None)


def test_verdicts() -> None:
    assert verdict(3, 10, 1, 10) is Verdict.NOT_ENOUGH_DATA
    assert verdict(MIN_GROUP - 1, 500, 50, 500) is Verdict.EFFECT
    assert verdict(100, 500, 95, 500) is Verdict.NO_DETECTABLE_EFFECT
    assert verdict(100, 500, 50, 500) is Verdict.EFFECT


def test_compare_reports_absolute_and_relative_uplift_with_plain_words() -> None:
    result = compare(150, 500, 100, 500)
    assert result.difference == pytest.approx(0.10)
    assert result.ratio == pytest.approx(1.5)
    assert result.relative == pytest.approx(0.5)
    assert result.relative_ci.contains(0.5) and result.relative_ci.excludes(0.0)
    assert result.verdict is Verdict.EFFECT
    assert result.sentence.startswith("Effect: it raises conversion by +10.0 points")
    null = compare(101, 500, 100, 500)
    assert null.sentence.startswith("No detectable effect")
    assert compare(1, 5, 0, 5).sentence.startswith("Not enough data yet")
