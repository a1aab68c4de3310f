"""The process as the sampling unit: new / base where a side's runs come from several processes.

Each process of the same code runs at a level of its own (one 5-10 % faster than the next for as long as
it lives), so its runs share that level and are not independent samples of the code's speed. Treating
them as independent (``stats.compare_runs``) takes run-to-run noise for the whole error and flags the
drift between two processes as a change. Here the logarithm of each run's statistic is modelled as

    log y = a + d * [run is new] + u[process] + e,   u ~ N(0, s_p^2),  e ~ N(0, s_e^2)

(processes, then runs; rounds are already reduced to the run's statistic), fitted by REML with
statsmodels' ``MixedLM`` (groups: the processes), and ``exp(d)`` is the ratio new / base. The wall gate's
units are blocks of rounds, with the block's reference minimum as a covariate (``host_adjusted``): the
same model with ``+ b * log(reference minimum)``.

The test of ``d`` is a Student t on **P - 2 degrees of freedom**, P the number of processes of both sides:
``d`` contrasts processes, so it is the processes, not the runs, that say how well it is known (the
"between-within" rule; the covariate's slope is learnt from blocks within processes and costs none). With
equal runs a process and no covariate, the REML estimate and its standard error are those of the t test on
the processes' mean logarithms, whose size is exactly alpha for any number of processes; the mixed model
adds the right weights where the processes ran different numbers of runs. A process that measured both
sides counts as one process a side (keyed by side), which can only overstate the noise.

Where the mixed model cannot answer, the test is the t test (least squares) on the processes' mean
logarithms, valid whatever the two variances are, and its note says why:

- the process variance is estimated at zero (a boundary fit): there the mixed model's error rests on the
  runs alone, too small when the processes do differ a little, while the processes' means hold all of it;
- no run-to-run spread at all (a peak memory is one figure a process): the process means are the data;
- the fit fails or does not converge.

The references' slope is dropped (slope 1, the plain ratio of minima, as ``host_adjusted`` does) where they
did not vary, or where the process means alone cannot spare a degree of freedom for it.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from pytest_sdxl.analysis.stats import CONFIDENCE, RunComparison, t_on_logarithms

# Below this ratio of process variance to run variance the REML fit sits on its boundary (no process
# variance): the processes' means then give the honest error (the module docstring).
BOUNDARY_RATIO = 1e-4
# Below this spread of the references' logarithms (0.1 % between blocks) a slope is noise (as in host_adjusted).
FLAT_REFERENCE = 1e-6


def process_count(processes: Sequence[str]) -> int:
    """How many processes measured a side's runs (runs without an id count as one process)."""
    return max(1, len(set(processes)))


def log_points(
    values: Sequence[float], processes: Sequence[str], covariate: Sequence[float] | None, side: str
) -> list[tuple[str, float, float]]:
    """(group, log value, log covariate or 0) of each run; a group is the side and the process."""
    if len(values) != len(processes) or (covariate is not None and len(covariate) != len(values)):
        raise ValueError(
            f"the {side} side has {len(values)} values but {len(processes)} process ids"
            + ("" if covariate is None else f" and {len(covariate)} reference values")
            + ": give one process id (and reference) per value"
        )
    if any(value <= 0 for value in [*values, *(covariate or [])]):
        raise ValueError(f"the process-aware comparison needs positive values: the {side} side has one <= 0")
    references = covariate if covariate is not None else [1.0] * len(values)
    return [
        (f"{side}:{process}", math.log(value), math.log(reference))
        for value, process, reference in zip(values, processes, references, strict=True)
    ]


def compare_processes(
    base: Sequence[float],
    base_processes: Sequence[str],
    new: Sequence[float],
    new_processes: Sequence[str],
    base_covariate: Sequence[float] | None = None,
    new_covariate: Sequence[float] | None = None,
    what: str = "per-run statistic",
    confidence: float = CONFIDENCE,
) -> RunComparison:
    """new / base with each process as a sample: the mixed model, or the t test on the processes' means.

    ``base`` and ``new`` hold each run's statistic (or each block's variant minimum, with the block's
    reference minimum as the covariate); ``*_processes`` the process of each. ``what`` names the values
    in the test's description.
    """
    with_covariate = base_covariate is not None and new_covariate is not None
    points = log_points(base, base_processes, base_covariate if with_covariate else None, "base") + log_points(
        new, new_processes, new_covariate if with_covariate else None, "new"
    )
    is_new = np.array([1.0 if group.startswith("new:") else 0.0 for group, _, _ in points])
    groups = np.array([group for group, _, _ in points])
    response = np.array([value for _, value, _ in points])
    reference = np.array([value for _, _, value in points])
    counts = (process_count(base_processes), process_count(new_processes))
    processes = counts[0] + counts[1]
    units = "blocks" if with_covariate else "runs"
    described = f"{counts[0]} vs {counts[1]} processes ({len(base)} vs {len(new)} {units})"
    if processes < 3:
        why = f"{described}: at least 3 processes in all are needed to estimate the process-to-process noise"
        return RunComparison(math.nan, math.nan, math.nan, math.nan, "", len(base), len(new), why, *counts)
    slope_fitted = with_covariate and spread(reference) > FLAT_REFERENCE * len(points)
    if with_covariate and not slope_fitted:
        response = response - reference  # slope 1: the plain ratio of minima
    freedom = processes - 2
    constant = constant_sides(response, is_new)
    if constant is not None:
        # Every run of a side agrees to the last bit (one peak memory figure in every process): no noise to model.
        difference, error = constant, 0.0
        test = f"every run of a side alike in log {what}"
    else:
        # Shifted by the first value: identical figures stay exactly alike, whatever the sums round to.
        response = response - response[0]
        columns = [np.ones(len(points)), is_new] + ([reference - reference[0]] if slope_fitted else [])
        fit = mixed_model(response, np.column_stack(columns), groups)
        if isinstance(fit, tuple):
            difference, error = fit
            test = f"mixed model (MixedLM, REML) on log {what}, a random level per process"
            slope_fitted_here = slope_fitted
        else:
            difference, error, freedom, slope_fitted_here = process_means(
                response, reference - reference[0], is_new, groups, slope_fitted
            )
            test = f"t on the processes' mean log {what} ({fit})"
        if with_covariate:
            test += ", reference slope fitted" if slope_fitted_here else ", slope 1"
    estimate = t_on_logarithms(difference, error, freedom, confidence)
    return RunComparison(
        ratio=estimate.ratio,
        low=estimate.low,
        high=estimate.high,
        p_value=estimate.p_value,
        test=f"{test}, {described}, t on {freedom} df",
        base_runs=len(base),
        new_runs=len(new),
        insufficient="",
        base_processes=counts[0],
        new_processes=counts[1],
    )


