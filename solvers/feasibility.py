"""Is the balanced state feasible?  One check, run first by every command (DESIGN.md §2).

Balance (B), W gbar + h = 0, has a solution only if

1. h lies in Range(W) on the lattice: otherwise DriveOutsideRange, with the rms of the part of h
   that no W q can cancel (``check_drive``);
2. the activities it demands lie strictly inside the ranges of the gains: when B (the constraint
   matrix on the lattice, solvers.lattice_coupling) has full column rank the moments
   mu = <chi, gbar> are fixed by B mu = -H; a constant chi atom then fixes the spatial mean of
   gbar_b (on a point: gbar_b itself), and a non-separable (lattice) kernel fixes gbar_b at every
   lattice point.  Each demanded value must lie in (inf g_b, sup g_b) (the range estimated over the
   domain by sampling g_b on +-logspace(-4, 6) and 0): otherwise GainRangeExceeded, naming the
   population, the position (where there is space), the demanded activity and the range
   (``check_demanded``).  A sigmoid gain cannot deliver gbar = 1: the supremum is not attained.

``check_feasible(model, t=0.0, npos=None)`` runs both at time t and returns None; the stationary
solver uses the same two functions on its own lattice.  Messages are one line and identical for
every command, e.g.

    model 'ei3': balance demands gbar_I1 = 1 at the point (no space), outside the range of the gain
    g_I1, [0, 1] (estimated over the domain); no balanced state exists

This module never imports SymPy.
"""
from __future__ import annotations

import math

import numpy as np

from .balance_errors import DriveOutsideRange, GainRangeExceeded

DRIVE_RTOL = 1e-9           # h is outside Range(W) when its distance exceeds DRIVE_RTOL * rms(h)

__all__ = ["check_feasible", "check_drive", "check_demanded", "demanded_checks", "demanded_margin", "gain_range",
           "profile_margins", "profile_margin"]


def _position_label(cpl, i: int) -> str:
    if not cpl.pos:
        return "the point (no space)"
    return "theta = (" + ", ".join(f"{float(p[i]):.4g}" for p in cpl.pos) + ")"


def _position(cpl, i: int):
    return tuple(float(p[i]) for p in cpl.pos) if cpl.pos else None


def check_drive(cpl) -> None:
    """DriveOutsideRange when h has a part outside Range(W) on the lattice of ``cpl``
    (a LatticeCoupling): rms(h - proj_Range(W) h) > DRIVE_RTOL rms(h)."""
    res, res_span, hrms = cpl.drive_outside_range()
    if res > DRIVE_RTOL * hrms and res > 1e-300:
        raise DriveOutsideRange(
            f"model {cpl.model.name!r}: h is outside Range(W), no balanced state exists: the part of h "
            f"that W gbar cannot cancel has rms {res:.6g} over the lattice (h itself: rms {hrms:.6g}; "
            f"part outside span psi from drive_residual: rms {res_span:.6g}; rank of W: {cpl.rank})",
            res, res_span)


