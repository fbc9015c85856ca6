"""Finite volumes for the 2-D Fokker–Planck equation on a tensor grid, batched over populations x
positions (m = 2; DESIGN.md §3, §5b).

Cells (i, j), i < n1, j < n2, of widths h1 x h2 hold averages p_ij.  The flux J = V p - Dh grad p
(V the generated fp_velocity plus the multiplier along the input component e, Dh = sigma sigma^T / 2)
is split per face:

* normal part, exponentially fitted (Scharfetter–Gummel, solvers.fp1d) along each axis: at the
  x1-face (i+1/2, j)  J1 = a p_ij - b p_i+1,j  with a = (D11/h1) B(-z), b = (D11/h1) B(z),
  z = V1 h1 / D11 (and likewise along x2).  Exact for a 1-D OU process along each axis.  Where the
  diagonal diffusion vanishes (degenerate / hypoelliptic noise: noise on x only, none on the
  adaptation a) SG degenerates to upwinding, which is only first order: on the adaptation model's
  stationary density (dx = (-x - a + 0.3) dt + dW, da = (x - a)/2 dt) the covariance error is
  1.3e-2, 6.2e-3, 3.0e-3 at 40, 80, 160 cells per axis (7 sd each side), and the particle check of
  tests/test_kinetic2d.py fails by 8 standard errors in var(a).  Such faces therefore get the central
  flux  a = V/2, b = -V/2  (degenerate="central", the default; second order: 2.0e-3, 5.1e-4, 1.3e-4
  on the same grids); it is not monotone, but on grids that resolve the density (>= 6 cells per sd,
  solvers.grid2d) its negative values stay below 1e-9 of the maximum (6e-10 at 40 cells, 3e-12 at 160)
  and the kinetic solver's positivity check zeroes and reports them.  The first and last face of
  the axis keep the upwind flux: a central flux there drains the boundary cell below zero where the
  flow leaves it and the density grows inward (seen as negatives of 1e-4 of the maximum).  degenerate="upwind" keeps the
  SG (upwind) limit: monotone, first order.  Faces with a small but positive D keep SG;
* mixed part (off-diagonal D12), central: at the x1-face (i+1/2, j)
      J1_mix = -D12 (p_i,j+1 + p_i+1,j+1 - p_i,j-1 - p_i+1,j-1) / (4 h2),
  at the x2-face (i, j+1/2) the same with the axes exchanged; cells outside the grid count as 0.

Every face flux enters the two cells it separates with opposite signs and the boundary faces carry
no flux, so the discrete operator A = A1 + A2 + A12 has zero column sums: mass is conserved to
rounding by every linear scheme built from it.

Time stepping: the Hundsdorfer–Verwer ADI scheme (theta = 1/2 + sqrt(3)/6),

    Y0 = p + dt A p,
    Yk = Y(k-1) + theta dt Ak (Yk - p),                      k = 1, 2
    Z0 = Y0 + dt/2 A (Y2 - p),
    Zk = Z(k-1) + theta dt Ak (Zk - Y2),                     k = 1, 2;   p_next = Z2

(operators applied to p at t, all others at t + dt).  Why this scheme and not a sparse implicit solve:
(i) the mixed term is explicit but the scheme stays second order and unconditionally stable for
convection–diffusion with mixed derivatives (in 't Hout & Welfert, Appl. Numer. Math. 59 (2009)
677–692, theta >= 1/2 + sqrt(3)/6); Craig–Sneyd needs theta = 1/2 for second order and is then only
conditionally damping; (ii) the implicit parts are tridiagonal along one axis, so a step costs
O(cells) with batched LAPACK solves (solvers.fp1d) — the multiplier changes A_e every step, and a
sparse LU of a 2-D operator per population and position per step would cost far more; (iii) its fixed
points are exactly the null vectors of A, the operator whose null vector the stationary solver
(solvers.stationary2d) computes with a sparse LU, so time stepping and stationary solves agree.
Positivity is not guaranteed by an ADI step: the caller (solvers.kinetic2d) checks every step and
redoes a step that produced a negative density as two half steps (the m = 1 safeguard).

The multiplier (DESIGN.md §3): the step is linearised in a change dlam of the multiplier that is
uniform over each (population, position) block, p_next = y + dlam z, with z the exact derivative of
the discrete step (tangent of every stage; the velocity derivative of the SG fluxes, fp1d).

Two implementations of the step, ``step(p, now, new, lam, dt, backend=...)``: this module's NumPy code
(Operator2D, hv_step, LAPACK factors; the reference, also used by the stationary solver's sparse
assembly) and the compiled kernels of solvers.fp2d_kernels (backend "numba", the default when numba
imports): the same fluxes and stages fused per (population, position) block, the blocks shared out
over numba.get_num_threads() threads.  They agree to rounding (tests/test_fp2d_kernels.py: 1e-12 of
the maximum on random densities; on the kinetic solver's runs, 1e-15).  On the issue-11 benchmark
(benchmarks/bench_kinetic2d.py, 2 x 32 blocks of 128^2 cells) the kernels take ~1/7 of the
reference's wall time per step.  ``Coefficients`` holds A at one time without the multiplier
and keeps what does not change with it: the (a, b) of the axis without the multiplier, the factors of
its implicit solves (per theta dt), the kernels' block layout; only the SG coefficients of the input
axis and their factors are recomputed per step.  Importing this module does not import numba.

All arrays: batch shape (P, Npos) + (n1, n2); widths h1, h2 broadcast against the batch
((P, 1) or scalars).  This module never imports SymPy.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import fp1d

THETA_HV = 0.5 + np.sqrt(3.0) / 6.0


@dataclass
class Operator2D:
    """The coefficients of A at one time: SG coefficients per axis (a1, b1 at x1-faces (..., n1-1, n2);
    a2, b2 at x2-faces (..., n1, n2-1)), their velocity derivatives along the input axis e (da, db,
    or None), the mixed coefficients D12 at x1- and x2-faces (None when D12 = 0 everywhere), and the
    cell widths h1, h2 (broadcastable to the batch, shape (P, 1, 1, 1) or scalar)."""

    a1: np.ndarray
    b1: np.ndarray
    a2: np.ndarray
    b2: np.ndarray
    e: int
    da: np.ndarray | None
    db: np.ndarray | None
    m1: np.ndarray | None
    m2: np.ndarray | None
    h1: np.ndarray
    h2: np.ndarray


def axis_coefficients(V, D, h, derivatives=False, degenerate="central", axis=-1):
    """(a, b, da/dV, db/dV) of the faces normal to one axis (the faces' index along ``axis`` of the
    arrays: -2 for x1-faces, -1 for x2-faces): SG (fp1d.face_coefficients); where D = 0 and
    degenerate == "central" the central flux a = V/2, b = -V/2 (derivatives 1/2, -1/2) instead of the
    upwind limit of SG, except at the first and the last face (module docstring)."""
    a, b, da, db = fp1d.face_coefficients(V, D, h, derivatives)
    if degenerate == "central":
        zero = np.broadcast_to(np.asarray(D) == 0, a.shape).copy()
        ends = [slice(None)] * zero.ndim
        for end in (0, -1):
            ends[axis] = end
            zero[tuple(ends)] = False
        if zero.any():
            V = np.broadcast_to(V, a.shape)
            a = np.where(zero, 0.5 * V, a)
            b = np.where(zero, -0.5 * V, b)
            if derivatives:
                da = np.where(zero, 0.5, da)
                db = np.where(zero, -0.5, db)
    elif degenerate != "upwind":
        raise ValueError(f"degenerate must be 'central' or 'upwind', got {degenerate!r}")
    return a, b, da, db


def build_operator(V1, V2, D11, D22, D12_f1, D12_f2, h1, h2, e: int, derivatives: bool = True,
                   degenerate: str = "central", other=None) -> Operator2D:
    """Operator2D from the velocity and half-diffusion at the faces: V1, D11 and D12_f1 at x1-faces
    (..., n1-1, n2); V2, D22, D12_f2 at x2-faces (..., n1, n2-1).  h1, h2: cell widths (broadcastable
    to the batch with two trailing unit axes).  derivatives: also dA_e / dV_e (for the multiplier).
    other: the (a, b) of the axis that is not e, when already known (it does not depend on the
    multiplier: the kinetic solver computes it once per time)."""
    h1 = np.asarray(h1, float)
    h2 = np.asarray(h2, float)
    d1 = derivatives and e == 0
    d2 = derivatives and e == 1
    if other is not None:               # (a, b) of the axis without the multiplier, computed before
        coef = (axis_coefficients(V1, D11, h1, d1, degenerate, -2) if e == 0 else
                axis_coefficients(V2, D22, h2, d2, degenerate, -1))
        (a1, b1, da1, db1), (a2, b2, da2, db2) = ((coef, (*other, None, None)) if e == 0 else
                                                  ((*other, None, None), coef))
    else:
        a1, b1, da1, db1 = axis_coefficients(V1, D11, h1, d1, degenerate, -2)
        a2, b2, da2, db2 = axis_coefficients(V2, D22, h2, d2, degenerate, -1)
    da, db = (da1, db1) if e == 0 else (da2, db2)
    m1 = m2 = None
    if (D12_f1 is not None and np.any(D12_f1 != 0)) or (D12_f2 is not None and np.any(D12_f2 != 0)):
        m1 = np.asarray(D12_f1, float)
        m2 = np.asarray(D12_f2, float)
    return Operator2D(a1, b1, a2, b2, e, da, db, m1, m2, h1, h2)


# ---- matrix-free application ----------------------------------------------------------------------

def _div1(J, h):
    """Cell rate (J_{i-1/2} - J_{i+1/2}) / h1 from the interior x1-face fluxes J (..., n1-1, n2)."""
    shape = J.shape[:-2] + (J.shape[-2] + 1, J.shape[-1])
    out = np.zeros(shape)
    out[..., :-1, :] -= J
    out[..., 1:, :] += J
    return out / h


def _div2(J, h):
    shape = J.shape[:-1] + (J.shape[-1] + 1,)
    out = np.zeros(shape)
    out[..., :-1] -= J
    out[..., 1:] += J
    return out / h


def apply_axis(op: Operator2D, k: int, p):
    """A_k p: the SG part along axis k (0: x1, 1: x2)."""
    if k == 0:
        return _div1(op.a1 * p[..., :-1, :] - op.b1 * p[..., 1:, :], op.h1)
    return _div2(op.a2 * p[..., :-1] - op.b2 * p[..., 1:], op.h2)


def apply_mixed(op: Operator2D, p):
    """A12 p: the mixed (off-diagonal diffusion) part; 0 when D12 vanishes."""
    if op.m1 is None:
        return np.zeros_like(p)
    pp = np.zeros(p.shape[:-2] + (p.shape[-2] + 2, p.shape[-1] + 2))
    pp[..., 1:-1, 1:-1] = p
    # x1-faces (i+1/2, j): d/dx2 from the four cells around the face
    s1 = pp[..., 1:-2, 2:] + pp[..., 2:-1, 2:] - pp[..., 1:-2, :-2] - pp[..., 2:-1, :-2]
    J1 = -op.m1 * s1 / (4 * op.h2)
    s2 = pp[..., 2:, 1:-2] + pp[..., 2:, 2:-1] - pp[..., :-2, 1:-2] - pp[..., :-2, 2:-1]
    J2 = -op.m2 * s2 / (4 * op.h1)
    return _div1(J1, op.h1) + _div2(J2, op.h2)


def apply(op: Operator2D, p):
    """A p = A1 p + A2 p + A12 p."""
    return apply_axis(op, 0, p) + apply_axis(op, 1, p) + apply_mixed(op, p)


def apply_derivative(op: Operator2D, p):
    """(dA/dlam) p for a unit change of the multiplier (a uniform change of V_e at every face)."""
    if op.e == 0:
        return _div1(op.da * p[..., :-1, :] - op.db * p[..., 1:, :], op.h1)
    return _div2(op.da * p[..., :-1] - op.db * p[..., 1:], op.h2)


# ---- implicit solves along one axis ---------------------------------------------------------------

class AxisFactors:
    """LU factors of (I - c A_k) for every line along axis k (batched tridiagonal, LAPACK)."""

    def __init__(self, op: Operator2D, k: int, c: float):
        self.k = k
        if k == 0:
            a, b = np.swapaxes(op.a1, -1, -2), np.swapaxes(op.b1, -1, -2)
            h = op.h1
        else:
            a, b, h = op.a2, op.b2, op.h2
        bands = fp1d.operator_bands(a, b, h)
        self.shape = bands[1].shape
        self.F = fp1d.factor_shifted(*bands, c)

    def solve(self, rhs):
        """(I - c A_k)^-1 rhs; rhs of the batch shape, or with a leading stack axis."""
        stacked = rhs.ndim == len(self.shape) + 1
        r = np.moveaxis(rhs, 0, -1) if stacked else rhs
        if self.k == 0:
            r = np.swapaxes(r, -2 - stacked, -1 - stacked)
        x = fp1d.solve_factored(self.F, np.ascontiguousarray(r))
        if self.k == 0:
            x = np.swapaxes(x, -2 - stacked, -1 - stacked)
        return np.moveaxis(x, -1, 0) if stacked else x


def hv_step(p, op_now: Operator2D, op_new: Operator2D, dt: float, *, tangent: bool = True,
            factors=None):
    """One Hundsdorfer–Verwer step from p (module docstring), and its derivative z with respect to a
    change of the multiplier uniform over each block (None if not ``tangent``).
    op_now: A at t (applied to p); op_new: A at t + dt (implicit parts and everything applied to the
    stages).  Both carry the same multiplier.  factors: optional (F1, F2) of (I - theta dt A_k(op_new))."""
    th = THETA_HV
    F = factors or (AxisFactors(op_new, 0, th * dt), AxisFactors(op_new, 1, th * dt))
    e = op_new.e
    A_k_p = [apply_axis(op_now, 0, p), apply_axis(op_now, 1, p)]
    Ap = A_k_p[0] + A_k_p[1] + apply_mixed(op_now, p)
    Y = p + dt * Ap
    dAp = apply_derivative(op_now, p) if tangent else None
    dY = dt * dAp if tangent else None
    for k in (0, 1):
        R = Y - th * dt * A_k_p[k]
        if tangent:
            dR = dY - (th * dt * dAp if k == e else 0.0)
            if k == e:
                Y = F[k].solve(R)
                dY = F[k].solve(dR + th * dt * apply_derivative(op_new, Y))
            else:
                both = F[k].solve(np.stack([R, dR]))
                Y, dY = both[0], both[1]
        else:
            Y = F[k].solve(R)
    Y2, dY2 = Y, dY
    A_k_Y2 = [apply_axis(op_new, 0, Y2), apply_axis(op_new, 1, Y2)]
    AY2 = A_k_Y2[0] + A_k_Y2[1] + apply_mixed(op_new, Y2)
    Z = p + dt * Ap + 0.5 * dt * (AY2 - Ap)
    if tangent:
        dA_Y2 = apply_derivative(op_new, Y2)
        dZ = dt * dAp + 0.5 * dt * (apply(op_new, dY2) + dA_Y2 - dAp)
    for k in (0, 1):
        R = Z - th * dt * A_k_Y2[k]
        if tangent:
            dR = dZ - th * dt * (apply_axis(op_new, k, dY2) + (dA_Y2 if k == e else 0.0))
            if k == e:
                Z = F[k].solve(R)
                dZ = F[k].solve(dR + th * dt * apply_derivative(op_new, Z))
            else:
                both = F[k].solve(np.stack([R, dR]))
                Z, dZ = both[0], both[1]
        else:
            Z = F[k].solve(R)
    return Z, (dZ if tangent else None)


# ---- the step as the kinetic solver takes it: coefficients without the multiplier, two backends ----

class Coefficients:
    """The operator A at one time without the multiplier: the velocity V1 at x1-faces (..., n1-1, n2)
    and V2 at x2-faces (..., n1, n2-1), the half diffusion D11, D22 and D12 (at both face sets; None or
    0: no mixed part), the widths h1, h2 (broadcastable to the batch with two trailing unit axes), the
    input axis e (where the multiplier enters) and the rule for faces without diffusion.

    ``operator(lam)`` is the Operator2D with the multiplier lam (batch shape) added to V_e.  What does
    not depend on the multiplier is computed once and kept (``cache``): the (a, b) of the other axis
    and the factors of its implicit solve per theta dt (the last two; LAPACK factors for the NumPy
    step, Thomas factors for the kernels) and the kernels' block layout."""

    def __init__(self, V1, V2, D11, D22, D12_f1, D12_f2, h1, h2, e: int, degenerate: str = "central"):
        if degenerate not in ("central", "upwind"):
            raise ValueError(f"degenerate must be 'central' or 'upwind', got {degenerate!r}")
        self.V = (np.asarray(V1, float), np.asarray(V2, float))
        self.D = (np.asarray(D11, float), np.asarray(D22, float))
        self.mixed = any(d is not None and np.any(np.asarray(d) != 0) for d in (D12_f1, D12_f2))
        self.D12 = ((np.asarray(D12_f1, float), np.asarray(D12_f2, float)) if self.mixed else (None, None))
        self.h = (np.asarray(h1, float), np.asarray(h2, float))
        self.e = int(e)
        self.degenerate = degenerate
        self.cache = {}
        self._factors = []

    def other(self):
        """(a, b) of the axis without the multiplier (axis_coefficients, no derivatives)."""
        if "other" not in self.cache:
            o = 1 - self.e
            self.cache["other"] = axis_coefficients(self.V[o], self.D[o], self.h[o], False, self.degenerate,
                                                    -2 if o == 0 else -1)[:2]
        return self.cache["other"]

    def operator(self, lam, derivatives: bool = True) -> Operator2D:
        """A with the multiplier lam (shape: the batch) added to the velocity of the input axis."""
        L = np.asarray(lam, float)[..., None, None]
        V1, V2 = (self.V[0] + L, self.V[1]) if self.e == 0 else (self.V[0], self.V[1] + L)
        return build_operator(V1, V2, *self.D, *self.D12, *self.h, self.e, derivatives, self.degenerate,
                              other=self.other())

    def remember(self, key, factors):
        """Keep the factors of one implicit solve (the last two kept: halved steps ask for others)."""
        self._factors = [k for k in self._factors if k != key][-1:] + [key]
        for k in [k for k in self.cache if k[0] in ("lapack", "thomas") and k not in self._factors]:
            del self.cache[k]
        self.cache[key] = factors


