"""The tensor grid of the m = 2 kinetic and stationary solvers, chosen from Gaussian means and
covariances (DESIGN.md §5, §5b).

Which state dimensions are supported: m = 2.  m = 1 has its own solvers (solvers.kinetic,
solvers.stationary); m >= 3 is refused (a tensor grid of 12 cells per sd in three dimensions per
population and position needs ~10^6-10^7 cells per block; use the particles or the neural field).

Densities held (per population a, component k, every lattice position):
  * the stationary state as the Gaussian field gives it: balanced (solvers.field stationary_field)
    or, at finite n, the Gaussian state of  lambda_n / sqrt(n) = W G(m, C) + h  (``gaussian_state``,
    Newton on the lattice multiplier).  Exact for linear drift with additive noise; for other models
    the Gaussian closure (an approximation, so its interval is widened by CLOSURE_MARGIN sd);
  * the initial density N(m0, diag sd0^2) (the model's INITIAL, else N(0, 1) per component), and its
    way to the stationary state: up to twice the distance between the two means (the initial-layer
    shift, or the finite-n ringing that overshoots).
Interval of component k: the hull of  mean +- z sd  over those densities and positions, z =
Phi^-1(1 - TAIL_MASS).  Cells: with s_k the smallest sd of component k among them, n_k =
width_k CELLS_PER_SD / s_k (at least N_AUTO_MIN, a multiple of 8, the largest over populations);
refused (GridError naming the population, the component, s, the width and the cells per sd) when
n_k > N_MAX or the whole batch P x Npos x n1 x n2 exceeds MAX_CELLS.  A given shape is refused when it
has fewer than MIN_CELLS_PER_SD cells per s.  During a run the solver checks the marginals (mass in
the outer cells, cells per effective sd) the same way (solvers.kinetic2d).

No SymPy here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtri

from .compiled import CompiledModel
from .kinetic import GridError

CELLS_PER_SD = 12           # automatic grids: cells per standard deviation, per component
MIN_CELLS_PER_SD = 6        # any grid, at construction and during the run (5 % slack there)
N_AUTO_MIN = 48
N_MIN = 16
N_MAX = 768
MAX_CELLS = 6_000_000       # P x Npos x n1 x n2 (a density array of 48 MB; the step keeps ~15 of them)
TAIL_MASS = 1e-10           # mass allowed beyond each end of the automatic interval, per component
CLOSURE_MARGIN = 2.0        # extra sd on each side for Gaussian-closure (approximate) states
EDGE_MASS_TOL = 1e-6


class UnsupportedDimension(ValueError):
    """The state dimension is not one the m = 2 solvers handle."""


def check_model_m2(m: CompiledModel, what: str = "the kinetic solver") -> None:
    """Refuse a model these solvers cannot handle, before any computation: m != 2, or a gain that does
    not depend on the input component e (then D = <dg/dx_e> = 0 and the balance is a higher-index
    constraint, DESIGN.md §5b)."""
    if m.m == 1:
        raise UnsupportedDimension(f"model {m.name!r}: the state is one-dimensional; use the m = 1 solvers "
                                   "(solvers.kinetic / solvers.stationary)")
    if m.m != 2:
        raise UnsupportedDimension(
            f"model {m.name!r}: {what} handles a state of dimension m = 1 or 2, this model has m = {m.m} "
            f"(states {', '.join(m.module.STATE)}); m >= 3 is not supported (a 3-D tensor grid needs "
            f"~10^6-10^7 cells per population and position): use the particle simulation or the neural "
            f"field (solve --field) for it")
    ename = m.module.STATE[m.e]
    for a in m.populations:
        if ename not in m.uses("gain", a):
            raise UnsupportedDimension(
                f"model {m.name!r}, population {a}: the gain g_{a} does not depend on the input component "
                f"{ename!r}, so D = <dg/d{ename}> = 0 and the balance constraint has a higher index "
                f"(DESIGN.md §5b); {what} refuses it")


def _init_gaussians(m: CompiledModel, init):
    """Per population (mean (2,), sd (2,)) of the initial Gaussian: init dict pop -> (mean, sd), one
    (mean, sd) for all, or None (the model's INITIAL, else N(0, 1) per component)."""
    out = []
    for a in m.populations:
        spec = init.get(a) if isinstance(init, dict) else (init if isinstance(init, tuple) else None)
        if spec is None:
            spec = (m.module.INITIAL or {}).get(a) or (0.0, 1.0)
        mu, sd = spec
        out.append((np.broadcast_to(np.asarray(mu, float), (m.m,)).copy(),
                    np.abs(np.broadcast_to(np.asarray(sd, float), (m.m,))).copy()))
    return out


def gaussian_state(m: CompiledModel, npos: int, n: float | None = None, t: float = 0.0):
    """Stationary Gaussian state (mean (P, N, 2), cov (P, N, 2, 2), lam (P, N), approximate: bool) of the
    balanced limit (n None) or of the Gaussian field at finite n, lambda / sqrt(n) = W G(m, C) + h
    (DESIGN.md §5b): solvers.field.FieldSolver(..., n=n).stationary(t), exact for a linear drift with
    additive noise, the Gaussian closure (approximate) otherwise.  Raises the field's errors
    (FieldNotApplicable, FieldError, NoConvergence) when there is none."""
    from .field import FieldSolver
    lin = all(dict(m.module.LINEAR_ADDITIVE).values())
    st = FieldSolver(m, npos=npos, closure=not lin, n=n).stationary(t)
    return st.state_mean, st.state_cov, st.lam, not lin


@dataclass
class Grid2D:
    """Per population the intervals of the two components ((lo1, hi1), (lo2, hi2)), the shape
    (n1, n2) shared by all populations, and the numbers that justify it: the smallest sd of each
    component among the densities held (and where it comes from), and the cells per sd."""

    intervals: list
    shape: tuple
    sd: dict
    sd_source: dict
    automatic: bool
    components: tuple

    def h(self, ia: int) -> tuple:
        (lo1, hi1), (lo2, hi2) = self.intervals[ia]
        return (hi1 - lo1) / self.shape[0], (hi2 - lo2) / self.shape[1]

    def centres(self, ia: int) -> tuple:
        out = []
        for k in (0, 1):
            lo, hi = self.intervals[ia][k]
            hk = (hi - lo) / self.shape[k]
            out.append(lo + hk * (np.arange(self.shape[k]) + 0.5))
        return tuple(out)

    def cells_per_sd(self) -> dict:
        return {a: [self.shape[k] / (self.intervals[ia][k][1] - self.intervals[ia][k][0]) * self.sd[a][k]
                    for k in (0, 1)] for ia, a in enumerate(self.sd)}

    def to_record(self) -> dict:
        c = self.components
        return {"shape": list(self.shape), "automatic": self.automatic,
                "interval": {a: {c[k]: list(map(float, self.intervals[ia][k])) for k in (0, 1)}
                             for ia, a in enumerate(self.sd)},
                "sd": {a: {c[k]: float(self.sd[a][k]) for k in (0, 1)} for a in self.sd},
                "sd_source": dict(self.sd_source),
                "cells_per_sd": {a: {c[k]: float(v[k]) for k in (0, 1)} for a, v in self.cells_per_sd().items()},
                "rule": f"interval: mean +- Phi^-1(1 - {TAIL_MASS:g}) sd of the Gaussian stationary and initial "
                        f"densities (and twice the way between them); cells: >= {CELLS_PER_SD} per sd "
                        f"(automatic), >= {MIN_CELLS_PER_SD} required; n <= {N_MAX} per axis"}


def _check_shape(shape):
    try:
        n1, n2 = (int(v) for v in shape)
        ok = (n1, n2) == tuple(shape) and min(n1, n2) >= N_MIN
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"shape (cells per component) must be two integers >= {N_MIN}, got {shape!r}")
    return n1, n2


