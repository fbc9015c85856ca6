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

Finite n (``n=N``, DESIGN.md §4, §5b).  The balance is replaced by the definition of the multiplier,
lambda_n = sqrt(n) (W G(m, C) + h), i.e.  W G(m, C) + h = lambda_n / sqrt(n).  lambda_n lies in
Range(W) + h_perp, h_perp = h - U U^T h (the part of the drive W cannot cancel), so
lambda_n = U l + sqrt(n) h_perp and the relation is the r x r system
    F(l) = l / sqrt(n) - U^T (W G(m(lambda_n), C) + h) = 0,   Jacobian  I / sqrt(n) - U^T W diag(D k_g) U,
(in the units of the imbalance W G + h, as solvers.stationary.solve_finite_n).  Time steps hold
lambda_n constant over the step at its end-of-step value (implicit in sqrt(n), as the kinetic solver:
L-stable for the fast modes, first order in dt in the fast coupling); the recorded lambda is the
instantaneous sqrt(n) (W G + h) at the recorded state, and the residual max |lambda_step -
sqrt(n) (W G + h)| at the end of each step.  The stationary finite-n field solves F(l) = 0 with the
stationary means m = -A^-1 (b + lambda e), started from the balanced field (continuation in n from
n <= 1 when that fails).  For a linear/additive model this closure is exact: the finite-n
McKean–Vlasov equation keeps Gaussian densities Gaussian, whatever m.  Otherwise (closure=True) it is
the Gaussian closure above, labelled an approximation.  The stationary result also carries the
spectrum of the linearised finite-n mean equation, A (x) I + sqrt(n) e e^T (x) W D on all lattice
positions (P N m eigenvalues; the covariance equation does not depend on the means for a
linear/additive model): exact linear stability of the finite-n field there.

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
SPECTRUM_MAX = 1536          # largest P N m for the dense finite-n spectrum
FINITE_N_ITER = 60           # Newton iterations of the finite-n relation per solve
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
    max |W G + h| (finite n: max |lambda_step - sqrt(n) (W G + h)|).  shift: initial-layer shift delta
    (P, N) or None.  n: None (balanced limit) or the network size of the finite-n field."""

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
    n: float | None = None

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
        what = "max_constraint_residual" if self.n is None else "max_finite_n_residual"
        extra = {"n": self.n, "mode": "balanced" if self.n is None else "finite-n",
                 "approximation": self.approximation, "time_series": ts,
                 "invariants": {what: float(self.residual.max())}, **self.info}
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
                  "approximation": np.array(self.approximation),
                  "n": np.array(np.nan if self.n is None else self.n)}
        if self.shift is not None:
            arrays["shift"] = self.shift
        from .atomic import atomic_savez
        atomic_savez(path, **arrays)          # temporary file renamed into place: never half-written


@dataclass
class FieldStationary(Record):
    """A stationary field: per population a and position i, lam, gbar, mean, variance, slope
    (D = dG/dm) and dG/dC, all (P, N); state_mean (P, N, m), state_cov (P, N, m, m); A (P, N, m, m)
    the drift matrix at the state (the linearisation for the closure); ell the coefficients of lambda
    on the lattice range basis U (finite n: lambda = U ell + sqrt(n) h_perp).  n: None (balanced limit)
    or the network size; at finite n info holds the imbalance max |W G + h| and the leading eigenvalue
    of the linearised finite-n mean equation (``finite_n_spectrum``)."""

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
    n: float | None = None

    @property
    def populations(self) -> tuple:
        return self.model.populations

    def to_record(self) -> dict:
        per_pop = {a: {"lambda": self.lam[i], "gbar": self.gbar[i], "mean": self.mean[i],
                       "variance": self.variance[i]} for i, a in enumerate(self.populations)}
        extra = {"n": self.n, "approximation": self.approximation, "residual": self.residual,
                 "iterations": self.iterations, "npos": self.npos, **self.info}
        if self.approximation:
            extra["note"] = CLOSURE_NOTE
        if self.model.m > 1:                       # the same schema as FieldResult.to_record
            extra["state_mean"] = {a: self.state_mean[i].T for i, a in enumerate(self.populations)}
            extra["state_covariance"] = {a: np.moveaxis(self.state_cov[i], 0, -1)
                                         for i, a in enumerate(self.populations)}
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
    or a dict pop -> (mean, sd); run() also takes explicit m0 / C0 arrays.  n: None for the balanced
    limit, else the network size of the finite-n field (module docstring, "Finite n")."""

    def __init__(self, model, *, npos: int | None = None, params=None, closure: bool = False, init=None,
                 n: float | None = None):
        if n is not None:
            n = float(n)
            if not (math.isfinite(n) and n > 0):
                raise ValueError(f"n must be a positive, finite network size, got {n}")
        self.n = n
        self.sqn = None if n is None else math.sqrt(n)
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
        self.kind = ("field-gaussian-closure" if self.closure else "field") + ("" if n is None else "-finite-n")
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

    def drive_perp(self, t: float) -> np.ndarray:
        """h_perp = h - U U^T h (P, N): the part of the drive outside Range(W) on the lattice."""
        h = self.flat(self.drive(t))
        return (h - self.U @ (self.U.T @ h)).reshape(self.P, self.N)

    def lam_total(self, ell, t: float, finite: bool | None = None) -> np.ndarray:
        """The multiplier of coefficients ell: U ell, plus sqrt(n) h_perp(t) at finite n."""
        lam = self.lam_of(ell)
        if (self.n is not None) if finite is None else finite:
            lam = lam + self.sqn * self.drive_perp(t)
        return lam

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
    def solve_constraint(self, yg, kg, vg, t, ell, *, tol=NEWTON_TOL, max_iter=40, what="step",
                         finite: bool | None = None):
        """l with U^T (W G(yg + kg * (U l), vg) + h(t)) = 0 by Newton's method with backtracking;
        at finite n (finite None: self.n is not None) the finite-n relation
        U^T (W G(yg + kg * lambda(l), vg) + h(t)) - l / sqrt(n) = 0, lambda(l) = U l + sqrt(n) h_perp(t).
        Returns (l, max |F|, iterations); self.last_derivatives holds (G, dG/dm, dG/dC) at the result."""
        finite = (self.n is not None) if finite is None else finite
        Uh = self.U.T @ self.flat(self.drive(t))
        scale = max(1.0, float(np.abs(Uh).max()) if Uh.size else 1.0)
        lam_perp = self.sqn * self.drive_perp(t) if finite else 0.0
        rel = f"the finite-n relation (n = {self.n:g})" if finite else "the balance constraint"
        inv = 1.0 / self.sqn if finite else 0.0

        def F_of(l):
            mg = yg + kg * (self.lam_of(l) + lam_perp)
            derivs = self.gain_derivatives(mg, vg)
            return self.WtU.T @ derivs[0].ravel() + Uh - inv * l, derivs

        F, derivs = F_of(ell)
        nF = float(np.abs(F).max()) if F.size else 0.0
        it = 0
        while nF > tol * scale:
            if it == max_iter:
                if nF <= 100 * tol * scale:
                    break
                raise FieldError(f"model {self.model.name!r}: Newton on {rel} did not converge "
                                 f"in the {what} at t = {t:.6g} (residual {nF:.3e} after {max_iter} iterations)")
            it += 1
            J = self.WtU.T @ ((derivs[1] * kg).reshape(-1, 1) * self.U) - inv * np.eye(self.r)
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
                    raise FieldError(f"model {self.model.name!r}: Newton on {rel} stalled in "
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
        differentiated constraint W(D dm_g/dt + dG/dC dC_gg/dt) + dh/dt = 0, lambda in Range(W).
        At finite n: lambda_n = sqrt(n) (W G(m, C) + h(t)) at the state."""
        if self.n is not None:
            return self.sqn * self.imbalance(mean, cov, t)
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
        the end point of d delta/ds = W G(m0 + delta e, C0) + h (solvers.continuation.follow_flow).
        At finite n too (as the kinetic solver's initial_layer=True): the balanced shift."""
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
        c, _, _ = self.solve_constraint(yg, np.ones_like(yg), vg, t0, c, what="initial layer", finite=False)
        return self.lam_of(c)

    # ---- time stepping -------------------------------------------------------------------------
    def _step(self, mean, cov, ell_guess, t, dt):
        g, e = self.gc, self.e
        tm = t + dt / 2
        if self.closure:
            A0, b0, Q0 = self.closure_coefficients(mean, t)
            E0, Phi0, _ = self.propagators(A0, Q0, dt / 2)
            lam0 = self.lam_total(ell_guess, t)
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
        lam = self.lam_total(ell, t + dt)
        mean_new = y + k * lam[..., None]
        self.last_lam = lam
        return mean_new, cov_new, ell, its, self.last_derivatives

    def run(self, T: float, dt: float | None = None, *, record_every: float | None = None, m0=None, C0=None,
            initial_layer: bool | None = None) -> FieldResult:
        """Integrate to time T with step dt (default DEFAULT_DT, made to divide T); record every
        ``record_every`` (default: every step).  m0 (P, N, m) / C0 (P, N, m, m): initial means and
        covariances (default from ``init``); initial_layer: shift them onto the manifold first (else,
        in the balanced limit, they must already satisfy the constraint to CONSTRAINT_TOL); default
        True in the balanced limit, False at finite n (the finite-n field resolves its own layer)."""
        finite = self.n is not None
        if initial_layer is None:
            initial_layer = not finite
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
        if not finite or initial_layer:
            self.check_drive(0.0)
        shift = None
        if initial_layer:
            shift = self.initial_layer(mean, cov, 0.0)
            mean = mean.copy()
            mean[..., self.e] += shift
        elif not finite:
            res0 = float(np.abs(self.imbalance(mean, cov, 0.0)).max())
            if res0 > CONSTRAINT_TOL:
                raise FieldError(f"model {self.model.name!r}: the initial state is off the balanced manifold "
                                 f"(max |W G + h| = {res0:.3e}) and initial_layer=False")
        rows = []

        def record(t, mean, cov, derivs=None, lam_step=None):
            if derivs is None:
                derivs = self.gain_derivatives(mean[..., self.gc], cov[..., self.gc, self.gc])
            gb = derivs[0]
            imb = self.apply_W(gb) + self.drive(t)
            if finite:
                lam = self.sqn * imb
                res = 0.0 if lam_step is None else float(np.abs(lam_step - lam).max())
                tol = CONSTRAINT_TOL * self.sqn * max(1.0, float(np.abs(lam).max()))
                if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))) or not res <= tol:
                    raise FieldError(f"model {self.model.name!r}: the finite-n field (n = {self.n:g}) lost its "
                                     f"multiplier relation (max |lambda_step - sqrt(n)(W G + h)| = {res:.3e}) or "
                                     f"produced non-finite values at t = {t:.6g}")
                rows.append((t, mean[..., self.e].copy(), cov[..., self.e, self.e].copy(), gb, lam, res,
                             mean.copy(), cov.copy()))
                return
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
            if not self.static_drive and not finite:
                self.check_drive(t)
            if k % rec == 0 or k == nsteps:
                record(t, mean, cov, derivs, self.last_lam if finite else None)
        cols = list(zip(*rows))
        info = {"dt": dt, "steps": nsteps, "npos": self.npos, "rank_W": int(self.r),
                "scheme": ("exponential midpoint, multiplier by end-of-step projection" if not finite else
                           "exponential midpoint, finite-n multiplier sqrt(n)(W G + h) at the end of the step"),
                "newton_iterations": int(newton_its)}
        info.update(self.attraction_info(mean, cov))
        if finite:
            info.update(self.finite_n_info(mean, cov, t))
        return FieldResult(self.model, self.kind, self.approximation, self.pos, np.array(cols[0]),
                           np.array(cols[1]), np.array(cols[2]), np.array(cols[3]), np.array(cols[4]),
                           np.array(cols[5]), np.array(cols[6]), np.array(cols[7]), shift, info, self.n)

    def attraction_info(self, mean, cov) -> dict:
        """Eigenvalues of W D on Range(W) at a state (solvers.fast_spectrum on the lattice): is the
        manifold attracting there?"""
        if self.r == 0:
            return {"manifold_attracting": True}
        _, D = self.gain_slope(mean[..., self.gc], cov[..., self.gc, self.gc])
        w = fast_spectrum.eigenvalues(fast_spectrum.lattice_operator(self.W, D), self.U)
        return {"manifold_attracting": bool(w.real.max() < 0),
                "max_real_fast_eigenvalue": float(w.real.max())}

    def finite_n_spectrum(self, mean, cov, t):
        """Eigenvalues of the linearised finite-n mean equation at a state,
            d dm/dt = A dm + sqrt(n) e (W D dm_g)   on all P N m lattice unknowns,
        i.e. the matrix blockdiag(A_a(theta_i)) + sqrt(n) [e e_g^T] (x) W diag(D); exact for a
        linear/additive model (its covariances do not depend on the means), the closure's at fixed C
        otherwise.  None when P N m > SPECTRUM_MAX (dense eigenvalues would be too costly)."""
        P, N, m, e, g = self.P, self.N, self.m, self.e, self.gc
        if P * N * m > SPECTRUM_MAX:
            return None
        A = self.coefficients(t, mean)[0]
        _, D = self.gain_slope(mean[..., g], cov[..., g, g])
        M = np.zeros((P, N, m, P, N, m))
        idx = np.arange(N)
        for ia in range(P):
            M[ia, idx, :, ia, idx, :] = A[ia]
        M[:, :, e, :, :, g] += self.sqn * (self.W * D.reshape(1, -1)).reshape(P, N, P, N)
        return np.linalg.eigvals(M.reshape(P * N * m, P * N * m))

    def finite_n_info(self, mean, cov, t) -> dict:
        """The leading eigenvalue of ``finite_n_spectrum`` and whether the finite-n field is stable."""
        w = self.finite_n_spectrum(mean, cov, t)
        if w is None:
            return {"finite_n_stable": None, "finite_n_leading_eigenvalue": None,
                    "finite_n_spectrum_note": f"not computed: P N m > {SPECTRUM_MAX}"}
        lead = w[np.argmax(w.real)]
        return {"finite_n_stable": bool(lead.real < 0), "finite_n_leading_eigenvalue": [lead.real, lead.imag]}

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
        """The stationary field at time t (coefficients frozen at t); start: initial lambda (P, N).
        At finite n: the stationary finite-n field (module docstring), started from ``start``, else
        from the balanced field, else by continuation in n from n <= 1 upward by factors of 4."""
        finite = self.n is not None
        if not finite:
            self.check_drive(t)
        P, N, m, e, g = self.P, self.N, self.m, self.e, self.gc
        ell0 = None if start is None else self.U.T @ self.flat(start)
        what = "stationary field" if not finite else f"stationary finite-n field (n = {self.n:g})"
        Uh = self.U.T @ self.flat(self.drive(t))
        if not self.closure:
            A, b, Q = self.linear_coefficients(t)
            C = self._lyapunov(A, Q)
            y0 = -np.linalg.solve(A, b[..., None])[..., 0]
            K = -np.linalg.solve(A, np.broadcast_to(np.eye(m)[:, e], (P, N, m))[..., None])[..., 0]
            yg, kg, vg = y0[..., g], K[..., g], C[..., g, g]

            def solve(l0, fin):
                try:
                    return self.solve_constraint(yg, kg, vg, t, l0, max_iter=100, what=what, finite=fin)
                except FieldError:
                    inv = 1.0 / self.sqn if fin else 0.0
                    l1, _ = follow_flow(lambda l: self.WtU.T @ self.gain(yg + kg * self.lam_total(l, t, fin), vg)
                                        .ravel() + Uh - inv * l, l0)
                    return self.solve_constraint(yg, kg, vg, t, l1, what=what, finite=fin)

            if not finite:
                ell, res, its = solve(np.zeros(self.r) if ell0 is None else ell0, False)
            else:
                ell, res, its = self._finite_n_continuation(solve, ell0)
            lam = self.lam_total(ell, t)
            mean = y0 + K * lam[..., None]
        else:
            m_init, _ = self.initial_state()
            state = {"mean": m_init}

            def solve(l0, fin):
                inv = 1.0 / self.sqn if fin else 0.0

                def Fc(l):
                    mean, C, _ = self._closure_equilibrium(self.lam_total(l, t, fin), t, state["mean"])
                    state["mean"] = mean
                    return self.WtU.T @ self.gain(mean[..., g], C[..., g, g]).ravel() + Uh - inv * l

                l1, F = follow_flow(Fc, l0, tol=tol)
                res = float(np.abs(F).max()) if F.size else 0.0
                if res > CONSTRAINT_TOL:
                    raise NoConvergence(f"model {self.model.name!r}: the {what} of the Gaussian closure did "
                                        f"not converge (residual {res:.3e})")
                return l1, res, -1

            if not finite:
                ell, res, its = solve(np.zeros(self.r) if ell0 is None else ell0, False)
            else:
                ell, res, its = self._finite_n_continuation(solve, ell0)
            lam = self.lam_total(ell, t)
            mean, C, A = self._closure_equilibrium(lam, t, state["mean"])
        mg, vg = mean[..., g], C[..., g, g]
        G, D, Dv = self.gain_derivatives(mg, vg)
        imb_field = self.apply_W(G) + self.drive(t)
        imb = float(np.abs(imb_field).max())
        info = {"t": float(t), "rank_W": int(self.r)}
        if finite:
            gap = float(np.abs(lam - self.sqn * imb_field).max())
            if not gap <= CONSTRAINT_TOL * self.sqn * max(1.0, float(np.abs(lam).max())):
                raise NoConvergence(f"model {self.model.name!r}: {what}: max |lambda - sqrt(n)(W G + h)| = "
                                    f"{gap:.3e}")
            info.update({"imbalance": imb, "finite_n_residual": gap})
            info.update(self.finite_n_info(mean, C, t))
            residual = gap
        else:
            if imb > CONSTRAINT_TOL:
                raise NoConvergence(f"model {self.model.name!r}: stationary field residual {imb:.3e}")
            residual = imb
        kind = "stationary-" + self.kind
        return FieldStationary(self.model, kind, self.approximation, self.npos, self.pos, lam, G,
                               mean[..., e], C[..., e, e], D, Dv, mean, C, A, ell, residual, int(its), info, self.n)

    def _finite_n_continuation(self, solve, ell0):
        """Solve the finite-n relation at self.n with ``solve(l0, finite)``: from ell0, else from the
        balanced solution, else following n from min(n, 1) upward by factors of 4 (each solve starting
        from the previous one).  Returns (l, residual, total iterations)."""
        errors = (FieldError, NoConvergence, DriveOutsideRange, np.linalg.LinAlgError)
        total = 0
        if ell0 is None:
            try:
                ell0, _, its = solve(np.zeros(self.r), False)
                total += max(its, 0)
            except errors:
                ell0 = None
        if ell0 is not None:
            try:
                ell, res, its = solve(ell0, True)
                return ell, res, total + max(its, 0)
            except errors:
                pass
        n, sqn = self.n, self.sqn
        ns = [n]
        while ns[-1] > 1.0:
            ns.append(ns[-1] / 4.0)
        ell = np.zeros(self.r)
        try:
            for nn in reversed(ns):
                self.n, self.sqn = nn, math.sqrt(nn)
                ell, res, its = solve(ell, True)
                total += max(its, 0)
        except errors as exc:
            raise NoConvergence(f"model {self.model.name!r}: the stationary finite-n field (n = {n:g}) did not "
                                f"converge in the continuation in n (failed at n = {self.n:g}: {exc})") from None
        finally:
            self.n, self.sqn = n, sqn
        return ell, res, total


# ---------------------------------------------------------------------------------------------
# convenience functions
# ---------------------------------------------------------------------------------------------

def solve_field(model, T: float, dt: float | None = None, *, npos: int | None = None, params=None,
                closure: bool = False, init=None, record_every: float | None = None, m0=None, C0=None,
                initial_layer: bool | None = None, n: float | None = None) -> FieldResult:
    """FieldSolver(model, npos=..., params=..., closure=..., init=..., n=...).run(T, dt, ...)."""
    return FieldSolver(model, npos=npos, params=params, closure=closure, init=init, n=n).run(
        T, dt, record_every=record_every, m0=m0, C0=C0, initial_layer=initial_layer)


def stationary_field(model, *, npos: int | None = None, params=None, closure: bool = False, t: float = 0.0,
                     start=None, n: float | None = None) -> FieldStationary:
    """The stationary field (see FieldSolver.stationary); n: the finite-n field at that size."""
    return FieldSolver(model, npos=npos, params=params, closure=closure, n=n).stationary(t, start)