def backend_for(backend: str | None) -> str:
    """'numba' (the compiled kernels, solvers.fp2d_kernels) or 'numpy' (this module's reference);
    None: numba when it can be imported."""
    if backend not in (None, "numba", "numpy"):
        raise ValueError(f"backend must be 'numba', 'numpy' or None (automatic), got {backend!r}")
    if backend is None:
        try:
            from . import fp2d_kernels  # noqa: F401
        except ImportError:                 # pragma: no cover - numba is a dependency
            return "numpy"
        return "numba"
    return backend


def step(p, now: Coefficients, new: Coefficients, lam, dt: float, *, tangent: bool = True,
         backend: str | None = None):
    """One Hundsdorfer–Verwer step from p (batch (P, N) + (n1, n2)) with the multiplier lam (batch
    shape) held over it: (p_next, z = d p_next / d lam, uniform change per block; None unless tangent).
    now, new: the coefficients at t and t + dt (the same object for an autonomous operator).
    backend 'numpy': hv_step on Operator2D with LAPACK factors (the reference); 'numba': the fused
    kernels of solvers.fp2d_kernels (the same stages; agree to rounding); None: numba if available."""
    if now.e != new.e or now.degenerate != new.degenerate:
        raise ValueError("the coefficients at t and t + dt differ in the input axis or the degenerate rule")
    c = THETA_HV * dt
    if backend_for(backend) == "numba":
        from . import fp2d_kernels
        return fp2d_kernels.step(p, now, new, lam, dt, tangent)
    op_now = now.operator(lam, tangent)
    op_new = op_now if new is now else new.operator(lam, tangent)
    e = now.e
    key = ("lapack", p.shape[:-2], c)
    F_other = new.cache.get(key)
    if F_other is None:
        F_other = AxisFactors(op_new, 1 - e, c)
        new.remember(key, F_other)
    F_e = AxisFactors(op_new, e, c)
    return hv_step(p, op_now, op_new, dt, tangent=tangent, factors=(F_e, F_other) if e == 0 else (F_other, F_e))