def choose_grid2d(model, *, npos: int = 32, n: float | None = None, init=None, shape=None, intervals=None,
                  t: float = 0.0, check: bool = True, stationary_only: bool = False) -> Grid2D:
    """The grid of an m = 2 kinetic or stationary run (rule in the module docstring).  shape: None
    (automatic) or (n1, n2); intervals: None (automatic), or {pop: ((lo1, hi1), (lo2, hi2))} or one
    such pair for every population.  check: refuse grids that do not resolve the densities.
    stationary_only: hold only the stationary state (stationary solves; falls back to the initial
    Gaussian when there is no Gaussian stationary state)."""
    m = model if isinstance(model, CompiledModel) else CompiledModel(model)
    check_model_m2(m)
    comps = tuple(m.module.STATE)
    if shape is not None:
        shape = _check_shape(shape)
    npos_eff = npos if m.pos_dim else 1
    given = None
    if intervals is not None:
        given = ([intervals[a] for a in m.populations] if isinstance(intervals, dict) else [intervals] * m.P)
        given = [tuple(tuple(map(float, iv)) for iv in g) for g in given]
        for a, g in zip(m.populations, given):
            for k, (lo, hi) in enumerate(g):
                if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                    raise ValueError(f"model {m.name!r}, population {a}: the interval of {comps[k]} must have "
                                     f"finite ends with lo < hi, got [{lo}, {hi}]")
    z = float(-ndtri(TAIL_MASS))
    st = None
    why = None
    try:
        st = gaussian_state(m, npos_eff, n, t)
    except Exception as exc:                       # no Gaussian stationary state known
        why = f"{type(exc).__name__}: {exc}"
    inits = _init_gaussians(m, init)
    out_iv, sds, sources, comp_src = [], {}, {}, {}
    for ia, a in enumerate(m.populations):
        m0, s0 = inits[ia]
        iv, sd_a = [], []
        src = []
        for k in (0, 1):
            cands = [(m0[k] - z * s0[k], m0[k] + z * s0[k], s0[k], "initial Gaussian")]
            if st is not None and stationary_only:
                cands = []
            if st is not None:
                mu, C, _, approx = st
                mk = mu[ia, :, k]
                sk = np.sqrt(np.maximum(C[ia, :, k, k], 0.0))
                zz = z + (CLOSURE_MARGIN if approx else 0.0)
                label = ("Gaussian-closure" if approx else "Gaussian") + (
                    " balanced" if n is None else f" finite-n (n = {n:g})") + " stationary state"
                cands.append((float((mk - zz * sk).min()), float((mk + zz * sk).max()), float(sk.min()), label))
            if st is not None and not stationary_only:
                far = m0[k] + 2 * (mk - m0[k])
                cands.append((float(min(m0[k], far.min()) - z * s0[k]), float(max(m0[k], far.max()) + z * s0[k]),
                              s0[k], "the initial density on its way to the stationary state"))
            if given is not None:
                lo, hi = given[ia][k]
            else:
                lo, hi = min(c[0] for c in cands), max(c[1] for c in cands)
            j = int(np.argmin([c[2] for c in cands]))
            iv.append((float(lo), float(hi)))
            sd_a.append(float(cands[j][2]))
            src.append(f"{comps[k]}: {cands[j][3]}")
            comp_src[(a, k)] = cands[j][3] if cands[j][3] else "given interval"

        if st is None:
            src.append(f"no stationary Gaussian state ({why})")
        out_iv.append(tuple(iv))
        sds[a] = sd_a
        sources[a] = "; ".join(src)
    automatic = shape is None
    if shape is None:
        need = []
        for k in (0, 1):
            nk = max(math.ceil((out_iv[ia][k][1] - out_iv[ia][k][0]) * CELLS_PER_SD / sds[a][k])
                     for ia, a in enumerate(m.populations))
            nk = max(N_AUTO_MIN, int(8 * math.ceil(nk / 8)))
            if nk > N_MAX and check:
                ia = int(np.argmax([(out_iv[i][k][1] - out_iv[i][k][0]) / sds[b][k]
                                    for i, b in enumerate(m.populations)]))
                a = m.populations[ia]
                lo, hi = out_iv[ia][k]
                raise GridError(
                    f"model {m.name!r}, population {a}, component {comps[k]}: resolving the density needs "
                    f"{nk} cells along {comps[k]}: the interval [{lo:.4g}, {hi:.4g}] is {(hi - lo) / sds[a][k]:.4g} "
                    f"sd wide (s = {sds[a][k]:.4g}, from the {comp_src[(a, k)]}) at {CELLS_PER_SD} cells per sd, "
                    f"above the cap N_MAX = {N_MAX}.  Give the grid yourself (shape=(n1, n2), intervals=...)")
            need.append(min(nk, N_MAX))
        shape = tuple(need)
    grid = Grid2D(out_iv, tuple(shape), sds, sources, automatic, comps)
    total = m.P * m.n_positions(npos_eff) * shape[0] * shape[1]
    if check and total > MAX_CELLS:
        raise GridError(f"model {m.name!r}: the grid needs {m.P} populations x {m.n_positions(npos_eff)} positions x "
                        f"{shape[0]} x {shape[1]} cells = {total:.3g} cells, above MAX_CELLS = {MAX_CELLS:.3g}; use "
                        f"fewer positions (npos) or a given coarser shape")
    if check:
        for ia, a in enumerate(m.populations):
            for k, c in enumerate(grid.cells_per_sd()[a]):
                if c < MIN_CELLS_PER_SD:
                    lo, hi = out_iv[ia][k]
                    raise GridError(
                        f"model {m.name!r}, population {a}, component {comps[k]}: the grid [{lo:.4g}, {hi:.4g}] "
                        f"with {shape[k]} cells has {c:.3g} cells per sd of the density (s = {sds[a][k]:.4g}, "
                        f"from the {comp_src[(a, k)]}); at least {MIN_CELLS_PER_SD} are needed (automatic grids use "
                        f"{CELLS_PER_SD}): use more cells or leave shape out for the automatic grid")
    return grid
