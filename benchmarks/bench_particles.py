"""Speed of the particle simulator (issues 3 and 12): ring_ei, 10^5 neurons per population, dt = 0.01.

Prints, with the contenders interleaved in one run (--rounds rounds, the median of each):
  * the NumPy standard-normal bound: normals per second of Generator.standard_normal(out=) on one thread,
  * balkin's compiled step (backend='numba', all cores) and NumPy path (backend='numpy'), in
    neuron-steps per second (low-rank coupling, exponential coupling step, slopes every step, a record
    every 10 steps, dt_guard='off' so that one step of the requested dt is what is timed), with the
    ratios compiled / bound (target >= 0.5 on 2 cores) and compiled / NumPy;
  * with --brian2-python PY: Brian2 on the same SDE (benchmarks/bench_brian2.py, run by PY in its own
    process: cython and C++ standalone targets), its neuron-steps per second (target: balkin compiled
    >= 2x the faster target), and the time-averaged population means of x and Phi(x) of Brian2 and of
    balkin (same n, T, dt) with their standard errors and z-scores;
  * FFT coupling (n per population, steps / 4) and dense coupling (2000 per population): compiled
    per-neuron work against the NumPy path, the field from the coupling operator in both;
  * time per step of the compiled step against n from 10^3 to 10^7 per population and the fitted
    exponent of time ~ n^p (target: linear, p ~ 1, above the per-step overhead);
  * peak memory per neuron of a compiled run at 10^6 neurons per population (target <= 100 bytes):
    tracemalloc (NumPy's allocations) and the growth of the peak resident size of a child process
    during the run (everything: numba's allocations and scratch included);
  * the first run's compile time (empty cache) and a cached start-up, each in a fresh interpreter.
The machine may be shared: `uptime` is printed with the figures; they were measured under that load.
OpenBLAS runs on one thread here (OPENBLAS_NUM_THREADS=1, both backends): the per-step 18 x 18 matrix
exponential of the exponential coupling step costs ~0.1 ms on one thread and up to 15 ms with
OpenBLAS's threads on a loaded machine.

Run:  python benchmarks/bench_particles.py [--n 100000] [--steps 200] [--rounds 3]
          [--brian2-python /work/venv-brian2/bin/python] [--skip-scaling] [--skip-memory] [--skip-field]
"""
from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")          # before numpy is imported (see the docstring)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from solvers.particles import simulate  # noqa: E402


def rng_rate(count: int, reps: int) -> float:
    """Standard normals per second: Generator.standard_normal(out=) into float64, one thread."""
    rng = np.random.default_rng(1)
    buf = np.empty(count)
    rng.standard_normal(out=buf)
    t = time.perf_counter()
    for _ in range(reps):
        rng.standard_normal(out=buf)
    return count * reps / (time.perf_counter() - t)


def balkin_rate(n: int, steps: int, dt: float, backend: str, **kw) -> float:
    """Neuron-steps per second of simulate (ring_ei, 2 n neurons) on ``backend``."""
    t = time.perf_counter()
    simulate("ring_ei", n, steps * dt, dt, seed=0, backend=backend, dt_guard="off", record_every=10 * dt, **kw)
    return 2 * n * steps / (time.perf_counter() - t)


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime unavailable"


def child(code: str, env=None) -> dict:
    """Run ``code`` in a fresh interpreter (this tree first on the path); it prints one JSON line."""
    e = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, cwd=str(ROOT))
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def compile_times() -> tuple[dict, dict]:
    """(first run with an empty cache, a cached start-up): seconds to import numba, to load and compile
    (or load) the kernels of ring_ei, and of a tiny compiled run, each in a fresh interpreter (the step
    is loaded as an in-memory module, so its cache lives in a fresh $XDG_CACHE_HOME)."""
    code = r'''
import json, time, types
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
from solvers.compiled import CompiledModel
from solvers.particles import simulate
mod = CompiledModel("ring_ei").module
mem = types.SimpleNamespace(**{k: getattr(mod, k) for k in dir(mod) if not k.startswith("__")})
cm = CompiledModel(mem)
t2 = time.perf_counter()
simulate(cm, 1000, 0.02, 0.01, backend="numba")
t3 = time.perf_counter()
print(json.dumps({"import_numba": t1 - t0, "first_run": t3 - t2}))
'''
    with tempfile.TemporaryDirectory() as cache:
        first = child(code, {"XDG_CACHE_HOME": cache})
        cached = child(code, {"XDG_CACHE_HOME": cache})
    return first, cached


