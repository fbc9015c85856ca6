"""numba kernels of the 2-D Fokker–Planck step (the fast path of solvers.fp2d.step; fp2d's NumPy code
is the reference it is tested against, tests/test_fp2d_kernels.py).

Same maths as solvers.fp2d, written once here for the compiled path: the Scharfetter–Gummel /
central / upwind face coefficients (``_face``), the matrix-free axis, mixed and multiplier-derivative
operators (``_acc_axis``, ``_acc_mixed``), the tridiagonal solves of (I - c A_k) (``_factor``,
``_solve``: the Thomas algorithm, without pivoting) and the Hundsdorfer–Verwer stages with their
derivative in the multiplier (``_hv_block``), fused per (population, position) block.  The blocks
are shared out over numba.get_num_threads() Python threads (``hv_blocks`` releases the GIL; threads
rather than prange: the parallel compilation of the fused step took ~60 s, this takes ~11 s, once,
then numba's disk cache).  The block's working set (about 25 arrays of n1 n2 doubles, 3 MB at 128^2)
stays in the core's L2/L3 cache for the whole step, where the NumPy reference streams every stage
through memory.  error_model="numpy" (no zero-division checks) lets the loops vectorise.
Measured on 2 x 32 blocks of 128^2 cells: ~50 ns of CPU per cell-step for the step with its
derivative (one thread; the kinetic solver's whole step with the NumPy reference ~335 ns).  The positivity safeguard of solvers.kinetic2d is compiled
here too (``clip_blocks``).

What is not recomputed: the coefficients of the axis without the multiplier and the Thomas factors of
its implicit solve depend on the time only (once per model time, once for an autonomous model; the
caller caches them, fp2d.Coefficients).  The multiplier enters the velocity of the input axis e only,
so each step computes the SG coefficients of that axis in the kernel (``_coefficients``: a
branch-free vectorised pass with the series of the Bernoulli function for |z| < 0.5, the bulk of the
faces on a resolving grid, then exp only on the rows that need it) and factors its tridiagonal
matrices.

The Thomas algorithm without pivoting is stable here: on SG and upwind faces the matrix I - c A_k is
an M-matrix with zero column sums of A_k (column diagonally dominant); on central faces (no diffusion
along the axis) the product of the sub-diagonal entry of row i and the super-diagonal entry of row
i - 1 is -(c V / 2h)^2 <= 0, so every pivot is at least the diagonal entry: no growth.  The
reference uses LAPACK's gttrf (partial pivoting); the two agree to rounding (at most 4e-13 of the
maximum in the tests, on rough random densities with central faces; 3e-15 on the kinetic benchmark).

Importing this module imports numba (solvers.fp2d imports it only when the fast path is used).
"""
from __future__ import annotations

import math

from .particle_numba import numba_missing

_WHY = numba_missing()              # sets OMP_WAIT_POLICY=PASSIVE before numba starts its threads
if _WHY is not None:                # pragma: no cover - numba is a dependency
    raise ImportError(_WHY)

import numba  # noqa: E402
import numpy as np  # noqa: E402
from numba import njit  # noqa: E402

from .fp1d import _ZMAX  # noqa: E402

THETA_HV = 0.5 + math.sqrt(3.0) / 6.0     # as solvers.fp2d.THETA_HV
_ROWS = 16                                # lines along axis 1 swept together (_factor, _solve)
_NSCRATCH = 13                            # block-sized work arrays per thread (see _hv_block)


#: B(z) + z/2 = (z/2) coth(z/2) = 1 + sum_n C_n z^(2n), C_n = B_2n / (2n)! (Bernoulli numbers), n <= 8:
#: the truncation is below 1e-19 for |z| < _SERIES
_C = (1.0 / 12, -1.0 / 720, 1.0 / 30240, -1.0 / 1209600, 1.0 / 47900160, -691.0 / 1307674368000,
      1.0 / 74724249600, -3617.0 / 10670622842880000)
_SERIES = 0.5


