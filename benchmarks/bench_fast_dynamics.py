"""Accuracy of the particle step on the fast O(sqrt n) dynamics (issue 9): the Hopf model.

Model: point E-I network, W = [[1, -2], [1, -1.3]], f = -x, sigma = 1, g = Phi, h = -W (0.45, 0.2)
(balanced activities 0.45, 0.2); the limit's W D has eigenvalues 0.013 +- 0.227 i, so the finite-n
state is unstable above n ~ 6000 (DESIGN.md §4b).  Prints, at n = 10^4 and 4 10^4:

  * the prediction: the finite-n fast eigenvalue nu = eig(<f'> + sqrt(n) W D) at the finite-n state;
  * particles: growth rate and angular frequency of the linear response to a shift of the E states
    (two runs with the same noise and initial states, their difference fitted by
    e^{r t}(a cos w t + b sin w t)), mean +- standard error over seeds, at dt = 0.005 (guard on) and
    at dt = 0.02 (|dt nu| ~ 0.9, guard off);
  * the largest accurate dt the guard allows at the stationary state, and what it does at dt = 0.01;
  * the std of gbar_E over t in [2, 6] at dt = 0.01 and dt = 0.0025 (the linearly implicit step this
    replaced gave 0.0075 at dt = 0.01 against 0.23 at dt = 0.001).

Run:  python benchmarks/bench_fast_dynamics.py [--seeds 6]
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import sympy as sp
from scipy.optimize import curve_fit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from derive import Model, Phi, Point, Population  # noqa: E402
from derive.codegen import compile_module  # noqa: E402
from solvers.compiled import CompiledModel  # noqa: E402
from solvers.particles import StepTooCoarse, simulate  # noqa: E402
from solvers.stationary import solve_finite_n  # noqa: E402


def hopf(w_II=-1.3) -> CompiledModel:
    x = sp.Symbol("x")
    W = np.array([[1.0, -2.0], [1.0, w_II]])
    h = -W @ np.array([0.45, 0.2])
    pops = [Population(p, drift=-x, diffusion=1, gain=Phi(x), drive=float(hh), fraction=1)
            for p, hh in zip("EI", h)]
    return CompiledModel(compile_module(Model(
        name="hopf_ei", state=[x], space=Point(), populations=pops,
        kernel={("E", "E"): 1.0, ("E", "I"): -2.0, ("I", "E"): 1.0, ("I", "I"): w_II}, parameters={})))


def response(cm, n, T, dt, seed, lam, delta, guard):
    def init(kick):
        def f(rng, pop, m, n_a, pos):
            return lam[pop] + math.sqrt(0.5) * rng.standard_normal((m, n_a)) + (delta if kick and pop == "E" else 0)
        return f
    a, b = (simulate(cm, n, T, dt, seed=seed, init=init(k), record_every=dt, dt_guard=guard) for k in (0, 1))
    y = b.mean[:, 0, 0] - a.mean[:, 0, 0]
    t = a.times
    cr = np.count_nonzero(np.diff(np.sign(y)) != 0)
    p, _ = curve_fit(lambda tt, r, w, c, d: np.exp(r * tt) * (c * np.cos(w * tt) + d * np.sin(w * tt)),
                     t, y, p0=[0.0, math.pi * cr / T, y[0], 0.0], maxfev=20000)
    return p[0], abs(p[1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    args = ap.parse_args(argv)
    cm = hopf()
    print("Hopf model, W = [[1, -2], [1, -1.3]]: finite-n fast eigenvalue vs particles (linear response)")
    for n, T in ((10_000, 3.0), (40_000, 0.9)):
        st = solve_finite_n(cm, n, check_stability=False)
        nu = st.finite_n_eigenvalues[np.argmax(st.finite_n_eigenvalues.imag)]
        lam = {p: float(st.lam[i, 0]) for i, p in enumerate(cm.populations)}
        print(f"n = {n}: predicted nu = {nu.real:.4f} + {nu.imag:.3f} i")
        for dt, guard in ((0.005, "refuse"), (0.02, "off")):
            rs = np.array([response(cm, n, T, dt, s, lam, 0.01, guard) for s in range(1, args.seeds + 1)])
            se = rs.std(axis=0, ddof=1) / math.sqrt(len(rs))
            print(f"  particles dt = {dt:<6g} (|dt nu| = {dt * abs(nu):.2f}, guard {guard:6s}): growth "
                  f"{rs[:, 0].mean():.4f} +- {se[0]:.4f} ({(rs[:, 0].mean() - nu.real) / se[0]:+.1f} SE), "
                  f"frequency {rs[:, 1].mean():.3f} +- {se[1]:.3f} ({rs[:, 1].mean() / nu.imag - 1:+.2%})")
        init = {p: lam[p] + math.sqrt(0.5) * np.random.default_rng(0).standard_normal((1, n)) for p in lam}
        try:
            simulate(cm, n, 0.1, 0.1, seed=1, init=init, dt_guard="refuse")
            print("  dt = 0.1 accepted")
        except StepTooCoarse as exc:
            print(f"  guard at the stationary state: largest accurate dt = {exc.dt_accurate:.4g} "
                  f"(exponential step, |dt mu| <= 0.49)")
        r = simulate(cm, n, 0.1, 0.01, seed=1, init=init)
        print(f"  guard at dt = 0.01: dt used {r.dt:g}, largest |dt mu| {r.step_audit['max_z']:.3f}, "
              f"refinements {[(round(a, 3), b, round(c, 5)) for a, b, c, _ in r.step_audit['refinements']]}")
    print("std of gbar_E over t in [2, 6] at n = 10^4 (3 seeds):")
    for dt in (0.01, 0.0025):
        s = [simulate(cm, 10_000, 6.0, dt, seed=k, record_every=0.01) for k in (1, 2, 3)]
        v = [r.gbar[r.times >= 2, 0, 0].std() for r in s]
        print(f"  dt = {dt:<6g}: {np.mean(v):.4f} +- {np.std(v, ddof=1) / math.sqrt(3):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
