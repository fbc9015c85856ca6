"""One-dimensional stationary densities (m = 1, DESIGN.md §3) on an automatically chosen x-grid.

For a fixed multiplier lam the zero-flux stationary density of population a at position theta is

    p(x) = exp( U0(x) + lam U1(x) - log sigma^2(x) ) / Z,
    U0 = integral^x 2 (f + u) / sigma^2,      U1 = integral^x 2 / sigma^2.

Three reusable pieces (the kinetic Fokker–Planck solver uses the same grids and evaluation):

* ``DensityFamily``: U0, U1, log sigma^2, g, g' of one population at a set of positions, from the
  generated closed forms (``potential_P``, ``log_sigma2_P``) or, when there is none (or when asked),
  by 4th-order cumulative Simpson quadrature of ``potential_integrand_P`` from a reference node
  inside the domain.  Points where any of these is not finite (sigma^2 <= 0, log sigma^2 = -inf at a
  wall, ...) lie outside the domain: their log density is -inf.
* ``select_grid``: the automatic x-range (rule below), returning a uniform cell-centred ``Grid``.
* ``GridDensities``: the family cached on one grid; ``stats(lam)`` gives the normalised densities and
  gbar, d gbar / d lam, mean, variance and D = <g'> for a vector of multipliers (one per position).

Grid rule (``select_grid``).  Let log p_i(x) be the log densities of the rows i (positions), M_i
their maxima.  The grid must hold, for every row, the region  {x : log p_i(x) >= M_i - drop}  (drop =
40 by default, i.e. everything above e^-40 of the peak), one probe step of margin on each side, and
resolve the narrowest such region with ``points_per_density`` cells.  Starting from
[center - 10 scale, center + 10 scale], the rows are evaluated on a probe grid of cell centres and:
  - if the region touches a probe edge, that side is extended by twice the current width;
  - if the region ends next to a point where log p is not finite (outside the domain), the domain
    boundary is located by bisection and becomes a wall: the grid starts exactly there (cell centres
    are never evaluated on the wall itself, so sigma -> 0 or log sigma^2 -> -inf there is harmless);
  - if fewer than 25 probe points fall inside the narrowest row region, the probe zooms in (or, when
    the rows are spread out, the probe gets finer);
  - otherwise the grid is [first region point - one probe step, last + one step] (or the wall) with
    nx = width / (narrowest region / points_per_density) cells (8x more when the density reaches a
    wall: the midpoint rule is only O(h^2) there), clipped to [min_nx, max_nx];
  - resolution where the mass is: on that grid every row must have at least CELLS_PER_SD cells per
    standard deviation (the peak scale 1 / (sqrt(2 pi) max p) is not used here: a density with an
    integrable singularity at a wall, x^-1/2 e^-x, has none; the region rule above resolves peaks,
    and WALL_REFINEMENT the wall).  A heavy (power-law) tail makes the e^-drop region hundreds of
    standard deviations wide, so the first rule alone can leave ~1 cell per sd; nx is then raised
    to width * CELLS_PER_SD / s (re-evaluated until it holds), and a demand above max_nx is refused
    (DensityError naming s, the width and the cells per sd reachable).
A density that has not fallen by ``drop`` within a width of max_width * scale is not normalisable
(DensityError).  ``grid_holds`` is the matching test that a given grid still holds a density (used to
reuse one grid while the multiplier changes).

Generated functions are evaluated with NumPy floating-point errors silenced (outside the domain they
legitimately give inf/nan, deep in the tails exp underflows to 0); their non-finite values are
masked as "outside the domain", so nothing non-finite leaves this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .balance_errors import DensityError

DROP = 40.0                 # the grid holds everything above exp(-DROP) of each density's peak
POINTS_PER_DENSITY = 400    # cells across the narrowest density region
MIN_PROBE_POINTS = 25       # probe points needed inside the narrowest region before the final grid
LOG_FLUSH = -575.0          # density values below e^-575 (~1e-250) of the peak are set to 0, and
FLUSH = 1e-250              # moments below 1e-250 in size to 0: no later product can underflow
CELLS_PER_SD = 20           # a new grid has at least this many cells per standard deviation of every row
MIN_CELLS_PER_SD = 10       # a grid is kept (grid_holds) while every row has at least this many
WALL_REFINEMENT = 8         # densities that reach a wall are resolved 8x finer (midpoint rule is
                            # only O(h^2) there; elsewhere the tails make it spectrally accurate)


# ---- grids --------------------------------------------------------------------------------------

def cell_centres(lo: float, hi: float, nx: int) -> np.ndarray:
    """Centres of nx equal cells of [lo, hi]."""
    h = (hi - lo) / nx
    return lo + h * (np.arange(nx) + 0.5)


@dataclass(frozen=True)
class Grid:
    """Uniform cell-centred grid of [lo, hi] with nx cells.  wall_lo / wall_hi: that end is a domain
    boundary (the density need not have decayed there).  Integrals use the midpoint rule."""

    lo: float
    hi: float
    nx: int
    wall_lo: bool = False
    wall_hi: bool = False

    @property
    def h(self) -> float:
        return (self.hi - self.lo) / self.nx

    @property
    def x(self) -> np.ndarray:
        return cell_centres(self.lo, self.hi, self.nx)

    @property
    def edges(self) -> np.ndarray:
        return self.lo + self.h * np.arange(self.nx + 1)

    def integrate(self, values: np.ndarray) -> np.ndarray:
        """Midpoint-rule integral over x (the last axis)."""
        return np.sum(values, axis=-1) * self.h


def _quiet(fn, *args):
    with np.errstate(all="ignore"):
        return fn(*args)


def _finite_or_neg_inf(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, float)
    return np.where(np.isfinite(a), a, -np.inf)


def log_normalise(logp: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalise rows of log densities on a uniform grid of spacing h (midpoint rule).

    logp: (..., nx) with -inf (or any non-finite value) outside the domain.  Returns (p, log Z):
    p integrates to 1 per row; the peak is subtracted before exp, so nothing overflows."""
    lp = _finite_or_neg_inf(logp)
    ok = np.isfinite(lp).any(axis=-1)
    if not np.all(ok):
        raise DensityError(f"{int(np.size(ok) - np.count_nonzero(ok))} density row(s) have no point "
                           "inside the domain on this grid")
    M = lp.max(axis=-1, keepdims=True)
    with np.errstate(under="ignore"):
        d = lp - M
        p = np.where(d > LOG_FLUSH, np.exp(np.maximum(d, LOG_FLUSH)), 0.0)
        Z = p.sum(axis=-1, keepdims=True) * h
        p = p / Z
    return p, (M + np.log(Z))[..., 0]