def gain_range(model, pop: str, pos=(), t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """[inf g, sup g] of population pop's gain over the domain at each lattice position, (lo (N,),
    hi (N,)).  m = 1: solvers.density1d.DensityFamily.gain_range (domain: log sigma^2 finite).
    m >= 2: the gain's state component is swept over the same points, the others held at 0."""
    if model.m == 1:
        from .density1d import DensityFamily
        return DensityFamily(model, pop, pos, t).gain_range()
    N = len(pos[0]) if pos else 1
    xs = np.concatenate([-np.logspace(6, -4, 161), [0.0], np.logspace(-4, 6, 161)])
    used = [s for s in model.uses("gain", pop) if s in model.module.STATE]
    k = list(model.module.STATE).index(used[0]) if used else model.e
    args = [np.zeros_like(xs)[None, :] for _ in range(model.m)]
    args[k] = xs[None, :]
    th = tuple(np.asarray(p, float)[:, None] for p in pos)
    with np.errstate(all="ignore"):
        g = np.broadcast_to(np.asarray(model.call("gain", pop, *args, *th, t), float), (N, len(xs)))
    ok = ~np.isnan(g)
    lo = np.where(ok, g, np.inf).min(axis=1)
    hi = np.where(ok, g, -np.inf).max(axis=1)
    return lo, hi


def demanded_checks(cpl, ranges=None) -> list:
    """The activities balance fixes, each with the gain's range there: a list of (demanded value, lo,
    hi, where (text), position) (module docstring, item 2); empty when B has no full column rank.
    ranges: per population (lo (N,), hi (N,)) on cpl's lattice (default: ``gain_range``)."""
    model = cpl.model
    mu = cpl.demanded_moments()
    if mu is None:
        return []
    if ranges is None:
        ranges = [gain_range(model, a, cpl.pos, cpl.t) for a in model.populations]
    checks = []
    for b, pop in enumerate(model.populations):
        lo, hi = ranges[b]
        if cpl.separable:
            for l in range(cpl.L):
                c = cpl.Chi[l]
                if abs(c[0]) > 0 and np.ptp(c) <= 1e-12 * abs(c[0]):
                    where = ("the point (no space)" if not cpl.pos else "the spatial mean over positions")
                    checks.append((pop, mu[b, l] / c[0], float(np.mean(lo)), float(np.mean(hi)), where, None))
        else:
            for i in range(cpl.N):
                checks.append((pop, mu[b, i], float(lo[i]), float(hi[i]), _position_label(cpl, i),
                               _position(cpl, i)))
    return checks


def demanded_margin(cpl, ranges=None) -> float | None:
    """min over the demanded activities of (distance to the nearer end of the gain's range) / (its
    width): > 0 where balance can hold, <= 0 past the loss of balance; None when balance fixes no
    activity (B without full column rank).  A continuous function of the parameters, whose zero is
    the loss-of-balance boundary (solvers.boundaries)."""
    checks = demanded_checks(cpl, ranges)
    if not checks:
        return None
    out = math.inf
    for _, dem, rlo, rhi, _, _ in checks:
        width = rhi - rlo if math.isfinite(rhi - rlo) else 1.0
        out = min(out, (dem - rlo) / width, (rhi - dem) / width)
    return float(out)


def profile_margins(cpl, ranges=None) -> dict | None:
    """Per population b, the largest t such that some activity profile q_b on the lattice with values
    in [lo_i + t w_i, hi_i - t w_i] at every position i (w_i = hi_i - lo_i, or 1 where an end is
    infinite; an infinite end imposes nothing) has the moments balance demands,
    <chi_l, q_b> = mu_(b,l) for every atom l (solvers.lattice_coupling: lattice averages):

        t_b = max { t :  (1/N) sum_i chi_l(theta_i) q_i = mu_(b,l) for all l,
                         lo_i + t w_i <= q_i <= hi_i - t w_i for all i }          (a linear programme).

    The moments achievable by profiles inside the gain's range form a zonotope Z_b (the image of the
    box of ranges under q -> <chi, q>); t_b > 0 exactly when mu_b lies inside it, t_b = 0 on its
    boundary, and t_b is concave and continuous in mu_b.  On a point (chi = 1) and for a lattice
    kernel (chi = N delta_i) it is the distance to the nearer end over the width, as in
    ``demanded_margin``.  On a ring it also sees what ``demanded_margin`` (the spatial mean only) cannot: the
    demanded tuning may be unreachable although the mean is inside the range, the activity then
    having to reach 0 or 1 at some positions only (a local loss of balance).  When the balance's
    multiplier has the same atoms as the moments (chi and psi span the same functions, as for a
    truncated Fourier kernel) every moment vector inside Z_b is reached by gbar_b = G_b(lambda_b) with
    lambda_b in span psi (the moments are the gradient of a strictly convex function of lambda's
    coefficients, which maps onto the interior of Z_b), so t_b = 0 is exactly where the balanced state
    ceases to exist.  None when B has no full column rank (balance fixes no moments) or a population
    has no finite range end.  Solved by HiGHS (scipy.optimize.linprog) with feasibility tolerances
    1e-10 (its smallest); the optimum is a vertex, so t_b is accurate to rounding."""
    from scipy.optimize import linprog
    model = cpl.model
    mu = cpl.demanded_moments()
    if mu is None:
        return None
    if ranges is None:
        ranges = [gain_range(model, a, cpl.pos, cpl.t) for a in model.populations]
    N, L = cpl.N, cpl.L
    A_eq = np.hstack([np.asarray(cpl.Chi, float) / N, np.zeros((L, 1))])
    out = {}
    for b, pop in enumerate(model.populations):
        lo, hi = (np.broadcast_to(np.asarray(r, float), (N,)) for r in ranges[b])
        width = np.where(np.isfinite(hi - lo), hi - lo, 1.0)
        rows, rhs = [], []
        for i in range(N):
            if np.isfinite(lo[i]):              # -q_i + w_i t <= -lo_i
                r = np.zeros(N + 1)
                r[i], r[N] = -1.0, width[i]
                rows.append(r)
                rhs.append(-lo[i])
            if np.isfinite(hi[i]):              # q_i + w_i t <= hi_i
                r = np.zeros(N + 1)
                r[i], r[N] = 1.0, width[i]
                rows.append(r)
                rhs.append(hi[i])
        if not rows:
            return None
        c = np.zeros(N + 1)
        c[N] = -1.0
        res = linprog(c, A_ub=np.array(rows), b_ub=np.array(rhs), A_eq=A_eq, b_eq=mu[b],
                      bounds=[(None, None)] * N + [(None, 1.0)], method="highs",
                      options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10})
        if res.status != 0:
            raise ValueError(f"model {model.name!r}: the profile margin of population {pop} has no solution "
                             f"({res.message}); the moments balance demands, {mu[b]}, are not those of any "
                             f"profile on the lattice")
        out[pop] = float(-res.fun)
    return out


