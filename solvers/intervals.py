"""One x-interval per population for time-dependent solvers (m = 1): it must hold the densities
of the whole evolution, from the initial Gaussian to the stationary state.

``auto_interval_for_model`` takes the hull of
  * the automatic grid (solvers.density1d.select_grid) of the stationary density at every lattice
    position, at the balanced-limit multiplier (solvers.stationary.solve_balanced), or at the
    finite-n one when n is given (solve_finite_n); lambda = 0 when that state does not exist, and
  * the initial Gaussian N(m0, sd0^2) down to exp(-drop) of its peak: m0 +- sqrt(2 drop) |sd0|,
clipped to the domain (points where the log density is not finite) around the stationary density:
a side that leaves the domain ends at the wall, located by bisection.

It lives apart from solvers.density1d because it needs the stationary solver, which itself builds
on density1d.  This module never imports SymPy.
"""
from __future__ import annotations

import math

import numpy as np

from .balance_errors import StationaryError
from .density1d import DROP, DensityFamily, bisect_wall, cell_centres
from .stationary import solve_balanced, solve_finite_n

__all__ = ["auto_interval_for_model"]


def auto_interval_for_model(model, pop: str, *, npos: int | None = None, n: float | None = None,
                            t: float = 0.0, initial: tuple | None = None, drop: float = DROP) -> tuple:
    """An x-interval (lo, hi) for population ``pop`` that holds, at every lattice position, the
    stationary density at the balanced-limit multiplier (finite-n multiplier when n is given;
    lambda = 0 when that state does not exist) and the initial Gaussian N(mean, sd^2) (``initial``,
    else the model's INITIAL, else N(0, 1)) down to exp(-drop) of its peak, clipped to the domain.
    For time-dependent solvers that need one interval for the whole evolution."""
    ia = model.populations.index(pop)
    try:
        res = (solve_balanced(model, npos=npos, t=t, check_stability=False) if n is None else
               solve_finite_n(model, n, npos=npos, t=t, check_stability=False))
        lam, pos = res.lam[ia], res.pos
        center, scale = float(np.mean(res.mean[ia])), float(np.sqrt(np.max(res.variance[ia])))
    except StationaryError:
        pos = model.grid(npos if npos is not None else 1) if model.pos_dim else ()
        lam, center, scale = 0.0, 0.0, 1.0
    fam = DensityFamily(model, pop, pos, t)
    grid = fam.select_grid(lam, center, scale, drop=drop)
    init = initial if initial is not None else (model.module.INITIAL.get(pop) or (0.0, 1.0))
    m0, sd0 = (float(np.ravel(v)[0]) for v in init)
    half = math.sqrt(2.0 * drop) * abs(sd0)
    lo, hi = min(grid.lo, m0 - half), max(grid.hi, m0 + half)
    logd = lambda x: fam.log_density(x, lam)  # noqa: E731
    xs = cell_centres(lo, hi, 4001)
    ok = np.isfinite(_log_density_quietly(logd, xs)).any(axis=0)
    if not ok.all():                            # clip to the domain around the stationary density
        j = int(np.clip(np.searchsorted(xs, 0.5 * (grid.lo + grid.hi)), 0, len(xs) - 1))
        bad_lo, bad_hi = np.flatnonzero(~ok[:j]), np.flatnonzero(~ok[j:]) + j
        if bad_lo.size:
            lo = grid.lo if grid.wall_lo else bisect_wall(logd, xs[bad_lo[-1]], xs[bad_lo[-1] + 1])
        if bad_hi.size:
            hi = grid.hi if grid.wall_hi else bisect_wall(logd, xs[bad_hi[0]], xs[bad_hi[0] - 1])
    return float(lo), float(hi)


def _log_density_quietly(logd, xs):
    """logd(xs) with NumPy floating-point errors silenced (outside the domain it is inf or nan)."""
    with np.errstate(all="ignore"):
        return logd(xs)
