"""Time-dependent kinetic Fokker–Planck solver for m = 1 (DESIGN.md §3, §4).

State: p[a, j, i], the density of population a at lattice position theta_j in cell i of the x-grid
of population a.  Fluxes are Scharfetter–Gummel (solvers.fp1d) built from the generated flux form
V = f + u e - d(D/2)/dx, D/2 = sigma^2/2, plus the multiplier lambda_a(theta_j, t) in the velocity.

The multiplier, two modes:

* balanced (n = None): lambda(t) in Range(W) is chosen at every step so that the discrete balance
  constraint  W gbar(p) + h = 0  holds at the end of the step (projection onto the manifold);
* finite n: lambda_n = sqrt(n) (W gbar(p) + h) evaluated at the end of the step (implicit, so the
  O(sqrt n) relaxation does not restrict the step).

Both are solved with one linearisation per step: with lambda = lambda_prev + sum_r c_r U_r
(U an orthonormal basis of the admissible lambda fields on the lattice) the step is affine in c,
    p_next = y + sum_r c_r z_r,
where y is the step with lambda_prev and z_r its derivative along U_r (the velocity derivative of
the SG fluxes applied to p_now).  The constraint (or the finite-n relation) is then an r x r linear
system for c.  W is the lattice operator W[(a,i),(b,j)] = alpha_b w_ab(theta_i, theta_j) / Npos;
Range(W) comes from its SVD (singular values above 1e-10 times the largest).

Time steps: implicit Euler, or TR-BDF2 (gamma = 2 - sqrt 2; both stages solve (I - gamma/2 dt A)),
with a positivity safeguard: a step that produces a negative density is redone as two half steps
(implicit Euler), down to dt / 2^8, else an error is raised.  Negatives at roundoff level
(|p| < 1e-13 max p) are set to zero and their total mass is reported.

Fast modes at finite n (``fast_rates``, the step audit).  Linearised about the current density, the
imbalance W gbar + h relaxes with the eigenvalues nu of the finite-n fast matrix
diag(<f'>) + sqrt(n) W diag(<g'>) on the admissible directions (DESIGN.md §4b).  The end-of-step
multiplier treats them like implicit Euler, amplification R(z) = 1 / (1 - z) per step, z = dt nu:
stable at any dt, but accurate (rate error |z|/2 <= STEP_TOL) only for |z| <= 2 STEP_TOL.  Every
record audits dt against nu at the current density:
  * |z| <= 2 STEP_TOL: resolved;
  * Re nu < 0, |z| larger: the mode is not resolved but decays, in the equation and in the scheme;
    its error is confined to a transient from the start of the run (from wherever the mode is
    excited), after which the error bound of the linear mode stays below STEP_TOL of the amplitude
    it was excited with (``unresolved_transient``), reported in info["step_audit"]["transient"]
    (not refused: later results carry the ordinary O(dt) error of the slow dynamics);
  * Re nu >= 0 and |z| larger: a growing or undamped mode that the step would damp: refused
    (KineticStepTooCoarse, with the largest accurate dt) under step_check="refuse".

Initial layer (balanced mode): an initial density off the manifold is first shifted,
x -> x + delta(theta) with delta in Range(W), to the end point of the fast flow
d delta/ds = W gbar(p0 shifted by delta) + h  (then polished by Newton on the discrete constraint).

The x-grid (``choose_grid``).  One uniform grid per population, nx cells each, must (i) hold the
mass: the interval is the hull of the tail-mass quantiles  [q(TAIL_MASS), q(1 - TAIL_MASS)]  of the
stationary densities (balanced, or finite n; every lattice position) and of the initial density,
clipped to the domain (a wall where sigma^2 stops being positive and finite); and (ii) resolve it:
with the effective standard deviation of a density p

    s(p) = min( sd(p),  1 / (sqrt(2 pi) max p) )          (= sigma for N(m, sigma^2); the second term
                                                            sees a narrow peak inside a wide density)

the cell width h obeys  s / h >= CELLS_PER_SD (20) for every density the grid must hold, so nx grows
with the interval's width in units of s, up to NX_MAX (a larger demand is refused, naming the
population, s and the cells per sd, and how to set nx / the interval).  A grid that is given (nx and/or
the interval) is checked the same way: fewer than MIN_CELLS_PER_SD (10) cells per s is refused.  During
the run every record checks that the mass in the outer max(1, nx/64) cells of each non-wall side stays
below EDGE_MASS_TOL and that the current density keeps MIN_CELLS_PER_SD cells per s; otherwise the run
stops with a GridError naming the population and the time.  ``run`` also repeats the computation on
nx/2 cells over the same interval and reports max_t |Q_nx - Q_nx/2| for Q = mean, variance, gbar,
lambda: for this second-order scheme the error of the nx result is about a third of that difference
(Richardson), and the difference itself falls ~4x per doubling of nx.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import fast_spectrum, fp1d
from .balance_errors import DriveOutsideRange, NoConvergence
from .compiled import CompiledModel
from .continuation import follow_flow
from .lattice_coupling import lattice_range_basis, lattice_W
from .lattice_multiplier import LatticeMultiplier
from .output import Record, state_record, theta_list

GAMMA = 2.0 - np.sqrt(2.0)


NX_MIN = 16                 # fewer cells cannot hold a density (and nx/2 must still be a grid)
NX_AUTO_MIN = 128           # automatic grids have at least this many cells
NX_MAX = 16384              # automatic grids refuse to grow beyond this
CELLS_PER_SD = 20           # automatic grids: cells per effective standard deviation s(p)
MIN_CELLS_PER_SD = 10       # any grid (given or automatic), at construction and during the run
RUN_SLACK = 0.95            # during the run s is estimated on the grid itself (O(h^2) low): 5 % slack
TAIL_MASS = 1e-12           # mass allowed beyond each end of the automatic interval (per density)
STEP_TOL = 0.02             # finite n: relative error per step allowed in a resolved fast mode
EDGE_MASS_TOL = 1e-6        # mass allowed in the outer cells of a non-wall side during the run (a
                            # truncation below the ~1e-4 relative moment error of 20 cells per sd)


class KineticError(RuntimeError):
    """Numerical trouble in the kinetic solver (negative density, NaN, constraint drift)."""


def unresolved_transient(z: complex, dt: float, tol: float = STEP_TOL) -> float:
    """How long a decaying fast mode (Re z < 0, z = dt nu) is wrong by more than tol (relative to the
    amplitude it was excited with) under the implicit coupling step, whose factor per step is
    R = 1 / (1 - z) against exp(z).  With A_k = max(exp(k Re z), |R|^k) (both decay) and the error
    of the exponent per step delta = |z + log(1 - z)| (~ |z|^2 / 2),
        |exp(k z) - R^k| <= A_k min(2, k delta)
    (mean value bound on the segment between the exponents); the transient is the last time k dt
    at which that bound exceeds tol, 0 when it never does, inf beyond 10^6 steps."""
    if z.real >= 0:
        raise ValueError("unresolved_transient needs a decaying mode (Re z < 0)")
    decay = min(-z.real, np.log(abs(1.0 - z)))               # per step, of the slower of the two
    delta = abs(z + np.log(1.0 - z))
    # A_k k delta peaks at k = 1 / decay; beyond k_end = (ln(2 / tol) + ...) / decay it stays below tol
    k_end = (np.log(2.0 / tol) + np.log(max(1.0, delta / decay))) / decay + 2.0 / decay
    if k_end > 1e6:
        return float("inf")
    k = np.arange(1, int(np.ceil(k_end)) + 2)
    with np.errstate(under="ignore"):
        bound = np.exp(-k * decay) * np.minimum(2.0, k * delta)
    bad = np.nonzero(bound > tol)[0]
    return float(dt * k[bad[-1]]) if bad.size else 0.0


class KineticStepTooCoarse(KineticError):
    """At finite n, dt does not resolve a growing (or undamped) fast mode of the imbalance: the
    implicit coupling would damp it.  Carries dt, the largest accurate dt, t and the eigenvalue nu."""

    def __init__(self, message, dt, dt_accurate, t, nu):
        super().__init__(message)
        self.dt, self.dt_accurate, self.t, self.nu = dt, dt_accurate, t, nu


class GridError(KineticError):
    """The x-grid cannot hold or resolve the density (message: population, s, cells per s, mass at
    the edge, and which of nx / xmin / xmax to change)."""


def effective_sd(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """s(p) = min(sd(p), 1 / (sqrt(2 pi) max p)) of densities p (..., nx) on the uniform cell
    centres x (normalisation not assumed).  Both terms equal sigma for a Gaussian."""
    h = float(x[1] - x[0])
    p = np.asarray(p, float)
    mass = p.sum(-1) * h
    mean = (p * x).sum(-1) * h / mass
    var = (p * (x - mean[..., None]) ** 2).sum(-1) * h / mass
    peak = p.max(-1) / mass
    return np.minimum(np.sqrt(np.maximum(var, 0.0)), 1.0 / (np.sqrt(2 * np.pi) * peak))


def _tail_quantiles(x: np.ndarray, p: np.ndarray, tail: float):
    """Per row of p (N, nx): the left edge of the cell where the CDF first exceeds ``tail`` and the
    right edge of the cell where 1 - CDF first falls below it (the interval keeps all but <= tail
    on each side)."""
    h = float(x[1] - x[0])
    p = np.atleast_2d(p)
    c = np.cumsum(p, axis=-1) * h
    c = c / c[:, -1:]
    i0 = np.argmax(c > tail, axis=-1)
    i1 = np.argmax(c >= 1.0 - tail, axis=-1)
    return x[i0] - h / 2, x[i1] + h / 2


@dataclass
class KineticGrid:
    """The x-grid of a kinetic run: per population the interval, one nx for all, and the numbers
    that justify it (per population: the smallest effective sd s of the densities held, and where
    it comes from; cells per s; whether each end is a domain wall)."""

    intervals: list
    nx: int
    sd: dict
    sd_source: dict
    walls: list
    automatic_nx: bool
    automatic_interval: bool

    def cells_per_sd(self) -> dict:
        return {a: self.nx / (hi - lo) * self.sd[a] for a, (lo, hi) in zip(self.sd, self.intervals)}

    def to_record(self) -> dict:
        return {"nx": self.nx, "automatic_nx": self.automatic_nx, "automatic_interval": self.automatic_interval,
                "interval": {a: [float(lo), float(hi)] for a, (lo, hi) in zip(self.sd, self.intervals)},
                "effective_sd": {a: float(v) for a, v in self.sd.items()},
                "sd_source": dict(self.sd_source),
                "cells_per_sd": {a: float(v) for a, v in self.cells_per_sd().items()},
                "walls": {a: list(w) for a, w in zip(self.sd, self.walls)},
                "rule": f"interval: tail mass <= {TAIL_MASS:g} per side of the stationary and initial "
                        f"densities; nx: >= {CELLS_PER_SD} cells per effective sd (automatic), "
                        f">= {MIN_CELLS_PER_SD} required, nx <= {NX_MAX}"}


def _check_nx(nx) -> int:
    try:
        ok = int(nx) == nx
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok or nx < NX_MIN:
        raise ValueError(f"nx (cells of the x-grid per population) must be an integer >= {NX_MIN}, got {nx!r}")
    return int(nx)


def _is_outside(model, pop, x, pos) -> np.ndarray:
    """True where x (array) is outside the domain of population pop: sigma^2/2 not finite or <= 0
    at some lattice position."""
    th = tuple(np.asarray(p, float)[:, None] for p in pos)
    with np.errstate(all="ignore"):
        D = np.asarray(model.call("fp_diffusion", pop, np.asarray(x, float)[None, :], *th, 0.0)[0][0], float)
    D = np.broadcast_to(D, (len(pos[0]) if pos else 1, len(x)))
    return ~np.all(np.isfinite(D) & (D > 0), axis=0)


def _gaussian_init(model, pop):
    v = model.module.INITIAL.get(pop) or (0.0, 1.0)
    return tuple(float(np.ravel(u)[0]) for u in v)


def choose_grid(model, *, npos: int | None = None, n: float | None = None, init=None, nx=None,
                interval=None, t: float = 0.0, check: bool = True) -> KineticGrid:
    """The x-grid of a kinetic run (rule in the module docstring).

    model: CompiledModel or name; npos: lattice positions per angle; n: None for the balanced limit,
    else the finite-n equation; init: the initial density as KineticSolver takes it (None: the
    model's INITIAL Gaussians, else N(0, 1)); nx: None = automatic, else the given number of cells;
    interval: None = automatic, (lo, hi) for all populations, or {pop: (lo, hi)}.
    check: refuse (GridError) a grid with fewer than MIN_CELLS_PER_SD cells per effective sd, or an
    automatic nx above NX_MAX.  Returns a KineticGrid; KineticSolver(nx=grid.nx,
    interval=dict(zip(model.populations, grid.intervals))) then uses exactly this grid."""
    from scipy.special import ndtri

    from .balance_errors import StationaryError
    from .density1d import DensityFamily, GridDensities
    from .stationary import solve_balanced, solve_finite_n
    m = model if isinstance(model, CompiledModel) else CompiledModel(model)
    if nx is not None:
        nx = _check_nx(nx)
    npos_eff = npos if m.pos_dim else None
    pos = m.grid(npos if (m.pos_dim and npos) else (32 if m.pos_dim else 1)) if m.pos_dim else ()
    st = None
    try:
        st = (solve_balanced(m, npos=npos_eff, t=t, check_stability=False) if n is None else
              solve_finite_n(m, n, npos=npos_eff, t=t, check_stability=False))
        pos = st.pos
    except StationaryError:
        st = None
    z = float(-ndtri(TAIL_MASS))
    given = None
    if interval is not None:
        given = ([tuple(map(float, interval[a])) for a in m.populations] if isinstance(interval, dict)
                 else [tuple(map(float, interval))] * m.P)
        for a, (lo, hi) in zip(m.populations, given):
            if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
                raise ValueError(f"model {m.name!r}, population {a}: the x-interval must have finite "
                                 f"ends with xmin < xmax, got [{lo}, {hi}]")
    intervals, sds, sources, walls = [], {}, {}, []
    for ia, a in enumerate(m.populations):
        cands = []                                   # (lo, hi, s, source, x, p rows or None)
        if st is not None:
            g = st.grids[a]
            xs, ps = g.x, st.densities[a]
            q0, q1 = _tail_quantiles(xs, ps, TAIL_MASS)
            lo_s = g.lo if g.wall_lo else float(q0.min())
            hi_s = g.hi if g.wall_hi else float(q1.max())
            cands.append((lo_s, hi_s, float(effective_sd(xs, ps).min()),
                          "stationary " + ("balanced" if n is None else f"finite-n (n = {n:g})") + " density"))
        else:
            try:
                fam = DensityFamily(m, a, pos, t)
                gd = GridDensities(fam, fam.select_grid(0.0))
                ps = gd.stats(0.0).p
                q0, q1 = _tail_quantiles(gd.x, ps, TAIL_MASS)
                cands.append((float(q0.min()), float(q1.max()), float(effective_sd(gd.x, ps).min()),
                              "stationary density at lambda = 0 (no stationary state)"))
            except StationaryError:
                pass
        if init is None:
            m0, sd0 = _gaussian_init(m, a)
            cands.append((m0 - z * abs(sd0), m0 + z * abs(sd0), abs(sd0), f"initial N({m0:g}, {sd0:g}^2)"))
            if st is not None:
                # the initial density travels to the stationary one: the initial-layer shift, or at
                # finite n a fast ringing that can overshoot it (DESIGN.md §3); allow twice the shift
                d = np.asarray(st.mean[ia], float) - m0
                cands.append((m0 + min(0.0, 2 * float(d.min())) - z * abs(sd0),
                              m0 + max(0.0, 2 * float(d.max())) + z * abs(sd0), abs(sd0),
                              "initial density on its way to the stationary state"))
        if given is not None:
            lo, hi = given[ia]
        else:
            lo = min(c[0] for c in cands) if cands else -10.0
            hi = max(c[1] for c in cands) if cands else 10.0
        if init is not None:                         # a given initial density: sample it finely
            xs = np.linspace(lo, hi, 8193)
            xs = 0.5 * (xs[1:] + xs[:-1])
            vals = _init_on(init, a, xs, m.n_positions_of(pos))
            if np.all(vals.sum(-1) > 0):
                cands.append((lo, hi, float(effective_sd(xs, vals).min()), "initial density"))
        # clip to the domain: walls where sigma^2 stops being positive and finite
        wl = wh = False
        if given is None and pos is not None:
            probe = np.linspace(lo, hi, 4001)
            out = _is_outside(m, a, probe, pos)
            if out.any() and not out.all():
                centre = 0.5 * (cands[0][0] + cands[0][1]) if cands else 0.5 * (lo + hi)
                j = int(np.clip(np.searchsorted(probe, centre), 0, len(probe) - 1))
                bad_lo, bad_hi = np.flatnonzero(out[:j]), np.flatnonzero(out[j:]) + j
                if bad_lo.size:
                    lo, wl = _bisect_inside(m, a, pos, probe[bad_lo[-1]], probe[bad_lo[-1] + 1]), True
                if bad_hi.size:
                    hi, wh = _bisect_inside(m, a, pos, probe[bad_hi[0]], probe[bad_hi[0] - 1]), True
        else:
            hstep = (hi - lo) * 1e-6
            wl = bool(_is_outside(m, a, np.array([lo - hstep]), pos)[0])
            wh = bool(_is_outside(m, a, np.array([hi + hstep]), pos)[0])
        intervals.append((float(lo), float(hi)))
        walls.append((wl, wh))
        if cands:
            k = int(np.argmin([c[2] for c in cands]))
            sds[a], sources[a] = cands[k][2], cands[k][3]
        else:
            sds[a], sources[a] = (hi - lo) / 20.0, "no density known: interval / 20"
    widths = {a: hi - lo for a, (lo, hi) in zip(m.populations, intervals)}
    need = {a: int(np.ceil(widths[a] * CELLS_PER_SD / sds[a])) for a in m.populations}
    grid_nx = nx
    if nx is None:
        worst = max(need, key=need.get)
        grid_nx = max(NX_AUTO_MIN, need[worst])
        grid_nx = int(16 * np.ceil(grid_nx / 16))
        if grid_nx > NX_MAX and check:
            a = worst
            lo, hi = intervals[m.populations.index(a)]
            raise GridError(
                f"model {m.name!r}, population {a}: resolving the density needs {need[a]} cells: the "
                f"interval [{lo:.4g}, {hi:.4g}] is {widths[a] / sds[a]:.4g} effective standard deviations "
                f"wide (s = {sds[a]:.4g}, from the {sources[a]}) and the automatic grid uses "
                f"{CELLS_PER_SD} cells per s; the cap NX_MAX = {NX_MAX} gives only "
                f"{NX_MAX / widths[a] * sds[a]:.3g} cells per s.  Set the grid yourself: --nx N "
                f"(KineticSolver(nx=N)) and/or a narrower --xmin A --xmax B that still holds the mass")
        grid_nx = min(grid_nx, NX_MAX) if not check else grid_nx
    grid = KineticGrid(intervals, int(grid_nx), sds, sources, walls, nx is None, given is None)
    if check:
        for a, c in grid.cells_per_sd().items():
            if c < MIN_CELLS_PER_SD:
                lo, hi = intervals[m.populations.index(a)]
                raise GridError(
                    f"model {m.name!r}, population {a}: the x-grid [{lo:.4g}, {hi:.4g}] with nx = "
                    f"{grid.nx} cells (h = {widths[a] / grid.nx:.3g}) has {c:.3g} cells per effective "
                    f"standard deviation of the density (s = {sds[a]:.4g}, from the {sources[a]}); at "
                    f"least {MIN_CELLS_PER_SD} are needed (automatic grids use {CELLS_PER_SD}).  Use "
                    f"--nx {int(16 * np.ceil(need[a] / 16))} (KineticSolver(nx=...)), or leave --nx out "
                    f"for the automatic grid, or a narrower --xmin/--xmax that still holds the mass")
    return grid


def _bisect_inside(m, pop, pos, bad: float, good: float) -> float:
    """The domain boundary between an outside point and an inside point; returns a point inside."""
    scale = abs(good - bad)
    for _ in range(200):
        mid = 0.5 * (bad + good)
        if mid in (bad, good):
            break
        if _is_outside(m, pop, np.array([mid]), pos)[0]:
            bad = mid
        else:
            good = mid
    if abs(good) <= 1e-12 * scale:
        return 0.0
    return float(good)


def _init_on(init, pop, x, npos_total) -> np.ndarray:
    """A given initial density (callable p0(x, a, j), per-population dict or array on a grid is
    not resamplable: only callables) evaluated on x for every position, (Npos, len(x))."""
    if not callable(init):
        return np.zeros((npos_total, len(x)))
    with np.errstate(all="ignore"):
        vals = np.broadcast_to(init(x[None, :], pop, np.arange(npos_total)[:, None]), (npos_total, len(x)))
    vals = np.where(np.isfinite(vals), vals, 0.0)
    return np.maximum(vals, 0.0)


@dataclass
class KineticResult(Record):
    model: CompiledModel
    mode: str                      # "balanced" or "finite-n"
    n: float | None
    pos: tuple
    x: list                        # per population: cell centres (Nx,)
    times: np.ndarray              # (nt,)
    gbar: np.ndarray               # (nt, P, Npos)
    mean: np.ndarray
    variance: np.ndarray
    lam: np.ndarray
    residual: np.ndarray           # (nt,) max |W gbar + h| (balanced) / |lambda - sqrt(n)(W gbar + h)|
    mass_error: np.ndarray         # (nt,) max |mass - mass0|
    min_density: np.ndarray        # (nt,)
    density_times: np.ndarray
    density: np.ndarray            # (nd, P, Npos, Nx)
    shift: np.ndarray | None = None   # initial-layer shift delta (P, Npos)
    info: dict = field(default_factory=dict)

    def final_fields(self) -> dict:
        return {a: {"lambda": self.lam[-1, ia], "gbar": self.gbar[-1, ia], "mean": self.mean[-1, ia],
                    "variance": self.variance[-1, ia]} for ia, a in enumerate(self.model.populations)}

    def to_record(self) -> dict:
        """Final state in the stationary schema; the time series under "time_series"."""
        ts = {"t": self.times, "residual": self.residual, "mass_error": self.mass_error,
              "min_density": self.min_density}
        for ia, a in enumerate(self.model.populations):
            ts[a] = {"lambda": self.lam[:, ia], "gbar": self.gbar[:, ia], "mean": self.mean[:, ia],
                     "variance": self.variance[:, ia]}
        extra = {"n": self.n, "mode": self.mode, "time_series": ts,
                 "invariants": {"max_mass_error": float(self.mass_error.max()),
                                "min_density": float(self.min_density.min()),
                                "max_constraint_residual": float(self.residual[1:].max()
                                                                 if len(self.residual) > 1 else
                                                                 self.residual.max()),
                                "grid": self.info.get("grid_audit"),
                                "grid_convergence": self.info.get("grid_convergence")},
                 **{k: v for k, v in self.info.items() if k not in ("grid_audit", "grid_convergence")}}
        if self.shift is not None:
            extra["initial_shift"] = {a: self.shift[ia] for ia, a in enumerate(self.model.populations)}
        return state_record(self.model, f"kinetic-{self.mode}", self.pos, self.final_fields(), **extra)

    def save_npz(self, path) -> None:
        arrays = {"times": self.times, "gbar": self.gbar, "mean": self.mean, "variance": self.variance,
                  "lambda": self.lam, "residual": self.residual, "density_times": self.density_times,
                  "density": self.density, "theta": np.asarray(theta_list(self.pos), float),
                  "populations": np.array(self.model.populations)}
        for ia, a in enumerate(self.model.populations):
            arrays[f"x_{a}"] = self.x[ia]
        from .atomic import atomic_savez
        atomic_savez(path, **arrays)          # temporary file renamed into place: never half-written


def gaussian_initial(mean=0.0, sd=1.0):
    """Initial density callable p0(x, a, theta_j) of N(mean, sd^2)."""
    def p0(x, a, j):
        e = -0.5 * ((x - mean) / sd) ** 2       # far tails on wide (heavy-tailed) grids: exactly 0
        return np.where(e > -575.0, np.exp(np.maximum(e, -575.0)), 0.0)
    return p0


class KineticSolver(LatticeMultiplier):
    """Kinetic solver for one model (m = 1).

    model: CompiledModel or name; npos: lattice positions per angle (1 on a point);
    nx: cells per population (None: automatic, >= NX_MIN); interval: dict pop -> (lo, hi) or one
    (lo, hi) for all (None: automatic); both through ``choose_grid`` (module docstring), whose
    result is ``self.grid``; n: None for the balanced limit, else the network size of the finite-n
    equation.  grid_check: "refuse" (default) raises GridError for a grid with fewer than
    MIN_CELLS_PER_SD cells per effective sd, or when the mass reaches the outer cells during the run;
    "off" records the same numbers (info["grid"], info["grid_audit"]) without refusing (convergence
    studies on deliberately coarse grids).  step_check: at finite n, "refuse" (default) raises
    KineticStepTooCoarse when dt cannot resolve a growing fast mode (module docstring); "off" only
    records the audit in info["step_audit"].
    """

    def __init__(self, model, *, npos: int = 32, nx: int | None = None, interval=None, n: float | None = None,
                 params=None, init=None, grid_check: str = "refuse", step_check: str = "refuse"):
        self.model = model if isinstance(model, CompiledModel) else CompiledModel(model, params)
        m = self.model
        if m.m != 1:
            raise ValueError(f"model {m.name!r}: the kinetic solver handles m = 1, the state has "
                             f"dimension {m.m}")
        self.n = None if n is None else float(n)
        if nx is not None:
            nx = _check_nx(nx)
        if grid_check not in ("refuse", "off"):
            raise ValueError(f"grid_check must be 'refuse' or 'off', got {grid_check!r}")
        self.grid_check = grid_check
        if step_check not in ("refuse", "off"):
            raise ValueError(f"step_check must be 'refuse' or 'off', got {step_check!r}")
        self.step_check = step_check
        self.npos = npos
        self.pos = m.grid(npos)
        self.Npos = m.n_positions(npos)
        self.init = init
        if nx is not None and interval is not None and grid_check == "off":
            given = ([tuple(interval[a]) for a in m.populations] if isinstance(interval, dict)
                     else [tuple(interval)] * m.P)
            self.grid = KineticGrid([tuple(map(float, v)) for v in given], nx,
                                    {a: float("nan") for a in m.populations},
                                    {a: "not assessed (grid_check='off')" for a in m.populations},
                                    [(False, False)] * m.P, False, False)
        else:
            self.grid = choose_grid(m, npos=npos, n=self.n, init=init, nx=nx, interval=interval,
                                    check=grid_check == "refuse")
        self.nx = self.grid.nx
        P = m.P
        self.W = lattice_W(m, self.pos)
        self.U = lattice_range_basis(m, self.pos, self.W)
        intervals = self.grid.intervals
        self.walls = self._walls(intervals)
        self.x, self.h, self.xf = [], [], []
        for lo, hi in intervals:
            edges = np.linspace(lo, hi, self.nx + 1)
            self.x.append(0.5 * (edges[:-1] + edges[1:]))
            self.h.append(edges[1] - edges[0])
            self.xf.append(edges[1:-1])
        self.hv = np.array(self.h)[:, None, None]                     # (P, 1, 1)
        X = np.array(self.x)[:, None, :]                                # (P, 1, Nx)
        self.g = np.empty((P, self.Npos, self.nx))
        self.Dh = np.empty((P, self.Npos, self.nx - 1))
        for ia, a in enumerate(m.populations):
            xs, xf = self.x[ia][None, :], self.xf[ia][None, :]
            th = tuple(p[:, None] for p in self.pos)
            self.g[ia] = np.broadcast_to(m.call("gain", a, xs, *th, 0.0), (self.Npos, self.nx))
            Dh = np.broadcast_to(m.call("fp_diffusion", a, xf, *th, 0.0)[0][0], (self.Npos, self.nx - 1))
            if np.any(Dh < 0) or not np.all(np.isfinite(Dh)):
                raise KineticError(f"model {m.name!r}, population {a}: sigma^2/2 is negative or not finite "
                                   "on the x-grid")
            self.Dh[ia] = Dh
        self._X = X
        self.static = not any(m.time_dependent(a) for a in m.populations)
        self._V0 = None
        self._fixed = None
        self._drive_static = None

    # ---- grid ------------------------------------------------------------------------------
    def _walls(self, intervals):
        """Per population (lo is a wall, hi is a wall): sigma^2/2 not positive-finite just outside."""
        out = []
        for a, (lo, hi) in zip(self.model.populations, intervals):
            eps = 1e-6 * (hi - lo)
            out.append((bool(_is_outside(self.model, a, np.array([lo - eps]), self.pos)[0]),
                        bool(_is_outside(self.model, a, np.array([hi + eps]), self.pos)[0])))
        return out

    def grid_audit(self, p, t: float) -> tuple[float, float, tuple]:
        """(largest mass in the outer max(1, nx/64) cells of a non-wall side, smallest cells per
        effective sd, the (population, position, what) of the worst offender) for densities p."""
        k = max(1, self.nx // 64)
        hv = self.hv[..., 0]
        worst_edge, where_edge = 0.0, None
        for ia, (wl, wh) in enumerate(self.walls):
            for side, wall, cells in (("lower", wl, p[ia, :, :k]), ("upper", wh, p[ia, :, -k:])):
                if wall:
                    continue
                em = cells.sum(-1) * hv[ia]
                j = int(np.argmax(em))
                if em[j] > worst_edge:
                    worst_edge, where_edge = float(em[j]), (ia, j, side)
        cps = np.array([effective_sd(self.x[ia], p[ia]) / self.h[ia] for ia in range(self.model.P)])
        ia, j = np.unravel_index(int(np.argmin(cps)), cps.shape)
        return worst_edge, float(cps[ia, j]), (where_edge, (int(ia), int(j)))

    def _check_audit(self, p, t):
        edge, cps, (we, wr) = self.grid_audit(p, t)
        self._audit["max_edge_mass"] = max(self._audit["max_edge_mass"], edge)
        self._audit["min_cells_per_sd"] = min(self._audit["min_cells_per_sd"], cps)
        if self.grid_check != "refuse":
            return
        m = self.model
        if edge > EDGE_MASS_TOL:
            ia, j, side = we
            lo, hi = self.grid.intervals[ia]
            where = "" if not self.pos else f" at position {j}"
            raise GridError(
                f"model {m.name!r}, population {m.populations[ia]}{where}: at t = {t:.6g} the mass in the "
                f"outer {max(1, self.nx // 64)} cell(s) at the {side} end of the x-grid [{lo:.4g}, {hi:.4g}] "
                f"is {edge:.3e} > {EDGE_MASS_TOL:g}: the density leaves the grid.  Widen it with "
                f"--xmin/--xmax (KineticSolver(interval=...)), keeping >= {MIN_CELLS_PER_SD} cells per sd "
                f"(--nx)")
        if cps < RUN_SLACK * MIN_CELLS_PER_SD:
            ia, j = wr
            lo, hi = self.grid.intervals[ia]
            where = "" if not self.pos else f" at position {j}"
            raise GridError(
                f"model {m.name!r}, population {m.populations[ia]}{where}: at t = {t:.6g} the density "
                f"has {cps:.3g} cells per effective standard deviation (s = {cps * self.h[ia]:.4g}, "
                f"h = {self.h[ia]:.3g} on [{lo:.4g}, {hi:.4g}]), below {MIN_CELLS_PER_SD}: the grid no "
                f"longer resolves it.  Use a larger --nx (KineticSolver(nx=...)) or a narrower "
                f"--xmin/--xmax")

    # ---- fast modes at finite n -------------------------------------------------------------
    def _drift_slope(self, t: float) -> np.ndarray:
        """d f / d x at the cell centres, (P, Npos, Nx), by central differences (cached when static)."""
        if self.static and getattr(self, "_fslope", None) is not None:
            return self._fslope
        m = self.model
        out = np.empty((m.P, self.Npos, self.nx))
        th = tuple(p[:, None] for p in self.pos)
        for ia, a in enumerate(m.populations):
            x = self.x[ia][None, :]
            hs = 1e-5 * (1.0 + np.abs(x))
            with np.errstate(all="ignore"):
                fp = np.asarray(m.call("drift", a, x + hs, *th, t)[m.e], float)
                fm = np.asarray(m.call("drift", a, x - hs, *th, t)[m.e], float)
            sl = np.broadcast_to((fp - fm) / (2 * hs), (self.Npos, self.nx))
            out[ia] = np.where(np.isfinite(sl), sl, 0.0)
        if self.static:
            self._fslope = out
        return out

    def fast_rates(self, p, t: float) -> np.ndarray:
        """Eigenvalues nu of the finite-n fast matrix  diag(<f'>) + sqrt(n) W diag(<g'>)  restricted to
        the admissible multiplier directions U (DESIGN.md §4b), at the densities p and time t:
        the rates (Re) and angular frequencies (Im) with which a shift of the densities, and so the
        imbalance, relaxes.  <g'> = integral g' p is taken as sum_i (g_{i+1} - g_i)(p_i + p_{i+1})/2
        over the faces; J = <f'> per lattice position (solvers.fast_spectrum on the lattice).  Empty
        in the balanced mode or when W = 0."""
        if self.n is None:
            return np.zeros(0, complex)
        _, U = self._basis(t)
        if U.shape[1] == 0:
            return np.zeros(0, complex)
        D = np.sum(np.diff(self.g, axis=-1) * 0.5 * (p[..., 1:] + p[..., :-1]), axis=-1)   # (P, Npos)
        J = np.sum(self._drift_slope(t) * p, axis=-1) * self.hv[..., 0]
        return fast_spectrum.eigenvalues(fast_spectrum.lattice_operator(self.W, D), U, n=self.n, j=J)

    def _check_step(self, p, t: float, dt: float):
        """The step audit at time t (module docstring): update self._step_audit; refuse under
        step_check="refuse" when dt cannot resolve a growing mode."""
        nu = self.fast_rates(p, t)
        au = self._step_audit
        if nu.size == 0:
            return
        z_acc = au["z_accurate"]
        k = int(np.argmax(np.abs(nu)))
        if dt * abs(nu[k]) >= au["max_z"]:
            au["max_z"], au["nu_at_max_z"] = float(dt * abs(nu[k])), [float(nu[k].real), float(nu[k].imag)]
        m = self.model
        for v in nu:
            z = dt * v
            if abs(z) <= z_acc:
                continue
            dt_ok = z_acc / abs(v)
            txt = (f"model {m.name!r}: at t = {t:.6g} the finite-n fast matrix diag(<f'>) + sqrt(n) W D "
                   f"(n = {self.n:g}) has the eigenvalue nu = {v.real:.6g}{v.imag:+.6g}i, and dt = {dt:g} "
                   f"gives |dt nu| = {abs(z):.3g} > {z_acc:.3g}, the accurate limit of the implicit coupling "
                   f"step")
            if v.real >= 0:
                if self.step_check == "refuse":
                    raise KineticStepTooCoarse(
                        f"{txt}: this mode grows (Re nu >= 0) and the step would damp it.  The largest "
                        f"accurate dt is {dt_ok:.4g}; use --dt {dt_ok:.4g} (KineticSolver.run(dt=...)) or "
                        f"smaller", dt, dt_ok, t, complex(v))
                au["unresolved_growing"] = True
                continue
            tr = unresolved_transient(complex(z), dt)
            if tr > au["transient"]:
                au["transient"], au["nu_transient"] = float(tr), [float(v.real), float(v.imag)]

    # ---- pieces ----------------------------------------------------------------------------
    def velocity(self, t: float) -> np.ndarray:
        """V0 at faces, (P, Npos, Nx-1), without the multiplier (cached when f, u do not depend on t)."""
        m = self.model
        if self.static and self._V0 is not None:
            return self._V0
        out = np.empty((m.P, self.Npos, self.nx - 1))
        th = tuple(p[:, None] for p in self.pos)
        for ia, a in enumerate(m.populations):
            out[ia] = np.broadcast_to(m.call("fp_velocity", a, self.xf[ia][None, :], *th, t)[0],
                                      (self.Npos, self.nx - 1))
        if self.static:
            self._V0 = out
        return out

    def gbar(self, p):
        """gbar[a, j] = sum_i g p h; p may carry a trailing RHS axis."""
        if p.ndim == 3:
            return np.sum(self.g * p, axis=-1) * self.hv[..., 0]
        return np.einsum("aji,ajir->ajr", self.g, p) * self.hv[..., 0, None]

    def moments(self, p):
        X = self._X
        mass = p.sum(-1) * self.hv[..., 0]
        mean = (X * p).sum(-1) * self.hv[..., 0] / mass
        var = ((X - mean[..., None]) ** 2 * p).sum(-1) * self.hv[..., 0] / mass
        return mass, mean, var

    def initial_density(self):
        m = self.model
        p = np.empty((m.P, self.Npos, self.nx))
        for ia, a in enumerate(m.populations):
            p[ia] = self._init_values(ia, a, 0.0)
        return self._normalise(p)

    def _init_values(self, ia, a, shift):
        """Unnormalised initial density of population a at x - shift (shift: scalar or (Npos,))."""
        init = self.init
        if init is None:
            mu, sd = self.model.module.INITIAL.get(a) or (0.0, 1.0)
            init = gaussian_initial(mu, sd)
        x = self.x[ia][None, :] - np.asarray(shift, float).reshape(-1, 1)
        if callable(init):
            vals = np.broadcast_to(init(x, a, np.arange(self.Npos)[:, None]), (self.Npos, self.nx))
        else:
            arr = np.asarray(init[a] if isinstance(init, dict) else init, float)
            arr = np.broadcast_to(arr, (self.Npos, self.nx))
            vals = np.array([np.interp(x[min(j, x.shape[0] - 1)], self.x[ia], arr[j], left=0, right=0)
                             for j in range(self.Npos)])
        return np.array(vals, float)

    def _normalise(self, p):
        mass = p.sum(-1, keepdims=True) * self.hv
        if np.any(mass <= 0) or not np.all(np.isfinite(mass)):
            raise KineticError(f"model {self.model.name!r}: the initial density has no mass on the x-grid")
        return p / mass

    # ---- initial layer ---------------------------------------------------------------------
    def initial_layer(self, t0: float = 0.0):
        """Shift delta in Range(W) taking the initial density onto the manifold (see module doc).
        Returns (shifted density, delta (P, Npos))."""
        m = self.model
        U = self.U
        h = self.drive(t0)

        def shifted(c):
            d = (U @ c).reshape(m.P, self.Npos)
            p = np.empty((m.P, self.Npos, self.nx))
            for ia, a in enumerate(m.populations):
                p[ia] = self._init_values(ia, a, d[ia])
            return self._normalise(p), d

        def residual(c):
            p, _ = shifted(c)
            return U.T @ (self.W_apply(self.gbar(p)) + h).reshape(-1)

        if U.shape[1] == 0:
            return shifted(np.zeros(0))
        try:
            c, F = follow_flow(residual, np.zeros(U.shape[1]))
        except KineticError as exc:           # the shift carried the density off the grid
            raise NoConvergence(
                f"model {m.name!r}: the initial-layer shift left the x-grid before it reached the balanced "
                f"manifold ({exc}): the fast flow from the initial density runs away, as it does when the "
                f"balanced state is not attracting (see `balkin spectrum`)") from exc
        res = np.abs(F).max()
        if res > 1e-10:
            raise NoConvergence(f"model {m.name!r}: the initial-layer shift did not reach the manifold "
                                f"(residual {res:.3e})")
        return shifted(c)

    # ---- one step --------------------------------------------------------------------------
    def _affine_step(self, p, lam, t, dt, scheme):
        """The step from p with the multiplier lam + dlam (dlam constant in x in each block):
        p_next = y + dlam * z to first order in dlam.  Since every (population, position) block is
        solved separately and dlam is a number per block, one extra right-hand side gives z."""
        Dh, hv = self.Dh, self.hv[..., 0, None]
        if self.U.shape[1] == 0 and self.n is None and self.static:
            return self._fixed_operator_step(p, lam, dt, scheme), np.zeros_like(p)
        V_new = self.velocity(t + dt) + lam[..., None]
        a1, b1, da, db = fp1d.face_coefficients(V_new, Dh, hv)
        S1 = fp1d.operator_bands(a1, b1, hv)
        dAp = fp1d.flux_derivative_apply(da, db, hv, p)             # (P, Npos, Nx)
        if scheme == "euler":
            sol = fp1d.solve_factored(fp1d.factor_shifted(*S1, dt), np.stack([p, dt * dAp], axis=-1))
            return sol[..., 0], sol[..., 1]
        c = GAMMA / 2 * dt
        if self.static:
            Sn = Ss = S1
        else:
            an, bn, _, _ = fp1d.face_coefficients(self.velocity(t) + lam[..., None], Dh, hv, False)
            Sn = fp1d.operator_bands(an, bn, hv)
            as_, bs, _, _ = fp1d.face_coefficients(self.velocity(t + GAMMA * dt) + lam[..., None], Dh, hv,
                                                   False)
            Ss = fp1d.operator_bands(as_, bs, hv)
        F1 = fp1d.factor_shifted(*S1, c)
        Fs = F1 if Ss is S1 else fp1d.factor_shifted(*Ss, c)
        st1 = fp1d.solve_factored(Fs, np.stack([p + c * fp1d.apply_bands(*Sn, p), 2 * c * dAp], axis=-1))
        alpha = 1.0 / (GAMMA * (2 - GAMMA))
        beta = (1 - GAMMA) ** 2 / (GAMMA * (2 - GAMMA))
        rhs2 = alpha * st1
        rhs2[..., 0] -= beta * p
        rhs2[..., 1] += c * dAp
        sol = fp1d.solve_factored(F1, rhs2)
        return sol[..., 0], sol[..., 1]

    def _fixed_operator_step(self, p, lam, dt, scheme):
        """No multiplier (W = 0) and autonomous dynamics: the operator never changes, so its bands
        and LU factors are computed once per (scheme, dt) and reused."""
        key = (scheme, dt)
        if self._fixed is None or self._fixed[0] != key:
            hv = self.hv[..., 0, None]
            a, b, _, _ = fp1d.face_coefficients(self.velocity(0.0) + lam[..., None], self.Dh, hv, False)
            S = fp1d.operator_bands(a, b, hv)
            c = dt if scheme == "euler" else GAMMA / 2 * dt
            self._fixed = (key, S, fp1d.factor_shifted(*S, c), c)
        _, S, F, c = self._fixed
        if scheme == "euler":
            return fp1d.solve_factored(F, p)
        st1 = fp1d.solve_factored(F, p + c * fp1d.apply_bands(*S, p))
        alpha = 1.0 / (GAMMA * (2 - GAMMA))
        beta = (1 - GAMMA) ** 2 / (GAMMA * (2 - GAMMA))
        return fp1d.solve_factored(F, alpha * st1 - beta * p)

    def step(self, p, lam, t, dt, scheme):
        """One step; the multiplier at the end of the step solves the balance constraint (or the
        finite-n relation) exactly for the step's affine dependence on it."""
        basis, U = self._basis(t + dt)                               # (P, Npos, r), (P Npos, r)
        y, z = self._affine_step(p, lam, t, dt, scheme)
        if U.shape[1] == 0:
            return y, lam
        h = self.drive(t + dt).reshape(-1)
        Gy = self.W_apply(self.gbar(y)).reshape(-1)
        GZ = self.W_apply(basis * self.gbar(z)[..., None]).reshape(self.model.P * self.Npos, -1)
        if self.n is None:
            A = U.T @ GZ
            rhs = -U.T @ (Gy + h)
        else:
            s = np.sqrt(self.n)
            A = np.eye(U.shape[1]) - s * U.T @ GZ
            rhs = U.T @ (s * (Gy + h) - lam.reshape(-1))
        try:
            c = np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            raise KineticError(f"model {self.model.name!r}: the multiplier system is singular at t = {t:.4g} "
                               "(W D not invertible on Range(W))") from None
        dlam = (U @ c).reshape(self.model.P, self.Npos)
        return y + dlam[..., None] * z, lam + dlam

    def _safe_step(self, p, lam, t, dt, scheme, depth=0):
        p_new, lam_new = self.step(p, lam, t, dt, scheme)
        bad = not np.all(np.isfinite(p_new))
        neg = np.min(p_new) < -1e-13 * np.max(np.abs(p_new)) if not bad else True
        if not (bad or neg):
            # roundoff-level negatives (|p| < 1e-13 max p, from the linearised multiplier update)
            # are set to zero; the mass they carry is tallied in self.clipped_mass
            tiny = p_new < 0
            if tiny.any():
                self.clipped_mass += float(-p_new[tiny].sum() * self.hv.max())
                p_new = np.where(tiny, 0.0, p_new)
            return p_new, lam_new, 0
        if depth >= 8:
            what = "non-finite values" if bad else f"a negative density ({np.min(p_new):.3e})"
            hint = "refine the x-grid or reduce dt"
            if self.n is not None:
                hint += (f"; at n = {self.n:g} the finite-n initial layer lasts ~1/sqrt(n) = "
                         f"{1 / np.sqrt(self.n):.1e}: start from the shifted density (initial_layer=True)")
            raise KineticError(f"model {self.model.name!r}: the step at t = {t:.6g} produced {what} even "
                               f"at dt = {dt:.3e}; {hint}")
        p1, l1, k1 = self._safe_step(p, lam, t, dt / 2, "euler", depth + 1)
        p2, l2, k2 = self._safe_step(p1, l1, t + dt / 2, dt / 2, "euler", depth + 1)
        return p2, l2, 1 + k1 + k2

    # ---- run -------------------------------------------------------------------------------
    def run(self, T: float, dt: float, *, scheme: str = "trbdf2", record_every: float | None = None,
            density_every: float | None = None, p0=None, lam0=None,
            initial_layer: bool | None = None, grid_convergence: bool = True) -> KineticResult:
        """Integrate to time T with step dt; record moments every ``record_every`` (default dt) and
        densities every ``density_every`` (default: start and end only).

        initial_layer: shift the initial density onto the manifold first (default: True in the
        balanced mode, False at finite n, where the equation resolves its own initial layer of
        duration ~ 1/(sqrt(n) |eig W D|); at very large n that layer is too fast for any practical
        dt, and initial_layer=True starts from the shifted density instead).

        Every record audits the grid (``grid_audit``: mass in the outer cells, cells per effective
        sd; GridError under grid_check="refuse").  grid_convergence: repeat the run on nx/2 cells over
        the same intervals (grid_check off) and report in info["grid_convergence"] the largest
        differences over the records, max_t |Q_nx(t) - Q_nx/2(t)|, of Q = mean, variance, gbar,
        lambda (over populations and positions): ~3x the error of the nx result for this
        second-order scheme.  Skipped (with the reason recorded) when nx/2 < NX_MIN or when p0 is
        given on a grid of odd nx."""
        with np.errstate(under="ignore"):       # far tails of wide grids: underflow to 0 is harmless
            return self._run(T, dt, scheme=scheme, record_every=record_every, density_every=density_every,
                             p0=p0, lam0=lam0, initial_layer=initial_layer, grid_convergence=grid_convergence)

    def _run(self, T, dt, *, scheme, record_every, density_every, p0, lam0, initial_layer,
             grid_convergence) -> KineticResult:
        """The body of ``run`` (floating-point underflow silenced)."""
        if initial_layer is None:
            initial_layer = self.n is None
        if scheme not in ("euler", "trbdf2"):
            raise ValueError(f"scheme must be 'euler' or 'trbdf2', got {scheme!r}")
        if not (dt > 0 and T > 0):
            raise ValueError(f"need T > 0 and dt > 0, got T = {T}, dt = {dt}")
        m = self.model
        shift = None
        if p0 is None:
            if initial_layer:
                p, shift = self.initial_layer(0.0)
            else:
                p = self.initial_density()
        else:
            p = self._normalise(np.array(p0, float))
        lam = np.zeros((m.P, self.Npos)) if lam0 is None else np.array(lam0, float)
        if self.n is not None and lam0 is None:
            lam = np.sqrt(self.n) * (self.W_apply(self.gbar(p)) + self.drive(0.0))
        if self.n is None:
            h = self.drive(0.0).reshape(-1)
            out = h - self.U @ (self.U.T @ h)
            if np.abs(out).max() > 1e-9 * max(1.0, np.abs(h).max()):
                raise DriveOutsideRange(f"model {m.name!r}: the drive h lies outside Range(W) on the lattice "
                                        f"(residual {np.abs(out).max():.3e}); no balanced state exists")
        nsteps = int(np.ceil(T / dt - 1e-9))
        dt = T / nsteps
        rec = max(1, int(round((record_every or dt) / dt)))
        drec = max(1, int(round((density_every or T) / dt)))
        mass0 = p.sum(-1) * self.hv[..., 0]
        self._audit = {"max_edge_mass": 0.0, "min_cells_per_sd": np.inf}
        self._check_audit(p, 0.0)
        self._step_audit = {"z_accurate": 2 * STEP_TOL, "tolerance": STEP_TOL, "max_z": 0.0, "nu_at_max_z": None,
                            "transient": 0.0, "nu_transient": None, "unresolved_growing": False,
                            "check": self.step_check if self.n is not None else "balanced mode: no fast modes"}
        self._check_step(p, 0.0, dt)
        rows = []
        dens, dtimes = [p.copy()], [0.0]
        substeps = 0
        self.clipped_mass = 0.0

        def record(t, p, lam):
            mass, mean, var = self.moments(p)
            gb = self.gbar(p)
            imb = self.W_apply(gb) + self.drive(t)
            res = np.abs(imb).max() if self.n is None else np.abs(lam - np.sqrt(self.n) * imb).max()
            rows.append((t, gb, mean, var, lam.copy(), res, np.abs(mass - mass0).max(), p.min()))

        record(0.0, p, lam)
        t = 0.0
        for k in range(1, nsteps + 1):
            p, lam, sub = self._safe_step(p, lam, t, dt, scheme)
            substeps += sub
            t = k * dt
            if k % rec == 0 or k == nsteps:
                record(t, p, lam)
                self._check_audit(p, t)
                self._check_step(p, t, dt)
                r = rows[-1]
                if not np.isfinite(r[5]) or r[6] > 1e-9:
                    raise KineticError(f"model {m.name!r}: invariant violated at t = {t:.4g}: mass error "
                                       f"{r[6]:.3e}, constraint residual {r[5]:.3e}")
            if k % drec == 0 or k == nsteps:
                dens.append(p.copy())
                dtimes.append(t)
        cols = list(zip(*rows))
        info = {"scheme": scheme, "dt": dt, "nx": self.nx, "npos": len(self.pos[0]) if self.pos else 1,
                "rank_W": int(self.U.shape[1]), "safeguard_substeps": substeps,
                "roundoff_negative_mass_zeroed": self.clipped_mass,
                "interval": {a: [float(self.x[ia][0] - self.h[ia] / 2), float(self.x[ia][-1] + self.h[ia] / 2)]
                             for ia, a in enumerate(m.populations)},
                "grid": self.grid.to_record(),
                "grid_audit": {"max_edge_mass": self._audit["max_edge_mass"],
                               "edge_mass_tolerance": EDGE_MASS_TOL,
                               "edge_cells": max(1, self.nx // 64),
                               "min_cells_per_sd": float(self._audit["min_cells_per_sd"]),
                               "min_cells_per_sd_required": MIN_CELLS_PER_SD,
                               "check": self.grid_check},
                "step_audit": dict(self._step_audit)}
        gbar_, mean_, var_, lam_ = (np.array(c) for c in cols[1:5])
        if grid_convergence:
            info["grid_convergence"] = self._grid_convergence(
                T, dt, scheme, record_every, density_every, p0, lam0, initial_layer,
                {"mean": mean_, "variance": var_, "gbar": gbar_, "lambda": lam_})
        return KineticResult(m, "balanced" if self.n is None else "finite-n", self.n, self.pos, self.x,
                             np.array(cols[0]), np.array(cols[1]), np.array(cols[2]), np.array(cols[3]),
                             np.array(cols[4]), np.array(cols[5]), np.array(cols[6]), np.array(cols[7]),
                             np.array(dtimes), np.array(dens), shift, info)

    def _grid_convergence(self, T, dt, scheme, record_every, density_every, p0, lam0, initial_layer,
                          fine: dict) -> dict:
        """The same run on nx/2 cells over the same intervals; max over records of |fine - coarse|."""
        nc = self.nx // 2
        out = {"nx": self.nx, "nx_coarse": nc}
        if nc < NX_MIN:
            return {**out, "skipped": f"nx/2 = {nc} < {NX_MIN}"}
        if p0 is not None:
            if self.nx % 2:
                return {**out, "skipped": "p0 given on a grid of odd nx"}
            p0 = np.asarray(p0, float)
            p0 = np.broadcast_to(p0, (self.model.P, self.Npos, self.nx)).reshape(
                self.model.P, self.Npos, nc, 2).mean(-1)
        coarse = KineticSolver(self.model, npos=self.npos, nx=nc,
                               interval=dict(zip(self.model.populations, self.grid.intervals)), n=self.n,
                               init=self.init, grid_check="off")
        try:
            rc = coarse.run(T, dt, scheme=scheme, record_every=record_every, density_every=T,
                            p0=p0, lam0=lam0, initial_layer=initial_layer, grid_convergence=False)
        except (KineticError, NoConvergence, FloatingPointError) as exc:
            return {**out, "failed": str(exc)}
        coarse_q = {"mean": rc.mean, "variance": rc.variance, "gbar": rc.gbar, "lambda": rc.lam}
        if coarse_q["mean"].shape != fine["mean"].shape:
            return {**out, "skipped": "the coarse run recorded different times"}
        diff = {k: float(np.max(np.abs(fine[k] - coarse_q[k]))) for k in fine}
        final = {k: float(np.max(np.abs(fine[k][-1] - coarse_q[k][-1]))) for k in fine}
        return {**out, "max_abs_diff": diff, "final_abs_diff": final,
                "error_estimate": {k: v / 3.0 for k, v in diff.items()},
                "note": "max over records, populations and positions of |Q(nx) - Q(nx/2)|; the error of "
                        "the nx result is about a third of it (second order, Richardson)"}