def memory_per_neuron(n: int) -> tuple[float, float]:
    """(tracemalloc peak / neuron, growth of the peak resident size (VmHWM, reset after a warm-up run)
    of a child process during the run at n, per neuron) of a compiled run."""
    tracemalloc.start()
    simulate("ring_ei", n, 0.05, 0.01, seed=0, backend="numba", dt_guard="off", record_every=0.01)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    c = ("import json\nfrom solvers.particles import simulate\n"
         "def kb(key):\n"
         "    return next(int(ln.split()[1]) for ln in open('/proc/self/status') if ln.startswith(key)) * 1024\n"
         "simulate('ring_ei', 1000, 0.05, 0.01, seed=0, backend='numba', dt_guard='off', record_every=0.01)\n"
         "open('/proc/self/clear_refs', 'w').write('5')\n"          # resets the peak (VmHWM) to the current size
         "a = kb('VmHWM')\n"
         f"simulate('ring_ei', {n}, 0.05, 0.01, seed=0, backend='numba', dt_guard='off', record_every=0.01)\n"
         "print(json.dumps({'rss': [a, kb('VmHWM')]}))")
    try:
        rss = child(c)["rss"]
    except (RuntimeError, ValueError):
        return peak / (2 * n), float("nan")
    return peak / (2 * n), (rss[1] - rss[0]) / (2 * n)


def scaling(sizes, dt: float) -> list:
    """Seconds per step of the compiled step at each n: runs of k and 3 k steps (k from a first
    estimate, so that the k steps take ~0.5 s), (t(3k) - t(k)) / 2k, so that the set-up cancels;
    returns [(n, seconds per step)]."""
    def run(n, steps):
        t = time.perf_counter()
        simulate("ring_ei", n, steps * dt, dt, seed=0, backend="numba", dt_guard="off", record_every=10 * dt)
        return time.perf_counter() - t

    out = []
    for n in sizes:
        est = (run(n, 12) - run(n, 2)) / 10
        k = int(min(2000, max(10, 0.5 / max(est, 1e-6))))
        out.append((n, max(run(n, 3 * k) - run(n, k), 1e-9) / (2 * k)))
    return out


