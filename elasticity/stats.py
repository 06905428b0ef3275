"""The book's statistics, one implementation each: estimates over seeds, t tests, and the verdict rule.

One NaN policy everywhere: values that are not finite (NaN, inf) are dropped before anything is computed, and
n counts the values kept. A standard error needs at least 2 values; with fewer it is NaN, and a test that
needs one answers None ("no standard error") rather than True or False.

The verdict rule (`effect`, `equivalence`, `fraction_below`): a claim is measured as one number per seed in
the paper's direction (positive: as the paper says). Its mean, its 95% interval (Student t over the seeds) and
the smallest effect the design detects with 80% power (a two-sided 5% t test with that many seeds and that
spread) decide one of four outcomes: *reproduced* (the interval lies above zero), *contradicted* (below zero),
*inconclusive* (it holds zero), *not testable here* (fewer than 2 seeds, or no spread at all).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE = "reproduced", "contradicted", "inconclusive", "not testable here"
OUTCOMES = (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_TESTABLE)
LEVEL = 0.95  # the confidence of every interval
POWER = 0.8  # the power at which the detectable effect is stated


def finite(values) -> np.ndarray:
    """The finite values of a sequence, as float64."""
    values = np.asarray(values, dtype=float).ravel()
    return values[np.isfinite(values)]


def sd(values) -> float:
    """Sample standard deviation (n - 1 in the denominator) of the finite values; NaN for fewer than 2."""
    values = finite(values)
    return float(np.std(values, ddof=1)) if len(values) > 1 else math.nan


def mean_se(values) -> tuple[float, float]:
    """Mean and standard error (sd / sqrt(n)) of the finite values; (NaN, NaN) for none, se NaN for one."""
    values = finite(values)
    if len(values) == 0:
        return math.nan, math.nan
    return float(np.mean(values)), sd(values) / math.sqrt(len(values)) if len(values) > 1 else math.nan


def t_critical(n: int, level: float = 0.95) -> float:
    """One-sided Student-t critical value for a mean of n independent values (n - 1 degrees of freedom):
    2.92 for 3 seeds, 2.13 for 5, towards 1.64 for many. NaN for n < 2 (no standard error)."""
    from scipy import stats

    return float(stats.t.ppf(level, n - 1)) if n >= 2 else math.nan


def above_zero(mean: float, se: float, n: int, level: float = 0.95) -> bool | None:
    """Is a mean of n values above zero by a one-sided t-test at `level` (mean > t_critical(n) x se)?
    None when there is no standard error (fewer than 2 values, or a NaN)."""
    if n < 2 or not math.isfinite(se) or not math.isfinite(mean):
        return None
    return resolved_sign(mean, se, t_critical(n, level)) > 0


def resolved_sign(mean: float, se: float, t: float) -> int:
    """+1 if mean > t se, -1 if mean < -t se, 0 otherwise (also when se or t is not finite: unresolved): the
    sign test of `above_zero` with the critical value given."""
    if not (math.isfinite(mean) and math.isfinite(se) and math.isfinite(t)):
        return 0
    return 1 if mean > t * se else (-1 if mean < -t * se else 0)


def ratio_interval(a: float, se_a: float, p: float, se_p: float, t: float) -> tuple[float, float]:
    """Bounds of |a / p| when a and p each lie within t standard errors of their estimates.

    [0, inf] when a standard error or t is not finite; the upper bound is inf when p may be 0.
    """
    if not all(math.isfinite(v) for v in (se_a, se_p, t)):
        return 0.0, math.inf
    a_lo, a_hi = max(abs(a) - t * se_a, 0.0), abs(a) + t * se_a
    p_lo, p_hi = max(abs(p) - t * se_p, 0.0), abs(p) + t * se_p
    lo = a_lo / p_hi if p_hi > 0 else math.inf
    hi = a_hi / p_lo if p_lo > 0 else math.inf
    return lo, hi


def log_slope(x, y) -> float:
    """Least-squares slope of y on log10(x): the change of y per 10x of x. NaN with fewer than 2 distinct x."""
    x = np.log10(np.asarray(x, dtype=float))
    return float(np.polyfit(x, np.asarray(y, dtype=float), 1)[0]) if len(set(x)) > 1 else math.nan


def slope_through_origin(x, y) -> tuple[float, float]:
    """OLS slope of y = b x (no intercept) and its standard error (NaN with fewer than two points)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    sxx = float(np.sum(x * x))
    b = float(np.sum(x * y) / sxx)
    if len(x) < 2:
        return b, math.nan
    residual = y - b * x
    return b, float(math.sqrt(np.sum(residual**2) / (len(x) - 1) / sxx))