@njit(cache=True, inline="always", error_model="numpy")
def _bernoulli(z):
    """(B(z), B'(z)) of B(z) = z / (e^z - 1): the even series of B(z) + z/2 for |z| < _SERIES (no
    libm call; the bulk of the faces of a resolving grid), else z / (exp(z) - 1) (exp(z) - 1 loses
    nothing there: |e^z - 1| > 0.39) and B' = (B (1 - B) - B z) / z (as solvers.fp1d)."""
    if abs(z) < _SERIES:
        u = z * z
        f = 1.0 + u * (_C[0] + u * (_C[1] + u * (_C[2] + u * (_C[3] + u * (_C[4] + u * (_C[5] + u * (
            _C[6] + u * _C[7])))))))
        fp = _C[0] + u * (2 * _C[1] + u * (3 * _C[2] + u * (4 * _C[3] + u * (5 * _C[4] + u * (6 * _C[5] + u * (
            7 * _C[6] + u * 8 * _C[7]))))))
        return f - 0.5 * z, -0.5 + 2.0 * z * fp
    B = z / (math.exp(z) - 1.0)
    return B, (B * (1.0 - B) - B * z) / z


@njit(cache=True, inline="always", error_model="numpy")
def _face(V, D, h, central):
    """(a, b, da/dV, db/dV) of one face (solvers.fp1d.face_coefficients, fp2d.axis_coefficients):
    SG where D > 0 and |z| = |V h / D| <= _ZMAX; the central flux (V/2, -V/2) where D == 0 and
    ``central`` (an interior face under degenerate='central'); the upwind flux otherwise."""
    if D > 0.0:
        z = V * (h / D)
        if abs(z) <= _ZMAX:
            B, Bp = _bernoulli(z)
            k = D / h
            return k * (B + z), k * B, 1.0 + Bp, Bp
    elif central and D == 0.0:
        return 0.5 * V, -0.5 * V, 0.5, -0.5
    return max(V, 0.0), max(-V, 0.0), (1.0 if V > 0 else 0.0), (-1.0 if V < 0 else 0.0)


@njit(cache=True, error_model="numpy")
def _coefficients(V, D, h, lam, central, axis, a, b, da, db):
    """The coefficients of the faces normal to ``axis`` (arrays of the faces' shape) for the velocity
    V + lam; central faces only away from the first and last face of the axis.  First pass: every
    face as an SG face with |z| < _SERIES (branch-free, vectorised); second pass, only when some face
    is not one (D <= 0, or |z| >= _SERIES): those faces by _face."""
    f1, f2 = V.shape
    rh = 1.0 / h
    bad = np.zeros(f1, np.int64)                 # per row i: faces that are not regular SG faces
    for i in range(f1):
        nb = 0
        for j in range(f2):
            z = (V[i, j] + lam) * (h / D[i, j])
            u = z * z
            f = 1.0 + u * (_C[0] + u * (_C[1] + u * (_C[2] + u * (_C[3] + u * (_C[4] + u * (_C[5] + u * (
                _C[6] + u * _C[7])))))))
            fp = _C[0] + u * (2 * _C[1] + u * (3 * _C[2] + u * (4 * _C[3] + u * (5 * _C[4] + u * (6 * _C[5] + u * (
                7 * _C[6] + u * 8 * _C[7]))))))
            B = f - 0.5 * z
            Bp = -0.5 + 2.0 * z * fp
            k = D[i, j] * rh
            a[i, j] = k * (B + z)
            b[i, j] = k * B
            da[i, j] = 1.0 + Bp
            db[i, j] = Bp
            nb += not (abs(z) < _SERIES)
        bad[i] = nb
    nf = f1 if axis == 0 else f2
    for i in range(f1):
        if bad[i] == 0:
            continue
        for j in range(f2):
            if not (D[i, j] > 0.0 and abs((V[i, j] + lam) * (h / D[i, j])) < _SERIES):
                f = i if axis == 0 else j
                a[i, j], b[i, j], da[i, j], db[i, j] = _face(V[i, j] + lam, D[i, j], h,
                                                             central and 0 < f < nf - 1)


