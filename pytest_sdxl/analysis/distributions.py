"""Student's t distribution in pure Python: its CDF (through the regularized incomplete beta) and quantile.

The GPU machines may lack scipy, so the statistics here carry their own; the tests check them
against scipy where it is installed.
"""

from __future__ import annotations

import math
from statistics import NormalDist


def incomplete_beta(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    if x > (a + 1.0) / (a + b + 2.0):
        # The continued fraction converges fast only below the mean: use the symmetry there.
        return 1.0 - incomplete_beta(b, a, 1.0 - x)
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    tiny = 1e-300
    numerator_term, denominator = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    denominator = 1.0 / (denominator if abs(denominator) > tiny else tiny)
    fraction = denominator
    for index in range(1, 300):
        for coefficient in (
            index * (b - index) * x / ((a + 2 * index - 1) * (a + 2 * index)),
            -(a + index) * (a + b + index) * x / ((a + 2 * index) * (a + 2 * index + 1)),
        ):
            denominator = 1.0 + coefficient * denominator
            denominator = 1.0 / (denominator if abs(denominator) > tiny else tiny)
            numerator_term = 1.0 + coefficient / numerator_term
            numerator_term = numerator_term if abs(numerator_term) > tiny else tiny
            step = denominator * numerator_term
            fraction *= step
        if abs(step - 1.0) < 1e-15:
            break
    return math.exp(log_front) * fraction / a


def t_cdf(value: float, degrees_of_freedom: float) -> float:
    """Student's t cumulative distribution function."""
    if math.isinf(degrees_of_freedom):
        return NormalDist().cdf(value)
    tail = 0.5 * incomplete_beta(degrees_of_freedom / 2, 0.5, degrees_of_freedom / (degrees_of_freedom + value**2))
    return 1.0 - tail if value > 0 else tail


def t_quantile(probability: float, degrees_of_freedom: float) -> float:
    """Student's t quantile (inverse CDF), by bisection on ``t_cdf``."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"probability {probability} must lie strictly between 0 and 1")
    if probability == 0.5:
        return 0.0
    low, high = -1.0, 1.0
    while t_cdf(low, degrees_of_freedom) > probability:
        low *= 2.0
    while t_cdf(high, degrees_of_freedom) < probability:
        high *= 2.0
    for _ in range(200):
        middle = (low + high) / 2
        if t_cdf(middle, degrees_of_freedom) < probability:
            low = middle
        else:
            high = middle
        if high - low < 1e-12 * max(1.0, abs(middle)):
            break
    return (low + high) / 2