def loglog_slope(x, y) -> tuple[float, float]:
    """OLS slope of log|y| on log x, and its standard error (NaN with fewer than three points)."""
    x, y = np.log(np.asarray(x, dtype=float)), np.log(np.abs(np.asarray(y, dtype=float)))
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return math.nan, math.nan
    design = np.vstack([x, np.ones_like(x)]).T
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    if len(x) < 3:
        return float(coef[0]), math.nan
    residual = y - design @ coef
    sigma2 = float(np.sum(residual**2) / (len(x) - 2))
    return float(coef[0]), float(math.sqrt(sigma2 / np.sum((x - x.mean()) ** 2)))


# ---------------------------------------------------------------------------------------------------------
# The verdict rule.
# ---------------------------------------------------------------------------------------------------------


def detectable_effect(spread: float, n: int, *, level: float = LEVEL, power: float = POWER) -> float:
    """The smallest true effect that a two-sided t test at 1 - `level` detects with probability `power`, for a
    mean of n values with standard deviation `spread` (the noncentral t, solved exactly). NaN for n < 2."""
    from scipy import optimize, stats

    if n < 2 or not math.isfinite(spread):
        return math.nan
    df, se = n - 1, spread / math.sqrt(n)
    critical = stats.t.ppf((1 + level) / 2, df)

    def shortfall(shift: float) -> float:  # power at a true mean of `shift` standard errors, less the target
        return float(np.nan_to_num(stats.nct.sf(critical, df, shift) + stats.nct.cdf(-critical, df, shift))) - power

    high = 8.0
    while shortfall(high) < 0:  # widen the bracket (power rises with the shift)
        high *= 2
    return float(optimize.brentq(shortfall, 0.0, high)) * se


@dataclass(frozen=True)
class Effect:
    """A claim's effect over seeds, in the paper's direction (positive: as the paper says), and its outcome.

    Attributes:
        mean: the mean of the per-seed effects.
        low, high: its 95% interval (Student t over the seeds); NaN with fewer than 2 seeds.
        n: the seeds (finite values) it is estimated from.
        detectable: the smallest true effect the design detects with 80% power (`detectable_effect`).
        outcome: one of `OUTCOMES`.
        reason: why, in one sentence, with the numbers.
    """

    mean: float
    low: float
    high: float
    n: int
    detectable: float
    outcome: str
    reason: str

    def text(self, digits: int = 3) -> str:
        """The effect as a verdict shows it: mean, 95% interval, seeds and detectable effect."""
        return effect_text(self.mean, self.low, self.high, self.n, self.detectable, digits)


def is_exact(n: int, low: float) -> bool:
    """Whether an effect's numbers come from `exact` (no seeds, yet a bound) rather than from seeds."""
    return n == 0 and math.isfinite(low)


def effect_text(mean: float, low: float, high: float, n: int, detectable: float, digits: int = 3) -> str:
    """"0.0053 (95% CI 0.0006 to 0.01; 3 seeds; detectable 0.0071)"; an exact value (n = 0) says so, and
    an effect with no finite value (every seed censored, say) says that instead of printing nan."""
    def g(x: float) -> str:
        return f"{x:.{digits}g}"

    if not math.isfinite(mean):
        return f"no finite value ({n} seed{'s' if n != 1 else ''})"
    if is_exact(n, low):
        return f"{g(mean)} (exact; no seeds)"
    if not math.isfinite(low):
        return f"{g(mean)} ({n} seed{'s' if n != 1 else ''}; no interval)"
    return f"{g(mean)} (95% CI {g(low)} to {g(high)}; {n} seeds; detectable {g(detectable)})"


def _interval(values: np.ndarray, level: float) -> tuple[float, float, float, float]:
    """mean, low, high and standard deviation of `values` (already finite, at least 2)."""
    from scipy import stats

    mean, spread = float(np.mean(values)), float(np.std(values, ddof=1))
    half = stats.t.ppf((1 + level) / 2, len(values) - 1) * spread / math.sqrt(len(values))
    return mean, mean - half, mean + half, spread