@njit(cache=True, error_model="numpy")
def _acc_axis(axis, a, b, s, y, out):
    """out += s (A_axis y): A_axis y = (J_{i-1/2} - J_{i+1/2}) along the axis with J = a y_i - b y_{i+1}
    (s carries 1/h; with (da, db) for (a, b) this is the multiplier derivative dA/dlam y)."""
    n1, n2 = y.shape
    if axis == 0:
        for i in range(n1 - 1):
            for j in range(n2):
                J = s * (a[i, j] * y[i, j] - b[i, j] * y[i + 1, j])
                out[i, j] -= J
                out[i + 1, j] += J
    else:
        for i in range(n1):
            for j in range(n2 - 1):
                J = s * (a[i, j] * y[i, j] - b[i, j] * y[i, j + 1])
                out[i, j] -= J
                out[i, j + 1] += J


@njit(cache=True, error_model="numpy")
def _acc_mixed(m1, m2, rh1, rh2, s, y, out):
    """out += s (A12 y), the central mixed flux of solvers.fp2d.apply_mixed: at the x1-face (i+1/2, j)
    J = -m1 (y[i, j+1] + y[i+1, j+1] - y[i, j-1] - y[i+1, j-1]) / (4 h2), at the x2-face (i, j+1/2)
    the same with the axes exchanged; cells outside the grid count as 0."""
    n1, n2 = y.shape
    f = -0.25 * s * rh1 * rh2
    for i in range(n1 - 1):
        for j in range(n2):
            d = 0.0
            if j + 1 < n2:
                d += y[i, j + 1] + y[i + 1, j + 1]
            if j > 0:
                d -= y[i, j - 1] + y[i + 1, j - 1]
            J = f * m1[i, j] * d
            out[i, j] -= J
            out[i + 1, j] += J
    for i in range(n1):
        for j in range(n2 - 1):
            d = 0.0
            if i + 1 < n1:
                d += y[i + 1, j] + y[i + 1, j + 1]
            if i > 0:
                d -= y[i - 1, j] + y[i - 1, j + 1]
            J = f * m2[i, j] * d
            out[i, j] -= J
            out[i, j + 1] += J


@njit(cache=True, error_model="numpy")
def _factor(a, b, k, axis, w, g):
    """Thomas factors of M = I - c A_axis on every line along ``axis`` (k = c / h): M has sub-diagonal
    -k a_{i-1}, diagonal 1 + k (b_{i-1} + a_i), super-diagonal -k b_i (fp1d.operator_bands); g_i the
    inverse pivot, w_i = -k a_{i-1} g_{i-1} the elimination multiplier (cell-shaped arrays).  Along
    axis 1 the lines are taken _ROWS at a time, the rows innermost (independent recurrences)."""
    n1, n2 = w.shape
    if axis == 0:
        for j in range(n2):
            g[0, j] = 1.0 / (1.0 + k * a[0, j])
            w[0, j] = 0.0
        for i in range(1, n1):
            last = i == n1 - 1
            for j in range(n2):
                d = 1.0 + k * (b[i - 1, j] + (0.0 if last else a[i, j]))
                w[i, j] = -k * a[i - 1, j] * g[i - 1, j]
                g[i, j] = 1.0 / (d + w[i, j] * k * b[i - 1, j])
        return
    for i0 in range(0, n1, _ROWS):
        i1 = min(i0 + _ROWS, n1)
        for i in range(i0, i1):
            g[i, 0] = 1.0 / (1.0 + k * a[i, 0])
            w[i, 0] = 0.0
        for j in range(1, n2):
            last = j == n2 - 1
            for i in range(i0, i1):
                d = 1.0 + k * (b[i, j - 1] + (0.0 if last else a[i, j]))
                w[i, j] = -k * a[i, j - 1] * g[i, j - 1]
                g[i, j] = 1.0 / (d + w[i, j] * k * b[i, j - 1])


