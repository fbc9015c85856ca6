"""Speed of the neural-field solver (issue 5 target): ring_ei with 256 positions to T = 20 <= 0.5 s.

    python benchmarks/bench_field.py [--repeat 5]

Measured in this process (wall and CPU time) after a warm-up (imports and the first call of the generated functions
excluded): FieldSolver construction (lattice W, range basis) plus run(20) with the default step
(DEFAULT_DT, recording every step), best and median of --repeat runs, with the ratio to the target.
Baselines in the same process:
  * scipy solve_ivp (RK45, rtol 1e-8, atol 1e-10) on the same field, as the index-reduced ODE
    m' = A m + b + lambda(m, C) e with the instantaneous multiplier of the differentiated constraint
    (no projection: its constraint drift is printed), from the same shifted initial state;
  * the kinetic Fokker-Planck solver (balanced mode) on 16 positions, nx = 200, dt = 0.05.
"""
import argparse
import statistics
import time

import numpy as np

from solvers.field import DEFAULT_DT, FieldSolver
from solvers.kinetic import KineticSolver

TARGET = 0.5
NPOS, T = 256, 20.0


def field_once():
    c0 = time.process_time()
    t0 = time.perf_counter()
    fs = FieldSolver("ring_ei", npos=NPOS)
    t1 = time.perf_counter()
    res = fs.run(T)
    t2 = time.perf_counter()
    return t2 - t0, t1 - t0, res, fs, time.process_time() - c0


def ivp_baseline(fs, res):
    from scipy.integrate import solve_ivp
    P, N = fs.P, fs.N
    A, b, Q = fs.linear_coefficients(0.0)
    a, bb, q = A[..., 0, 0], b[..., 0], Q[..., 0, 0]

    def rhs(t, z):
        mean, var = z[:P * N].reshape(P, N), z[P * N:].reshape(P, N)
        lam = fs.multiplier(mean[..., None], var[..., None, None], t)
        return np.concatenate([(a * mean + bb + lam).ravel(), (2 * a * var + q).ravel()])

    z0 = np.concatenate([res.mean[0].ravel(), res.variance[0].ravel()])
    t0 = time.perf_counter()
    sol = solve_ivp(rhs, (0.0, T), z0, method="RK45", rtol=1e-8, atol=1e-10)
    el = time.perf_counter() - t0
    mT, vT = sol.y[:P * N, -1].reshape(P, N), sol.y[P * N:, -1].reshape(P, N)
    drift = float(np.abs(fs.imbalance(mT[..., None], vT[..., None, None], T)).max())
    return el, sol.nfev, drift, float(np.abs(mT - res.mean[-1]).max())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    FieldSolver("ring_ei", npos=8).run(1.0)                            # warm-up
    runs = [field_once() for _ in range(args.repeat)]
    totals = [r[0] for r in runs]
    setups = [r[1] for r in runs]
    cpus = [r[4] for r in runs]
    _, _, res, fs, _ = runs[-1]
    best, med = min(totals), statistics.median(totals)
    print(f"field solver, ring_ei, {NPOS} positions, T = {T:g}, dt = {DEFAULT_DT} ({res.info['steps']} steps, "
          f"{len(res.times)} records, {res.info['newton_iterations']} Newton iterations):")
    print(f"  best {best:.3f} s, median {med:.3f} s (of which setup best {min(setups) * 1e3:.1f} ms); "
          f"target {TARGET} s: ratio {best / TARGET:.2f} (median {med / TARGET:.2f}); process CPU time best "
          f"{min(cpus):.3f} s (all threads)")
    print(f"  max |W G + h| over the run {res.residual.max():.2e}")
    half = []
    for _ in range(3):
        t0 = time.perf_counter()
        FieldSolver("ring_ei", npos=NPOS).run(T, DEFAULT_DT / 2)
        half.append(time.perf_counter() - t0)
    print(f"  with dt = {DEFAULT_DT / 2:g} ({int(round(2 * T / DEFAULT_DT))} steps): best {min(half):.3f} s "
          f"(ratio {min(half) / TARGET:.2f})")
    el, nfev, drift, diff = ivp_baseline(fs, res)
    print(f"baseline scipy solve_ivp RK45 (rtol 1e-8) on the index-reduced field, same {NPOS} positions: {el:.3f} s "
          f"({nfev} right-hand sides; time ratio baseline / field solver {el / best:.2f}); no projection, so "
          f"its constraint drifts: max |W G + h| at T {drift:.1e}; max |m_ivp - m_field| at T {diff:.1e}")
    t0 = time.perf_counter()
    kr = KineticSolver("ring_ei", npos=16, nx=200).run(T, 0.05, record_every=1.0)
    kel = time.perf_counter() - t0
    print(f"baseline kinetic solver (16 positions, nx = 200, dt = 0.05, T = {T:g}): {kel:.3f} s "
          f"(time ratio to the field solver on 16x more positions {kel / best:.1f}); max |mean_kin - mean_field| at T on the "
          f"common positions {np.abs(kr.mean[-1] - res.mean[-1][:, ::NPOS // 16]).max():.1e}")


if __name__ == "__main__":
    main()
