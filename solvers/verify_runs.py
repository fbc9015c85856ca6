"""verify's particle runs as independent tasks (solvers.ensemble): one per (size n, seed), serially or
on Dask.  The maths is solvers.verify's (module docstring there): each seed is simulated at dt and at
2 dt with coupled Brownian paths (verify.CoupledNoise), window averages cut into batches,
Richardson-extrapolated per batch, and dt is halved for a size when dt or 2 dt cannot resolve its
fast modes (StepTooCoarse).

Order of the tasks: the first seed of every size runs first (in parallel over sizes), and the step it
settled on is where the other seeds of that size start, as in a serial loop over seeds; a later seed
may still halve its own step, and the size's reported dt is the smallest used.  A task is a pure
function of (model, n, seed, settings, starting dt): the same bits serially and on any worker.
"""
from __future__ import annotations

import time

import numpy as np

from .ensemble import SERIAL, ModelRef, run_tasks

__all__ = ["particle_run", "particle_runs"]


def particle_run(task) -> dict:
    """One seed at size n (dt and 2 dt); task (model, n, seed, settings, nbins, dt, noise class):
    {'batches', 'bias', 'final', 'positions', 'bin_centres',
    'series' (seed 1 only), 'dt' (the step used), 'messages', 'seconds'}."""
    from .particles import StepTooCoarse, simulate
    ref, n, seed, s, nbins, dt_n, CoupledNoise = task
    cm = ref.load() if isinstance(ref, ModelRef) else ref
    t1 = time.perf_counter()
    messages = []
    while True:
        rec = max(4 * dt_n, (s.T - s.t0) / (s.nbatch * 40))
        rec = round(rec / (2 * dt_n)) * 2 * dt_n
        try:
            batches, dtbias = {}, {}
            for factor in (1, 2):
                # the guard refuses rather than refines, so that both runs keep the coupled paths
                res = simulate(cm, n, s.T, dt_n * factor, seed=seed, nbins=nbins if cm.pos_dim else None,
                               record_every=rec, noise=CoupledNoise(seed, cm.populations, dt_n, factor),
                               dt_guard="refuse")
                sel = res.times >= s.t0 - 1e-12
                for q in ("mean", "gbar", "lam"):
                    series = getattr(res, q)[sel]
                    bm = np.array([b.mean(axis=0) for b in np.array_split(series, s.nbatch)])
                    batches[q] = 2 * bm if factor == 1 else batches[q] - bm
                    dtbias[q] = bm if factor == 1 else dtbias[q] - bm      # m(dt) - m(2 dt) per batch
                if factor == 1:
                    final, positions, centres = res.final_states, res.positions, res.bin_centres
                    run_series = (res.times, res.lam) if seed == 1 else None
            break
        except StepTooCoarse as exc:
            # the coarse run (2 dt) must resolve the fast modes too: halve dt for this size
            new = dt_n / 2
            while 2 * new > exc.dt_accurate * (1 if exc.dt == 2 * dt_n else 2):
                new /= 2
            if s.T / new > 2e6:
                raise
            messages.append(f"[verify {cm.name}] n = {n}: dt = {dt_n:g} (and 2 dt) cannot resolve the fast modes "
                            f"(largest accurate step {exc.dt_accurate:.3g} at t = {exc.t:.3g}); using dt = {new:g}")
            dt_n = new
    return {"batches": batches, "bias": dtbias, "final": final, "positions": positions, "bin_centres": centres,
            "series": run_series, "dt": dt_n, "messages": messages, "seconds": time.perf_counter() - t1}


def particle_runs(cm, sizes, s, nbins, noise, *, scheduler=SERIAL, progress=None):
    """All runs of verify: ({n: [run dicts in seed order]}, {n: smallest dt used}).  noise: the class
    of coupled Brownian increments (solvers.verify.CoupledNoise); progress: None or a callable taking
    one line (verify's format)."""
    def _progress(msg, report):          # verify's convention: None, or a callable taking one line
        if report:
            report(msg)
    ref = cm if scheduler in (None, SERIAL) else ModelRef.of(cm)
    t0 = time.perf_counter()
    total_work = float(s.seeds * sum(sizes))
    state = {"k": 0, "work": 0.0, "seconds": 0.0}

    def report(runs):
        # runs come back a batch at a time: the rate is the reported runs' own work per second of run
        # (the elapsed time of a batch would charge all its runs to the first one reported)
        for (n, seed), r in runs:
            for m in r["messages"]:
                _progress(m, progress)
            state["k"] += 1
            state["work"] += n
            state["seconds"] += r["seconds"]
            rate = state["work"] / max(state["seconds"], 1e-9)
            remaining = (total_work - state["work"]) / rate
            _progress(f"[verify {cm.name}] run {state['k']}/{len(sizes) * s.seeds}: n = {n}, seed {seed} (dt and "
                      f"2 dt): {r['seconds']:.1f} s (elapsed {time.perf_counter() - t0:.0f} s, expected remaining "
                      f"~{remaining:.0f} s + kinetic solves)", progress)
    first = run_tasks(particle_run, [(ref, n, 1, s, nbins, s.dt, noise) for n in sizes], scheduler=scheduler,
                      label="verify-first-seeds")
    report([((n, 1), r) for n, r in zip(sizes, first)])
    dt0 = {n: r["dt"] for n, r in zip(sizes, first)}
    rest_keys = [(n, seed) for n in sizes for seed in range(2, s.seeds + 1)]
    rest = run_tasks(particle_run, [(ref, n, seed, s, nbins, dt0[n], noise) for n, seed in rest_keys],
                     scheduler=scheduler, label="verify-seeds")
    report(list(zip(rest_keys, rest)))
    results = {n: [r] for n, r in zip(sizes, first)}
    for (n, _), r in zip(rest_keys, rest):
        results[n].append(r)
    return results, {n: min(r["dt"] for r in results[n]) for n in sizes}
