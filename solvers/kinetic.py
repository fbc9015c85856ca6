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

Initial layer (balanced mode): an initial density off the manifold is first shifted,
x -> x + delta(theta) with delta in Range(W), to the end point of the fast flow
d delta/ds = W gbar(p0 shifted by delta) + h  (then polished by Newton on the discrete constraint).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import fp1d
from .balance_errors import DriveOutsideRange, NoConvergence
from .compiled import CompiledModel
from .continuation import follow_flow
from .lattice_coupling import lattice_range_basis, lattice_W
from .output import state_record, theta_list

GAMMA = 2.0 - np.sqrt(2.0)


class KineticError(RuntimeError):
    """Numerical trouble in the kinetic solver (negative density, NaN, constraint drift)."""


@dataclass
class KineticResult:
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
                                                                 self.residual.max())},
                 **self.info}
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
        np.savez_compressed(path, **arrays)


def gaussian_initial(mean=0.0, sd=1.0):
    """Initial density callable p0(x, a, theta_j) of N(mean, sd^2)."""
    def p0(x, a, j):
        return np.exp(-0.5 * ((x - mean) / sd) ** 2)
    return p0


class KineticSolver:
    """Kinetic solver for one model (m = 1).

    model: CompiledModel or name; npos: lattice positions per angle (1 on a point);
    nx: cells per population; interval: dict pop -> (lo, hi) or one (lo, hi) for all, default
    automatic (the stationary density's support and the initial density, see ``auto_interval``);
    n: None for the balanced limit, else the network size of the finite-n equation.
    """

    def __init__(self, model, *, npos: int = 32, nx: int = 256, interval=None, n: float | None = None,
                 params=None, init=None):
        self.model = model if isinstance(model, CompiledModel) else CompiledModel(model, params)
        m = self.model
        if m.m != 1:
            raise ValueError(f"model {m.name!r}: the kinetic solver handles m = 1, the state has "
                             f"dimension {m.m}")
        self.n = None if n is None else float(n)
        self.pos = m.grid(npos)
        self.Npos = m.n_positions(npos)
        self.nx = int(nx)
        self.init = init
        P = m.P
        self.W = lattice_W(m, self.pos)
        self.U = lattice_range_basis(m, self.pos, self.W)
        intervals = self._intervals(interval, npos)
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
    def _intervals(self, interval, npos):
        """The x-interval per population: given, or automatic: the stationary density (balanced or
        finite n) and the initial Gaussian down to e^-40 of their peaks (density1d.auto_interval_for_model),
        widened in balanced mode by the initial-layer shift."""
        m = self.model
        if interval is None:
            from .density1d import auto_interval_for_model
            out = []
            for a in m.populations:
                out.append(auto_interval_for_model(m, a, npos=npos if m.pos_dim else None, n=self.n))
            return out
        if isinstance(interval, dict):
            return [tuple(interval[a]) for a in m.populations]
        return [tuple(interval)] * m.P

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

    def drive(self, t: float) -> np.ndarray:
        """h at the lattice positions, (P, Npos) (cached when h does not depend on t)."""
        if self._drive_static is not None:
            return self._drive_static
        h = self.model.drive(self.pos, t)
        if not any(self.model.drive_time_dependent(a) for a in self.model.populations):
            self._drive_static = h
        return h

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

    def W_apply(self, q):
        """(W q) for q of shape (P, Npos) or (P, Npos, r)."""
        P, N = self.model.P, self.Npos
        if q.ndim == 2:
            return (self.W @ q.reshape(P * N)).reshape(P, N)
        return (self.W @ q.reshape(P * N, -1)).reshape(P, N, -1)

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
        c, F = follow_flow(residual, np.zeros(U.shape[1]))
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

    def _basis(self, t):
        """Admissible lambda directions on the lattice, (P, Npos, r)."""
        U = self.U
        if self.n is not None:
            hv = self.drive(t).reshape(-1)
            extra = hv - U @ (U.T @ hv)
            if np.linalg.norm(extra) > 1e-12 * max(1.0, np.linalg.norm(hv)):
                U = np.concatenate([U, (extra / np.linalg.norm(extra))[:, None]], axis=1)
        return U.reshape(self.model.P, self.Npos, -1), U

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
            initial_layer: bool | None = None) -> KineticResult:
        """Integrate to time T with step dt; record moments every ``record_every`` (default dt) and
        densities every ``density_every`` (default: start and end only).

        initial_layer: shift the initial density onto the manifold first (default: True in the
        balanced mode, False at finite n, where the equation resolves its own initial layer of
        duration ~ 1/(sqrt(n) |eig W D|); at very large n that layer is too fast for any practical
        dt, and initial_layer=True starts from the shifted density instead)."""
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
                             for ia, a in enumerate(m.populations)}}
        return KineticResult(m, "balanced" if self.n is None else "finite-n", self.n, self.pos, self.x,
                             np.array(cols[0]), np.array(cols[1]), np.array(cols[2]), np.array(cols[3]),
                             np.array(cols[4]), np.array(cols[5]), np.array(cols[6]), np.array(cols[7]),
                             np.array(dtimes), np.array(dens), shift, info)
