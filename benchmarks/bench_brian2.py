"""Brian2 on the SDE of ring_ei (issue 12): the peer that the compiled particle step is measured against.

The same network as balkin's models/ring_ei.py (time in units of tau = 1 s, so balkin's dt = 0.01 is
10 ms here): per population a in {E, I}, n neurons at theta_j = 2 pi j / n,

    dx_j = [ -x_j + sqrt(n) r_a(theta_j) ] dt + s dW_j,
    r_a(theta) = sum_b (+-J_ab) [ m0_b + eps_b (cos theta mc_b + sin theta ms_b) ] + H_a (1 + delta cos theta),
    m0_b = mean_k Phi(x_k),  mc_b = mean_k cos(theta_k) Phi(x_k),  ms_b = mean_k sin(theta_k) Phi(x_k),

(w_ab = +-J_ab (1 + eps_b cos(theta - phi)) written out in its three Fourier atoms, alpha = 1), Phi the
standard normal CDF (0.5 erfc(-x / sqrt 2)), Euler-Maruyama with the coupling of the start of the step
(balkin's default exponential coupling step differs from it by O(dt) in the fast modes only).  The
moments are Brian2 summed variables of synapses from every neuron to a one-neuron hub, read back by
linked variables: O(n) per step, as balkin's low-rank coupling.  Initial states x ~ N(0, 1).

Prints one JSON line per target: neuron-steps per second of the run (runtime targets: the time spent in
Brian2's code objects, from its profiling; standalone: the run time the compiled binary measures
itself; in both, the time of a run of T minus that of a run of T/5, so that set-up cancels), and the time averages over
[T/2, T) of the population means of x and Phi(x) with batch-means standard errors (10 batches).

Run with a Python that has Brian2 (Brian2 2.9 does not import with numpy 2.4; see benchmarks/README.md):
    /work/venv-brian2/bin/python benchmarks/bench_brian2.py --n 100000 --T 2 --target cython
    /work/venv-brian2/bin/python benchmarks/bench_brian2.py --n 100000 --T 2 --target cpp_standalone
benchmarks/bench_particles.py runs it (--brian2-python) interleaved with balkin's backends.
"""
from __future__ import annotations

import argparse
import json
import math
import tempfile
import time

import numpy as np

P = {"H_E": 0.1, "H_I": 0.06, "J_EE": 1.0, "J_EI": 2.0, "J_IE": 1.0, "J_II": 1.8, "delta": 0.2,
     "eps_E": 0.6, "eps_I": 0.9, "s": 1.0}