# ---- sparse assembly (stationary solves) ---------------------------------------------------------

def block_matrix(op: Operator2D, index: tuple, shape: tuple):
    """The operator A of one (population, position) block as a scipy.sparse CSC matrix of order
    n1 n2 (cell (i, j) -> row i n2 + j): the same face fluxes as ``apply``.  index: the block's
    batch index, e.g. (a, j); shape: (n1, n2)."""
    import scipy.sparse as sps
    n1, n2 = shape
    h1 = float(np.broadcast_to(op.h1, op.a1.shape[:-2] + (1, 1))[index][0, 0])
    h2 = float(np.broadcast_to(op.h2, op.a2.shape[:-2] + (1, 1))[index][0, 0])
    idx = np.arange(n1 * n2).reshape(n1, n2)
    rows, cols, vals = [], [], []

    def face(left, right, col, coef, h):
        """A flux coef * p[col] through the face between cells left -> right (divided by h)."""
        left, right, col, coef = (np.ravel(v) for v in np.broadcast_arrays(left, right, col, coef))
        keep = coef != 0
        left, right, col, coef = left[keep], right[keep], col[keep], coef[keep]
        rows.extend([left, right])
        cols.extend([col, col])
        vals.extend([-coef / h, coef / h])

    a1, b1 = op.a1[index], op.b1[index]
    a2, b2 = op.a2[index], op.b2[index]
    L1, R1 = idx[:-1, :], idx[1:, :]
    face(L1, R1, L1, a1, h1)
    face(L1, R1, R1, -b1, h1)
    L2, R2 = idx[:, :-1], idx[:, 1:]
    face(L2, R2, L2, a2, h2)
    face(L2, R2, R2, -b2, h2)
    if op.m1 is not None:
        m1 = np.broadcast_to(op.m1, op.a1.shape)[index]
        m2 = np.broadcast_to(op.m2, op.a2.shape)[index]
        c = -m1 / (4 * h2)                                  # x1-faces (i+1/2, j)
        for di in (0, 1):
            for dj, sgn in ((1, 1.0), (-1, -1.0)):
                j = np.arange(n2)[None, :] + dj
                ok = (j >= 0) & (j < n2)
                i = np.arange(n1 - 1)[:, None] + di
                col = idx[i, np.clip(j, 0, n2 - 1)]
                face(L1, R1, col, np.where(ok, sgn * c, 0.0), h1)
        c = -m2 / (4 * h1)                                  # x2-faces (i, j+1/2)
        for dj in (0, 1):
            for di, sgn in ((1, 1.0), (-1, -1.0)):
                i = np.arange(n1)[:, None] + di
                ok = (i >= 0) & (i < n1)
                j = np.arange(n2 - 1)[None, :] + dj
                col = idx[np.clip(i, 0, n1 - 1), j]
                face(L2, R2, col, np.where(ok, sgn * c, 0.0), h2)
    r = np.concatenate(rows)
    cc = np.concatenate(cols)
    v = np.concatenate(vals)
    return sps.csc_matrix((v, (r, cc)), shape=(n1 * n2, n1 * n2))


