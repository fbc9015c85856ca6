"""Speed of the particle simulator (issue 3, "Speed"): ring_ei with n = 10^5 neurons per population.

Prints
  * neuron-steps per second of solvers.particles.simulate (default settings: low-rank coupling,
    exponential coupling step, gain slopes every step; also jacobian_every=10 and the explicit
    coupling), timed with dt_guard='off' so that the cost of one step of the requested dt is measured;
    the guard's verdict on that dt (the largest accurate dt at n) is printed beside it,
  * NumPy's own throughput for drawing the same number of standard normals in the same process,
    and the ratio (target >= 0.5: a step should cost at most twice its random numbers),
  * a plain hand-written NumPy Euler–Maruyama loop of ring_ei (explicit, low rank written out by
    hand, Phi by scipy.special.ndtr) as a baseline, with its ratio,
  * the cost of the model's own generated gain and gain slope per neuron (what a step cannot avoid),
  * peak traced memory per neuron of a simulate call (tracemalloc; target <= 200 bytes).

Every timing is the best of --repeats runs (the machine may be shared).

Run:  python benchmarks/bench_particles.py [--n 100000] [--steps 200] [--repeats 3]
"""
from __future__ import annotations

import argparse
import math
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solvers.compiled import CompiledModel  # noqa: E402
from solvers.particles import simulate  # noqa: E402


def rng_throughput(count: int, reps: int) -> float:
    """Standard normals per second drawn with Generator.standard_normal(out=...) into float64
    (``reps`` draws of ``count``, best of 3)."""
    rng = np.random.default_rng(1)
    buf = np.empty(count)
    rng.standard_normal(out=buf)
    best = math.inf
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(reps):
            rng.standard_normal(out=buf)
        best = min(best, time.perf_counter() - t)
    return count * reps / best


def baseline_ring_ei(n: int, steps: int, dt: float, p: dict, seed: int = 0) -> float:
    """Hand-written explicit Euler–Maruyama loop of ring_ei; returns the elapsed seconds."""
    from scipy.special import ndtr
    rng = np.random.default_rng(seed)
    th = 2 * np.pi * np.arange(n) / n
    c, s = np.cos(th), np.sin(th)
    sq = math.sqrt(n)
    xE, xI = rng.standard_normal(n), rng.standard_normal(n)
    hE = p["H_E"] * (1 + p["delta"] * c)
    hI = p["H_I"] * (1 + p["delta"] * c)
    noise = np.empty(n)
    t0 = time.perf_counter()
    for _ in range(steps):
        gE, gI = ndtr(xE), ndtr(xI)
        mE = np.array([gE.mean(), gE @ c / n, gE @ s / n])
        mI = np.array([gI.mean(), gI @ c / n, gI @ s / n])
        # r_a = sum_b alpha_b J_ab (m0 + eps_b (cos th mc + sin th ms)) + h_a
        rE0 = p["J_EE"] * mE[0] - p["J_EI"] * mI[0]
        rEc = p["J_EE"] * p["eps_E"] * mE[1] - p["J_EI"] * p["eps_I"] * mI[1]
        rEs = p["J_EE"] * p["eps_E"] * mE[2] - p["J_EI"] * p["eps_I"] * mI[2]
        rI0 = p["J_IE"] * mE[0] - p["J_II"] * mI[0]
        rIc = p["J_IE"] * p["eps_E"] * mE[1] - p["J_II"] * p["eps_I"] * mI[1]
        rIs = p["J_IE"] * p["eps_E"] * mE[2] - p["J_II"] * p["eps_I"] * mI[2]
        for x, h, r0, rc, rs in ((xE, hE, rE0, rEc, rEs), (xI, hI, rI0, rIc, rIs)):
            drift = sq * (r0 + rc * c + rs * s + h) - x
            rng.standard_normal(out=noise)
            noise *= p["s"] * math.sqrt(dt)
            drift *= dt
            x += drift
            x += noise
    return time.perf_counter() - t0