def _row_regions(lp: np.ndarray, drop: float):
    """Per row: mask of points above max - drop (False where not finite), and validity mask."""
    valid = np.isfinite(lp)
    lpm = np.where(valid, lp, -np.inf)
    rows = valid.any(axis=1)
    M = np.where(rows, lpm.max(axis=1), 0.0)[:, None]
    inside = valid & (lpm >= M - drop) & rows[:, None]
    return inside, valid, rows


def bisect_wall(log_density, bad: float, good: float) -> float:
    """The boundary of the domain between an outside point ``bad`` and an inside point ``good``
    (inside: the log density is finite for at least one row).  Returns a point inside."""
    scale = abs(good - bad)
    for _ in range(200):
        mid = 0.5 * (bad + good)
        if mid in (bad, good):
            break
        if np.isfinite(_quiet(log_density, np.array([mid]))).any():
            good = mid
        else:
            bad = mid
    if abs(good) <= 1e-12 * scale:          # a wall at 0 up to rounding (sigma ~ sqrt(x)): snap it
        return 0.0
    return good


def select_grid(log_density, center: float = 0.0, scale: float = 1.0, *, drop: float = DROP,
                points_per_density: int = POINTS_PER_DENSITY, min_nx: int = 801, max_nx: int = 20001,
                probe_points: int = 401, max_width: float = 1e8, max_iter: int = 200) -> Grid:
    """Choose the x-grid that holds the densities ``log_density(x) -> (N, len(x))`` (rule in the
    module docstring).  ``center``/``scale``: a first guess of where the densities sit and how wide
    they are (anything finite works; a good guess saves iterations)."""
    center = float(center) if math.isfinite(center) else 0.0
    scale = abs(float(scale)) if math.isfinite(scale) and scale != 0 else 1.0
    lo, hi = center - 10 * scale, center + 10 * scale
    wall_lo = wall_hi = False
    npr = int(probe_points)
    max_probe = 16 * int(probe_points) + 1
    for _ in range(max_iter):
        if hi - lo > max_width * scale:
            raise DensityError(
                f"the stationary density does not decay by {drop:g} (log units) from its peak within "
                f"x in [{lo:.4g}, {hi:.4g}]: it is not normalisable (or far heavier-tailed than a "
                f"grid can hold)")
        x = cell_centres(lo, hi, npr)
        dx = (hi - lo) / npr
        lp = np.atleast_2d(_quiet(log_density, x))
        inside, valid, rows = _row_regions(lp, drop)
        cols_valid = valid.any(axis=0)
        if not rows.any():
            w = hi - lo                                         # nothing defined here: look wider
            lo, hi = (lo if wall_lo else lo - 2 * w), (hi if wall_hi else hi + 2 * w)
            continue
        cols = np.flatnonzero(inside.any(axis=0))
        j0, j1 = int(cols[0]), int(cols[-1])
        settled, w = True, hi - lo
        if j0 == 0 and not wall_lo:
            lo -= 2 * w
            settled = False
        elif j0 > 0 and not cols_valid[j0 - 1]:
            lo, wall_lo, settled = bisect_wall(log_density, x[j0 - 1], x[j0]), True, False
        if j1 == npr - 1 and not wall_hi:
            hi += 2 * w
            settled = False
        elif j1 < npr - 1 and not cols_valid[j1 + 1]:
            hi, wall_hi, settled = bisect_wall(log_density, x[j1 + 1], x[j1]), True, False
        if not settled:
            continue
        counts = inside.sum(axis=1)[rows]
        new_lo = lo if (wall_lo and j0 == 0) else x[j0] - 1.5 * dx
        new_hi = hi if (wall_hi and j1 == npr - 1) else x[j1] + 1.5 * dx
        if counts.min() < MIN_PROBE_POINTS:
            if new_hi - new_lo < 0.5 * (hi - lo):               # zoom in on the region
                wall_lo, wall_hi = wall_lo and new_lo == lo, wall_hi and new_hi == hi
                lo, hi = new_lo, new_hi
                continue
            if npr < max_probe:                                 # rows spread out: finer probe
                npr = min(max_probe, 4 * npr)
                continue
        width_min = counts.min() * dx
        at_wall = (wall_lo and new_lo == lo, wall_hi and new_hi == hi)
        ppd = points_per_density * (WALL_REFINEMENT if any(at_wall) else 1)
        nx = int(np.clip(math.ceil((new_hi - new_lo) / (width_min / ppd)), min_nx, max_nx))
        nx = _resolve_sd(log_density, float(new_lo), float(new_hi), nx, max_nx)
        return Grid(float(new_lo), float(new_hi), nx, bool(at_wall[0]), bool(at_wall[1]))
    raise DensityError(f"could not settle an x-range for the stationary density after {max_iter} "
                       f"iterations (last range [{lo:.4g}, {hi:.4g}])")