@njit(cache=True, error_model="numpy")
def _solve(axis, w, g, b, k, r):
    """r <- M^-1 r along ``axis`` with the factors of _factor (forward elimination, back substitution
    x_i = g_i (y_i + k b_i x_{i+1}))."""
    n1, n2 = r.shape
    if axis == 0:
        for i in range(1, n1):
            for j in range(n2):
                r[i, j] -= w[i, j] * r[i - 1, j]
        for j in range(n2):
            r[n1 - 1, j] *= g[n1 - 1, j]
        for i in range(n1 - 2, -1, -1):
            for j in range(n2):
                r[i, j] = g[i, j] * (r[i, j] + k * b[i, j] * r[i + 1, j])
        return
    for i0 in range(0, n1, _ROWS):
        i1 = min(i0 + _ROWS, n1)
        for j in range(1, n2):
            for i in range(i0, i1):
                r[i, j] -= w[i, j] * r[i, j - 1]
        for i in range(i0, i1):
            r[i, n2 - 1] *= g[i, n2 - 1]
        for j in range(n2 - 2, -1, -1):
            for i in range(i0, i1):
                r[i, j] = g[i, j] * (r[i, j] + k * b[i, j] * r[i, j + 1])


@njit(cache=True, error_model="numpy")
def _comb(out, add, c1, x1, c2, x2, c3, x3, c4, x4):
    """out = (out if add else 0) + c1 x1 + c2 x2 + c3 x3 + c4 x4 (an unused term: c = 0 and any
    finite array)."""
    n1, n2 = out.shape
    if add:
        for i in range(n1):
            for j in range(n2):
                out[i, j] += c1 * x1[i, j] + c2 * x2[i, j] + c3 * x3[i, j] + c4 * x4[i, j]
    else:
        for i in range(n1):
            for j in range(n2):
                out[i, j] = c1 * x1[i, j] + c2 * x2[i, j] + c3 * x3[i, j] + c4 * x4[i, j]


@njit(cache=True, error_model="numpy")
def _apply_all(a0, b0, a1, b1, m1, m2, mixed, rh1, rh2, y, out0, out1, outm):
    """out0 = A_0 y, out1 = A_1 y, outm = A12 y (0 unless mixed)."""
    out0[:] = 0.0
    out1[:] = 0.0
    outm[:] = 0.0
    _acc_axis(0, a0, b0, rh1, y, out0)
    _acc_axis(1, a1, b1, rh2, y, out1)
    if mixed:
        _acc_mixed(m1, m2, rh1, rh2, 1.0, y, outm)


@njit(cache=True, error_model="numpy")
def _implicit(k, e, tangent, da, db, rh, c, w, g, b, y, z):
    """The implicit part of one stage along axis k: y <- (I - c A_k)^-1 y and, with the tangent,
    z <- (I - c A_k)^-1 (z + [k == e] c dA/dlam y_new) ((w, g) the factors, b the SG b of the axis's
    faces at t + dt; (da, db) those of the e-faces)."""
    _solve(k, w, g, b, c * rh, y)
    if tangent:
        if k == e:
            _acc_axis(k, da, db, c * rh, y, z)
        _solve(k, w, g, b, c * rh, z)