def timed_simulate(n: int, steps: int, dt: float, **kw) -> float:
    t = time.perf_counter()
    simulate("ring_ei", n, steps * dt, dt, seed=0, **kw)
    return time.perf_counter() - t


def best_of(fn, repeats: int) -> float:
    """Shortest of ``repeats`` timings (robust against other processes on a shared machine)."""
    return min(fn() for _ in range(repeats))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10 ** 5, help="neurons per population (ring_ei: alpha = 1)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=3, help="timings are the best of this many")
    args = ap.parse_args(argv)
    n, steps, dt, rep = args.n, args.steps, args.dt, args.repeats
    cm = CompiledModel("ring_ei")
    N = 2 * n                                     # neurons (two populations)
    simulate("ring_ei", 1000, 10 * dt, dt)        # warm up: imports, scipy.special

    print(f"ring_ei, n = {n} per population ({N} neurons), {steps} steps of dt = {dt}, best of {rep}")
    r_rng = max(rng_throughput(N, steps) for _ in range(rep))
    print(f"  numpy standard_normal (float64, out=)  : {r_rng / 1e6:8.2f} M normals/s")

    # the generated gain and slope per neuron (unavoidable work of a step)
    x = np.random.default_rng(0).standard_normal(n)
    th = 2 * np.pi * np.arange(n) / n
    for kind in ("gain", "gain_slope"):
        f = cm.fn(kind, "E")
        f(x, th, 0.0, **cm.params)

        def once(f=f):
            t = time.perf_counter()
            for _ in range(20):
                f(x, th, 0.0, **cm.params)
            return time.perf_counter() - t
        per = best_of(once, rep) / (20 * n)
        print(f"  generated {kind + '_E':14s} per neuron     : {per * 1e9:8.1f} ns "
              f"(normal: {1e9 / r_rng:.1f} ns)")

    rec = {"record_every": 10 * dt}             # production setting: a record every 10 steps
    rec = {"dt_guard": "off", **rec}
    rows = [("simulate (exponential, slopes every step)", rec),
            ("simulate (same, a record every step)", {"dt_guard": "off"}),
            ("simulate (exponential, jacobian_every=10)", {"jacobian_every": 10, **rec}),
            ("simulate (explicit coupling)", {"implicit": False, **rec})]
    from solvers.particles import StepTooCoarse
    for label, kw in (("exponential", {}), ("explicit", {"implicit": False})):
        try:
            r = simulate("ring_ei", n, 2 * dt, dt, seed=0, dt_guard="refuse", **kw)
            print(f"  step audit ({label:11s}) at dt = {dt:g}: accurate (max |dt sqrt(n) mu| = "
                  f"{r.step_audit['max_z']:.3g} <= {r.step_audit['z_accurate']:.3g})")
        except StepTooCoarse as exc:
            print(f"  step audit ({label:11s}) at dt = {dt:g}: NOT accurate, largest accurate dt "
                  f"{exc.dt_accurate:.3g} (the default dt_guard='refine' would use it)")
    for label, kw in rows:
        el = best_of(lambda: timed_simulate(n, steps, dt, **kw), rep)
        rate = N * steps / el
        print(f"  {label:40s}: {rate / 1e6:8.2f} M neuron-steps/s  ratio to RNG {rate / r_rng:5.2f}  "
              f"({el / steps * 1e3:.1f} ms/step)")
    el = best_of(lambda: baseline_ring_ei(n, steps, dt, cm.params), rep)
    rate = N * steps / el
    print(f"  {'hand-written NumPy EM loop (baseline)':40s}: {rate / 1e6:8.2f} M neuron-steps/s  "
          f"ratio to RNG {rate / r_rng:5.2f}  ({el / steps * 1e3:.1f} ms/step)")

    for label, kw in (("exponential", {}), ("explicit", {"implicit": False})):
        tracemalloc.start()
        simulate("ring_ei", n, 20 * dt, dt, seed=0, dt_guard="off", **kw)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  peak traced memory per neuron ({label:8s})  : {peak / N:8.1f} bytes  (target <= 200)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
