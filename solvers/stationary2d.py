"""Stationary states for a state of dimension m = 2 (DESIGN.md §3, §4, §5b): balanced limit and the
finite-n McKean–Vlasov equation.

For a fixed multiplier lambda (P, N) the stationary density of each (population, position) block is
the normalised null vector of the discrete Fokker–Planck operator A(lambda) of solvers.fp2d (the
same operator the kinetic solver steps; there is no closed form in m = 2):  A p = 0, sum p h1 h2 = 1,
by a sparse LU of A with one row replaced by the mass row (fp2d.NullVector).  Its derivative in
lambda comes from the same LU:  A dp = -(dA/dlam) p,  sum dp = 0, so that
    d gbar / d lambda = sum g dp h1 h2        (analytic Jacobian, one extra solve per block).
Then Newton's method (with backtracking on |F|_2) on
    balanced:  F(c) = U^T (W gbar(U c) + h) = 0,                     lambda = U c in Range(W);
    finite n:  F(lambda) = lambda / sqrt(n) - (W gbar(lambda) + h) = 0 on the whole lattice,
started from the Gaussian field's state (exact for linear/additive models, the Gaussian closure
otherwise; solvers.grid2d.gaussian_state).  The grid is solvers.grid2d's (stationary state only);
the solution is checked: mass in the outer cells of the marginals below EDGE_MASS_TOL, at least
MIN_CELLS_PER_SD cells per effective sd, no negative density beyond NEG_TOL of the maximum (the
central mixed term is not monotone on coarse grids), else GridError / KineticError.

Stability (check_stability): balanced, the eigenvalues of W D on Range(W) (D = <dg/dx_e>) must have
negative real parts; finite n, those of diag(<d f_e/d x_e>) + sqrt(n) W D (a shift of the density
along e; DESIGN.md §4b) — else ManifoldNotAttracting.

No SymPy here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import fast_spectrum, fp2d
from .balance_errors import ManifoldNotAttracting, NoConvergence
from .compiled import CompiledModel
from .grid2d import EDGE_MASS_TOL, MIN_CELLS_PER_SD, choose_grid2d, gaussian_state
from .kinetic import KineticError
from .kinetic2d import NEG_TOL, KineticSolver2D
from .output import Record, state_record

TOL = 1e-11
DEFAULT_NPOS = {"point": 1, "ring": 32, "torus2": 8}


@dataclass
class StationaryResult2D(Record):
    """A stationary state in m = 2: per population and position lam, gbar (P, N), state_mean (P, N, 2),
    state_cov (P, N, 2, 2), the marginal densities (marginals[k] (P, N, n_k) on x[a][k]), the 2-D
    density (P, N, n1, n2), the fast eigenvalues, the residual and the iterations."""

    model: CompiledModel
    kind: str
    n: float | None
    pos: tuple
    x: list
    lam: np.ndarray
    gbar: np.ndarray
    state_mean: np.ndarray
    state_cov: np.ndarray
    marginals: list
    density: np.ndarray
    eigenvalues: np.ndarray
    residual: float
    imbalance: float
    iterations: int
    info: dict = field(default_factory=dict)
    #: (P, N): <d g/d x_e> and <d f_e/d x_e> at the state, the coefficients of the fast matrix
    slope: np.ndarray | None = None
    drift_slope: np.ndarray | None = None

    @property
    def populations(self) -> tuple:
        return self.model.populations

    @property
    def mean(self):
        return self.state_mean[..., self.model.e]

    @property
    def variance(self):
        e = self.model.e
        return self.state_cov[..., e, e]

    def to_record(self) -> dict:
        comps = self.model.module.STATE
        per = {}
        for ia, a in enumerate(self.populations):
            f = {"lambda": self.lam[ia], "gbar": self.gbar[ia], "mean": self.mean[ia], "variance": self.variance[ia]}
            for c, name in enumerate(comps):
                f[f"mean_{name}"] = self.state_mean[ia, :, c]
                f[f"var_{name}"] = self.state_cov[ia, :, c, c]
            f[f"cov_{comps[0]}_{comps[1]}"] = self.state_cov[ia, :, 0, 1]
            per[a] = f
        marg = {a: {comps[k]: {"x": self.x[ia][k], "density": self.marginals[k][ia]} for k in (0, 1)}
                for ia, a in enumerate(self.populations)}
        return state_record(self.model, self.kind, self.pos, per, n=self.n, state_dimension=2,
                            components=list(comps), input_component=comps[self.model.e], marginals=marg,
                            residual=self.residual, imbalance=self.imbalance, iterations=self.iterations,
                            fast_eigenvalues=[[float(w.real), float(w.imag)] for w in self.eigenvalues],
                            **self.info)


class _Blocks:
    """Null vectors and their lambda-derivatives of all blocks at one lambda."""

    def __init__(self, ks: KineticSolver2D, t: float):
        self.ks, self.t = ks, t

    def evaluate(self, lam):
        ks = self.ks
        P, N = ks.model.P, ks.Npos
        op = ks.operator(self.t, lam)
        p = np.empty((P, N) + ks.shape)
        dp = np.empty_like(p)
        for ia in range(P):
            area = float(ks.area[ia, 0])
            for j in range(N):
                A = fp2d.block_matrix(op, (ia, j), ks.shape)
                nv = fp2d.NullVector(A, area)
                dA = fp2d.block_derivative_matrix(op, (ia, j), ks.shape)
                p[ia, j] = nv.p.reshape(ks.shape)
                dp[ia, j] = nv.derivative(dA).reshape(ks.shape)
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(dp))):
            raise KineticError(f"model {ks.model.name!r}: the stationary Fokker–Planck solve gave non-finite values "
                               f"at lambda in [{np.min(lam):.4g}, {np.max(lam):.4g}]")
        return p, ks.gbar(p), ks.gbar(dp)


def _newton(fun, x0, tol, max_iter):
    x = np.asarray(x0, float).copy()
    F, J, aux = fun(x)
    for it in range(max_iter + 1):
        if np.abs(F).max(initial=0.0) <= tol:
            return x, F, aux, it, True
        if it == max_iter:
            break
        dx = np.linalg.lstsq(J, -F, rcond=None)[0]
        s = 1.0
        n2 = np.linalg.norm(F)
        while s >= 1e-6:
            try:
                Fn, Jn, auxn = fun(x + s * dx)
            except KineticError:
                Fn = None
            if Fn is not None and np.linalg.norm(Fn) <= (1 - 1e-4 * s) * n2:
                break
            s /= 2
        else:
            return x, F, aux, it, np.abs(F).max() <= 100 * tol
        x, F, J, aux = x + s * dx, Fn, Jn, auxn
    return x, F, aux, max_iter, False


def solve_stationary2d(model, *, n: float | None = None, npos: int | None = None, t: float = 0.0, params=None,
                       shape=None, intervals=None, tol: float = TOL, max_iter: int = 40,
                       check_stability: bool = True, neg_tol: float = NEG_TOL) -> StationaryResult2D:
    """The stationary state of an m = 2 model (module docstring): balanced (n None) or finite n.
    shape / intervals: the grid (None: automatic, solvers.grid2d).  Raises DriveOutsideRange,
    NoConvergence, GridError, ManifoldNotAttracting (if check_stability).  neg_tol: negative density
    allowed, relative to the block maximum (a larger one: KineticError); a first coarse solve that only
    locates the density (solvers.verify_m2) passes inf."""
    with np.errstate(under="ignore"):          # far tails: underflow to 0 is harmless
        return _solve(model, n, npos, t, params, shape, intervals, tol, max_iter, check_stability, neg_tol)


def _solve(model, n, npos, t, params, shape, intervals, tol, max_iter, check_stability, neg_tol=NEG_TOL):
    from .feasibility import check_drive
    from .lattice_coupling import LatticeCoupling
    m = model if isinstance(model, CompiledModel) else CompiledModel(model, params)
    if n is not None:
        n = float(n)
        if not (math.isfinite(n) and n > 0):
            raise ValueError(f"n must be a positive number, got {n}")
    npos = 1 if m.pos_dim == 0 else int(DEFAULT_NPOS[m.space] if npos is None else npos)
    grid = choose_grid2d(m, npos=npos, n=n, shape=shape, intervals=intervals, t=t, stationary_only=True)
    ks = KineticSolver2D(m, npos=npos, n=n, grid=grid)
    if n is None:
        check_drive(LatticeCoupling(m, npos, t))
    P, N = m.P, ks.Npos
    try:
        lam0 = gaussian_state(m, npos, n, t)[2]
    except Exception:
        lam0 = np.zeros((P, N))
    blocks = _Blocks(ks, t)
    h = ks.drive(t)
    U = ks.U
    if n is None:
        def fun(c):
            lam = (U @ c).reshape(P, N)
            p, gb, dg = blocks.evaluate(lam)
            R = (ks.W_apply(gb) + h).reshape(-1)
            J = U.T @ (ks.W * dg.reshape(1, -1)) @ U
            return U.T @ R, J, (lam, p, gb, dg, R)
        x0 = U.T @ lam0.reshape(-1)
    else:
        s = math.sqrt(n)

        def fun(v):
            lam = v.reshape(P, N)
            p, gb, dg = blocks.evaluate(lam)
            R = (ks.W_apply(gb) + h).reshape(-1)
            J = np.eye(P * N) / s - ks.W * dg.reshape(1, -1)
            return v / s - R, J, (lam, p, gb, dg, R)
        x0 = lam0.reshape(-1)
    x, F, aux, its, ok = _newton(fun, x0, tol, max_iter)
    res = float(np.abs(F).max(initial=0.0))
    what = "balanced limit" if n is None else f"finite-n state (n = {n:g})"
    if not ok:
        raise NoConvergence(f"model {m.name!r}: stationary {what} (m = 2): Newton did not converge, residual "
                            f"{res:.3e} (tolerance {tol:g}) after {its} iterations", res, its)
    lam, p, gb, dg, R = aux
    # checks of the solution on its grid
    mx = p.max(axis=(-1, -2), keepdims=True)
    if np.any(p < -neg_tol * mx):
        raise KineticError(f"model {m.name!r}: the stationary density has negative values down to "
                           f"{float((p / mx).min()):.3e} of its maximum (the central flux of a noiseless axis is "
                           f"not monotone where the grid does not follow the density"
                           + (": the automatic grid is laid on the Gaussian closure, which is an approximation for "
                              "this model; give a grid around the density (shape=... and intervals=..., on the "
                              "command line --cells), or use verify, which locates the density first)"
                              if shape is None and intervals is None else "; refine the grid)"))
    ks._audit = {"max_edge_mass": 0.0, "min_cells_per_sd": np.inf}
    if np.isfinite(neg_tol):
        ks._check_audit(np.maximum(p, 0.0), t)
    _, mean, cov = ks.moments(p)
    D, J = ks.fast_coefficients(p, t)
    if n is None:
        eig = fast_spectrum.eigenvalues(fast_spectrum.lattice_operator(ks.W, D), U)
    else:
        ks_basis = ks._basis(t)[1]
        eig = ks.fast_rates(p, t) if ks_basis.shape[1] else np.zeros(0, complex)
    if check_stability and eig.size and eig.real.max() >= -1e-12 * max(1.0, np.abs(eig).max()):
        crit = "W D on Range(W)" if n is None else f"<f_e'> + sqrt(n) W D (n = {n:g})"
        raise ManifoldNotAttracting(
            f"model {m.name!r}: the stationary {what} is not attracting: {crit} has the eigenvalue "
            f"{eig[np.argmax(eig.real)]:.4g} with real part >= 0 (D = <dg/dx_e> at the state)", {"all": eig})
    marg = ks.marginals(p)
    imbalance = float(np.abs(R).max())
    kind = "stationary-balanced" if n is None else "stationary-finite-n"
    info = {"grid": grid.to_record(), "min_density": float(p.min()),
            "grid_audit": {"max_edge_mass": ks._audit["max_edge_mass"], "edge_mass_tolerance": EDGE_MASS_TOL,
                           "min_cells_per_sd": ks._audit["min_cells_per_sd"],
                           "min_cells_per_sd_required": MIN_CELLS_PER_SD},
            "method": "null vector of the discrete FP operator (sparse LU), Newton on lambda"}
    return StationaryResult2D(m, kind, n, ks.pos, ks.x, lam, gb, mean, cov, list(marg), p, eig, res, imbalance,
                              its, info, slope=D, drift_slope=J)