@njit(cache=True, error_model="numpy")
def _hv_block(p, lam, dt, e, central, tangent, same, mixed, rh1, rh2, h_e,
              VeN, DeN, aoN, boN, m1N, m2N, VeW, DeW, aoW, boW, m1W, m2W, fw, fg, y, z, S):
    """One Hundsdorfer–Verwer step of one block (solvers.fp2d.hv_step: the same stages), value into y
    and tangent into z.  N: the operator at t (applied to p); W: at t + dt (``same``: W is N).  Axis
    e: the input axis (its SG coefficients computed here for V_e + lam); the other axis: coefficients
    (ao, bo) and the factors (fw, fg) of I - theta dt A_o^W given.  S: scratch (_NSCRATCH, n1, n2)."""
    c = THETA_HV * dt
    hd = 0.5 * dt
    aeN, beN, daN, dbN = VeN.copy(), VeN.copy(), VeN.copy(), VeN.copy()
    _coefficients(VeN, DeN, h_e, lam, central, e, aeN, beN, daN, dbN)
    if same:
        aeW, beW, daW, dbW = aeN, beN, daN, dbN
    else:
        aeW, beW, daW, dbW = VeW.copy(), VeW.copy(), VeW.copy(), VeW.copy()
        _coefficients(VeW, DeW, h_e, lam, central, e, aeW, beW, daW, dbW)
    rhe = rh1 if e == 0 else rh2
    ew, eg = S[0], S[1]
    _factor(aeW, beW, c * rhe, e, ew, eg)
    if e == 0:
        a0N, b0N, a1N, b1N, a0W, b0W, a1W, b1W = aeN, beN, aoN, boN, aeW, beW, aoW, boW
        w0, g0, w1, g1 = ew, eg, fw, fg
    else:
        a0N, b0N, a1N, b1N, a0W, b0W, a1W, b1W = aoN, boN, aeN, beN, aoW, boW, aeW, beW
        w0, g0, w1, g1 = fw, fg, ew, eg
    T0, T1, TM, AP, dA, Y, dY, V0, V1, VM, dU = S[2], S[3], S[4], S[5], S[6], S[7], S[8], S[9], S[10], S[11], S[12]
    # Y0 = p + dt A p;  (I - c A_k) Yk = Y(k-1) - c A_k p,  k = 0, 1
    _apply_all(a0N, b0N, a1N, b1N, m1N, m2N, mixed, rh1, rh2, p, T0, T1, TM)
    _comb(AP, False, 1.0, T0, 1.0, T1, 1.0, TM, 0.0, T0)
    _comb(Y, False, 1.0, p, dt, AP, -c, T0, 0.0, T0)
    if tangent:
        dA[:] = 0.0
        _acc_axis(e, daN, dbN, rhe, p, dA)                       # dA/dlam p
        _comb(dY, False, dt - (c if e == 0 else 0.0), dA, 0.0, dA, 0.0, dA, 0.0, dA)
    _implicit(0, e, tangent, daW, dbW, rh1, c, w0, g0, b0W, Y, dY)
    _comb(Y, True, -c, T1, 0.0, T1, 0.0, T1, 0.0, T1)
    if tangent and e == 1:
        _comb(dY, True, -c, dA, 0.0, dA, 0.0, dA, 0.0, dA)
    _implicit(1, e, tangent, daW, dbW, rh2, c, w1, g1, b1W, Y, dY)         # Y2, dY2
    # Z0 = Y0 + dt/2 (A Y2 - A p);  (I - c A_k) Zk = Z(k-1) - c A_k Y2
    _apply_all(a0W, b0W, a1W, b1W, m1W, m2W, mixed, rh1, rh2, Y, T0, T1, TM)
    _comb(y, False, 1.0, p, hd, AP, hd - c, T0, hd, T1)
    _comb(y, True, hd, TM, 0.0, TM, 0.0, TM, 0.0, TM)
    if tangent:
        dU[:] = 0.0
        _acc_axis(e, daW, dbW, rhe, Y, dU)                       # dA/dlam Y2
        _apply_all(a0W, b0W, a1W, b1W, m1W, m2W, mixed, rh1, rh2, dY, V0, V1, VM)
        _comb(z, False, hd, dA, hd - c, V0, hd, V1, hd, VM)
        _comb(z, True, hd - (c if e == 0 else 0.0), dU, 0.0, dU, 0.0, dU, 0.0, dU)
    _implicit(0, e, tangent, daW, dbW, rh1, c, w0, g0, b0W, y, z)
    _comb(y, True, -c, T1, 0.0, T1, 0.0, T1, 0.0, T1)
    if tangent:
        _comb(z, True, -c, V1, -(c if e == 1 else 0.0), dU, 0.0, dU, 0.0, dU)
    _implicit(1, e, tangent, daW, dbW, rh2, c, w1, g1, b1W, y, z)