def _untestable(values: np.ndarray) -> str | None:
    if len(values) < 2:
        return f"{len(values)} seed{'s' if len(values) != 1 else ''} with a finite value: no interval"
    if np.all(values == values[0]):
        return (f"all {len(values)} seeds give exactly {values[0]:.4g}: no spread, so no interval (a value read "
                "off a grid, or a saturated one)")
    return None


def effect(values, *, level: float = LEVEL, power: float = POWER) -> Effect:
    """The verdict rule on per-seed effects in the paper's direction: reproduced when the `level` interval lies
    above zero, contradicted when below, inconclusive when it holds zero, not testable without an interval."""
    values = finite(values)
    if reason := _untestable(values):
        mean = float(np.mean(values)) if len(values) else math.nan
        return Effect(mean, math.nan, math.nan, len(values), math.nan, NOT_TESTABLE, reason)
    mean, low, high, spread = _interval(values, level)
    detectable = detectable_effect(spread, len(values), level=level, power=power)
    span = f"the {level:.0%} interval {low:.3g} to {high:.3g} over {len(values)} seeds"
    if low > 0:
        return Effect(mean, low, high, len(values), detectable, REPRODUCED, f"{span} lies above zero")
    if high < 0:
        return Effect(mean, low, high, len(values), detectable, CONTRADICTED,
                      f"{span} lies below zero, against the paper")
    return Effect(mean, low, high, len(values), detectable, INCONCLUSIVE,
                  f"{span} holds zero; the design detects {detectable:.3g} with {power:.0%} power")


def equivalence(values, margin: float, *, level: float = LEVEL, power: float = POWER) -> Effect:
    """The verdict rule for a claim that a quantity is *near* zero, within +-`margin` (the caller states it).

    Reproduced when the 1 - 2(1 - `level`) interval (two one-sided tests at 1 - `level`) lies inside
    (-margin, margin); contradicted when the `level` interval lies wholly outside [-margin, margin];
    inconclusive otherwise. A wide spread therefore cannot pass, as a test of "no difference" would.
    `detectable` is the detectable difference of the design, as in `effect`.
    """
    if not margin > 0:
        raise ValueError(f"margin = {margin}; an equivalence margin must be positive")
    values = finite(values)
    if reason := _untestable(values):
        mean = float(np.mean(values)) if len(values) else math.nan
        return Effect(mean, math.nan, math.nan, len(values), math.nan, NOT_TESTABLE, reason)
    mean, low, high, spread = _interval(values, level)
    _, tost_low, tost_high, _ = _interval(values, 1 - 2 * (1 - level))
    detectable = detectable_effect(spread, len(values), level=level, power=power)
    inner = f"the {1 - 2 * (1 - level):.0%} interval {tost_low:.3g} to {tost_high:.3g}"
    if -margin < tost_low and tost_high < margin:
        return Effect(mean, low, high, len(values), detectable, REPRODUCED,
                      f"{inner} lies within +-{margin:.3g}")
    if low > margin or high < -margin:
        return Effect(mean, low, high, len(values), detectable, CONTRADICTED,
                      f"the {level:.0%} interval {low:.3g} to {high:.3g} lies outside +-{margin:.3g}")
    return Effect(mean, low, high, len(values), detectable, INCONCLUSIVE,
                  f"{inner} is not within +-{margin:.3g}, nor the {level:.0%} interval outside it")


def exact(value: float, what: str) -> Effect:
    """The verdict rule for a quantity computed exactly (no seeds, no sampling noise), in the paper's direction:
    reproduced when above zero, contradicted when not; `what` names it in the reason."""
    if not math.isfinite(value):
        return Effect(value, math.nan, math.nan, 0, math.nan, NOT_TESTABLE, f"{what} is {value}: not a number")
    if value > 0:
        return Effect(value, value, value, 0, 0.0, REPRODUCED, f"{what} = {value:.3g}, above zero (exact)")
    return Effect(value, value, value, 0, 0.0, CONTRADICTED, f"{what} = {value:.3g}, not above zero (exact)")


def fraction_below(small, large, fraction: float, *, level: float = LEVEL, power: float = POWER) -> Effect:
    """The verdict rule for "`small` is at most `fraction` of `large`", seed by seed, without a ratio:
    the per-seed effect is fraction x large - small, defined however close to zero `large` comes."""
    small, large = np.asarray(small, dtype=float), np.asarray(large, dtype=float)
    if small.shape != large.shape:
        raise ValueError(f"small and large need one value per seed each; got {small.shape} and {large.shape}")
    return effect(fraction * large - small, level=level, power=power)