def build_and_run(n: int, T: float, dt: float, target: str, seed: int, outdir: str | None):
    """Build the network, run it for T; returns (elapsed run seconds, times, mean x (2, nt), mean Phi (2, nt))."""
    import brian2 as b2
    from brian2 import Function, NeuronGroup, Synapses, StateMonitor, check_units, implementation, ms, second

    b2.start_scope()
    if target == "cpp_standalone":
        b2.set_device("cpp_standalone", directory=outdir, build_on_run=False)
    else:
        b2.set_device("runtime")
        b2.prefs.codegen.target = target
    b2.defaultclock.dt = dt * second
    b2.seed(seed)

    @implementation("cpp", """
    double Phi(double x) { return 0.5 * erfc(-x * 0.7071067811865476); }
    """)
    @implementation("cython", """
    cdef extern from "math.h":
        double erfc(double)
    cdef double Phi(double x):
        return 0.5 * erfc(-x * 0.7071067811865476)
    """)
    @check_units(x=1, result=1)
    def Phi(x):
        from scipy.special import ndtr
        return ndtr(x)

    sq = math.sqrt(n)
    tau = 1 * second
    groups = {}
    for a in ("E", "I"):
        eqs = f"""
        dx/dt = (-x + {sq!r} * r) / tau + s * xi / sqrt(tau) : 1
        r = J_{a}E * (m0E + eps_E * (cos(theta) * mcE + sin(theta) * msE))
            - J_{a}I * (m0I + eps_I * (cos(theta) * mcI + sin(theta) * msI))
            + H_{a} * (1 + delta * cos(theta)) : 1
        g = Phi(x) : 1
        theta : 1 (constant)
        m0E : 1 (linked)
        mcE : 1 (linked)
        msE : 1 (linked)
        m0I : 1 (linked)
        mcI : 1 (linked)
        msI : 1 (linked)
        """
        G = NeuronGroup(n, eqs, method="euler", namespace={**P, "tau": tau, "Phi": Phi}, name=f"pop_{a}")
        G.theta = 2 * np.pi * np.arange(n) / n
        G.x = np.random.default_rng(seed + (a == "I")).standard_normal(n)
        groups[a] = G
    hub = NeuronGroup(1, "\n".join(f"{v}{a} : 1" for a in "EI" for v in ("m0", "mc", "ms")), name="hub")
    syn = []
    for a, G in groups.items():
        S = Synapses(G, hub, f"""
        m0{a}_post = g_pre / {n} : 1 (summed)
        mc{a}_post = cos(theta_pre) * g_pre / {n} : 1 (summed)
        ms{a}_post = sin(theta_pre) * g_pre / {n} : 1 (summed)
        """, name=f"moments_{a}")
        S.connect()
        syn.append(S)
    for G in groups.values():
        for a in "EI":
            for v in ("m0", "mc", "ms"):
                setattr(G, f"{v}{a}", b2.linked_var(hub, f"{v}{a}"))
    # every neuron, every 5 steps: the population means of x and Phi(x)
    mons = {a: StateMonitor(G, ["x", "g"], record=True, dt=5 * dt * second) for a, G in groups.items()}
    net = b2.Network(*groups.values(), hub, *syn, *mons.values())
    t0 = time.perf_counter()
    net.run(T * second, profile=(target != "cpp_standalone"))
    if target == "cpp_standalone":
        b2.device.build(directory=outdir, compile=True, run=True, debug=False)
    el = time.perf_counter() - t0
    if target == "cpp_standalone" and getattr(b2.device, "_last_run_time", None):
        el = float(b2.device._last_run_time)           # the simulation alone, measured by the binary
    elif target != "cpp_standalone":
        el = float(sum(float(v / second) for _, v in net.profiling_info))   # time in the code objects
    times = np.asarray(mons["E"].t / second)
    mx = np.array([np.asarray(mons[a].x).mean(axis=0) for a in "EI"])
    mg = np.array([np.asarray(mons[a].g).mean(axis=0) for a in "EI"])
    if target == "cpp_standalone":
        b2.device.reinit()
        b2.device.activate()
    return el, times, mx, mg


def batch_means(series, nbatch=10):
    nbatch = max(2, min(nbatch, series.shape[-1]))
    b = np.array([c.mean(axis=-1) for c in np.array_split(series, nbatch, axis=-1)])
    return series.mean(axis=-1), b.std(axis=0, ddof=1) / math.sqrt(nbatch)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--T", type=float, default=2.0)
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--target", default="cython", choices=["cython", "numpy", "cpp_standalone"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    import brian2
    with tempfile.TemporaryDirectory() as d0, tempfile.TemporaryDirectory() as d1, \
            tempfile.TemporaryDirectory() as d2:
        t = time.perf_counter()
        build_and_run(min(args.n, 1000), 5 * args.dt, args.dt, args.target, args.seed, d0)   # compile (cached)
        first = time.perf_counter() - t
        short, *_ = build_and_run(args.n, args.T / 5, args.dt, args.target, args.seed, d1)
        full, times, mx, mg = build_and_run(args.n, args.T, args.dt, args.target, args.seed, d2)
    steps = round(args.T / args.dt) - round(args.T / 5 / args.dt)
    rate = 2 * args.n * steps / max(full - short, 1e-9)
    sel = times >= args.T / 2 - 1e-9
    mxm, mxs = batch_means(mx[:, sel])
    mgm, mgs = batch_means(mg[:, sel])
    print(json.dumps({"brian2": brian2.__version__, "target": args.target, "n": args.n, "T": args.T, "dt": args.dt,
                      "neuron_steps_per_s": rate, "seconds_T": full, "seconds_T_over_5": short, "first_build_s": first,
                      "mean_x": mxm.tolist(), "mean_x_se": mxs.tolist(),
                      "mean_g": mgm.tolist(), "mean_g_se": mgs.tolist()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