def standard_deviation(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Standard deviations of the rows of p (N, nx) on uniform cell centres x (normalised here;
    rows without mass, or of zero width, give inf)."""
    h = float(x[1] - x[0])
    with np.errstate(all="ignore"):
        mass = p.sum(-1) * h
        mean = (p * x).sum(-1) * h / mass
        var = (p * (x - mean[:, None]) ** 2).sum(-1) * h / mass
        s = np.sqrt(np.maximum(var, 0.0))
    return np.where(np.isfinite(s) & (s > 0), s, np.inf)


def _resolve_sd(log_density, lo: float, hi: float, nx: int, max_nx: int) -> int:
    """nx raised until every row has >= CELLS_PER_SD cells per effective sd on [lo, hi]."""
    for _ in range(4):
        x = cell_centres(lo, hi, nx)
        lp = np.atleast_2d(_quiet(log_density, x))
        if not np.isfinite(lp).any(axis=1).all():
            return nx
        p, _ = log_normalise(lp, (hi - lo) / nx)
        s = float(standard_deviation(x, p).min())
        need = math.ceil((hi - lo) * CELLS_PER_SD / s) if math.isfinite(s) else nx
        if need <= nx:
            return nx
        if need > max_nx:
            if nx >= max_nx:
                raise DensityError(
                    f"the stationary density needs {need} cells on [{lo:.4g}, {hi:.4g}] (its effective "
                    f"standard deviation is {s:.4g}, {(hi - lo) / s:.4g} of them across the range it "
                    f"must hold, {CELLS_PER_SD} cells each); the cap of {max_nx} cells gives "
                    f"{max_nx * s / (hi - lo):.3g} cells per sd")
            need = max_nx
        nx = int(need)
    return nx


def grid_holds(grid: Grid, logp: np.ndarray, *, drop: float = DROP, margin: float = 4.0,
               points_per_density: int = POINTS_PER_DENSITY) -> bool:
    """Does ``grid`` still hold the densities log p (N, nx) evaluated on it?  Every row must be
    defined somewhere, have fallen by at least drop - margin at each end that is not a wall, keep
    at least points_per_density / 4 cells above max - drop, and keep MIN_CELLS_PER_SD cells per
    standard deviation (grids are chosen with CELLS_PER_SD: a factor 2 of hysteresis, so a Newton
    iteration does not change grids for a slight narrowing)."""
    lp = np.atleast_2d(logp)
    inside, valid, rows = _row_regions(lp, drop)
    if not rows.all():
        return False
    lpm = np.where(valid, lp, -np.inf)
    M = lpm.max(axis=1)
    if not grid.wall_lo and np.any(lpm[:, 0] > M - drop + margin):
        return False
    if not grid.wall_hi and np.any(lpm[:, -1] > M - drop + margin):
        return False
    if inside.sum(axis=1).min() < points_per_density // 4:
        return False
    p, _ = log_normalise(lp, grid.h)
    return bool(standard_deviation(grid.x, p).min() >= MIN_CELLS_PER_SD * grid.h)


# ---- quadrature of the potentials ------------------------------------------------------------

def cumulative_from_reference(nodes: np.ndarray, mids: np.ndarray, h: float, ref: np.ndarray):
    """U(x_j) = integral from x_ref to x_j of an integrand given at the nodes (N, nx) of a uniform
    grid and at the midpoints between consecutive nodes (N, nx - 1); Simpson per interval (4th
    order).  ref: (N,) reference node per row.  Returns (U, ok): ok is False at nodes separated from
    the reference by a non-finite integrand value (those lie outside the domain)."""
    N, nx = nodes.shape
    if nx == 1:
        return np.zeros((N, 1)), np.isfinite(nodes)
    with np.errstate(all="ignore"):
        I = h / 6.0 * (nodes[:, :-1] + 4.0 * mids + nodes[:, 1:])
    good = np.isfinite(I)
    C = np.concatenate([np.zeros((N, 1)), np.cumsum(np.where(good, I, 0.0), axis=1)], axis=1)
    bad = np.concatenate([np.zeros((N, 1), int), np.cumsum(~good, axis=1)], axis=1)
    r = np.asarray(ref, int)[:, None]
    U = C - np.take_along_axis(C, r, axis=1)
    ok = (bad == np.take_along_axis(bad, r, axis=1)) & np.isfinite(nodes)
    return np.where(ok, U, 0.0), ok


# ---- one population's family of stationary densities ----------------------------------------

class DensityFamily:
    """Stationary densities of population ``pop`` of a CompiledModel at the positions ``pos`` (a
    tuple of pos_dim arrays of length N; () on a point, N = 1) at time t, for any multiplier.

    closed_form: None uses the generated closed form when STATIONARY_CLOSED_FORM says there is one;
    False forces the quadrature path; True demands the closed form."""

    def __init__(self, model, pop: str, pos=(), t: float = 0.0, *, closed_form: bool | None = None):
        if model.m != 1:
            raise DensityError(f"model {model.name!r}, population {pop}: the stationary density needs "
                               f"a one-dimensional state (m = 1); this model has m = {model.m}")
        if not model.has("log_sigma2", pop) or not model.has("potential_integrand", pop):
            why = getattr(model.module, "STATIONARY_SKIPPED", {}).get(pop, "no stationary potential was generated")
            raise DensityError(f"model {model.name!r}, population {pop}: no stationary density: {why}")
        available = bool(model.module.STATIONARY_CLOSED_FORM.get(pop, False)) and model.has("potential", pop)
        if closed_form is None:
            closed_form = available
        elif closed_form and not available:
            raise ValueError(f"model {model.name!r}, population {pop}: no closed-form stationary "
                             "potential was derived (use the quadrature path)")
        self.model, self.pop, self.t = model, pop, float(t)
        self.closed_form = bool(closed_form)
        self.pos = tuple(np.asarray(p, float).reshape(-1) for p in pos)
        self.N = len(self.pos[0]) if self.pos else 1
        self._posargs = tuple(p[:, None] for p in self.pos)

    def _call(self, kind, x):
        """Generated function kind_pop on the grid x (nx,) at all positions -> array(s) (N, nx)."""
        with np.errstate(all="ignore"):
            out = self.model.call(kind, self.pop, np.asarray(x, float)[None, :], *self._posargs, self.t)
        shape = (self.N, len(x))
        if isinstance(out, tuple):
            return tuple(np.broadcast_to(np.asarray(o, float), shape) for o in out)
        return np.broadcast_to(np.asarray(out, float), shape)

    def parts(self, x: np.ndarray):
        """(U0, U1, log sigma^2, ok) on a uniform grid x (nx,), each (N, nx); ok marks the domain.
        Outside it the three arrays hold 0.  On the quadrature path U0 and U1 are integrated from
        the domain node nearest the middle of x (any reference point only changes the constant)."""
        x = np.asarray(x, float)
        ls2 = self._call("log_sigma2", x)
        if self.closed_form:
            U0, U1 = self._call("potential", x)
            ok = np.isfinite(U0) & np.isfinite(U1)
        else:
            if len(x) > 2 and not np.allclose(np.diff(x), x[1] - x[0], rtol=1e-9, atol=0):
                raise ValueError("the quadrature path needs a uniform grid")
            h = float(x[1] - x[0]) if len(x) > 1 else 1.0
            i0, i1 = self._call("potential_integrand", x)
            m0, m1 = self._call("potential_integrand", 0.5 * (x[:-1] + x[1:])) if len(x) > 1 else (i0[:, :0], i1[:, :0])
            node_ok = np.isfinite(i0) & np.isfinite(i1) & np.isfinite(ls2)
            dist = np.abs(np.arange(len(x)) - (len(x) - 1) / 2.0)
            ref = np.argmin(np.where(node_ok, dist[None, :], np.inf), axis=1)
            U0, ok0 = cumulative_from_reference(i0, m0, h, ref)
            U1, ok1 = cumulative_from_reference(i1, m1, h, ref)
            ok = ok0 & ok1
        ok = ok & np.isfinite(ls2)
        z = np.zeros_like(ls2)
        return np.where(ok, U0, z), np.where(ok, U1, z), np.where(ok, ls2, z), ok

    def log_density(self, x: np.ndarray, lam) -> np.ndarray:
        """Unnormalised log p(x | lam) (N, nx); lam scalar or (N,); -inf outside the domain."""
        U0, U1, ls2, ok = self.parts(x)
        lam = np.broadcast_to(np.asarray(lam, float), (self.N,))[:, None]
        return np.where(ok, U0 + lam * U1 - ls2, -np.inf)

    def gain(self, x):
        return self._call("gain", x)

    def gain_slope(self, x):
        return self._call("gain_slope", x)

    def select_grid(self, lam, center: float = 0.0, scale: float = 1.0, **kw) -> Grid:
        """select_grid for the densities with multipliers lam (scalar or (N,))."""
        return select_grid(lambda x: self.log_density(x, lam), center, scale, **kw)

    def gain_range(self, extra_x=None) -> tuple[np.ndarray, np.ndarray]:
        """Estimate [inf g, sup g] over the domain at each position: g on +-logspace(-4, 6) and 0
        (plus extra_x, e.g. the density grid), restricted to where log sigma^2 is finite.  +-inf
        where g grows without bound.  Returns (lo (N,), hi (N,))."""
        xs = np.concatenate([-np.logspace(6, -4, 161), [0.0], np.logspace(-4, 6, 161)])
        if extra_x is not None:
            xs = np.concatenate([xs, np.asarray(extra_x, float)])
        g = self.gain(xs)
        dom = np.isfinite(self._call("log_sigma2", xs)) & ~np.isnan(g)
        if not dom.any(axis=1).all():
            raise DensityError(f"population {self.pop}: could not sample the gain inside the domain")
        lo = np.where(dom, g, np.inf).min(axis=1)
        hi = np.where(dom, g, -np.inf).max(axis=1)
        return lo, hi


# ---- a family cached on one grid ----------------------------------------------------------

@dataclass
class DensityStats:
    """Normalised densities p (N, nx) on ``grid`` and their moments (each (N,)):
    gbar = <g>, dgbar = d gbar / d lam = Cov(g, U1), mean, variance of x, slope = <g'> (D), and
    sd_U1 = sd of U1 (a natural scale: changing lam by 1/sd_U1 changes the density by O(1))."""

    grid: Grid
    p: np.ndarray
    gbar: np.ndarray
    dgbar: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    slope: np.ndarray
    sd_U1: np.ndarray


class GridDensities:
    """A DensityFamily evaluated on one grid: U0, U1, log sigma^2, g and g' are cached, so a new
    multiplier costs one exp per grid point."""

    def __init__(self, family: DensityFamily, grid: Grid):
        self.family, self.grid = family, grid
        x = grid.x
        self.x = x
        self.U0, self.U1, self.ls2, self.ok = family.parts(x)
        if not self.ok.any(axis=1).all():
            raise DensityError(f"population {family.pop}: some positions have no point of the domain "
                               f"on the grid [{grid.lo:.4g}, {grid.hi:.4g}]")
        g, gs = family.gain(x), family.gain_slope(x)
        bad = self.ok & ~(np.isfinite(g) & np.isfinite(gs))
        if bad.any():
            j = np.argwhere(bad)[0]
            raise DensityError(f"population {family.pop}: gain or its slope is not finite at "
                               f"x = {x[j[1]]:.6g} inside the domain")
        self.g = np.where(self.ok, g, 0.0)
        self.gs = np.where(self.ok, gs, 0.0)

    def log_density(self, lam) -> np.ndarray:
        lam = np.broadcast_to(np.asarray(lam, float), (self.family.N,))[:, None]
        return np.where(self.ok, self.U0 + lam * self.U1 - self.ls2, -np.inf)

    def holds(self, lam) -> bool:
        return grid_holds(self.grid, self.log_density(lam))

    def stats(self, lam) -> DensityStats:
        h = self.grid.h
        p, _ = log_normalise(self.log_density(lam), h)
        x = self.x[None, :]
        with np.errstate(under="ignore"):
            gbar = np.sum(p * self.g, axis=1) * h
            u1 = np.sum(p * self.U1, axis=1) * h
            dU1 = self.U1 - u1[:, None]
            dgbar = np.sum(p * (self.g - gbar[:, None]) * dU1, axis=1) * h
            sd_U1 = np.sqrt(np.sum(p * dU1 * dU1, axis=1) * h)
            mean = np.sum(p * x, axis=1) * h
            var = np.sum(p * (x - mean[:, None]) ** 2, axis=1) * h
            slope = np.sum(p * self.gs, axis=1) * h
        gbar, dgbar, mean, var, slope, sd_U1 = (np.where(np.abs(v) < FLUSH, 0.0, v)
                                                for v in (gbar, dgbar, mean, var, slope, sd_U1))
        return DensityStats(self.grid, p, gbar, dgbar, mean, var, slope, sd_U1)


def densities_for(family: DensityFamily, lam, current: GridDensities | None = None,
                  hint: DensityStats | None = None) -> GridDensities:
    """A GridDensities that holds the densities for multipliers lam: ``current`` if its grid still
    holds them, else a new grid (selected around ``hint``'s means and spreads when given)."""
    if current is not None and current.holds(lam):
        return current
    if hint is not None:
        center = float(np.mean(hint.mean))
        scale = float(max(np.max(np.sqrt(hint.variance)), np.ptp(hint.mean), 1e-300))
    elif current is not None:
        center, scale = 0.5 * (current.grid.lo + current.grid.hi), (current.grid.hi - current.grid.lo) / 20
    else:
        center, scale = 0.0, 1.0
    return GridDensities(family, family.select_grid(lam, center, scale))
