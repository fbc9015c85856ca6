"""balkin's 2-D Fokker–Planck step against py-pde on the same transient at equal L1 accuracy (issue 11:
target >= 10x faster, measured in one run).

    pip install py-pde          # (in the bench extra: pip install -e ".[bench]")
    python benchmarks/bench_pypde.py [--sizes 24,32,48,64,96,128] [--peer-sizes 32,64,128] [--scipy]

Problem: the 2-D Ornstein–Uhlenbeck process dX = -B X dt + S dW with a non-symmetric drift and a full
diffusion matrix (D = S S^T / 2 has D12 = 0.3), B = [[1, 0.4], [-0.3, 0.7]], S = [[1, 0], [0.6, 0.8]],
started from N((1, -0.5), diag(0.3, 0.5)), to T = 1.  The density stays Gaussian: mean e^{-BT} m0,
covariance from C' = -B C - C B^T + S S^T (solved to 1e-12), so the L1 error
sum |p_ij - p_exact(x_i, y_j)| h^2 on [-L, L]^2 (L = 5.5; the exact density is below 1e-8 of its maximum
outside) is known for both codes.  Both use the same cell-centred n x n grid; p is compared at the
cell centres.

* balkin: solvers.fp2d.step (backend numba; one block, so one thread), Scharfetter–Gummel fluxes
  per axis, central mixed flux, Hundsdorfer–Verwer ADI, zero-flux walls; per grid the fewest steps
  (from n/8 doubling) whose L1 error is within 2 % of the error with twice the steps (the time
  error does not count for the grid);
* py-pde: PDE({"p": "-d_dx(v1 p) - d_dy(v2 p) + D11 d2_dx2(p) + 2 D12 d_dx(d_dy(p)) + D22 d2_dy2(p)"}),
  p = 0 on the boundary, numba backend, its adaptive Runge–Kutta solver ("runge-kutta",
  adaptive=True; its stepper compiled once per grid and tolerance and reused, so that the timed calls
  hold no compilation) with the loosest tolerance (from 1e-3, /10) whose error is within 2 % of the
  error with the tolerance / 10; with --scipy also scipy's solve_ivp BDF with the 9-point Jacobian sparsity
  (the faster of the two is used).  py-pde's numba compilation (per grid) is timed separately and
  excluded from the head to head.

Each (grid, setting) is timed best of 3 (warm).  Equal accuracy: wall time against L1 error is
interpolated log-log through each code's grids; the ratio py-pde / balkin is reported at the errors
that both codes reach.  The load of the machine (uptime) is printed: other jobs disturb the timings.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.integrate import solve_ivp
from scipy.linalg import expm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solvers import fp2d  # noqa: E402

B = np.array([[1.0, 0.4], [-0.3, 0.7]])
S = np.array([[1.0, 0.0], [0.6, 0.8]])
D = S @ S.T / 2
M0, C0 = np.array([1.0, -0.5]), np.diag([0.3, 0.5])
T, L = 1.0, 5.5
SLACK = 1.02
REPEATS = 3


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def exact_moments():
    m = expm(-B * T) @ M0
    with np.errstate(under="ignore"):
        C = solve_ivp(lambda t, c: (-B @ c.reshape(2, 2) - c.reshape(2, 2) @ B.T + S @ S.T).ravel(), (0, T),
                      C0.ravel(), rtol=1e-12, atol=1e-14).y[:, -1].reshape(2, 2)
    return m, C


def gaussian(X1, X2, m, C):
    d = np.stack([X1 - m[0], X2 - m[1]], -1)
    q = np.einsum("...i,ij,...j", d, np.linalg.inv(C), d)
    return np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(np.linalg.det(C)))


class Problem:
    """The grid of n x n cells on [-L, L]^2, the initial density (normalised) and the L1 error."""

    def __init__(self, n):
        self.n, self.h = n, 2 * L / n
        self.x = -L + self.h * (np.arange(n) + 0.5)
        self.X1, self.X2 = np.meshgrid(self.x, self.x, indexing="ij")
        p0 = gaussian(self.X1, self.X2, M0, C0)
        self.p0 = p0 / (p0.sum() * self.h ** 2)
        self.exact = gaussian(self.X1, self.X2, *exact_moments())

    def error(self, p):
        return float(np.abs(p - self.exact).sum() * self.h ** 2)


def best_of(fn, n=REPEATS):
    best, out = np.inf, None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# ---- balkin -----------------------------------------------------------------------------------------

def balkin_solver(pr: Problem):
    n, h = pr.n, pr.h
    f = -L + h * np.arange(1, n)                                # interior faces
    X1f, X2c = np.meshgrid(f, pr.x, indexing="ij")
    X1c, X2f = np.meshgrid(pr.x, f, indexing="ij")
    V1 = -(B[0, 0] * X1f + B[0, 1] * X2c)
    V2 = -(B[1, 0] * X1c + B[1, 1] * X2f)
    full = lambda v, like: np.full((1, 1) + like.shape, v)      # noqa: E731
    coef = fp2d.Coefficients(V1[None, None], V2[None, None], full(D[0, 0], V1), full(D[1, 1], V2),
                             full(D[0, 1], V1), full(D[0, 1], V2), h, h, 0)
    lam = np.zeros((1, 1))

    def run(steps):
        p, dt = pr.p0[None, None], T / steps
        for _ in range(steps):
            p, _ = fp2d.step(p, coef, coef, lam, dt, tangent=False, backend="numba")
        return p[0, 0]
    return run


def bench_balkin(sizes):
    rows = []
    for n in sizes:
        pr = Problem(n)
        run = balkin_solver(pr)
        steps = max(4, n // 8)
        e = pr.error(run(steps))
        while True:
            e2 = pr.error(run(2 * steps))
            if e <= SLACK * e2 or steps >= 4 * n:
                break
            steps, e = 2 * steps, e2
        wall, p = best_of(lambda: run(steps))
        mass = p.sum() * pr.h ** 2
        rows.append((n, e, wall, f"{steps} HV steps", mass))
        print(f"  balkin  n = {n:4d}: {steps:4d} steps, L1 {e:.3e} (2x steps {e2:.3e}), {wall * 1e3:9.2f} ms, "
              f"mass {mass:.14f}")
    return rows


# ---- py-pde -----------------------------------------------------------------------------------------

def bench_pypde(sizes, with_scipy):
    import pde
    warnings.filterwarnings("ignore", module="pde")
    v1 = f"(-({B[0, 0]:g}*x + {B[0, 1]:g}*y))"
    v2 = f"(-({B[1, 0]:g}*x + {B[1, 1]:g}*y))"
    rhs = (f"-d_dx({v1}*p) - d_dy({v2}*p) + {D[0, 0]:.12g}*d2_dx2(p) + {2 * D[0, 1]:.12g}*d_dx(d_dy(p)) "
           f"+ {D[1, 1]:.12g}*d2_dy2(p)")
    print(f"  py-pde {pde.__version__}: PDE({{'p': '{rhs}'}}), bc p = 0")
    rows = []
    for n in sizes:
        pr = Problem(n)
        grid = pde.CartesianGrid([[-L, L], [-L, L]], [n, n])
        assert np.allclose(grid.axes_coords[0], pr.x)
        eq = pde.PDE({"p": rhs}, bc={"value": 0})

        steppers = {}

        def solve(kind, tol):
            state = pde.ScalarField(grid, pr.p0.copy())
            if kind == "rk":                # the compiled stepper is made once per tolerance and reused
                if tol not in steppers:
                    solver = pde.solvers.RungeKuttaSolver(eq, backend="numba", adaptive=True, tolerance=tol)
                    steppers[tol] = solver.make_stepper(state, dt=1e-3)
                t_end = steppers[tol](state, 0.0, T)
                assert abs(t_end - T) < 1e-9, t_end
                return state.data
            else:
                import scipy.sparse as sps
                N = n * n
                idx = np.arange(N).reshape(n, n)
                rows_, cols_ = [], []
                for di in (-1, 0, 1):
                    for dj in (-1, 0, 1):
                        i0, j0 = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
                        ok = (i0 + di >= 0) & (i0 + di < n) & (j0 + dj >= 0) & (j0 + dj < n)
                        rows_.append(idx[i0[ok], j0[ok]])
                        cols_.append(idx[i0[ok] + di, j0[ok] + dj])
                spars = sps.csr_matrix((np.ones(sum(r.size for r in rows_)), (np.concatenate(rows_),
                                                                                np.concatenate(cols_))), shape=(N, N))
                out = eq.solve(state, T, solver="scipy", method="BDF", rtol=tol, atol=1e-9, jac_sparsity=spars,
                               tracker=None, backend="numba")
                return out.data

        kinds = ["rk"] + (["scipy"] if with_scipy else [])
        best = None
        for kind in kinds:
            t0 = time.perf_counter()
            tol = 1e-3
            e = pr.error(solve(kind, tol))
            first = time.perf_counter() - t0
            while True:
                e2 = pr.error(solve(kind, tol / 10))
                if e <= SLACK * e2 or tol <= 1e-9:
                    break
                tol, e = tol / 10, e2
            wall, p = best_of(lambda: solve(kind, tol))
            mass = p.sum() * pr.h ** 2
            label = f"{'runge-kutta adaptive' if kind == 'rk' else 'scipy BDF + sparsity'} tol {tol:g}"
            print(f"  py-pde  n = {n:4d}: {label}, L1 {e:.3e} (tol/10 {e2:.3e}), {wall * 1e3:9.2f} ms, "
                  f"mass {mass:.10f}; first call (numba JIT of the stepper) {first:.1f} s")
            if best is None or wall < best[2]:
                best = (n, e, wall, label, mass)
        rows.append(best)
    return rows


def interp_time(rows, err):
    """Wall time at L1 error ``err`` by log-log interpolation through the grids (None outside)."""
    e = np.log([r[1] for r in rows])
    t = np.log([r[2] for r in rows])
    order = np.argsort(e)
    e, t = e[order], t[order]
    le = np.log(err)
    if not (e[0] <= le <= e[-1]):
        return None
    return float(np.exp(np.interp(le, e, t)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="24,32,48,64,96,128")
    ap.add_argument("--peer-sizes", default=None, help="py-pde's grids (default: --sizes; each compiles anew)")
    ap.add_argument("--scipy", action="store_true", help="also py-pde's scipy BDF solver (slow to set up)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    try:
        import pde  # noqa: F401
    except ImportError:
        print("py-pde is not installed (pip install py-pde, or .[bench])")
        return 1
    print(uptime())
    print(f"2-D OU, B = {B.tolist()}, D = S S^T/2 = {D.tolist()}, from N({M0.tolist()}, {np.diag(C0).tolist()}) "
          f"to T = {T}, on [-{L}, {L}]^2")
    Problem(sizes[0]).p0                                         # noqa: B018
    t0 = time.perf_counter()
    balkin_solver(Problem(16))(2)
    print(f"balkin first call (numba compile or cache load): {time.perf_counter() - t0:.2f} s")
    ours = bench_balkin(sizes)
    print(uptime())
    peer = bench_pypde([int(s) for s in args.peer_sizes.split(",")] if args.peer_sizes else sizes, args.scipy)
    print(uptime())
    print("equal accuracy (log-log interpolation of wall time against L1 error):")
    ratios = []
    for n, e, t_ours, _, _ in ours:
        t_peer = interp_time(peer, e)
        if t_peer is None:
            print(f"  L1 {e:.3e} (balkin n = {n}): outside py-pde's range of errors")
            continue
        ratios.append(t_peer / t_ours)
        print(f"  L1 {e:.3e}: balkin {t_ours * 1e3:9.2f} ms (n = {n}), py-pde {t_peer * 1e3:9.2f} ms "
              f"(interpolated), ratio {t_peer / t_ours:6.1f}")
    for n, e, t_peer, label, _ in peer:
        t_o = interp_time(ours, e)
        if t_o is not None:
            ratios.append(t_peer / t_o)
            print(f"  L1 {e:.3e}: py-pde {t_peer * 1e3:9.2f} ms (n = {n}, {label}), balkin {t_o * 1e3:9.2f} ms "
                  f"(interpolated), ratio {t_peer / t_o:6.1f}")
    if ratios:
        print(f"ratio py-pde / balkin at equal L1 accuracy: min {min(ratios):.1f}, median {np.median(ratios):.1f}, "
              f"max {max(ratios):.1f} (target >= 10: {'MET' if min(ratios) >= 10 else 'NOT MET at every error'})")
    print(uptime())
    return 0


if __name__ == "__main__":
    sys.exit(main())