def profile_margin(cpl, ranges=None) -> float | None:
    """min over the populations of ``profile_margins`` (None when that is None)."""
    m = profile_margins(cpl, ranges)
    return None if m is None else min(m.values())


def check_demanded(cpl, ranges=None) -> None:
    """GainRangeExceeded when balance fixes an activity outside the gain's range (module docstring).
    ranges: per population (lo (N,), hi (N,)) on cpl's lattice (default: ``gain_range``)."""
    model = cpl.model
    for pop, dem, rlo, rhi, where, position in demanded_checks(cpl, ranges):
        width = rhi - rlo if math.isfinite(rhi - rlo) else 1.0
        if not (rlo + 1e-12 * width < dem < rhi - 1e-12 * width):
            raise GainRangeExceeded(
                f"model {model.name!r}: balance demands gbar_{pop} = {dem:.6g} at {where}, outside "
                f"the range of the gain g_{pop}, [{rlo:.6g}, {rhi:.6g}] (estimated over the domain); "
                f"no balanced state exists", pop, position, float(dem), (rlo, rhi))


def check_feasible(model, t: float = 0.0, npos: int | None = None, params: dict | None = None) -> None:
    """Raise DriveOutsideRange or GainRangeExceeded (solvers.balance_errors, both InfeasibleBalance,
    a ValueError) when the balanced state cannot exist at time t; return None otherwise.

    model: CompiledModel, model name or generated module (params: overrides); npos: lattice
    positions per angle (default: solvers.lattice_coupling.DEFAULT_NPOS, 1 without space)."""
    from .compiled import CompiledModel
    from .lattice_coupling import DEFAULT_NPOS, LatticeCoupling
    if isinstance(model, CompiledModel):
        cm = CompiledModel(model.module, {**model.params, **params}) if params else model
    else:
        cm = CompiledModel(model, params)
    if cm.pos_dim == 0:
        npos = 1
    elif npos is None:
        npos = DEFAULT_NPOS[cm.space]
    cpl = LatticeCoupling(cm, int(npos), t)
    check_drive(cpl)
    check_demanded(cpl)