def block_derivative_matrix(op: Operator2D, index: tuple, shape: tuple):
    """dA/dlam of one block as a sparse matrix (the SG fluxes along e differentiated in V_e)."""
    import scipy.sparse as sps
    n1, n2 = shape
    idx = np.arange(n1 * n2).reshape(n1, n2)
    if op.e == 0:
        h = float(np.broadcast_to(op.h1, op.a1.shape[:-2] + (1, 1))[index][0, 0])
        L, R = idx[:-1, :].ravel(), idx[1:, :].ravel()
    else:
        h = float(np.broadcast_to(op.h2, op.a2.shape[:-2] + (1, 1))[index][0, 0])
        L, R = idx[:, :-1].ravel(), idx[:, 1:].ravel()
    da, db = op.da[index].ravel(), op.db[index].ravel()
    rows = np.concatenate([L, R, L, R])
    cols = np.concatenate([L, L, R, R])
    vals = np.concatenate([-da / h, da / h, db / h, -db / h])
    return sps.csc_matrix((vals, (rows, cols)), shape=(n1 * n2, n1 * n2))


class NullVector:
    """The normalised null vector of one block's A (the stationary density of the discrete equation)
    by a sparse LU of A with its most-weighted row replaced by the mass row (A has zero column sums,
    so that row is a combination of the others and the bordered matrix is regular when the null
    space is one-dimensional).  ``derivative(dA)``: dp solving A dp = -dA p, sum dp = 0 (same LU)."""

    def __init__(self, A, cell_area: float):
        import scipy.sparse as sps
        from scipy.sparse.linalg import splu
        n = A.shape[0]
        A = sps.csr_matrix(A)
        self.row = int(np.argmax(np.abs(A.diagonal())))
        keep = np.ones(n)
        keep[self.row] = 0.0
        mass_row = sps.csr_matrix((np.full(n, cell_area), (np.full(n, self.row), np.arange(n))), shape=(n, n))
        A = sps.diags(keep) @ A + mass_row
        self.lu = splu(A.tocsc())
        self.area = cell_area
        rhs = np.zeros(n)
        rhs[self.row] = 1.0
        self.p = self.lu.solve(rhs)

    def derivative(self, dA):
        rhs = -(dA @ self.p)
        rhs[self.row] = 0.0
        return self.lu.solve(rhs)