def brian2_run(py: str, target: str, n: int, T: float, dt: float) -> dict:
    out = subprocess.run([py, str(ROOT / "benchmarks" / "bench_brian2.py"), "--n", str(n), "--T", str(T),
                          "--dt", str(dt), "--target", target], capture_output=True, text=True,
                         cwd=tempfile.gettempdir())
    if out.returncode:
        return {"target": target, "error": out.stderr[-1500:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def balkin_means(n: int, T: float, dt: float, seed: int = 1, implicit: bool = True) -> dict:
    """Time averages over [T/2, T) of the population means of x and Phi(x) (bins of equal size: the
    mean over bins) with batch-means standard errors, balkin's compiled step (implicit=False: the
    explicit coupling, Brian2's scheme)."""
    r = simulate("ring_ei", n, T, dt, seed=seed, backend="numba", record_every=5 * dt, implicit=implicit)
    sel = r.times >= T / 2 - 1e-9
    out = {}
    for name, arr in (("mean_x", r.mean), ("mean_g", r.gbar)):
        series = arr[sel].mean(axis=2).T                      # (P, nt)
        nb = max(2, min(10, series.shape[1]))
        b = np.array([c.mean(axis=1) for c in np.array_split(series, nb, axis=1)])
        out[name] = series.mean(axis=1)
        out[name + "_se"] = b.std(axis=0, ddof=1) / math.sqrt(nb)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10 ** 5, help="neurons per population (ring_ei: alpha = 1)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--dt", type=float, default=0.01)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are printed")
    ap.add_argument("--brian2-python", help="a Python with Brian2 (e.g. /work/venv-brian2/bin/python)")
    ap.add_argument("--brian2-T", type=float, default=2.0, help="T of the Brian2 comparison runs")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--skip-field", action="store_true", help="skip the FFT / dense coupling figures")
    args = ap.parse_args(argv)
    n, steps, dt = args.n, args.steps, args.dt
    import numba
    N = 2 * n
    print(f"ring_ei, n = {n} per population ({N} neurons), {steps} steps of dt = {dt}; numba {numba.__version__}, "
          f"{numba.get_num_threads()} threads, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}")
    print(f"  load: {uptime()}")
    simulate("ring_ei", 1000, 10 * dt, dt, backend="numpy")          # warm up: imports
    simulate("ring_ei", 1000, 10 * dt, dt, backend="numba")          # loads (or compiles) the kernels

    rates = {"bound": [], "numba": [], "numpy": [], "numba 1 thread": []}
    brian = {}
    threads = numba.get_num_threads()
    for rnd in range(args.rounds):
        rates["numba"].append(balkin_rate(n, steps, dt, "numba"))
        rates["bound"].append(rng_rate(N, steps))
        rates["numpy"].append(balkin_rate(n, steps, dt, "numpy"))
        numba.set_num_threads(1)
        try:
            rates["numba 1 thread"].append(balkin_rate(n, steps, dt, "numba"))
        finally:
            numba.set_num_threads(threads)
        if args.brian2_python and rnd == 0:
            for target in ("cython", "cpp_standalone"):
                brian[target] = brian2_run(args.brian2_python, target, n, args.brian2_T, dt)
        print(f"  round {rnd + 1}: " + ", ".join(f"{k} {v[-1] / 1e6:.1f}" for k, v in rates.items())
              + f" (M/s); load: {uptime().split('load average:')[-1].strip()}")
    med = {k: statistics.median(v) for k, v in rates.items()}
    bound = med["bound"]
    print(f"  NumPy standard normals (1 thread)          : {bound / 1e6:8.2f} M normals/s   (the bound)")
    for k in ("numba", "numba 1 thread", "numpy"):
        print(f"  balkin {k:35s}: {med[k] / 1e6:8.2f} M neuron-steps/s  ratio to the bound {med[k] / bound:5.2f}")
    print(f"  compiled / NumPy path: {med['numba'] / med['numpy']:.2f};  compiled / bound: "
          f"{med['numba'] / bound:.2f} (target >= 0.5)")

    if brian:
        ok = {t: r for t, r in brian.items() if "error" not in r}
        for t, r in brian.items():
            if "error" in r:
                print(f"  Brian2 {t}: FAILED: {r['error'][-400:]}")
            else:
                print(f"  Brian2 {r['brian2']} {t:15s}: {r['neuron_steps_per_s'] / 1e6:8.2f} M neuron-steps/s "
                      f"(run of T = {r['T']}, first build {r['first_build_s']:.1f} s)")
        if ok:
            best = max(r["neuron_steps_per_s"] for r in ok.values())
            print(f"  compiled / best Brian2 target: {med['numba'] / best:.2f} (target >= 2)")
            for label, implicit in (("exponential coupling step", True), ("explicit coupling", False)):
                bm = balkin_means(n, args.brian2_T, dt, implicit=implicit)
                print(f"  time averages over [T/2, T), T = {args.brian2_T}; balkin with the {label}:")
                for name in ("mean_x", "mean_g"):
                    for ia, pop in enumerate(("E", "I")):
                        line = f"    {name} {pop}: balkin {bm[name][ia]:+.5f} +- {bm[name + '_se'][ia]:.5f}"
                        for t, r in ok.items():
                            z = (bm[name][ia] - r[name][ia]) / math.hypot(bm[name + "_se"][ia], r[name + "_se"][ia])
                            line += f"; Brian2 {t} {r[name][ia]:+.5f} +- {r[name + '_se'][ia]:.5f} (z = {z:+.2f})"
                        print(line)

    if not args.skip_field:
        # FFT and dense couplings: the field from the coupling operator (NumPy FFT / BLAS), the per-neuron
        # work compiled or not; interleaved, median of the rounds
        for coupling, nf, sf in (("fft", n, max(20, steps // 4)), ("dense", 2000, steps)):
            fr = {"numba": [], "numpy": []}
            for _ in range(args.rounds):
                for be in fr:
                    fr[be].append(balkin_rate(nf, sf, dt, be, coupling=coupling))
            a, b = statistics.median(fr["numba"]), statistics.median(fr["numpy"])
            print(f"  {coupling} coupling, n = {nf} per population, {sf} steps: compiled {a / 1e6:.2f}, NumPy path "
                  f"{b / 1e6:.2f} M neuron-steps/s (compiled / NumPy {a / b:.2f})")

    if not args.skip_scaling:
        pts = scaling([10 ** 3, 10 ** 4, 10 ** 5, 10 ** 6, 10 ** 7], dt)
        for m, s in pts:
            print(f"  n = {m:>9d} per population: {s * 1e3:9.3f} ms/step  ({2 * m / s / 1e6:7.2f} M neuron-steps/s)")
        big = [(m, s) for m, s in pts if m >= 10 ** 5]
        p = np.polyfit(np.log([m for m, _ in big]), np.log([s for _, s in big]), 1)[0]
        p_all = np.polyfit(np.log([m for m, _ in pts]), np.log([s for _, s in pts]), 1)[0]
        print(f"  time per step ~ n^p: p = {p:.3f} for n >= 10^5 (p = {p_all:.3f} from 10^3, where the "
              f"per-step overhead dominates)")

    if not args.skip_memory:
        tm, rss = memory_per_neuron(10 ** 6)
        print(f"  peak memory per neuron at 10^6 per population: tracemalloc {tm:.1f} bytes, peak resident size "
              f"of a child {rss:.1f} bytes (target <= 100)")

    first, cached = compile_times()
    print(f"  first run, empty cache : import numba {first['import_numba']:.2f} s, compile + tiny run "
          f"{first['first_run']:.2f} s")
    print(f"  cached start-up        : import numba {cached['import_numba']:.2f} s, load + tiny run "
          f"{cached['first_run']:.2f} s")
    print(f"  load at the end: {uptime()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