@njit(nogil=True, cache=True, error_model="numpy")
def hv_blocks(first, stride, p, lam, dt, e, central, tangent, same, mixed, rh1, rh2, h_e,
              VeN, DeN, aoN, boN, m1N, m2N, VeW, DeW, aoW, boW, m1W, m2W, fw, fg, y, z):
    """The Hundsdorfer–Verwer step (_hv_block) of the blocks first, first + stride, ... of p
    (B, n1, n2), block b with the multiplier lam[b]; one scratch for all (released GIL: the caller
    runs one call per thread).  Per-block inputs carry the leading axis B: rh1, rh2 = 1/h, h_e = h
    along e; Ve, De at the e-faces; ao, bo at the faces of the other axis; m1, m2 the mixed
    coefficients (ignored unless ``mixed``); fw, fg the factors of the other axis at t + dt
    (factor_blocks)."""
    B, n1, n2 = p.shape
    S = np.empty((_NSCRATCH, n1, n2))
    for b in range(first, B, stride):
        _hv_block(p[b], lam[b], dt, e, central, tangent, same, mixed, rh1[b], rh2[b], h_e[b],
                  VeN[b], DeN[b], aoN[b], boN[b], m1N[b], m2N[b], VeW[b], DeW[b], aoW[b], boW[b],
                  m1W[b], m2W[b], fw[b], fg[b], y[b], z[b], S)


@njit(nogil=True, cache=True, error_model="numpy")
def factor_blocks(a, b, rh, c, axis, w, g):
    """Thomas factors (w, g), each (B, n1, n2), of I - c A_axis for every block (_factor)."""
    for k in range(a.shape[0]):
        _factor(a[k], b[k], c * rh[k], axis, w[k], g[k])


@njit(nogil=True, cache=True, error_model="numpy")
def clip_blocks(first, stride, p, tol, removed):
    """The positivity safeguard of the kinetic solver (solvers.kinetic2d._clip, its NumPy reference) on
    the blocks first, first + stride, ... of p (B, n1, n2), in place: a block whose negative values
    are all at most tol x its maximum has them set to 0 and is rescaled to its former sum;
    removed[b] = minus the sum of the zeroed values (0: no negatives), NaN when a larger negative value
    is present (the block is then left as it is).  Sums are taken per row, then over the rows."""
    B, n1, n2 = p.shape
    for b in range(first, B, stride):
        q = p[b]
        mn = np.inf
        mx = -np.inf
        for i in range(n1):
            for j in range(n2):
                mn = min(mn, q[i, j])
                mx = max(mx, q[i, j])
        removed[b] = 0.0
        if mn >= 0.0:
            continue
        if mn < -tol * mx:
            removed[b] = np.nan
            continue
        tot = 0.0
        pos = 0.0
        neg = 0.0
        for i in range(n1):
            rt = 0.0
            rp = 0.0
            rn = 0.0
            for j in range(n2):
                v = q[i, j]
                rt += v
                if v < 0.0:
                    rn += v
                    q[i, j] = 0.0
                else:
                    rp += v
            tot += rt
            pos += rp
            neg += rn
        s = tot / pos
        for i in range(n1):
            for j in range(n2):
                q[i, j] *= s
        removed[b] = -neg


def clip(p, tol):
    """clip_blocks on every block of p (batch + (n1, n2)), threaded: (p, removed (batch))."""
    if not (p.flags.c_contiguous and p.flags.writeable and p.dtype == np.float64):
        raise ValueError("clip needs a writeable C-contiguous float64 array")
    P = p.reshape((-1,) + p.shape[-2:])
    removed = np.empty(P.shape[0])
    _run_threads(lambda first, stride: clip_blocks(first, stride, P, tol, removed),
                 min(numba.get_num_threads(), P.shape[0]))
    return p, removed.reshape(p.shape[:-2])


