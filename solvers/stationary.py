"""Stationary states (m = 1): the balanced limit (DESIGN.md §2–3) and the finite-n McKean–Vlasov
equation (DESIGN.md §4).

For a multiplier lambda_b(theta) the stationary density of population b at position theta is the
zero-flux density p = exp(U0 + lambda U1 - log sigma^2) / Z (solvers.density1d), so
gbar_b(theta) = <g_b> is a function of lambda_b(theta) alone, with derivative

    d gbar / d lambda = d/d lambda [ integral g e^(U0 + lambda U1) / sigma^2 / Z ] = <g U1> - <g><U1>
                      = Cov_p(g, U1).

On the lattice of positions (solvers.lattice_coupling) lambda_b = sum_k Lambda_{b,k} psi_k and
W gbar + h has coefficients  R(Lambda) = B mu(gbar) + H,  mu_{b,l} = <chi_l, gbar_b>.

Balanced limit ("stationary-balanced").  Lambda in Range(W): Lambda = Q c with Q an orthonormal
basis of colspace(B) (SVD, relative tolerance lattice_coupling.RANK_RTOL); solve  Q^T R(Q c) = 0
by damped Newton with the analytic Jacobian  Q^T B G_S Q,  G_S[(b,l),(b,k)] = <chi_l S_b psi_k>,
S = Cov(g, U1).  The part of H outside colspace(B) (and the generated drive_residual) cannot be
cancelled: it is checked first (DriveOutsideRange).

Finite n ("stationary-finite-n").  lambda_n = sqrt(n) (W gbar + h): Lambda_n = sqrt(n) R(Lambda_n)
(plus sqrt(n) h_res outside span psi).  Solve  Lambda / sqrt(n) - R(Lambda) = 0  (the residual in the
units of the imbalance W gbar + h) by damped Newton, Jacobian I / sqrt(n) - B G_S, started from the
balanced limit (the n -> infinity limit), with continuation in n from n <= 1 when that fails.

Both stop when the residual's max-norm is <= tol (1e-12), and then check the fast manifold: the
eigenvalues of W D on Range(W), D_b(theta) = <g_b'>, grouped by the module's MODES.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .balance_errors import (DriveOutsideRange, GainRangeExceeded, InfeasibleBalance,
                             ManifoldNotAttracting, NoConvergence, StationaryError, format_eigenvalues)
from .compiled import CompiledModel
from .density1d import DensityFamily, DensityStats, densities_for
from .feasibility import DRIVE_RTOL, check_demanded, check_drive  # noqa: F401  (DRIVE_RTOL: re-exported)
from .lattice_coupling import DEFAULT_NPOS, LatticeCoupling
from .output import Record, state_record

TOL = 1e-12                 # max-norm of the (projected) balance residual at convergence
STEP_LIMIT = 10.0           # Newton steps move lambda by at most STEP_LIMIT / sd(U1) per position
STALL_WINDOW = 25          # Newton gives up when 25 iterations did not halve the residual
SATURATION_RTOL = 1e-8      # gbar this close (relative to the range) to an end of the gain's range

__all__ = ["StationaryResult", "solve_balanced", "solve_finite_n", "DEFAULT_NPOS",
           "StationaryError", "InfeasibleBalance", "DriveOutsideRange", "GainRangeExceeded",
           "ManifoldNotAttracting", "NoConvergence"]


@dataclass
class StationaryResult(Record):
    """A stationary state.  Arrays per population a (first axis, model order) and lattice position i:
    lam, gbar, mean, variance, slope (D = <g'>), dgbar (d gbar / d lambda), all (P, N); Lambda (P, K)
    the coefficients of lambda on psi (finite n: without the sqrt(n) h_res part outside span psi).
    grids[pop] is the x-grid (density1d.Grid, cell centres grids[pop].x) and densities[pop] the
    normalised density on it, (N, nx).  eigenvalues: W D on Range(W) at the state; modes: the same
    per mode label; at finite n also finite_n_eigenvalues / finite_n_modes: <f'> + sqrt(n) W D, the
    rates and angular frequencies of the imbalance at that n (DESIGN.md §4b), which decide stability;
    drift_slope (P, N): <d f_e / d x_e> under the state's densities (the intrinsic rate J there).
    residual: max-norm of the solved equation; imbalance: max |W gbar + h| on the lattice (0 in the
    balanced limit; lambda / sqrt(n) at finite n)."""

    model: CompiledModel
    kind: str
    n: float | None
    npos: int
    pos: tuple
    Lambda: np.ndarray
    lam: np.ndarray
    gbar: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    slope: np.ndarray
    dgbar: np.ndarray
    grids: dict
    densities: dict
    eigenvalues: np.ndarray
    modes: dict
    residual: float
    imbalance: float
    iterations: int
    closed_form: dict = field(default_factory=dict)
    finite_n_eigenvalues: np.ndarray | None = None
    finite_n_modes: dict | None = None
    drift_slope: np.ndarray | None = None

    @property
    def populations(self) -> tuple:
        return self.model.populations

    def x(self, pop: str) -> np.ndarray:
        return self.grids[pop].x

    def stable(self) -> bool:
        """Attracting: at finite n by the finite-n fast matrix <f'> + sqrt(n) W D, in the limit by W D."""
        w = self.eigenvalues if self.finite_n_eigenvalues is None else self.finite_n_eigenvalues
        return bool(w.size == 0 or np.max(w.real) < 0)

    def to_record(self, include_density: bool = False) -> dict:
        """The JSON record (solvers.output schema): per population lambda, gbar, mean, variance on
        the lattice; n (null for the balanced limit), eigenvalues [[re, im], ...], modes {label:
        eigenvalues}, residual, imbalance, iterations, npos; with include_density, "density":
        {pop: {"x": grid, "p": (N, nx)}}."""
        per_pop = {a: {"lambda": self.lam[i], "gbar": self.gbar[i], "mean": self.mean[i],
                       "variance": self.variance[i]} for i, a in enumerate(self.populations)}
        pairs = lambda w: [[float(np.real(v)), float(np.imag(v))] for v in w]  # noqa: E731
        extra = dict(n=self.n, eigenvalues=pairs(self.eigenvalues),
                     modes={k: pairs(v) for k, v in self.modes.items()},
                     residual=self.residual, imbalance=self.imbalance, iterations=self.iterations,
                     npos=self.npos, closed_form=dict(self.closed_form))
        if self.finite_n_eigenvalues is not None:
            extra["finite_n_eigenvalues"] = pairs(self.finite_n_eigenvalues)
            extra["finite_n_modes"] = {k: pairs(v) for k, v in self.finite_n_modes.items()}
            extra["stability_criterion"] = "eig(<f'> + sqrt(n) W D) on Range(W), DESIGN.md 4b"
        if include_density:
            extra["density"] = {a: {"x": self.grids[a].x, "p": self.densities[a]} for a in self.populations}
        return state_record(self.model, self.kind, self.pos, per_pop, **extra)


# ---- the system on the lattice ------------------------------------------------------------------

class _System:
    """Densities of every population at every lattice position, with grids kept between calls."""

    def __init__(self, model: CompiledModel, npos: int, t: float, closed_form):
        if model.m != 1:
            raise StationaryError(f"model {model.name!r}: stationary densities need a one-dimensional "
                                  f"state (m = 1); this model has m = {model.m}")
        self.model = model
        self.cpl = LatticeCoupling(model, npos, t)
        self.families = [DensityFamily(model, a, self.cpl.pos, t, closed_form=closed_form)
                         for a in model.populations]
        self.current = [None] * model.P
        self.last = [None] * model.P
        self._ranges = None

    def stats(self, lam: np.ndarray) -> list[DensityStats]:
        out = []
        for b, fam in enumerate(self.families):
            gd = densities_for(fam, lam[b], self.current[b], self.last[b])
            self.current[b] = gd
            st = gd.stats(lam[b])
            self.last[b] = st
            out.append(st)
        return out

    def gain_ranges(self):
        if self._ranges is None:
            self._ranges = [fam.gain_range() for fam in self.families]
        return self._ranges

    def position_label(self, i: int) -> str:
        if not self.cpl.pos:
            return "the point (no space)"
        return "theta = (" + ", ".join(f"{float(p[i]):.4g}" for p in self.cpl.pos) + ")"

    def position(self, i: int):
        return tuple(float(p[i]) for p in self.cpl.pos) if self.cpl.pos else None


def _newton(fun, x0, *, tol, max_iter, step_factor):
    """Damped Newton on fun(x) -> (F, J, aux) with backtracking on |F|_2 and a step limit
    step_factor(aux, dx) in (0, 1]; stops at max |F| <= tol, after max_iter iterations, when the
    line search fails, or when STALL_WINDOW iterations did not halve max |F|.
    Returns (x, F, aux, iterations, converged)."""
    x = np.asarray(x0, float).copy()
    F, J, aux = fun(x)
    history = []
    for it in range(max_iter + 1):
        nF = float(np.max(np.abs(F))) if F.size else 0.0
        if nF <= tol:
            return x, F, aux, it, True
        history.append(nF)
        if it == max_iter or (it >= STALL_WINDOW and nF > 0.5 * history[it - STALL_WINDOW]):
            break                                          # out of iterations, or stalled
        try:
            dx = np.linalg.solve(J, -F)
        except np.linalg.LinAlgError:
            dx = np.linalg.lstsq(J, -F, rcond=None)[0]
        if not np.all(np.isfinite(dx)):
            break
        dx = dx * step_factor(aux, dx)
        n2 = float(np.linalg.norm(F))
        s, accepted = 1.0, False
        while s >= 1e-6:
            xn = x + s * dx
            Fn, Jn, auxn = fun(xn)
            if float(np.linalg.norm(Fn)) <= (1.0 - 1e-4 * s) * n2:
                accepted = True
                break
            s *= 0.5
        if not accepted:
            return x, F, aux, it, nF <= 100 * tol          # at the rounding floor: accept
        x, F, J, aux = xn, Fn, Jn, auxn
    return x, F, aux, len(history) - 1, False


def _as_model(model, params=None) -> CompiledModel:
    if isinstance(model, CompiledModel):
        if params:
            return CompiledModel(model.module, {**model.params, **params})
        return model
    return CompiledModel(model, params)


def _npos(model, npos):
    if model.pos_dim == 0:
        return 1
    npos = DEFAULT_NPOS[model.space] if npos is None else int(npos)
    if npos < 1:
        raise ValueError(f"npos must be positive, got {npos}")
    return npos


# ---- feasibility checks -------------------------------------------------------------------------

def _check_drive(sy: _System):
    """DriveOutsideRange (solvers.feasibility.check_drive on the system's lattice)."""
    check_drive(sy.cpl)


def _check_demanded(sy: _System):
    """GainRangeExceeded when balance fixes an activity outside the gain's range
    (solvers.feasibility.check_demanded, with the ranges the system has already sampled)."""
    check_demanded(sy.cpl, sy.gain_ranges())


def _diagnose_failure(sy: _System, aux, residual: float, iterations: int, what: str):
    """Newton failed: a gbar pinned at an end of the gain's range means balance demands more than
    the gain delivers (GainRangeExceeded); otherwise NoConvergence."""
    lam, sts = aux["lam"], aux["stats"]
    ranges = sy.gain_ranges()
    worst = None
    for b, pop in enumerate(sy.model.populations):
        lo, hi = ranges[b]
        g = sts[b].gbar
        width = np.where(np.isfinite(hi - lo), hi - lo, np.maximum(1.0, np.abs(g)))
        dist = np.minimum(g - lo, hi - g) / width
        i = int(np.argmin(dist))
        if dist[i] <= SATURATION_RTOL and (worst is None or dist[i] < worst[0]):
            worst = (dist[i], b, pop, i, float(g[i]), (float(lo[i]), float(hi[i])))
    if worst is not None:
        _, b, pop, i, g, rng = worst
        mu = sy.cpl.demanded_moments()
        dem_txt = ""
        if mu is not None:
            chi = sy.model.module.CHI if sy.cpl.separable else "lattice points"
            dem_txt = (f"; balance demands the moments <chi_l, gbar_{pop}> = "
                       f"{np.array2string(mu[b], precision=6)} (chi = {chi})")
        raise GainRangeExceeded(
            f"model {sy.model.name!r}: {what} cannot balance: Newton drives population {pop} at "
            f"{sy.position_label(i)} to lambda = {lam[b, i]:.6g} where gbar_{pop} = {g:.6g}, pinned at the "
            f"end of the gain's range [{rng[0]:.6g}, {rng[1]:.6g}]{dem_txt} (residual {residual:.3e} "
            f"after {iterations} iterations)", pop, sy.position(i), g, rng)
    raise NoConvergence(
        f"model {sy.model.name!r}: {what}: Newton did not converge, residual {residual:.3e} "
        f"(tolerance {TOL:g}) after {iterations} iterations; max |lambda| = {np.max(np.abs(lam)):.6g}",
        residual, iterations)


def intrinsic_relaxation(sy: _System, sts) -> np.ndarray:
    """J_a(theta) = <d f_e / d x_e> under the density of population a at each lattice position (P, N):
    the intrinsic relaxation rate of a shift of the density (J = -1 for f = -x), by central
    differences of the generated drift on the density's grid."""
    cm, e, t = sy.model, sy.model.e, sy.cpl.t
    out = np.zeros((cm.P, sy.cpl.N))
    for b, (pop, st) in enumerate(zip(cm.populations, sts)):
        x = st.grid.x[None, :]
        pos = tuple(np.asarray(p, float)[:, None] for p in sy.cpl.pos)
        hstep = 1e-5 * (1.0 + np.abs(x))
        with np.errstate(all="ignore"):
            fp = np.asarray(cm.call("drift", pop, x + hstep, *pos, t)[e], float)
            fm = np.asarray(cm.call("drift", pop, x - hstep, *pos, t)[e], float)
        slope = np.broadcast_to((fp - fm) / (2 * hstep), st.p.shape)
        slope = np.where(np.isfinite(slope), slope, 0.0)
        out[b] = st.grid.integrate(slope * st.p)
    return out


def _check_stability(sy: _System, eig, modes, what: str, n: float | None = None):
    """Refuse a state that the dynamics do not attract.  Balanced limit: W D on Range(W) must have
    eigenvalues with negative real part (DESIGN.md §2).  Finite n: the finite-n fast matrix
    diag(<f'>) + sqrt(n) W D (§4b, LatticeCoupling.fast_spectrum with n) must."""
    if eig.size == 0:
        return
    scale = max(1.0, float(np.max(np.abs(eig))))
    if np.max(eig.real) >= -1e-12 * scale:
        parts = []
        for label, w in modes.items():
            flag = "  <- not attracting" if np.max(w.real) >= -1e-12 * scale else ""
            parts.append(f"mode {label}: {format_eigenvalues(w)}{flag}")
        crit = ("W D on Range(W) has eigenvalues with real part >= 0 (D = <g'> at the state)" if n is None else
                f"the finite-n fast matrix <f'> + sqrt(n) W D (n = {n:g}, D = <g'>, <f'> the mean drift "
                f"slope at the state) has eigenvalues with real part >= 0 on Range(W)")
        raise ManifoldNotAttracting(
            f"model {sy.model.name!r}: {what}: the {'balanced manifold' if n is None else 'state'} is not "
            f"attracting: {crit}; per mode: " + "; ".join(parts), {k: v.copy() for k, v in modes.items()})


# ---- residual functions ---------------------------------------------------------------------

def _step_factor(sy: _System):
    cpl = sy.cpl

    def factor(aux, dx):
        dLam = aux["to_Lambda"](dx)
        dlam = cpl.on_lattice(dLam)
        sd = np.array([st.sd_U1 for st in aux["stats"]])
        worst = float(np.max(np.abs(dlam) * np.maximum(sd, 1e-300))) if dlam.size else 0.0
        return 1.0 if worst <= STEP_LIMIT else STEP_LIMIT / worst
    return factor


def _evaluate(sy: _System, Lam: np.ndarray, extra_lam=None):
    cpl = sy.cpl
    lam = cpl.on_lattice(Lam)
    if extra_lam is not None:
        lam = lam + extra_lam
    sts = sy.stats(lam)
    gbar = np.array([st.gbar for st in sts])
    S = np.array([st.dgbar for st in sts])
    R = cpl.B @ cpl.moments(gbar).ravel() + cpl.H.ravel()
    dR = cpl.B @ cpl.weighted_gram(S)               # d R / d Lambda, (P K, P K)
    return lam, sts, R, dR


def _result(sy: _System, kind, n, npos, Lam, lam, sts, residual, imbalance, iterations, check, what):
    slope = np.array([st.slope for st in sts])
    eig, modes = sy.cpl.fast_spectrum(slope)
    eig_n = modes_n = None
    J = intrinsic_relaxation(sy, sts)
    if n is not None:
        eig_n, modes_n = sy.cpl.fast_spectrum(slope, n=n, J=J)
    if check:
        if n is None:
            _check_stability(sy, eig, modes, what)
        else:
            _check_stability(sy, eig_n, modes_n, what, n=n)
    pops = sy.model.populations
    return StationaryResult(
        model=sy.model, kind=kind, n=n, npos=npos, pos=sy.cpl.pos, Lambda=np.asarray(Lam).reshape(sy.cpl.P, -1),
        lam=lam, gbar=np.array([st.gbar for st in sts]), mean=np.array([st.mean for st in sts]),
        variance=np.array([st.variance for st in sts]), slope=slope,
        dgbar=np.array([st.dgbar for st in sts]),
        grids={a: sts[b].grid for b, a in enumerate(pops)},
        densities={a: sts[b].p for b, a in enumerate(pops)},
        eigenvalues=eig, modes=modes, finite_n_eigenvalues=eig_n, finite_n_modes=modes_n, drift_slope=J,
        residual=float(residual), imbalance=float(imbalance),
        iterations=int(iterations),
        closed_form={a: fam.closed_form for a, fam in zip(pops, sy.families)})


# ---- public solvers -----------------------------------------------------------------------------

def solve_balanced(model, *, npos: int | None = None, t: float = 0.0, params: dict | None = None,
                   closed_form: bool | None = None, tol: float = TOL, max_iter: int = 100,
                   start=None, check_stability: bool = True) -> StationaryResult:
    """The stationary balanced state: lambda in Range(W) with W gbar + h = 0 on the lattice.

    model: CompiledModel, model name or generated module (params: overrides).  npos: lattice
    positions per angle (default DEFAULT_NPOS; 1 on a point).  closed_form: None = generated closed
    form when available, False = force quadrature.  start: initial Lambda (P, K).  Raises
    DriveOutsideRange, GainRangeExceeded, ManifoldNotAttracting (if check_stability), NoConvergence."""
    model = _as_model(model, params)
    npos = _npos(model, npos)
    sy = _System(model, npos, t, closed_form)
    cpl = sy.cpl
    _check_drive(sy)
    _check_demanded(sy)
    Q = cpl.Q

    def fun(c):
        Lam = Q @ c
        lam, sts, R, dR = _evaluate(sy, Lam)
        aux = {"lam": lam, "stats": sts, "R": R, "to_Lambda": lambda dc: Q @ dc}
        return Q.T @ R, Q.T @ dR @ Q, aux

    c0 = np.zeros(cpl.rank) if start is None else Q.T @ np.asarray(start, float).ravel()
    c, F, aux, its, ok = _newton(fun, c0, tol=tol, max_iter=max_iter, step_factor=_step_factor(sy))
    res = float(np.max(np.abs(F))) if F.size else 0.0
    if not ok:
        _diagnose_failure(sy, aux, res, its, "the balanced limit")
    imbalance = float(np.max(np.abs(cpl.on_lattice(aux["R"]) + cpl.h_res)))
    return _result(sy, "stationary-balanced", None, npos, Q @ c, aux["lam"], aux["stats"], res,
                   imbalance, its, check_stability, "balanced limit")


def solve_finite_n(model, n: float, *, npos: int | None = None, t: float = 0.0,
                   params: dict | None = None, closed_form: bool | None = None, tol: float = TOL,
                   max_iter: int = 100, start=None, check_stability: bool = True) -> StationaryResult:
    """The stationary state of the finite-n McKean–Vlasov equation (DESIGN.md §4):
    lambda_n = sqrt(n) (W gbar(lambda_n) + h), solved self-consistently.

    Started from ``start`` (Lambda (P, K)) or the balanced limit; when Newton fails from there (or
    the balanced limit does not exist) it follows n from min(n, 1) upward by factors of 4.  The
    residual is max |Lambda / sqrt(n) - (B mu + H)|.  Raises ManifoldNotAttracting (if
    check_stability: W D on Range(W) at the state), NoConvergence."""
    n = float(n)
    if not (math.isfinite(n) and n > 0):
        raise ValueError(f"n must be a positive number, got {n}")
    model = _as_model(model, params)
    npos = _npos(model, npos)
    sy = _System(model, npos, t, closed_form)
    cpl = sy.cpl
    PK = cpl.P * cpl.K

    def solve_at(nn, Lam0):
        s = math.sqrt(nn)
        h_extra = s * cpl.h_res

        def fun(v):
            lam, sts, R, dR = _evaluate(sy, v, h_extra)
            aux = {"lam": lam, "stats": sts, "R": R, "to_Lambda": lambda dv: dv}
            return v / s - R, np.eye(PK) / s - dR, aux
        return _newton(fun, np.asarray(Lam0, float).ravel(), tol=tol, max_iter=max_iter,
                       step_factor=_step_factor(sy))

    if start is None:
        try:
            start = solve_balanced(model, npos=npos, t=t, closed_form=closed_form,
                                   check_stability=False).Lambda
        except StationaryError:
            start = None
    total = 0
    out = None
    if start is not None:
        out = solve_at(n, start)
        total += out[3]
    if out is None or not out[4]:
        ns = [n]
        while ns[-1] > 1.0:
            ns.append(ns[-1] / 4.0)
        Lam = np.zeros(PK)
        for nn in reversed(ns):
            out = solve_at(nn, Lam)
            total += out[3]
            if not out[4]:
                res = float(np.max(np.abs(out[1])))
                raise NoConvergence(
                    f"model {model.name!r}: finite-n McKean–Vlasov (n = {n:g}): Newton did not converge "
                    f"at n = {nn:g} in the continuation, residual {res:.3e} (tolerance {tol:g}) after "
                    f"{total} iterations", res, total)
            Lam = out[0]
    v, F, aux, _, _ = out
    res = float(np.max(np.abs(F))) if F.size else 0.0
    imbalance = float(np.max(np.abs(cpl.on_lattice(aux["R"]) + cpl.h_res)))
    return _result(sy, "stationary-finite-n", n, npos, v, aux["lam"], aux["stats"], res, imbalance,
                   total, check_stability, f"finite-n state (n = {n:g})")
