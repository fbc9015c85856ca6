"""Finite volumes for the 1-D Fokker–Planck equation with exponentially fitted fluxes.

Cells i = 0..N-1 of width h on [x_0 - h/2, x_{N-1} + h/2] hold averages p_i.  The flux at the face
between cells i and i+1 is the Scharfetter–Gummel flux of  J = V p - Dh dp/dx  (Dh = sigma^2 / 2):

    J_{i+1/2} = a_{i+1/2} p_i - b_{i+1/2} p_{i+1},   a = (Dh/h) B(-z),  b = (Dh/h) B(z),
    z = V h / Dh,   B(z) = z / (e^z - 1)  (Bernoulli function),

which is exact for a constant-coefficient stationary flux, reduces to upwinding where Dh -> 0 (a
wall where the noise vanishes) and to central differences where V -> 0.  Walls carry zero flux.
Since a, b >= 0 the operator  (A p)_i = (J_{i-1/2} - J_{i+1/2}) / h  has non-negative
off-diagonals and zero column sums: implicit steps keep p >= 0 and conserve mass exactly.

All arrays carry a leading batch shape (populations x positions); the last axis is x.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

_ZMAX = 600.0


def bernoulli(z):
    """B(z) = z / (e^z - 1), with B(0) = 1; accurate for all z (series near 0)."""
    z = np.clip(np.asarray(z, dtype=float), -_ZMAX, _ZMAX)
    small = np.abs(z) < 1e-4
    safe = np.where(small, 1.0, z)
    return np.where(small, 1 - z / 2 + z * z / 12, safe / np.expm1(safe))


def face_coefficients(V, Dh, h, derivatives=True):
    """(a, b) of the SG flux and, if ``derivatives``, (da/dV, db/dV) at faces (else None, None).

    V, Dh: velocity and half diffusion at the N-1 interior faces (batch shape + (N-1,)).
    Uses B(-z) = B(z) + z and B'(-z) = -1 - B'(z), so one exponential per face suffices.
    Where Dh is zero (or |z| beyond the overflow guard) the flux is the upwind flux."""
    V = np.asarray(V, float)
    Dh = np.asarray(Dh, float)
    fast = _face_coefficients_regular(V, Dh, h, derivatives)
    if fast is not None:
        return fast
    pos = Dh > 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = np.where(pos, V * h / np.where(pos, Dh, 1.0), np.sign(V) * np.inf)
    up = ~(np.abs(z) <= _ZMAX)
    zf = np.where(up, 0.0, z)
    k = Dh / h
    B = bernoulli(zf)
    a = np.where(up, np.maximum(V, 0.0), k * (B + zf))
    b = np.where(up, np.maximum(-V, 0.0), k * B)
    if not derivatives:
        return a, b, None, None
    small = np.abs(zf) < 1e-4
    safe = np.where(small, 1.0, zf)
    Bp = np.where(small, -0.5 + zf / 6, B * (1 - B) / safe - B)
    # d/dV: da/dV = -B'(-z) = 1 + B'(z), db/dV = B'(z)  (upwind: Heaviside)
    da = np.where(up, (V > 0).astype(float), 1.0 + Bp)
    db = np.where(up, -(V < 0).astype(float), Bp)
    return a, b, da, db


def _face_coefficients_regular(V, Dh, h, derivatives):
    """The common case of face_coefficients with few masks: Dh > 0 everywhere and |z| <= _ZMAX
    (one expm1 per face; the few faces with |z| < 1e-4 get the series); None when the case does
    not apply."""
    if not np.all(Dh > 0):
        return None
    z = V * (h / Dh)
    az = np.abs(z)
    if az.max() > _ZMAX:
        return None
    small = az < 1e-4
    anysmall = bool(small.any())
    zs = np.where(small, 1.0, z) if anysmall else z
    B = zs / np.expm1(zs)
    if anysmall:
        zz = z[small]
        B[small] = 1 - zz / 2 + zz * zz / 12
    k = Dh / h
    a, b = k * (B + z), k * B
    if not derivatives:
        return a, b, None, None
    Bp = (B * (1 - B) - B * zs) / zs
    if anysmall:
        Bp[small] = -0.5 + z[small] / 6
    return a, b, 1.0 + Bp, Bp


def operator_bands(a, b, h):
    """Tridiagonal bands of A (sub, diag, super), each of shape batch + (N,): sub[i] multiplies
    p_{i-1} in row i (sub[0] unused), super[i] multiplies p_{i+1} (super[-1] unused)."""
    shape = a.shape[:-1] + (a.shape[-1] + 1,)
    sub = np.zeros(shape)
    sup = np.zeros(shape)
    diag = np.zeros(shape)
    sub[..., 1:] = a / h
    sup[..., :-1] = b / h
    diag[..., 1:] -= b / h
    diag[..., :-1] -= a / h
    return sub, diag, sup


def apply_bands(sub, diag, sup, p):
    """A p for tridiagonal bands (batch over leading axes; p may carry a trailing RHS axis)."""
    if p.ndim == sub.ndim:
        out = diag * p
        out[..., 1:] += sub[..., 1:] * p[..., :-1]
        out[..., :-1] += sup[..., :-1] * p[..., 1:]
        return out
    # trailing RHS axis
    out = diag[..., None] * p
    out[..., 1:, :] += sub[..., 1:, None] * p[..., :-1, :]
    out[..., :-1, :] += sup[..., :-1, None] * p[..., 1:, :]
    return out


def flux_derivative_apply(da, db, h, p):
    """(dA/dV) p for a uniform unit change of V at every face: the face flux changes by
    da p_i - db p_{i+1}; the cell rate by the difference of face fluxes over h."""
    dJ = da * p[..., :-1] - db * p[..., 1:]
    out = np.zeros_like(p)
    out[..., :-1] -= dJ / h
    out[..., 1:] += dJ / h
    return out


def factor_shifted(sub, diag, sup, c):
    """LU factors of the stacked tridiagonal matrix I - c A (LAPACK gttrf), for solve_factored."""
    N = diag.shape[-1]
    nb = int(np.prod(diag.shape[:-1], dtype=int))
    d = (1.0 - c * diag).reshape(-1)
    dl = np.zeros((nb, N))
    du = np.zeros((nb, N))
    dl[:, :-1] = (-c * sub).reshape(nb, N)[:, 1:]
    du[:, :-1] = (-c * sup).reshape(nb, N)[:, :-1]
    dl, d_, du, du2, ipiv, info = lapack.dgttrf(dl.reshape(-1)[:-1], d, du.reshape(-1)[:-1])
    if info != 0:
        raise FloatingPointError(f"tridiagonal factorisation failed (LAPACK dgttrf info = {info})")
    return dl, d_, du, du2, ipiv, diag.shape


def solve_factored(factors, rhs):
    """Solve with factors from factor_shifted; rhs: batch + (N,) or batch + (N, k)."""
    dl, d, du, du2, ipiv, shape = factors
    vec = rhs.ndim == len(shape)
    b = rhs.reshape(-1, 1) if vec else rhs.reshape(int(np.prod(shape)), -1)
    x, info = lapack.dgttrs(dl, d, du, du2, ipiv, np.asarray(b, dtype=float, order="F"))
    if info != 0:
        raise FloatingPointError(f"tridiagonal solve failed (LAPACK dgttrs info = {info})")
    return x.reshape(rhs.shape)