# ---- the NumPy side: block layout and the call ----------------------------------------------------

def _blocks(x, batch, tail):
    """x broadcast to batch + tail, as a writeable C-contiguous (B,) + tail array (one signature of the
    kernels: numba compiles read-only arrays separately)."""
    x = np.broadcast_to(np.asarray(x, float), batch + tail)
    return np.require(x, float, ["C", "W"]).reshape((-1,) + tail)


def layout(coef, batch: tuple, shape: tuple, mixed: bool) -> dict:
    """The arrays of fp2d.Coefficients ``coef`` in the kernels' block layout for the batch shape
    ``batch`` and cells ``shape`` (cached on coef); mixed: the mixed coefficients are needed (zeros when
    coef has none)."""
    key = ("blocks", batch, shape, mixed)
    if key in coef.cache:
        return coef.cache[key]
    n1, n2 = shape
    e, o = coef.e, 1 - coef.e
    faces = ((n1 - 1, n2), (n1, n2 - 1))
    ao, bo = coef.other()
    hs = [_blocks(h, batch, (1, 1)).reshape(-1) for h in coef.h]
    out = {"Ve": _blocks(coef.V[e], batch, faces[e]), "De": _blocks(coef.D[e], batch, faces[e]),
           "ao": _blocks(ao, batch, faces[o]), "bo": _blocks(bo, batch, faces[o]),
           "rh1": 1.0 / hs[0], "rh2": 1.0 / hs[1], "he": hs[e]}
    if mixed:
        out["m1"] = _blocks(coef.D12[0] if coef.mixed else 0.0, batch, faces[0])
        out["m2"] = _blocks(coef.D12[1] if coef.mixed else 0.0, batch, faces[1])
    else:
        out["m1"] = out["m2"] = np.zeros((out["Ve"].shape[0], 1, 1))
    coef.cache[key] = out
    return out


_POOL = {}


def _run_threads(fn, n):
    """fn(first, stride) for first = 0 .. n-1 on n threads (the kernels release the GIL)."""
    if n <= 1:
        fn(0, 1)
        return
    if n not in _POOL:
        from concurrent.futures import ThreadPoolExecutor
        _POOL[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="balkin-fp2d")
    for f in [_POOL[n].submit(fn, k, n) for k in range(n)]:
        f.result()


def step(p, now, new, lam, dt: float, tangent: bool = True):
    """fp2d.step on the kernels: (y, z) of the batch shape of p.  The blocks are shared out over
    numba.get_num_threads() threads (NUMBA_NUM_THREADS; default: the cores)."""
    batch, shape = p.shape[:-2], p.shape[-2:]
    mixed = now.mixed or new.mixed
    N = layout(now, batch, shape, mixed)
    W = N if new is now else layout(new, batch, shape, mixed)
    c = THETA_HV * dt
    o = 1 - now.e
    key = ("thomas", batch, c)
    F = new.cache.get(key)
    if F is None:
        F = tuple(np.empty(W["ao"].shape[:1] + shape) for _ in range(2))
        factor_blocks(W["ao"], W["bo"], W["rh1"] if o == 0 else W["rh2"], c, o, *F)
        new.remember(key, F)
    P = _blocks(p, batch, shape)
    L = _blocks(lam, batch, ()).reshape(-1)
    y = np.empty_like(P)
    z = np.empty_like(P)
    args = (P, L, float(dt), now.e, now.degenerate == "central", bool(tangent), new is now, mixed,
            N["rh1"], N["rh2"], N["he"], N["Ve"], N["De"], N["ao"], N["bo"], N["m1"], N["m2"],
            W["Ve"], W["De"], W["ao"], W["bo"], W["m1"], W["m2"], *F, y, z)
    _run_threads(lambda first, stride: hv_blocks(first, stride, *args), min(numba.get_num_threads(), P.shape[0]))
    return y.reshape(p.shape), (z.reshape(p.shape) if tangent else None)