def constant_sides(response: Any, is_new: Any) -> float | None:
    """new - base where every value of each side is the same; None otherwise."""
    base, new = response[is_new == 0.0], response[is_new == 1.0]
    if np.all(base == base[0]) and np.all(new == new[0]):
        return float(new[0] - base[0])
    return None


def spread(values: Any) -> float:
    return float(np.sum((values - np.mean(values)) ** 2))


def within_variance(response: Any, groups: Any) -> float:
    """The pooled variance of the runs around their process's mean; 0 where no process has two runs."""
    residual, freedom = 0.0, 0
    for group in dict.fromkeys(groups.tolist()):
        members = response[groups == group]
        residual += spread(members)
        freedom += len(members) - 1
    return residual / freedom if freedom else 0.0


def mixed_model(response: Any, design: Any, groups: Any) -> tuple[float, float] | str:
    """(d, its standard error) from MixedLM, or why it cannot answer (a boundary fit, no run spread, no fit)."""
    from statsmodels.regression.mixed_linear_model import MixedLM

    # Started near the method-of-moments answer on the least-squares residuals (the change and the slope left
    # out): a fit then takes a few steps instead of a dozen, and does not start far out where the covariate
    # explains the processes' levels.
    coefficients, *_ = np.linalg.lstsq(design, response, rcond=None)
    residual = response - design @ coefficients
    within = within_variance(residual, groups)
    if within <= 1e-30:
        return "no run-to-run spread within the processes"
    names = list(dict.fromkeys(groups.tolist()))
    means = [float(np.mean(residual[groups == name])) for name in names]
    between = sum(mean * mean for mean in means) / max(1, len(names) - design.shape[1])
    runs_a_process = len(response) / len(names)
    start = math.sqrt(max(between / within - 1 / runs_a_process, 0.01))
    try:
        with warnings.catch_warnings():
            # Boundary and convergence warnings are read from the result below, not printed; so is the square
            # root of a negative variance that the standard errors take at a boundary fit (computed lazily, on
            # reading bse_fe, and printed to the user's terminal as a RuntimeWarning if read outside).
            warnings.simplefilter("ignore")
            result = MixedLM(response, design, groups=groups).fit(reml=True, start_params=np.array([start]))
            process_variance = float(np.asarray(result.cov_re)[0, 0])
            scale = float(result.scale)
            difference, error = float(result.fe_params[1]), float(result.bse_fe[1])
    except (np.linalg.LinAlgError, ValueError) as failure:
        return f"the mixed model could not be fitted: {failure}"
    if scale > 0 and process_variance <= BOUNDARY_RATIO * scale:
        return "the mixed model put the process variance at zero"
    if not result.converged or not scale > 0 or not math.isfinite(error) or not math.isfinite(difference):
        return "the mixed model did not converge"
    return difference, error


def process_means(
    response: Any, reference: Any, is_new: Any, groups: Any, slope_fitted: bool
) -> tuple[float, float, int, bool]:
    """d, its standard error, the degrees of freedom and whether a slope was fitted, from least squares on the
    process means.

    The references' slope costs a degree of freedom of the processes' own; where none is left (or the
    references' means do not differ between processes), slope 1 instead.
    """
    names = list(dict.fromkeys(groups.tolist()))
    mean_response = np.array([np.mean(response[groups == name]) for name in names])
    mean_reference = np.array([np.mean(reference[groups == name]) for name in names])
    side = np.array([float(is_new[groups == name][0]) for name in names])
    columns = [np.ones(len(names)), side]
    with_slope = slope_fitted and len(names) - 3 >= 1 and spread(mean_reference) > FLAT_REFERENCE * len(names)
    if with_slope:
        columns.append(mean_reference)
    elif slope_fitted:
        mean_response = mean_response - mean_reference
    design = np.column_stack(columns)
    freedom = len(names) - design.shape[1]
    coefficients, *_ = np.linalg.lstsq(design, mean_response, rcond=None)
    residual = float(np.sum((mean_response - design @ coefficients) ** 2))
    inverse = np.linalg.inv(design.T @ design)
    error = math.sqrt(residual / freedom * float(inverse[1, 1]))
    return float(coefficients[1]), error, freedom, with_slope
