"""Time-dependent kinetic Fokker–Planck solver for a state of dimension m = 2 (DESIGN.md §3, §4, §5b).

State: p[a, j, i1, i2], the density of population a at lattice position theta_j in cell (i1, i2) of
the tensor grid of population a (solvers.grid2d).  The operator is solvers.fp2d (SG fluxes per axis,
central mixed fluxes), the step its Hundsdorfer–Verwer ADI step.  The multiplier lambda_a(theta_j, t)
enters the velocity of the input component e only.

The multiplier, two modes (as solvers.kinetic for m = 1):
* balanced (n = None): lambda(t) in Range(W) makes the discrete constraint W gbar(p) + h = 0 hold
  at the end of every step (projection onto the manifold);
* finite n: lambda_n = sqrt(n) (W gbar(p) + h) at the end of the step (implicit in sqrt(n)).
The step is linearised in the change of lambda: with lambda = lambda_0 + U c (U the admissible
directions; at finite n also the direction of h outside Range(W); lambda_0 the linear extrapolation
2 lambda_n - lambda_n-1, so that c = O(dt^2) and the neglected O(c^2) is O(dt^4) per step; at the
first step lambda_0 is iterated to the step's own end value), p_next = y + sum_r c_r z_r, y the
step with lambda_0, z_r its exact derivative along U_r (fp2d.hv_step's tangent; each block's
change is a number, so one tangent serves all directions).  gbar is linear in p, so the constraint
(or the finite-n relation) is an r x r linear system for c, solved exactly: the constraint holds to
rounding at every step.

Positivity.  The ADI step does not guarantee p >= 0: its explicit stage can leave negative values far
in the tails.  Every step is checked: negatives no larger than NEG_TOL times the block's maximum are
set to zero and the block is rescaled to its mass (the total removed mass is reported in
info["positivity"]; mass stays conserved to rounding); this is done on y, before the multiplier is
solved, so the constraint stays exact; a larger negative value redoes the step as two half steps
(down to dt / 2^8, else KineticError naming the time).  The output never holds a negative density.

Finite-n step audit: as m = 1 (solvers.kinetic._check_step), with the fast matrix
diag(<d f_e / d x_e>) + sqrt(n) W diag(<d g / d x_e>) on the admissible directions.

Backends: the step is fp2d.step, compiled (backend "numba", solvers.fp2d_kernels, the default) or
the NumPy reference ("numpy"); the positivity safeguard likewise (fp2d_kernels.clip_blocks or _clip's
NumPy code).  Both give the same result to rounding (tests/test_fp2d_kernels.py).

Initial layer (balanced mode): the initial density is shifted along e by delta in Range(W), the end
point of d delta/ds = W gbar(p0 shifted by delta) + h (solvers.continuation.follow_flow).

Grid: solvers.grid2d.choose_grid2d (Gaussian means and covariances of the field); every record checks
the marginals: mass in the outer max(1, n_k/32) cells of each side below EDGE_MASS_TOL and at least
MIN_CELLS_PER_SD cells per effective sd (GridError otherwise).  ``run`` repeats the computation on half
the cells per axis and reports the differences (info["grid_convergence"]).

This module never imports SymPy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import fast_spectrum, fp2d
from .balance_errors import DriveOutsideRange, NoConvergence
from .compiled import CompiledModel
from .continuation import follow_flow
from .grid2d import (EDGE_MASS_TOL, MIN_CELLS_PER_SD, Grid2D, _init_gaussians, check_model_m2,
                     choose_grid2d)
from .kinetic import (STEP_TOL, GridError, KineticError, KineticStepTooCoarse, effective_sd,
                      unresolved_transient)
from .lattice_multiplier import LatticeMultiplier
from .output import Record, state_record, theta_list

TRAPEZOID_Z_MAX = 0.5   # coupling_theta = 0.5: largest |dt nu| of a fast mode (rate error |z|^2/12 <= 2 %)
NEG_TOL = 1e-5          # negatives up to this fraction of the block maximum are zeroed (and reported)
RUN_SLACK = 0.95


@dataclass
class KineticResult2D(Record):
    """A kinetic run in m = 2.  Arrays over records t: gbar, lam, mean, variance (of the input
    component e, as the m = 1 result and the field), (nt, P, N); state_mean (nt, P, N, 2), state_cov
    (nt, P, N, 2, 2); residual, mass_error, min_density (nt,).  Marginal densities at density_times:
    marginals[k] (nd, P, N, n_k) on the cell centres x[a][k]; density: the final 2-D density
    (P, N, n1, n2)."""

    model: CompiledModel
    mode: str
    n: float | None
    pos: tuple
    x: list
    times: np.ndarray
    gbar: np.ndarray
    lam: np.ndarray
    state_mean: np.ndarray
    state_cov: np.ndarray
    residual: np.ndarray
    mass_error: np.ndarray
    min_density: np.ndarray
    density_times: np.ndarray
    marginals: list
    density: np.ndarray
    shift: np.ndarray | None = None
    info: dict = field(default_factory=dict)
    extrapolated: dict | None = None

    @property
    def populations(self) -> tuple:
        return self.model.populations

    @property
    def mean(self) -> np.ndarray:
        return self.state_mean[..., self.model.e]

    @property
    def variance(self) -> np.ndarray:
        e = self.model.e
        return self.state_cov[..., e, e]

    def _fields(self, k) -> dict:
        """The per-population fields at record k (or a slice of records)."""
        comps = self.model.module.STATE
        out = {}
        for ia, a in enumerate(self.populations):
            f = {"lambda": self.lam[k, ia], "gbar": self.gbar[k, ia], "mean": self.mean[k, ia],
                 "variance": self.variance[k, ia]}
            for c, name in enumerate(comps):
                f[f"mean_{name}"] = self.state_mean[k, ia, ..., c]
                f[f"var_{name}"] = self.state_cov[k, ia, ..., c, c]
            f[f"cov_{comps[0]}_{comps[1]}"] = self.state_cov[k, ia, ..., 0, 1]
            out[a] = f
        return out

    def final_fields(self) -> dict:
        return self._fields(-1)

    def to_record(self) -> dict:
        """Final state in the stationary schema extended per component (README, "Output schema",
        m = 2): per population lambda, gbar, mean/variance of the input component, mean_<c>, var_<c>,
        cov_<c1>_<c2>; "marginals" (final marginal densities per component on their cell centres);
        the time series under "time_series"."""
        comps = self.model.module.STATE
        ts = {"t": self.times, "residual": self.residual, "mass_error": self.mass_error,
              "min_density": self.min_density}
        ts.update(self._fields(slice(None)))
        marg = {a: {comps[k]: {"x": self.x[ia][k], "density": self.marginals[k][-1, ia]} for k in (0, 1)}
                for ia, a in enumerate(self.populations)}
        extra = {"n": self.n, "mode": self.mode, "state_dimension": 2, "components": list(comps),
                 "input_component": comps[self.model.e], "time_series": ts, "marginals": marg,
                 "invariants": {"max_mass_error": float(self.mass_error.max()),
                                "min_density": float(self.min_density.min()),
                                "max_constraint_residual": float(self.residual[1:].max() if len(self.residual) > 1
                                                                 else self.residual.max()),
                                "grid": self.info.get("grid_audit"),
                                "grid_convergence": self.info.get("grid_convergence")},
                 **{k: v for k, v in self.info.items() if k not in ("grid_audit", "grid_convergence")}}
        if self.shift is not None:
            extra["initial_shift"] = {a: self.shift[ia] for ia, a in enumerate(self.populations)}
        return state_record(self.model, f"kinetic-{self.mode}", self.pos, self.final_fields(), **extra)

    def save_npz(self, path) -> None:
        arrays = {"times": self.times, "gbar": self.gbar, "lambda": self.lam, "state_mean": self.state_mean,
                  "state_cov": self.state_cov, "residual": self.residual, "density_times": self.density_times,
                  "density": self.density, "theta": np.asarray(theta_list(self.pos), float),
                  "populations": np.array(self.populations), "components": np.array(self.model.module.STATE)}
        for k, name in enumerate(self.model.module.STATE):
            arrays[f"marginal_{name}"] = self.marginals[k]
            for ia, a in enumerate(self.populations):
                arrays[f"x_{a}_{name}"] = self.x[ia][k]
        from .atomic import atomic_savez
        atomic_savez(path, **arrays)


def _gauss(x, mu, sd):
    e = -0.5 * ((x - mu) / sd) ** 2
    return np.where(e > -575.0, np.exp(np.maximum(e, -575.0)), 0.0)


class KineticSolver2D(LatticeMultiplier):
    """Kinetic solver for one model with m = 2 (module docstring).

    model: CompiledModel or name; npos: lattice positions per angle; shape: (n1, n2) cells or None
    (automatic); intervals: None (automatic) or per population ((lo1, hi1), (lo2, hi2)); n: None
    (balanced) or the network size of the finite-n equation; init: None (the model's INITIAL, else
    N(0, 1) per component), a (mean, sd) pair (each a number or 2 numbers) or a dict pop -> pair;
    grid_check / step_check: "refuse" (default) or "off" (record only), as solvers.kinetic.
    coupling_theta (finite n): the multiplier held over a step is theta lambda_n+1 + (1 - theta)
    lambda_n with lambda_n+1 = sqrt(n) (W gbar(p_n+1) + h): 1 (default, as m = 1) is implicit Euler in
    the fast coupling, stable and damping at any dt but first order; 0.5 is the trapezoidal rule,
    second order, for fast modes the step resolves (|dt nu| <= TRAPEZOID_Z_MAX, refused otherwise
    under step_check="refuse": it would not damp an unresolved mode).  backend: the step's
    implementation, fp2d.step ("numba": the compiled kernels, "numpy": the reference; None: numba
    when available)."""

    def __init__(self, model, *, npos: int = 32, shape=None, intervals=None, n: float | None = None,
                 params=None, init=None, grid_check: str = "refuse", step_check: str = "refuse",
                 grid: Grid2D | None = None, coupling_theta: float = 1.0, backend: str | None = None):
        from .lattice_coupling import lattice_range_basis, lattice_W
        self.model = m = model if isinstance(model, CompiledModel) else CompiledModel(model, params)
        check_model_m2(m)
        if n is not None and not (np.isfinite(n) and n > 0):
            raise ValueError(f"n must be a positive number, got {n}")
        self.n = None if n is None else float(n)
        for name, v in (("grid_check", grid_check), ("step_check", step_check)):
            if v not in ("refuse", "off"):
                raise ValueError(f"{name} must be 'refuse' or 'off', got {v!r}")
        self.grid_check, self.step_check = grid_check, step_check
        if coupling_theta not in (0.5, 1.0):
            raise ValueError(f"coupling_theta must be 1 (implicit, the default) or 0.5 (trapezoidal), got {coupling_theta!r}")
        self.theta = float(coupling_theta)
        self.backend = fp2d.backend_for(backend)
        self.npos = npos
        self.pos = m.grid(npos)
        self.Npos = m.n_positions(npos)
        self.init = init
        self.grid = grid if grid is not None else choose_grid2d(
            m, npos=npos, n=self.n, init=init, shape=shape, intervals=intervals, check=grid_check == "refuse")
        self.shape = n1, n2 = self.grid.shape
        P, N = m.P, self.Npos
        self.W = lattice_W(m, self.pos)
        self.U = lattice_range_basis(m, self.pos, self.W)
        self.x = [self.grid.centres(ia) for ia in range(P)]
        hs = np.array([self.grid.h(ia) for ia in range(P)])
        self.h1 = hs[:, 0].reshape(P, 1, 1, 1)
        self.h2 = hs[:, 1].reshape(P, 1, 1, 1)
        self.area = (hs[:, 0] * hs[:, 1]).reshape(P, 1)
        self.static = not any(m.time_dependent(a) for a in m.populations)
        self.state_dep_diffusion = any(m.state_dependent("fp_diffusion", a) for a in m.populations)
        th = tuple(np.asarray(q, float)[:, None, None] for q in self.pos)
        self._th = th
        self.g = np.empty((P, N, n1, n2))
        self.gslope = np.empty((P, N, n1, n2))
        self._X = []
        for ia, a in enumerate(m.populations):
            x1, x2 = self.x[ia]
            X1, X2 = x1[None, :, None], x2[None, None, :]
            self._X.append((X1[0], X2[0]))
            self.g[ia] = np.broadcast_to(m.call("gain", a, X1, X2, *th, 0.0), (N, n1, n2))
            self.gslope[ia] = np.broadcast_to(self._partial("gain", a, X1, X2, 0.0), (N, n1, n2))
        if not np.all(np.isfinite(self.g)):
            raise KineticError(f"model {m.name!r}: the gain is not finite on the grid")
        self._diff = {}
        self._vel = {}
        self._coef = {}
        self._drive_static = None
        self.clipped_mass = 0.0

    # ---- model evaluation ---------------------------------------------------------------------
    def _partial(self, kind, a, X1, X2, t):
        """d kind / d x_e (component 0 of the output for scalars) by central differences."""
        m, e = self.model, self.model.e
        hs = 1e-5 * (1.0 + np.abs(X1 if e == 0 else X2))
        args_p = (X1 + hs, X2) if e == 0 else (X1, X2 + hs)
        args_m = (X1 - hs, X2) if e == 0 else (X1, X2 - hs)
        with np.errstate(all="ignore"):
            fp = m.call(kind, a, *args_p, *self._th, t)
            fm = m.call(kind, a, *args_m, *self._th, t)
        if kind == "drift":
            fp, fm = fp[e], fm[e]
        d = (np.asarray(fp, float) - np.asarray(fm, float)) / (2 * hs)
        return np.where(np.isfinite(d), d, 0.0)

    def _faces(self, ia, axis):
        """(X1, X2) broadcast arrays at the faces normal to axis (interior faces only)."""
        (x1, x2) = self.x[ia]
        if axis == 0:
            f = 0.5 * (x1[1:] + x1[:-1])
            return f[None, :, None], x2[None, None, :]
        f = 0.5 * (x2[1:] + x2[:-1])
        return x1[None, :, None], f[None, None, :]

    def diffusion(self, t):
        """(D11, D22, D12 at x1-faces, D12 at x2-faces) of Dh = sigma sigma^T / 2, batch (P, N)."""
        key = None if (self.static and not self.model_time_dependent_diffusion()) else t
        if key in self._diff:
            return self._diff[key]
        m = self.model
        P, N, (n1, n2) = m.P, self.Npos, self.shape
        D11 = np.empty((P, N, n1 - 1, n2))
        D12a = np.empty_like(D11)
        D22 = np.empty((P, N, n1, n2 - 1))
        D12b = np.empty_like(D22)
        for ia, a in enumerate(m.populations):
            X = self._faces(ia, 0)
            D = m.call("fp_diffusion", a, *X, *self._th, t)
            D11[ia] = np.broadcast_to(D[0][0], D11.shape[1:])
            D12a[ia] = np.broadcast_to(D[0][1], D11.shape[1:])
            X = self._faces(ia, 1)
            D = m.call("fp_diffusion", a, *X, *self._th, t)
            D22[ia] = np.broadcast_to(D[1][1], D22.shape[1:])
            D12b[ia] = np.broadcast_to(D[0][1], D22.shape[1:])
        for name, arr in (("D11", D11), ("D22", D22), ("D12", D12a), ("D12", D12b)):
            if not np.all(np.isfinite(arr)):
                raise KineticError(f"model {m.name!r}: sigma sigma^T / 2 ({name}) is not finite on the grid at t = {t:g}")
        if np.any(D11 < 0) or np.any(D22 < 0):
            raise KineticError(f"model {m.name!r}: sigma sigma^T / 2 has a negative diagonal on the grid")
        out = (D11, D22, D12a, D12b)
        self._diff[key] = out
        return out

    def model_time_dependent_diffusion(self) -> bool:
        return any("t" in self.model.uses("fp_diffusion", a) for a in self.model.populations)

    def velocity(self, t):
        """V1 at x1-faces (P, N, n1-1, n2), V2 at x2-faces (P, N, n1, n2-1), without the multiplier."""
        key = None if self.static else t
        if key in self._vel:
            return self._vel[key]
        m = self.model
        P, N, (n1, n2) = m.P, self.Npos, self.shape
        V1 = np.empty((P, N, n1 - 1, n2))
        V2 = np.empty((P, N, n1, n2 - 1))
        for ia, a in enumerate(m.populations):
            V1[ia] = np.broadcast_to(m.call("fp_velocity", a, *self._faces(ia, 0), *self._th, t)[0], V1.shape[1:])
            V2[ia] = np.broadcast_to(m.call("fp_velocity", a, *self._faces(ia, 1), *self._th, t)[1], V2.shape[1:])
        if not (np.all(np.isfinite(V1)) and np.all(np.isfinite(V2))):
            raise KineticError(f"model {m.name!r}: the Fokker–Planck velocity is not finite on the grid at t = {t:g}")
        if not self.static:
            self._vel.clear()
        self._vel[key] = (V1, V2)
        return V1, V2

    def coefficients(self, t) -> fp2d.Coefficients:
        """The operator at time t without the multiplier (kept for the last two times; once for an
        autonomous model): what does not depend on the multiplier is computed once per time."""
        key = None if self.autonomous() else t
        if key not in self._coef:
            if len(self._coef) >= 2:
                self._coef.pop(next(iter(self._coef)))
            self._coef[key] = fp2d.Coefficients(*self.velocity(t), *self.diffusion(t), self.h1, self.h2,
                                                self.model.e)
        return self._coef[key]

    def autonomous(self) -> bool:
        """The operator does not depend on the time (velocity and diffusion)."""
        return self.static and not self.model_time_dependent_diffusion()

    def operator(self, t, lam, derivatives=True) -> fp2d.Operator2D:
        """A at time t with the multiplier lam (batch (P, N))."""
        return self.coefficients(t).operator(lam, derivatives)

    # ---- functionals ----------------------------------------------------------------------------
    def gbar(self, p):
        """gbar[a, j] = sum g p h1 h2; p (P, N, n1, n2) or with a leading stack axis."""
        return np.einsum("...ij,...ij->...", self.g, p) * self.area

    def moments(self, p):
        """(mass (P, N), mean (P, N, 2), cov (P, N, 2, 2)): from the two marginal sums and one contraction
        of p with the centred x2 (three passes over p)."""
        P, N = self.model.P, self.Npos
        s1, s2 = p.sum(axis=-1), p.sum(axis=-2)             # (P, N, n1), (P, N, n2)
        tot = s1.sum(axis=-1)
        mass = tot * self.area
        mean = np.empty((P, N, 2))
        cov = np.empty((P, N, 2, 2))
        for ia in range(P):
            x1, x2 = self.x[ia]
            m1 = s1[ia] @ x1 / tot[ia]
            m2 = s2[ia] @ x2 / tot[ia]
            d1, d2 = x1 - m1[:, None], x2 - m2[:, None]      # (N, n1), (N, n2)
            mean[ia, :, 0], mean[ia, :, 1] = m1, m2
            cov[ia, :, 0, 0] = (s1[ia] * d1 * d1).sum(axis=-1) / tot[ia]
            cov[ia, :, 1, 1] = (s2[ia] * d2 * d2).sum(axis=-1) / tot[ia]
            c12 = np.einsum("jab,jb,ja->j", p[ia], d2, d1, optimize=True) / tot[ia]
            cov[ia, :, 0, 1] = cov[ia, :, 1, 0] = c12
        return mass, mean, cov

    def marginals(self, p):
        """(marginal along component 0 (P, N, n1), along component 1 (P, N, n2))."""
        return p.sum(axis=-1) * self.h2[..., 0], p.sum(axis=-2) * self.h1[..., 0]

    # ---- initial density and layer ----------------------------------------------------------------
    def _init_values(self, ia, a, shift):
        """Unnormalised initial density of population a with component e shifted by ``shift``."""
        e = self.model.e
        m0, s0 = _init_gaussians(self.model, self.init)[ia]
        X1, X2 = self._X[ia]
        sh = np.asarray(shift, float).reshape(-1, 1, 1) * np.ones((self.Npos, 1, 1))
        mu1 = m0[0] + (sh if e == 0 else 0.0)
        mu2 = m0[1] + (sh if e == 1 else 0.0)
        return _gauss(X1[None], mu1, s0[0]) * _gauss(X2[None], mu2, s0[1])

    def _normalise(self, p):
        mass = p.sum(axis=(-1, -2), keepdims=True) * self.area[..., None, None]
        if np.any(mass <= 0) or not np.all(np.isfinite(mass)):
            raise KineticError(f"model {self.model.name!r}: the initial density has no mass on the grid")
        return p / mass

    def initial_density(self, shift=None):
        m = self.model
        sh = np.zeros((m.P, self.Npos)) if shift is None else shift
        p = np.empty((m.P, self.Npos) + self.shape)
        for ia, a in enumerate(m.populations):
            p[ia] = self._init_values(ia, a, sh[ia])
        return self._normalise(p)

    def initial_layer(self, t0: float = 0.0):
        """(shifted density, delta (P, N)): the initial density shifted along e by delta in Range(W)
        onto the manifold (module docstring)."""
        m, U = self.model, self.U
        h = self.drive(t0)
        if U.shape[1] == 0:
            return self.initial_density(), np.zeros((m.P, self.Npos))

        def residual(c):
            d = (U @ c).reshape(m.P, self.Npos)
            return U.T @ (self.W_apply(self.gbar(self.initial_density(d))) + h).reshape(-1)

        c, F = follow_flow(residual, np.zeros(U.shape[1]))
        if np.abs(F).max() > 1e-10:
            raise NoConvergence(f"model {m.name!r}: the initial-layer shift did not reach the manifold "
                                f"(residual {np.abs(F).max():.3e})")
        d = (U @ c).reshape(m.P, self.Npos)
        return self.initial_density(d), d

    # ---- step ---------------------------------------------------------------------------------
    def _clip(self, p):
        """Zero negatives of at most NEG_TOL x the block maximum, rescale each block to its mass (in
        place, only the blocks with a negative value); None when a larger negative value is present.
        Backend numba: the same rule compiled (fp2d_kernels.clip_blocks)."""
        if self.backend == "numba":
            from .fp2d_kernels import clip
            p, removed = clip(p, NEG_TOL)
            if np.isnan(removed).any():
                return None
            self.clipped_mass += float((removed * self.area).sum())
            return p
        flat = p.reshape(p.shape[:-2] + (-1,))
        mn = flat.min(axis=-1)
        if not np.any(mn < 0):
            return p
        if np.any(mn < -NEG_TOL * flat.max(axis=-1)):
            return None
        idx = np.nonzero(mn < 0)
        q = p[idx]                                          # (k, n1, n2): the blocks with negatives
        mass = q.sum(axis=(-1, -2), keepdims=True)
        removed = -np.minimum(q, 0.0).sum(axis=(-1, -2))
        self.clipped_mass += float((removed * self.area[idx[0], 0]).sum())
        np.maximum(q, 0.0, out=q)
        p[idx] = q * (mass / q.sum(axis=(-1, -2), keepdims=True))
        return p

    def step(self, p, lam, t, dt, guess=None):
        """One step from (p, lam = lambda_n); the multiplier held over the step (lambda_n+1 in the
        balanced mode, theta lambda_n+1 + (1 - theta) lambda_n at finite n) solves the balance
        constraint (or the finite-n relation) exactly for the step's affine dependence on it,
        linearised about ``guess`` (default: lam; the run passes the linear extrapolation, so that the
        neglected second-order term in the change of lambda is O(dt^4) per step).  Returns
        (p_n+1, lambda_n+1) or None when the step produced a negative density beyond NEG_TOL."""
        lam_n = lam
        if guess is not None:
            lam = guess
        basis, U = self._basis(t + dt)
        now = self.coefficients(t)
        y, z = fp2d.step(p, now, now if self.autonomous() else self.coefficients(t + dt), lam, dt,
                         backend=self.backend)
        if not (np.all(np.isfinite(y)) and np.all(np.isfinite(z))):
            return None
        y = self._clip(y)
        if y is None:
            return None
        if U.shape[1] == 0:
            return y, lam
        h = self.drive(t + dt).reshape(-1)
        Gy = self.W_apply(self.gbar(y)).reshape(-1)
        gz = self.gbar(z)                                              # (P, N)
        GZ = self.W_apply(basis * gz[..., None]).reshape(self.model.P * self.Npos, -1)
        if self.n is None:
            A = U.T @ GZ
            rhs = -U.T @ (Gy + h)
        else:
            s, th = np.sqrt(self.n), self.theta
            A = np.eye(U.shape[1]) - th * s * U.T @ GZ
            rhs = U.T @ (th * s * (Gy + h) - lam.reshape(-1) + (1 - th) * lam_n.reshape(-1))
        try:
            c = np.linalg.solve(A, rhs)
        except np.linalg.LinAlgError:
            raise KineticError(f"model {self.model.name!r}: the multiplier system is singular at t = {t:.4g} "
                               "(W D not invertible on Range(W))") from None
        dlam = (U @ c).reshape(self.model.P, self.Npos)
        p_new = np.multiply(z, dlam[..., None, None])              # y + dlam z
        p_new += y
        before = self.clipped_mass
        p_new = self._clip(p_new)
        if p_new is None:
            return None
        if self.clipped_mass != before:
            # the clip moved mass, so the constraint no longer holds exactly (5e-7 on ei_fhn at n = 1000):
            # one more correction dlam' z with the same linear system, on the residual of the clipped state
            Gp = self.W_apply(self.gbar(p_new)).reshape(-1)
            if self.n is None:
                F = U.T @ (Gp + h)
            else:
                held = (lam + dlam).reshape(-1)
                F = U.T @ (held - (1 - th) * lam_n.reshape(-1) - th * s * (Gp + h))
            d2 = (U @ np.linalg.solve(A, -F)).reshape(self.model.P, self.Npos)
            p_new += z * d2[..., None, None]
            dlam = dlam + d2
            p_new = self._clip(p_new)
            if p_new is None:
                return None
        if self.n is None or self.theta == 1.0:
            return p_new, lam + dlam
        return p_new, (lam + dlam - (1 - self.theta) * lam_n) / self.theta

    def _held(self, end, lam_n):
        """The multiplier held over a step whose end value is ``end``."""
        if self.n is None or self.theta == 1.0:
            return end
        return self.theta * end + (1 - self.theta) * lam_n

    def _first_guess(self, p, lam, t, dt):
        """Without a history (first step, after halved steps) the change of lambda over the step can
        be O(1) (lam0 = 0 after the initial layer): the step is repeated with its own end multiplier as
        the point of linearisation until that changes by less than 1e-10 (at most 4 times)."""
        guess = lam
        for _ in range(4):
            out = self.step(p, lam, t, dt, guess)
            if out is None:
                return None
            new = self._held(out[1], lam)
            if np.abs(new - guess).max() <= 1e-10 * max(1.0, np.abs(guess).max()):
                break
            guess = new
        return guess

    def _safe_step(self, p, lam, t, dt, depth=0, guess=None):
        out = self.step(p, lam, t, dt, guess)
        if out is not None:
            return out[0], out[1], 0
        if depth >= 8:
            raise KineticError(f"model {self.model.name!r}: the step at t = {t:.6g} produced a negative density "
                               f"(beyond {NEG_TOL:g} of the maximum) or non-finite values even at dt = {dt:.3e}; "
                               "refine the grid or reduce dt")
        p1, l1, k1 = self._safe_step(p, lam, t, dt / 2, depth + 1)
        p2, l2, k2 = self._safe_step(p1, l1, t + dt / 2, dt / 2, depth + 1)
        return p2, l2, 1 + k1 + k2

    # ---- audits ---------------------------------------------------------------------------------
    def grid_audit(self, p):
        """(largest mass in the outer cells of a side, smallest cells per effective sd of a marginal,
        where: (population, position, component, side or None))."""
        m = self.model
        worst_edge, where_edge = 0.0, None
        worst_cps, where_cps = np.inf, None
        for k, marg in enumerate(self.marginals(p)):
            nk = self.shape[k]
            c = max(1, nk // 32)
            hk = (self.h1 if k == 0 else self.h2)[:, 0, 0, 0]
            for side, cells in (("lower", marg[..., :c]), ("upper", marg[..., -c:])):
                em = cells.sum(-1) * hk[:, None]
                ia, j = np.unravel_index(int(np.argmax(em)), em.shape)
                if em[ia, j] > worst_edge:
                    worst_edge, where_edge = float(em[ia, j]), (int(ia), int(j), k, side)
            for ia in range(m.P):
                cps = effective_sd(self.x[ia][k], marg[ia]) / hk[ia]
                j = int(np.argmin(cps))
                if cps[j] < worst_cps:
                    worst_cps, where_cps = float(cps[j]), (ia, j, k, None)
        return worst_edge, worst_cps, where_edge, where_cps

    def _check_audit(self, p, t):
        edge, cps, we, wc = self.grid_audit(p)
        self._audit["max_edge_mass"] = max(self._audit["max_edge_mass"], edge)
        self._audit["min_cells_per_sd"] = min(self._audit["min_cells_per_sd"], cps)
        if self.grid_check != "refuse":
            return
        m, comps = self.model, self.model.module.STATE
        if edge > EDGE_MASS_TOL:
            ia, j, k, side = we
            lo, hi = self.grid.intervals[ia][k]
            raise GridError(
                f"model {m.name!r}, population {m.populations[ia]}{'' if not self.pos else f' at position {j}'}: "
                f"at t = {t:.6g} the mass in the outer {max(1, self.shape[k] // 32)} cell(s) at the {side} end of "
                f"component {comps[k]} (grid [{lo:.4g}, {hi:.4g}]) is {edge:.3e} > {EDGE_MASS_TOL:g}: the density "
                f"leaves the grid.  Give wider intervals (KineticSolver2D(intervals=...)) with enough cells")
        if cps < RUN_SLACK * MIN_CELLS_PER_SD:
            ia, j, k, _ = wc
            raise GridError(
                f"model {m.name!r}, population {m.populations[ia]}{'' if not self.pos else f' at position {j}'}: "
                f"at t = {t:.6g} the marginal of component {comps[k]} has {cps:.3g} cells per effective sd, "
                f"below {MIN_CELLS_PER_SD}: the grid no longer resolves it; use more cells (shape=...)")

    def fast_rates(self, p, t):
        """Eigenvalues of diag(<d f_e/d x_e>) + sqrt(n) W diag(<d g/d x_e>) on the admissible directions
        at the densities p (empty in the balanced mode)."""
        if self.n is None:
            return np.zeros(0, complex)
        _, U = self._basis(t)
        if U.shape[1] == 0:
            return np.zeros(0, complex)
        D, J = self.fast_coefficients(p, t)
        return fast_spectrum.eigenvalues(fast_spectrum.lattice_operator(self.W, D), U, n=self.n, j=J)

    def fast_coefficients(self, p, t):
        """(D, J), each (P, Npos): the mean gain slope <d g/d x_e> and the mean drift slope
        <d f_e/d x_e> under the densities p (the coefficients of the finite-n fast matrix)."""
        D = np.sum(self.gslope * p, axis=(-1, -2)) * self.area
        if self.static and getattr(self, "_fslope", None) is not None:
            fs = self._fslope
        else:
            fs = np.stack([np.broadcast_to(self._partial("drift", a, *[x[None] for x in self._X[ia]], t),
                                           (self.Npos,) + self.shape) for ia, a in enumerate(self.model.populations)])
            if self.static:
                self._fslope = fs
        J = np.sum(fs * p, axis=(-1, -2)) * self.area
        return D, J

    def _check_step(self, p, t, dt):
        nu = self.fast_rates(p, t)
        au = self._step_audit
        if nu.size == 0:
            return
        z_acc = au["z_accurate"]
        k = int(np.argmax(np.abs(nu)))
        if dt * abs(nu[k]) >= au["max_z"]:
            au["max_z"], au["nu_at_max_z"] = float(dt * abs(nu[k])), [float(nu[k].real), float(nu[k].imag)]
        for v in nu:
            zz = dt * v
            if self.theta == 0.5:
                if abs(zz) > TRAPEZOID_Z_MAX and self.step_check == "refuse":
                    raise KineticStepTooCoarse(
                        f"model {self.model.name!r}: at t = {t:.6g} the finite-n fast matrix (n = {self.n:g}) has the "
                        f"eigenvalue nu = {v.real:.6g}{v.imag:+.6g}i and dt = {dt:g} gives |dt nu| = {abs(zz):.3g} > "
                        f"{TRAPEZOID_Z_MAX}: the trapezoidal coupling (coupling_theta=0.5) would not damp it; use "
                        f"dt <= {TRAPEZOID_Z_MAX / abs(v):.4g} or coupling_theta=1", dt, TRAPEZOID_Z_MAX / abs(v), t,
                        complex(v))
                continue
            if abs(zz) <= z_acc:
                continue
            dt_ok = z_acc / abs(v)
            if v.real >= 0:
                if self.step_check == "refuse":
                    raise KineticStepTooCoarse(
                        f"model {self.model.name!r}: at t = {t:.6g} the finite-n fast matrix (n = {self.n:g}) has the "
                        f"eigenvalue nu = {v.real:.6g}{v.imag:+.6g}i, and dt = {dt:g} gives |dt nu| = {abs(zz):.3g} > "
                        f"{z_acc:.3g}: this mode grows (Re nu >= 0) and the step would damp it; the largest "
                        f"accurate dt is {dt_ok:.4g}", dt, dt_ok, t, complex(v))
                au["unresolved_growing"] = True
                continue
            tr = unresolved_transient(complex(zz), dt)
            if tr > au["transient"]:
                au["transient"], au["nu_transient"] = float(tr), [float(v.real), float(v.imag)]

    # ---- run ------------------------------------------------------------------------------------
    def run(self, T: float, dt: float, *, record_every: float | None = None, density_every: float | None = None,
            p0=None, lam0=None, initial_layer: bool | None = None, grid_convergence: bool = True) -> KineticResult2D:
        """Integrate to T with step dt; moments every record_every (default dt), marginals every
        density_every (default: start and end).  initial_layer: default True in the balanced mode,
        False at finite n (as solvers.kinetic).  grid_convergence: repeat on half the cells per axis
        and report max_t |Q - Q_coarse| for Q = state mean, covariance, gbar, lambda (info), and the
        Richardson values Q + (Q - Q_coarse)/3 (result.extrapolated, fourth order in the cell size for
        smooth densities, where the second-order error expands in h^2)."""
        with np.errstate(under="ignore"):
            return self._run(T, dt, record_every, density_every, p0, lam0, initial_layer, grid_convergence)

    def _run(self, T, dt, record_every, density_every, p0, lam0, initial_layer, grid_convergence):
        m = self.model
        if initial_layer is None:
            initial_layer = self.n is None
        if not (dt > 0 and T > 0 and np.isfinite(dt) and np.isfinite(T)):
            raise ValueError(f"need T > 0 and dt > 0, got T = {T}, dt = {dt}")
        if self.n is None:
            h = self.drive(0.0).reshape(-1)
            out = h - self.U @ (self.U.T @ h)
            if np.abs(out).max() > 1e-9 * max(1.0, np.abs(h).max()):
                raise DriveOutsideRange(f"model {m.name!r}: the drive h lies outside Range(W) on the lattice "
                                        f"(residual {np.abs(out).max():.3e}); no balanced state exists")
        shift = None
        if p0 is not None:
            p = self._normalise(np.array(np.broadcast_to(p0, (m.P, self.Npos) + self.shape), float))
        elif initial_layer:
            p, shift = self.initial_layer(0.0)
        else:
            p = self.initial_density()
        lam = np.zeros((m.P, self.Npos)) if lam0 is None else np.array(lam0, float)
        if self.n is not None and lam0 is None:
            lam = np.sqrt(self.n) * (self.W_apply(self.gbar(p)) + self.drive(0.0))
        nsteps = int(np.ceil(T / dt - 1e-9))
        dt = T / nsteps
        rec = max(1, int(round((record_every or dt) / dt)))
        drec = max(1, int(round((density_every or T) / dt)))
        mass0 = p.sum(axis=(-1, -2)) * self.area
        self._audit = {"max_edge_mass": 0.0, "min_cells_per_sd": np.inf}
        self._step_audit = {"z_accurate": 2 * STEP_TOL, "tolerance": STEP_TOL, "max_z": 0.0, "nu_at_max_z": None,
                            "transient": 0.0, "nu_transient": None, "unresolved_growing": False,
                            "check": self.step_check if self.n is not None else "balanced mode: no fast modes"}
        self.clipped_mass = 0.0
        self._check_audit(p, 0.0)
        self._check_step(p, 0.0, dt)
        rows = []
        margs = [[], []]
        dtimes = []

        def record(t, p, lam):
            mass, mean, cov = self.moments(p)
            gb = self.gbar(p)
            imb = self.W_apply(gb) + self.drive(t)
            res = np.abs(imb).max() if self.n is None else np.abs(lam - np.sqrt(self.n) * imb).max()
            rows.append((t, gb, mean, cov, lam.copy(), res, np.abs(mass - mass0).max(), p.min()))

        def keep_density(t, p):
            for k, mg in enumerate(self.marginals(p)):
                margs[k].append(mg)
            dtimes.append(t)

        record(0.0, p, lam)
        keep_density(0.0, p)
        t, substeps = 0.0, 0
        hist = []                                   # step-end multipliers of the last full steps
        for k in range(1, nsteps + 1):
            if len(hist) == 2:
                guess = self._held(2 * hist[1] - hist[0], lam)
            else:
                guess = self._first_guess(p, lam, t, dt)
            p, lam, sub = self._safe_step(p, lam, t, dt, guess=guess)
            hist = [] if sub else (hist + [lam])[-2:]   # halved steps: no clean history
            substeps += sub
            t = k * dt
            if k % rec == 0 or k == nsteps:
                record(t, p, lam)
                self._check_audit(p, t)
                self._check_step(p, t, dt)
                r = rows[-1]
                if not np.isfinite(r[5]) or r[6] > 1e-12 * max(1.0, float(np.abs(mass0).max())) * 100:
                    raise KineticError(f"model {m.name!r}: invariant violated at t = {t:.4g}: mass error {r[6]:.3e}, "
                                       f"constraint residual {r[5]:.3e}")
            if k % drec == 0 or k == nsteps:
                keep_density(t, p)
        cols = list(zip(*rows))
        info = {"scheme": "hundsdorfer-verwer ADI", "dt": dt, "shape": list(self.shape),
                "npos": len(self.pos[0]) if self.pos else 1, "rank_W": int(self.U.shape[1]),
                "safeguard_substeps": substeps,
                "positivity": {"negative_mass_zeroed": self.clipped_mass, "tolerance": NEG_TOL,
                               "rule": "negatives <= NEG_TOL x block max zeroed, block rescaled to its mass"},
                "grid": self.grid.to_record(),
                "grid_audit": {"max_edge_mass": self._audit["max_edge_mass"], "edge_mass_tolerance": EDGE_MASS_TOL,
                               "min_cells_per_sd": float(self._audit["min_cells_per_sd"]),
                               "min_cells_per_sd_required": MIN_CELLS_PER_SD, "check": self.grid_check},
                "step_audit": dict(self._step_audit)}
        res = KineticResult2D(m, "balanced" if self.n is None else "finite-n", self.n, self.pos, self.x,
                              np.array(cols[0]), np.array(cols[1]), np.array(cols[4]), np.array(cols[2]),
                              np.array(cols[3]), np.array(cols[5]), np.array(cols[6]), np.array(cols[7]),
                              np.array(dtimes), [np.array(margs[0]), np.array(margs[1])], p.copy(), shift, info)
        if grid_convergence:
            info["grid_convergence"] = self._grid_convergence(res, T, dt, record_every, initial_layer, lam0, p0)
        return res

    def _grid_convergence(self, fine, T, dt, record_every, initial_layer, lam0, p0):
        n1, n2 = self.shape
        out = {"shape": [n1, n2], "shape_coarse": [n1 // 2, n2 // 2]}
        if min(n1, n2) // 2 < 16 or p0 is not None:
            return {**out, "skipped": "too few cells" if p0 is None else "p0 given"}
        coarse = KineticSolver2D(self.model, npos=self.npos, n=self.n, init=self.init, grid_check="off",
                                 step_check="off", coupling_theta=self.theta, grid=Grid2D(self.grid.intervals, (n1 // 2, n2 // 2), self.grid.sd,
                                                               self.grid.sd_source, False, self.grid.components))
        try:
            rc = coarse.run(T, dt, record_every=record_every, initial_layer=initial_layer, lam0=lam0,
                            grid_convergence=False)
        except (KineticError, NoConvergence, FloatingPointError) as exc:
            return {**out, "failed": str(exc)}
        if rc.times.shape != fine.times.shape:
            return {**out, "skipped": "the coarse run recorded different times"}
        q = {"state_mean": (fine.state_mean, rc.state_mean), "state_cov": (fine.state_cov, rc.state_cov),
             "gbar": (fine.gbar, rc.gbar), "lambda": (fine.lam, rc.lam)}
        diff = {k: float(np.max(np.abs(a - b))) for k, (a, b) in q.items()}
        fine.extrapolated = {k: a + (a - b) / 3.0 for k, (a, b) in q.items()}
        return {**out, "max_abs_diff": diff, "error_estimate": {k: v / 3.0 for k, v in diff.items()},
                "note": "max over records, populations, positions and components of |Q(shape) - Q(shape/2)|; "
                        "the scheme is second order, so the error of the result is about a third of it "
                        "(error_estimate), and result.extrapolated holds the Richardson values Q + (Q - Q_coarse)/3"}


def solve_kinetic2d(model, T: float, dt: float, *, npos: int = 32, n=None, shape=None, intervals=None,
                    init=None, params=None, **run_options) -> KineticResult2D:
    """KineticSolver2D(model, ...).run(T, dt, **run_options)."""
    return KineticSolver2D(model, npos=npos, n=n, shape=shape, intervals=intervals, init=init,
                           params=params).run(T, dt, **run_options)
