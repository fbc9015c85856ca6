"""The neural field (DESIGN.md §5): means and covariances with a low-rank balancing input.

For a model whose drift is linear and whose noise is additive (module.LINEAR_ADDITIVE), the kinetic
limit is exactly Gaussian.  On a lattice of positions theta_i (CompiledModel.grid) the field is the
differential-algebraic system

    d m_a/dt = A_a m_a + c_a + (u_a + lambda_a) e,          d C_a/dt = A_a C_a + C_a A_a^T + Q_a,
    0 = (W G(m, C))_a + h_a,        G_a = E[g_a(m_a,g + sqrt(C_a,gg) Z)],     lambda in Range(W),

with A, c, Q = sigma sigma^T from the generated field_A_P / field_c_P / field_noise_P, u from input_P,
G from field_gain_P (closed form or Gauss–Hermite, as generated; g is the gain's state component,
which must be the input component e), W the lattice operator of solvers.lattice_coupling.lattice_W and
lambda = U l with U = range_basis(W) (orthonormal columns, P N x r).

Time stepping (``FieldSolver.run``): an exponential integrator with the coefficients frozen at the
midpoint of each step (exponential midpoint rule, second order for time-dependent A, c, u, Q; exact
when they are constant),

    m_new = E m + Phi (b + lambda e),   E = e^(A dt),  Phi = int_0^dt e^(A s) ds,   b = c + u e,
    C_new = E C E^T + int_0^dt e^(A s) Q e^(A^T s) ds          (Van Loan's block exponential),

and, as in the kinetic solver, the multiplier is held constant over the step and chosen so that the
constraint holds exactly at the end of the step: m_new is affine in lambda, so
U^T (W G(m_new(U l), C_new) + h(t + dt)) = 0 is an r x r nonlinear system, solved by Newton's method
(Jacobian U^T W diag(D Phi_ge) U, D = dG/dm by central differences) to 1e-13.  The covariance
equation does not involve lambda.  When A is the same at every position the lambda directions stay
in Range(W) during the step and the end-of-step means are exact for any dt; in general the error is
O(dt^2).  The recorded lambda(t) is the DAE's instantaneous multiplier at the recorded state, from the
differentiated constraint (DESIGN.md (M)):
    U^T W [ D (A m + b + lambda e)_g + dG/dC (dC/dt)_gg ] + U^T dh/dt = 0.

Initial layer: an initial (m, C) off the manifold is shifted, m_e -> m_e + delta, delta in Range(W),
to the end point of d delta/ds = W G(m + delta e, C) + h (solvers.continuation.follow_flow, pseudo-
transient continuation that becomes Newton's method near the end point).

Stationary fields (``stationary_field``): C from the Lyapunov equation A C + C A^T + Q = 0 at each
position (A must be Hurwitz), m = -A^-1 (b + lambda e), and l from U^T (W G(m(U l), C) + h) = 0 by
damped Newton (pseudo-transient continuation as a fallback).

A model that is not linear with additive noise is refused (FieldNotApplicable, naming the model and
the population) unless closure=True: the Gaussian closure linearises the Itô drift at the mean,
A = df/dx(m) (central differences of the generated drift_P), c = f(m) - A m, Q = sigma sigma^T(m)
(generated diffusion_P), i.e. d m/dt = f(m) + (u + lambda) e and d C/dt = A(m) C + C A(m)^T + Q(m); the
step linearises at an exponential-Euler predictor of the midpoint (second order).  Every output of
the closure is labelled: kind "field-gaussian-closure" (stationary: "stationary-field-gaussian-
closure") and "approximation": true.

This module never imports SymPy.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import fast_spectrum
from .balance_errors import DriveOutsideRange, NoConvergence
from .compiled import CompiledModel
from .continuation import follow_flow
from .lattice_coupling import LatticeCoupling, lattice_range_basis, lattice_W
from .output import Record, state_record, theta_list

DEFAULT_NPOS = {"point": 1, "ring": 64, "torus2": 32}
DEFAULT_DT = 0.1
CONSTRAINT_TOL = 1e-10       # max |W G + h| allowed at every recorded time
NEWTON_TOL = 1e-13           # max |U^T (W G + h)| at which the per-step Newton iteration stops
FD_REL = 1e-5                # relative step of the central differences for dG/dm, dG/dC, df/dx
CLOSURE_NOTE = ("APPROXIMATION: Gaussian closure of a model that is not linear with additive noise "
                "(drift linearised at the mean, noise evaluated at the mean); the densities are not "
                "Gaussian and the exact limit is the kinetic Fokker-Planck equation")

__all__ = ["FieldSolver", "FieldResult", "FieldStationary", "FieldError", "FieldNotApplicable",
           "solve_field", "stationary_field", "DEFAULT_NPOS", "DEFAULT_DT"]


class FieldError(RuntimeError):
    """Numerical trouble in the field solver (Newton failure, constraint drift, unstable A)."""


class FieldNotApplicable(ValueError):
    """The exact neural field does not apply to this model (not linear with additive noise, ...)."""


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------

@dataclass
class FieldResult(Record):
    """A time-dependent field solution.  Arrays over records t: mean, variance (of the input component
    e), gbar, lam (nt, P, N); state_mean (nt, P, N, m), state_cov (nt, P, N, m, m); residual (nt,)
    max |W G + h|.  shift: initial-layer shift delta (P, N) or None."""

    model: CompiledModel
    kind: str                      # "field" or "field-gaussian-closure"
    approximation: bool
    pos: tuple
    times: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    gbar: np.ndarray
    lam: np.ndarray
    residual: np.ndarray
    state_mean: np.ndarray
    state_cov: np.ndarray
    shift: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    @property
    def populations(self) -> tuple:
        return self.model.populations

    def final_fields(self) -> dict:
        return {a: {"lambda": self.lam[-1, ia], "gbar": self.gbar[-1, ia], "mean": self.mean[-1, ia],
                    "variance": self.variance[-1, ia]} for ia, a in enumerate(self.populations)}

    def to_record(self) -> dict:
        """Final state in the stationary schema (solvers.output); the time series under
        "time_series" (as the kinetic solver); "approximation" says whether it is the Gaussian
        closure."""
        ts = {"t": self.times, "residual": self.residual}
        for ia, a in enumerate(self.populations):
            ts[a] = {"lambda": self.lam[:, ia], "gbar": self.gbar[:, ia], "mean": self.mean[:, ia],
                     "variance": self.variance[:, ia]}
        extra = {"n": None, "mode": "balanced", "approximation": self.approximation, "time_series": ts,
                 "invariants": {"max_constraint_residual": float(self.residual.max())}, **self.info}
        if self.approximation:
            extra["note"] = CLOSURE_NOTE
        if self.shift is not None:
            extra["initial_shift"] = {a: self.shift[ia] for ia, a in enumerate(self.populations)}
        if self.model.m > 1:
            extra["state_mean"] = {a: self.state_mean[-1, ia].T for ia, a in enumerate(self.populations)}
            extra["state_covariance"] = {a: np.moveaxis(self.state_cov[-1, ia], 0, -1)
                                         for ia, a in enumerate(self.populations)}
        return state_record(self.model, self.kind, self.pos, self.final_fields(), **extra)

    def save_npz(self, path) -> None:
        arrays = {"times": self.times, "gbar": self.gbar, "mean": self.mean, "variance": self.variance,
                  "lambda": self.lam, "residual": self.residual, "state_mean": self.state_mean,
                  "state_cov": self.state_cov, "theta": np.asarray(theta_list(self.pos), float),
                  "populations": np.array(self.populations), "kind": np.array(self.kind),
                  "approximation": np.array(self.approximation)}
        if self.shift is not None:
            arrays["shift"] = self.shift
        from .atomic import atomic_savez
        atomic_savez(path, **arrays)          # temporary file renamed into place: never half-written


@dataclass
class FieldStationary(Record):
    """A stationary field: per population a and position i, lam, gbar, mean, variance, slope
    (D = dG/dm) and dG/dC, all (P, N); state_mean (P, N, m), state_cov (P, N, m, m); A (P, N, m, m)
    the drift matrix at the state (the linearisation for the closure); ell the coefficients of lambda
    on the lattice range basis U."""

    model: CompiledModel
    kind: str
    approximation: bool
    npos: int
    pos: tuple
    lam: np.ndarray
    gbar: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    slope: np.ndarray
    dgdvar: np.ndarray
    state_mean: np.ndarray
    state_cov: np.ndarray
    A: np.ndarray
    ell: np.ndarray
    residual: float
    iterations: int
    info: dict = field(default_factory=dict)

    @property
    def populations(self) -> tuple:
        return self.model.populations

    def to_record(self) -> dict:
        per_pop = {a: {"lambda": self.lam[i], "gbar": self.gbar[i], "mean": self.mean[i],
                       "variance": self.variance[i]} for i, a in enumerate(self.populations)}
        extra = {"n": None, "approximation": self.approximation, "residual": self.residual,
                 "iterations": self.iterations, "npos": self.npos, **self.info}
        if self.approximation:
            extra["note"] = CLOSURE_NOTE
        return state_record(self.model, self.kind, self.pos, per_pop, **extra)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _as_model(model, params=None) -> CompiledModel:
    if isinstance(model, CompiledModel):
        if params:
            return CompiledModel(model.module, {**model.params, **params})
        return model
    return CompiledModel(model, params)


def _phi1(z):
    """(e^z - 1)/z, with the series near 0 (elementwise, no division by zero)."""
    z = np.asarray(z, float)
    small = np.abs(z) < 1e-6
    zs = np.where(small, 1.0, z)
    return np.where(small, 1.0 + z / 2 + z * z / 6, np.expm1(zs) / zs)


def _expm(M):
    """Matrix exponential of a stack (..., k, k) of small matrices: scaling and squaring with a
    degree-18 Taylor polynomial at norm <= 1/4 (truncation below 1e-30), vectorised over the stack."""
    M = np.asarray(M, float)
    norm = float(np.abs(M).sum(axis=-1).max()) if M.size else 0.0
    s = max(0, int(math.ceil(math.log2(norm / 0.25)))) if norm > 0.25 else 0
    X = M / 2.0 ** s
    E = np.broadcast_to(np.eye(M.shape[-1]), M.shape) + X
    term = X
    for k in range(2, 19):
        term = term @ X / k
        E = E + term
    for _ in range(s):
        E = E @ E
    return E


def _nested(v, shape, m=None):
    """A generated m-tuple (or m x m nested tuple) -> array (m, ...) / (m, m, ...) of ``shape``."""
    if isinstance(v, (tuple, list)):
        return np.array([_nested(x, shape) for x in v])
    return np.broadcast_to(np.asarray(v, float), shape)


class FieldSolver:
    """The neural field of one model on a lattice of ``npos`` positions per angle (1 on a point).

    closure=False refuses a model that is not linear with additive noise (FieldNotApplicable);
    closure=True integrates the Gaussian closure (labelled an approximation).  init: None (the
    model's INITIAL (mean, sd), else N(0, 1) per component), a (mean, sd) pair for every population,
    or a dict pop -> (mean, sd); run() also takes explicit m0 / C0 arrays."""

    def __init__(self, model, *, npos: int | None = None, params=None, closure: bool = False, init=None):
        self.model = cm = _as_model(model, params)
        mod = cm.module
        lin = dict(getattr(mod, "LINEAR_ADDITIVE", {}))
        self.closure = bool(closure)
        bad = [a for a in cm.populations if not lin.get(a, False)]
        if bad and not self.closure:
            raise FieldNotApplicable(
                f"model {cm.name!r}, population {bad[0]}: the neural field is exact only for a linear drift "
                f"with additive noise, and population(s) {', '.join(bad)} of model {cm.name!r} are not "
                f"(LINEAR_ADDITIVE = {lin}); use the kinetic solver, or ask for the Gaussian closure "
                f"explicitly (closure=True / --closure), whose output is labelled an approximation")
        missing = [a for a in cm.populations if not cm.has("field_gain", a)]
        if missing:
            raise FieldNotApplicable(
                f"model {cm.name!r}, population {missing[0]}: no generated field_gain_{missing[0]} (the gain "
                f"must depend on exactly one state component for G(mean, var) = E g(mean + sqrt(var) Z))")
        if not self.closure:
            for a in cm.populations:
                for kind in ("field_A", "field_c", "field_noise"):
                    if not cm.has(kind, a):
                        raise FieldNotApplicable(f"model {cm.name!r}, population {a}: no generated {kind}_{a}")
        self.kind = "field-gaussian-closure" if self.closure else "field"
        self.approximation = self.closure
        self.P, self.m, self.e = cm.P, cm.m, cm.e
        if npos is None:
            npos = DEFAULT_NPOS[cm.space]
        self.npos = 1 if cm.pos_dim == 0 else int(npos)
        if self.npos < 1:
            raise ValueError(f"npos must be positive, got {npos}")
        self.pos = cm.grid(self.npos)
        self.N = cm.n_positions(self.npos)
        self.W = lattice_W(cm, self.pos)
        self.U = lattice_range_basis(cm, self.pos, self.W)
        self.r = self.U.shape[1]
        self.WtU = self.W.T @ self.U                          # U^T W G = WtU^T G
        self._cpl = LatticeCoupling(cm, self.npos) if cm.separable else None
        self.gc = self._gain_component()
        if self.gc != self.e:
            raise FieldNotApplicable(
                f"model {cm.name!r}: the gain depends on state component {mod.STATE[self.gc]!r} but the "
                f"synaptic input (and lambda) enters {mod.STATE[self.e]!r}; the field DAE then has a higher "
                f"index, which this solver does not handle")
        self.init = init
        self._field_gain = [cm.fn("field_gain", a) for a in cm.populations]
        self.static = not any(cm.time_dependent(a) for a in cm.populations) and not self.closure
        self.static_drive = not any(cm.drive_time_dependent(a) for a in cm.populations)
        self._cache = {}

    # ---- structure -------------------------------------------------------------------------
    def _gain_component(self) -> int:
        """The state component every gain depends on (from the generated USES); e when the gains
        depend on several components or on different ones."""
        cm = self.model
        comps = {a: [k for k, nm in enumerate(cm.module.STATE) if nm in cm.uses("gain", a)]
                 for a in cm.populations}
        first = comps[cm.populations[0]]
        if len(first) == 1 and all(c == first for c in comps.values()):
            return first[0]
        return cm.e

    def flat(self, q):
        return np.asarray(q, float).reshape(-1)

    def lam_of(self, ell) -> np.ndarray:
        return (self.U @ ell).reshape(self.P, self.N)

    def drive(self, t: float) -> np.ndarray:
        if self.static_drive:
            if "h" not in self._cache:
                self._cache["h"] = self.model.drive(self.pos, 0.0)
            return self._cache["h"]
        return self.model.drive(self.pos, t)

    def drive_rate(self, t: float) -> np.ndarray:
        if self.static_drive:
            return np.zeros((self.P, self.N))
        return np.array([np.broadcast_to(self.model.call("drive_rate", a, *self.pos, t), (self.N,))
                         for a in self.model.populations], float)

    def check_drive(self, t: float) -> None:
        h = self.flat(self.drive(t))
        out = h - self.U @ (self.U.T @ h)
        if np.abs(out).max() > 1e-9 * max(1.0, np.abs(h).max()):
            raise DriveOutsideRange(f"model {self.model.name!r}: the drive h lies outside Range(W) on the "
                                    f"lattice at t = {t:g} (residual {np.abs(out).max():.3e}); no balanced "
                                    "state exists")

    # ---- gains -------------------------------------------------------------------------------
    def _gain_stack(self, mg, vg):
        """field_gain at stacked arguments: mg, vg (k, P, N) -> (k, P, N), one call per population."""
        out = np.empty(np.broadcast_shapes(np.shape(mg), np.shape(vg)))
        for ia, f in enumerate(self._field_gain):
            out[:, ia] = f(mg[:, ia], vg[:, ia], *self.pos, **self.model.params)
        return out

    def gain(self, mg, vg) -> np.ndarray:
        """G (P, N) for the means and variances of the gain's component."""
        return self._gain_stack(np.asarray(mg, float)[None], np.asarray(vg, float)[None])[0]

    def gain_slope(self, mg, vg, G=None):
        """(G, dG/dm), the slope by central differences (relative step FD_REL)."""
        hm = FD_REL * (1.0 + np.abs(mg))
        vals = self._gain_stack(np.stack([mg, mg + hm, mg - hm]), np.asarray(vg, float)[None])
        return vals[0], (vals[1] - vals[2]) / (2 * hm)

    def gain_derivatives(self, mg, vg):
        """(G, dG/dm, dG/dC) by central differences (one-sided in C at C = 0)."""
        hm = FD_REL * (1.0 + np.abs(mg))
        hv = FD_REL * (1.0 + np.abs(vg))
        lo = np.maximum(vg - hv, 0.0)
        M = np.empty((5,) + mg.shape)
        V = np.empty((5,) + mg.shape)
        M[0] = M[3] = M[4] = mg
        M[1] = mg + hm
        M[2] = mg - hm
        V[0] = V[1] = V[2] = vg
        V[3] = vg + hv
        V[4] = lo
        vals = self._gain_stack(M, V)
        return vals[0], (vals[1] - vals[2]) / (2 * hm), (vals[3] - vals[4]) / (V[3] - lo)

    def gain_var_slope(self, mg, vg):
        """dG/dC (P, N) by central differences (one-sided at C = 0)."""
        return self.gain_derivatives(mg, vg)[2]

    # ---- coefficients ------------------------------------------------------------------------
    def linear_coefficients(self, t: float):
        """A (P, N, m, m), b = c + u e (P, N, m), Q (P, N, m, m) of a linear/additive model at t."""
        key = ("lin", None if self.static else float(t))
        if key in self._cache:
            return self._cache[key]
        cm, P, N, m = self.model, self.P, self.N, self.m
        A = np.empty((P, N, m, m))
        b = np.empty((P, N, m))
        Q = np.empty((P, N, m, m))
        for ia, a in enumerate(cm.populations):
            A[ia] = np.moveaxis(_nested(cm.call("field_A", a, *self.pos, t), (N,), m), -1, 0)
            b[ia] = np.moveaxis(_nested(cm.call("field_c", a, *self.pos, t), (N,), m), -1, 0)
            b[ia, :, self.e] += np.broadcast_to(cm.call("input", a, *self.pos, t), (N,))
            Q[ia] = np.moveaxis(_nested(cm.call("field_noise", a, *self.pos, t), (N,), m), -1, 0)
        out = (A, b, Q)
        if self.static:
            self._cache[key] = out
        return out

    def drift(self, mean, t):
        """The Itô drift f at the means, (P, N, m)."""
        cm, N, m = self.model, self.N, self.m
        out = np.empty_like(mean)
        for ia, a in enumerate(cm.populations):
            xs = tuple(mean[ia, :, k] for k in range(m))
            out[ia] = np.moveaxis(_nested(cm.call("drift", a, *xs, *self.pos, t), (N,), m), -1, 0)
        return out

    def closure_coefficients(self, mean, t):
        """The closure's A = df/dx(m) (central differences), b = f(m) - A m + u e, Q = sigma
        sigma^T(m), all at the means ``mean`` (P, N, m)."""
        cm, P, N, m = self.model, self.P, self.N, self.m
        f0 = self.drift(mean, t)
        A = np.empty((P, N, m, m))
        for j in range(m):
            hj = FD_REL * (1.0 + np.abs(mean[..., j]))
            mp, mm = mean.copy(), mean.copy()
            mp[..., j] += hj
            mm[..., j] -= hj
            A[..., :, j] = (self.drift(mp, t) - self.drift(mm, t)) / (2 * hj)[..., None]
        b = f0 - np.einsum("pnij,pnj->pni", A, mean)
        Q = np.empty((P, N, m, m))
        for ia, a in enumerate(cm.populations):
            b[ia, :, self.e] += np.broadcast_to(cm.call("input", a, *self.pos, t), (N,))
            xs = tuple(mean[ia, :, k] for k in range(m))
            sig = np.array([[np.broadcast_to(np.asarray(v, float), (N,)) for v in row]
                            for row in cm.call("diffusion", a, *xs, *self.pos, t)])   # (m, q, N)
            S = np.moveaxis(sig, -1, 0)                                               # (N, m, q)
            Q[ia] = S @ np.swapaxes(S, -1, -2)
        return A, b, Q

    def coefficients(self, t, mean):
        return self.closure_coefficients(mean, t) if self.closure else self.linear_coefficients(t)

    # ---- propagators -------------------------------------------------------------------------
    def propagators(self, A, Q, dt):
        """E = e^(A dt), Phi = int_0^dt e^(A s) ds, Cn = int_0^dt e^(As) Q e^(A^T s) ds."""
        if self.m == 1:
            a, q = A[..., 0, 0], Q[..., 0, 0]
            z = a * dt
            E = np.exp(z)[..., None, None]
            Phi = (dt * _phi1(z))[..., None, None]
            Cn = (q * dt * _phi1(2 * z))[..., None, None]
            return E, Phi, Cn
        m = self.m
        I = np.broadcast_to(np.eye(m), A.shape)
        aug = np.zeros(A.shape[:-2] + (2 * m, 2 * m))
        aug[..., :m, :m] = A * dt
        aug[..., :m, m:] = I * dt
        F = _expm(aug)
        E, Phi = F[..., :m, :m], F[..., :m, m:]
        vl = np.zeros_like(aug)
        vl[..., :m, :m] = -A * dt
        vl[..., :m, m:] = Q * dt
        vl[..., m:, m:] = np.swapaxes(A, -1, -2) * dt
        G = _expm(vl)
        Cn = np.swapaxes(G[..., m:, m:], -1, -2) @ G[..., :m, m:]
        Cn = 0.5 * (Cn + np.swapaxes(Cn, -1, -2))
        return E, Phi, Cn

    # ---- the constraint ----------------------------------------------------------------------
    def solve_constraint(self, yg, kg, vg, t, ell, *, tol=NEWTON_TOL, max_iter=40, what="step"):
        """l with U^T (W G(yg + kg * (U l), vg) + h(t)) = 0 by Newton's method with backtracking.
        Returns (l, max |F|, iterations); self.last_derivatives holds (G, dG/dm, dG/dC) at the result."""
        Uh = self.U.T @ self.flat(self.drive(t))
        scale = max(1.0, float(np.abs(Uh).max()) if Uh.size else 1.0)

        def F_of(l):
            mg = yg + kg * self.lam_of(l)
            derivs = self.gain_derivatives(mg, vg)
            return self.WtU.T @ derivs[0].ravel() + Uh, derivs

        F, derivs = F_of(ell)
        nF = float(np.abs(F).max()) if F.size else 0.0
        it = 0
        while nF > tol * scale:
            if it == max_iter:
                if nF <= 100 * tol * scale:
                    break
                raise FieldError(f"model {self.model.name!r}: Newton on the balance constraint did not converge "
                                 f"in the {what} at t = {t:.6g} (residual {nF:.3e} after {max_iter} iterations)")
            it += 1
            J = self.WtU.T @ ((derivs[1] * kg).reshape(-1, 1) * self.U)
            try:
                d = np.linalg.solve(J, -F)
            except np.linalg.LinAlgError:
                raise FieldError(f"model {self.model.name!r}: the multiplier system is singular at t = {t:.6g} "
                                 "(U^T W D U not invertible: the balance does not determine lambda)") from None
            s = 1.0
            while True:
                Fn, dn = F_of(ell + s * d)
                nFn = float(np.abs(Fn).max()) if np.all(np.isfinite(Fn)) else math.inf
                if nFn < nF or nFn <= tol * scale:
                    break
                s *= 0.5
                if s < 1e-8:
                    if nF <= 100 * tol * scale:          # at the rounding floor
                        self.last_derivatives = derivs
                        return ell, nF, it
                    raise FieldError(f"model {self.model.name!r}: Newton on the balance constraint stalled in "
                                     f"the {what} at t = {t:.6g} (residual {nF:.3e})")
            ell, F, derivs, nF = ell + s * d, Fn, dn, nFn
        self.last_derivatives = derivs
        return ell, nF, it

    def apply_W(self, q) -> np.ndarray:
        """W q on the lattice, q (P, N): the low-rank form for a separable kernel, else lattice_W."""
        if self._cpl is not None:
            return self._cpl.on_lattice(self._cpl.apply(q))
        return (self.W @ np.asarray(q, float).ravel()).reshape(self.P, self.N)

    def imbalance(self, mean, cov, t) -> np.ndarray:
        G = self.gain(mean[..., self.gc], cov[..., self.gc, self.gc])
        return self.apply_W(G) + self.drive(t)

    def multiplier(self, mean, cov, t, derivs=None) -> np.ndarray:
        """The instantaneous multiplier lambda(t) (P, N) at a state on the manifold, from the
        differentiated constraint W(D dm_g/dt + dG/dC dC_gg/dt) + dh/dt = 0, lambda in Range(W)."""
        if self.r == 0:
            return np.zeros((self.P, self.N))
        g = self.gc
        A, b, Q = self.coefficients(t, mean)
        mg, vg = mean[..., g], cov[..., g, g]
        _, D, Dv = self.gain_derivatives(mg, vg) if derivs is None else derivs
        rhs_m = np.einsum("pnj,pnj->pn", A[..., g, :], mean) + b[..., g]
        ACg = np.einsum("pnj,pnj->pn", A[..., g, :], cov[..., :, g])
        rhs_C = 2 * ACg + Q[..., g, g]
        J = self.WtU.T @ (D.reshape(-1, 1) * self.U)
        rhs = -(self.WtU.T @ (D * rhs_m + Dv * rhs_C).ravel() + self.U.T @ self.flat(self.drive_rate(t)))
        return self.lam_of(np.linalg.solve(J, rhs))

    # ---- initial data and layer ----------------------------------------------------------------
    def initial_state(self):
        """m0 (P, N, m), C0 (P, N, m, m) from ``init`` (see the class doc)."""
        cm, P, N, m = self.model, self.P, self.N, self.m
        m0 = np.zeros((P, N, m))
        C0 = np.zeros((P, N, m, m))
        for ia, a in enumerate(cm.populations):
            spec = self.init
            if isinstance(spec, dict):
                spec = spec.get(a)
            if spec is None:
                spec = (cm.module.INITIAL or {}).get(a) or (0.0, 1.0)
            mu, sd = spec
            m0[ia] = np.broadcast_to(np.asarray(mu, float), (m,))
            C0[ia] = np.diag(np.broadcast_to(np.asarray(sd, float) ** 2, (m,)))
        return m0, C0

    def initial_layer(self, m0, C0, t0: float = 0.0):
        """Shift delta (P, N) in Range(W) (added to component e) taking (m0, C0) onto the manifold:
        the end point of d delta/ds = W G(m0 + delta e, C0) + h (solvers.continuation.follow_flow)."""
        g = self.gc
        Uh = self.U.T @ self.flat(self.drive(t0))
        yg, vg = m0[..., g], C0[..., g, g]
        if self.r == 0:
            return np.zeros((self.P, self.N))

        def residual(c):
            return self.WtU.T @ self.gain(yg + self.lam_of(c), vg).ravel() + Uh

        c, F = follow_flow(residual, np.zeros(self.r))
        res = float(np.abs(F).max())
        if res > CONSTRAINT_TOL:
            raise NoConvergence(f"model {self.model.name!r}: the initial-layer shift did not reach the manifold "
                                f"(residual {res:.3e})")
        c, _, _ = self.solve_constraint(yg, np.ones_like(yg), vg, t0, c, what="initial layer")
        return self.lam_of(c)

    # ---- time stepping -------------------------------------------------------------------------
    def _step(self, mean, cov, ell_guess, t, dt):
        g, e = self.gc, self.e
        tm = t + dt / 2
        if self.closure:
            A0, b0, Q0 = self.closure_coefficients(mean, t)
            E0, Phi0, _ = self.propagators(A0, Q0, dt / 2)
            lam0 = self.lam_of(ell_guess)
            bb = b0.copy()
            bb[..., e] += lam0
            mid = np.einsum("pnij,pnj->pni", E0, mean) + np.einsum("pnij,pnj->pni", Phi0, bb)
            A, b, Q = self.closure_coefficients(mid, tm)
            E, Phi, Cn = self.propagators(A, Q, dt)
        else:
            key = ("prop", float(dt), None if self.static else float(tm))
            if key in self._cache:
                A, b, Q, E, Phi, Cn = self._cache[key]
            else:
                A, b, Q = self.linear_coefficients(tm)
                E, Phi, Cn = self.propagators(A, Q, dt)
                if self.static:
                    self._cache[key] = (A, b, Q, E, Phi, Cn)
        if self.m == 1:
            y = E[..., 0] * mean + Phi[..., 0] * b
            cov_new = E * cov * E + Cn
        else:
            y = np.einsum("pnij,pnj->pni", E, mean) + np.einsum("pnij,pnj->pni", Phi, b)
            cov_new = E @ cov @ np.swapaxes(E, -1, -2) + Cn
        k = Phi[..., :, e]                                   # d m_new / d lambda  (P, N, m)
        ell, res, its = self.solve_constraint(y[..., g], k[..., g], cov_new[..., g, g], t + dt, ell_guess)
        lam = self.lam_of(ell)
        mean_new = y + k * lam[..., None]
        return mean_new, cov_new, ell, its, self.last_derivatives

    def run(self, T: float, dt: float | None = None, *, record_every: float | None = None, m0=None, C0=None,
            initial_layer: bool = True) -> FieldResult:
        """Integrate to time T with step dt (default DEFAULT_DT, made to divide T); record every
        ``record_every`` (default: every step).  m0 (P, N, m) / C0 (P, N, m, m): initial means and
        covariances (default from ``init``); initial_layer: shift them onto the manifold first (else
        they must already satisfy the constraint to CONSTRAINT_TOL)."""
        if not (T > 0 and math.isfinite(T)):
            raise ValueError(f"need a positive, finite T, got {T}")
        dt = DEFAULT_DT if dt is None else float(dt)
        if not (dt > 0 and math.isfinite(dt)):
            raise ValueError(f"need a positive, finite dt, got {dt}")
        P, N, m = self.P, self.N, self.m
        nsteps = max(1, int(math.ceil(T / dt - 1e-9)))
        dt = T / nsteps
        rec = max(1, int(round((record_every or dt) / dt)))
        dm0, dC0 = self.initial_state()
        mean = dm0 if m0 is None else np.array(np.broadcast_to(np.asarray(m0, float), (P, N, m)))
        cov = dC0 if C0 is None else np.array(np.broadcast_to(np.asarray(C0, float), (P, N, m, m)))
        self.check_drive(0.0)
        shift = None
        if initial_layer:
            shift = self.initial_layer(mean, cov, 0.0)
            mean = mean.copy()
            mean[..., self.e] += shift
        else:
            res0 = float(np.abs(self.imbalance(mean, cov, 0.0)).max())
            if res0 > CONSTRAINT_TOL:
                raise FieldError(f"model {self.model.name!r}: the initial state is off the balanced manifold "
                                 f"(max |W G + h| = {res0:.3e}) and initial_layer=False")
        rows = []

        def record(t, mean, cov, derivs=None):
            if derivs is None:
                derivs = self.gain_derivatives(mean[..., self.gc], cov[..., self.gc, self.gc])
            gb = derivs[0]
            imb = self.apply_W(gb) + self.drive(t)
            res = float(np.abs(imb).max())
            if not np.isfinite(res) or res > CONSTRAINT_TOL:
                raise FieldError(f"model {self.model.name!r}: the balance constraint drifted to "
                                 f"{res:.3e} at t = {t:.6g}")
            lam = self.multiplier(mean, cov, t, derivs)
            rows.append((t, mean[..., self.e].copy(), cov[..., self.e, self.e].copy(), gb, lam, res,
                         mean.copy(), cov.copy()))

        record(0.0, mean, cov)
        Uflat = self.U.T
        ell = Uflat @ self.flat(self.multiplier(mean, cov, 0.0))
        ell_prev = None
        newton_its = 0
        t = 0.0
        for k in range(1, nsteps + 1):
            guess = ell if ell_prev is None else 2 * ell - ell_prev
            mean, cov, ell_new, its, derivs = self._step(mean, cov, guess, t, dt)
            newton_its += its
            ell_prev, ell = ell, ell_new
            t = k * dt
            if not self.static_drive:
                self.check_drive(t)
            if k % rec == 0 or k == nsteps:
                record(t, mean, cov, derivs)
        cols = list(zip(*rows))
        info = {"dt": dt, "steps": nsteps, "npos": self.npos, "rank_W": int(self.r),
                "scheme": "exponential midpoint, multiplier by end-of-step projection",
                "newton_iterations": int(newton_its)}
        info.update(self.attraction_info(mean, cov))
        return FieldResult(self.model, self.kind, self.approximation, self.pos, np.array(cols[0]),
                           np.array(cols[1]), np.array(cols[2]), np.array(cols[3]), np.array(cols[4]),
                           np.array(cols[5]), np.array(cols[6]), np.array(cols[7]), shift, info)

    def attraction_info(self, mean, cov) -> dict:
        """Eigenvalues of W D on Range(W) at a state (solvers.fast_spectrum on the lattice): is the
        manifold attracting there?"""
        if self.r == 0:
            return {"manifold_attracting": True}
        _, D = self.gain_slope(mean[..., self.gc], cov[..., self.gc, self.gc])
        w = fast_spectrum.eigenvalues(fast_spectrum.lattice_operator(self.W, D), self.U)
        return {"manifold_attracting": bool(w.real.max() < 0),
                "max_real_fast_eigenvalue": float(w.real.max())}

    # ---- stationary --------------------------------------------------------------------------
    def _lyapunov(self, A, Q):
        """C with A C + C A^T + Q = 0 at every position; A must be Hurwitz."""
        P, N, m = self.P, self.N, self.m
        ev = np.linalg.eigvals(A)
        worst = ev.real.max(axis=-1)
        if np.any(worst >= 0):
            ia, i = np.unravel_index(int(np.argmax(worst)), worst.shape)
            raise FieldError(f"model {self.model.name!r}, population {self.model.populations[ia]}: the drift "
                             f"matrix A has an eigenvalue with real part {worst[ia, i]:.4g} >= 0 at position "
                             f"{i}: no stationary covariance")
        if m == 1:
            return -Q / (2 * A)
        I = np.eye(m)
        L = np.einsum("pnij,kl->pnikjl", A, I) + np.einsum("ij,pnkl->pnikjl", I, A)
        L = L.reshape(P, N, m * m, m * m)
        C = np.linalg.solve(L, -Q.reshape(P, N, m * m, 1)).reshape(P, N, m, m)
        return 0.5 * (C + np.swapaxes(C, -1, -2))

    def _closure_equilibrium(self, lam, t, mean0, tol=1e-13, max_iter=60):
        """Per position: m with f(m) + (u + lambda) e = 0 (vectorised Newton), then A(m), C(m)."""
        e = self.e
        mean = mean0.copy()
        for _ in range(max_iter):
            A, b, Q = self.closure_coefficients(mean, t)
            bb = b.copy()
            bb[..., e] += lam
            F = np.einsum("pnij,pnj->pni", A, mean) + bb
            if np.abs(F).max() <= tol * (1 + np.abs(bb).max()):
                break
            step = np.linalg.solve(A, F[..., None])[..., 0]
            lim = np.maximum(1.0, np.abs(step).max(axis=-1, keepdims=True))
            mean = mean - step / lim
        else:
            raise FieldError(f"model {self.model.name!r}: the closure's mean equation f(m) + (u + lambda) e = 0 "
                             f"has no solution found by Newton (residual {np.abs(F).max():.3e})")
        A, b, Q = self.closure_coefficients(mean, t)
        return mean, self._lyapunov(A, Q), A

    def stationary(self, t: float = 0.0, start=None, *, tol: float = NEWTON_TOL) -> FieldStationary:
        """The stationary field at time t (coefficients frozen at t); start: initial lambda (P, N)."""
        self.check_drive(t)
        P, N, m, e, g = self.P, self.N, self.m, self.e, self.gc
        ell0 = np.zeros(self.r) if start is None else self.U.T @ self.flat(start)
        if not self.closure:
            A, b, Q = self.linear_coefficients(t)
            C = self._lyapunov(A, Q)
            y0 = -np.linalg.solve(A, b[..., None])[..., 0]
            K = -np.linalg.solve(A, np.broadcast_to(np.eye(m)[:, e], (P, N, m))[..., None])[..., 0]
            try:
                ell, res, its = self.solve_constraint(y0[..., g], K[..., g], C[..., g, g], t, ell0, max_iter=100,
                                                      what="stationary field")
            except FieldError:
                Uh = self.U.T @ self.flat(self.drive(t))
                ell, F = follow_flow(
                    lambda l: self.WtU.T @ self.gain(y0[..., g] + K[..., g] * self.lam_of(l), C[..., g, g]).ravel()
                    + Uh, ell0)
                ell, res, its = self.solve_constraint(y0[..., g], K[..., g], C[..., g, g], t, ell,
                                                      what="stationary field")
            lam = self.lam_of(ell)
            mean = y0 + K * lam[..., None]
        else:
            m_init, _ = self.initial_state()
            state = {"mean": m_init}

            def Fc(l):
                lam = self.lam_of(l)
                mean, C, _ = self._closure_equilibrium(lam, t, state["mean"])
                state["mean"] = mean
                G = self.gain(mean[..., g], C[..., g, g])
                return self.WtU.T @ G.ravel() + self.U.T @ self.flat(self.drive(t))

            ell, F = follow_flow(Fc, ell0, tol=tol)
            res, its = float(np.abs(F).max()), -1
            if res > CONSTRAINT_TOL:
                raise NoConvergence(f"model {self.model.name!r}: the stationary Gaussian-closure field did not "
                                    f"converge (residual {res:.3e})")
            lam = self.lam_of(ell)
            mean, C, A = self._closure_equilibrium(lam, t, state["mean"])
        mg, vg = mean[..., g], C[..., g, g]
        G, D, Dv = self.gain_derivatives(mg, vg)
        imb = float(np.abs(self.apply_W(G) + self.drive(t)).max())
        if imb > CONSTRAINT_TOL:
            raise NoConvergence(f"model {self.model.name!r}: stationary field residual {imb:.3e}")
        kind = "stationary-" + self.kind
        return FieldStationary(self.model, kind, self.approximation, self.npos, self.pos, lam, G,
                               mean[..., e], C[..., e, e], D, Dv, mean, C, A, ell, imb, int(its),
                               {"t": float(t), "rank_W": int(self.r)})


# ---------------------------------------------------------------------------------------------
# convenience functions
# ---------------------------------------------------------------------------------------------

def solve_field(model, T: float, dt: float | None = None, *, npos: int | None = None, params=None,
                closure: bool = False, init=None, record_every: float | None = None, m0=None, C0=None,
                initial_layer: bool = True) -> FieldResult:
    """FieldSolver(model, npos=..., params=..., closure=..., init=...).run(T, dt, ...)."""
    return FieldSolver(model, npos=npos, params=params, closure=closure, init=init).run(
        T, dt, record_every=record_every, m0=m0, C0=C0, initial_layer=initial_layer)


def stationary_field(model, *, npos: int | None = None, params=None, closure: bool = False, t: float = 0.0,
                     start=None) -> FieldStationary:
    """The stationary field (see FieldSolver.stationary)."""
    return FieldSolver(model, npos=npos, params=params, closure=closure).stationary(t, start)
