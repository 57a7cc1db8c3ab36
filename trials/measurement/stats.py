"""Confidence intervals for proportions and for the difference and ratio of two, and the verdict the reports read.

Why these methods: the reports compare conversion rates of groups that can be small (a new template's first
week, a rare event), so a single proportion uses the Wilson score interval, which stays inside [0, 1] and keeps
its coverage near 0 and 1 where the textbook normal (Wald) interval does not. The difference of two proportions
uses the unpooled normal interval, and the ratio (relative uplift, lift) the log method (Katz): both are the
textbook ones and are only read once each group is large enough for `verdict` to speak (see MIN_GROUP and
MIN_OUTCOMES), which is where they are accurate. Plain functions on counts, so they are tested against textbook
values and reused by every report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist

CONFIDENCE = 0.95
MIN_GROUP = 30
"""A group smaller than this says nothing a reader should act on."""
MIN_OUTCOMES = 5
"""Each group needs this many conversions and this many non-conversions for the normal approximations to hold."""


@dataclass(frozen=True)
class Interval:
    """A two-sided confidence interval; `low`/`high` are None when the data cannot give one (an empty group)."""

    low: float | None
    high: float | None

    def contains(self, value: float) -> bool:
        return self.low is not None and self.high is not None and self.low <= value <= self.high

    def excludes(self, value: float) -> bool:
        """True only when the interval exists and lies entirely on one side of `value`."""
        return self.low is not None and self.high is not None and not self.low <= value <= self.high


NO_INTERVAL = Interval(None, None)


def z_value(confidence: float = CONFIDENCE) -> float:
    """The two-sided standard normal quantile (1.959964 for 95%)."""
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _check(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials (got {successes} of {trials})")


def proportion(successes: int, trials: int) -> float | None:
    """successes ÷ trials, None for an empty group (a rate of nothing is not 0%)."""
    _check(successes, trials)
    return successes / trials if trials else None


def wilson_interval(successes: int, trials: int, confidence: float = CONFIDENCE) -> Interval:
    """Wilson score interval for one proportion: the reports' default, sound for small groups and rare events."""
    _check(successes, trials)
    if trials == 0:
        return NO_INTERVAL
    z = z_value(confidence)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def difference_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = CONFIDENCE
) -> Interval:
    """Normal interval for p_a − p_b with the unpooled standard error: the absolute uplift's interval."""
    _check(successes_a, trials_a)
    _check(successes_b, trials_b)
    if trials_a == 0 or trials_b == 0:
        return NO_INTERVAL
    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    half = z_value(confidence) * math.sqrt(p_a * (1 - p_a) / trials_a + p_b * (1 - p_b) / trials_b)
    return Interval(p_a - p_b - half, p_a - p_b + half)


def ratio_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = CONFIDENCE
) -> Interval:
    """Log-method (Katz) interval for the risk ratio p_a ÷ p_b: the lift's interval (relative uplift = ratio − 1).

    Undefined (no interval) when either group has no conversions, as the log of zero is."""
    _check(successes_a, trials_a)
    _check(successes_b, trials_b)
    if successes_a == 0 or successes_b == 0:
        return NO_INTERVAL
    ratio = (successes_a / trials_a) / (successes_b / trials_b)
    se = math.sqrt(1 / successes_a - 1 / trials_a + 1 / successes_b - 1 / trials_b)
    spread = z_value(confidence) * se
    return Interval(ratio * math.exp(-spread), ratio * math.exp(spread))


class Verdict(StrEnum):
    NOT_ENOUGH_DATA = "not enough data"
    NO_DETECTABLE_EFFECT = "no detectable effect"
    EFFECT = "effect"


def enough_data(successes: int, trials: int) -> bool:
    """Whether one group is large enough, with enough of both outcomes, for the normal intervals to be trusted."""
    return trials >= MIN_GROUP and successes >= MIN_OUTCOMES and trials - successes >= MIN_OUTCOMES


def verdict(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> Verdict:
    """What a reader may conclude from a comparison: too little data, an interval that spans zero, or an effect."""
    if not (enough_data(successes_a, trials_a) and enough_data(successes_b, trials_b)):
        return Verdict.NOT_ENOUGH_DATA
    if difference_interval(successes_a, trials_a, successes_b, trials_b).excludes(0.0):
        return Verdict.EFFECT
    return Verdict.NO_DETECTABLE_EFFECT


@dataclass(frozen=True)
class Comparison:
    """Group A (treatment, doers) against group B (control, non-doers), with everything the reports show."""

    successes_a: int
    trials_a: int
    successes_b: int
    trials_b: int
    rate_a: float | None
    rate_b: float | None
    difference: float | None
    difference_ci: Interval
    ratio: float | None
    ratio_ci: Interval
    verdict: Verdict

    @property
    def relative(self) -> float | None:
        """Relative uplift (ratio − 1), e.g. 0.25 for +25%."""
        return None if self.ratio is None else self.ratio - 1

    @property
    def relative_ci(self) -> Interval:
        ci = self.ratio_ci
        return NO_INTERVAL if ci.low is None or ci.high is None else Interval(ci.low - 1, ci.high - 1)

    @property
    def sentence(self) -> str:
        """The verdict in plain language, with the figures a reader needs to trust it."""
        if self.verdict is Verdict.NOT_ENOUGH_DATA:
            return (
                f"Not enough data yet: each group needs at least {MIN_GROUP} trials and {MIN_OUTCOMES} conversions "
                f"and non-conversions ({self.trials_a} vs {self.trials_b} so far)."
            )
        ci = self.difference_ci
        assert self.difference is not None and ci.low is not None and ci.high is not None
        span = f"{ci.low * 100:+.1f} to {ci.high * 100:+.1f} points"
        if self.verdict is Verdict.NO_DETECTABLE_EFFECT:
            return f"No detectable effect: the difference could be anywhere from {span} (95% confidence)."
        direction = "raises" if self.difference > 0 else "lowers"
        return f"Effect: it {direction} conversion by {self.difference * 100:+.1f} points ({span}, 95% confidence)."


def compare(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> Comparison:
    """Compare two conversion counts: rates, absolute difference and ratio with 95% intervals, and the verdict."""
    rate_a, rate_b = proportion(successes_a, trials_a), proportion(successes_b, trials_b)
    difference = None if rate_a is None or rate_b is None else rate_a - rate_b
    ratio = None if rate_a is None or not rate_b else rate_a / rate_b
    return Comparison(
        successes_a=successes_a,
        trials_a=trials_a,
        successes_b=successes_b,
        trials_b=trials_b,
        rate_a=rate_a,
        rate_b=rate_b,
        difference=difference,
        difference_ci=difference_interval(successes_a, trials_a, successes_b, trials_b),
        ratio=ratio,
        ratio_ci=ratio_interval(successes_a, trials_a, successes_b, trials_b),
        verdict=verdict(successes_a, trials_a, successes_b, trials_b),
    )
