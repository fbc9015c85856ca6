"""Benchmark: a 41 x 41 sweep of ring_ei over (eps_E, eps_I) (stationary state + fast and slow spectra
at every point, solvers.sweep), serially in this process and on a Dask LocalCluster of 2 single-threaded
worker processes.  Prints the per-point cost serially, the wall time on 2 workers (target <= 60 s), the
speed-up, and the time with the boundaries located; the results must be identical bit for bit.

    PYTHONPATH=$PWD python3 benchmarks/bench_sweep.py [--count 41] [--workers 2] [--serial-rows R]

BLAS runs single-threaded here (as in the Dask workers), so that the serial baseline uses one core.
--serial-rows R times R rows of the grid serially instead of all (the per-point cost is the same;
the serial total is then extrapolated and labelled so).  The machine's load (uptime) is printed:
on a shared machine the figures depend on it.
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from solvers.sweep import sweep  # noqa: E402


def load() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "uptime not available"


def burn(k):
    """A pure-Python control task (no NumPy, no memory traffic): how much parallelism the machine gives."""
    x = 0
    for i in range(3_000_000):
        x += i * i
    return x


def control(client, workers):
    """Speed-up of `workers` control tasks on the cluster over the same run serially: ~workers on an idle
    machine; less when other processes hold the cores (then no sweep can do better)."""
    t = time.perf_counter()
    for k in range(2 * workers):
        burn(k)
    ts = time.perf_counter() - t
    t = time.perf_counter()
    client.gather(client.map(burn, range(2 * workers), pure=False))
    return ts / (time.perf_counter() - t)


def comparable(res):
    rec = res.to_dict()
    rec.pop("scheduler")
    rec.pop("timings")
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=41)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--serial-rows", type=int, default=None)
    ap.add_argument("--boundaries", action="store_true", help="also time the sweep with the boundaries located")
    a = ap.parse_args()
    from distributed import Client, LocalCluster
    axes = [f"eps_E=0.4:1.0:{a.count}", f"eps_I=0.4:1.0:{a.count}"]
    npts = a.count * a.count
    print(f"load before: {load()}")
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    t_start = time.perf_counter() - t
    sweep("ring_ei", ["eps_E=0.6:0.6:1"], scheduler=client, refine=False)        # workers import and warm up
    print(f"LocalCluster with {a.workers} workers: started in {t_start:.1f} s; parallelism the machine gives now "
          f"(pure-Python control tasks): {control(client, a.workers):.2f}x")

    cpu0 = client.run(time.process_time)
    t = time.perf_counter()
    par = sweep("ring_ei", axes, scheduler=client, refine=False)
    t_par = time.perf_counter() - t
    cpu = sum(v - cpu0[k] for k, v in client.run(time.process_time).items())
    print(f"{a.count} x {a.count} = {npts} points on {a.workers} workers: {t_par:.1f} s wall "
          f"({'within' if t_par <= 60 else 'OVER'} the 60 s target), {cpu:.1f} s CPU in the workers "
          f"({cpu / npts * 1e3:.1f} ms per point; wall on an idle machine ~ {cpu / a.workers:.1f} s)   [load: {load()}]")

    sweep("ring_ei", ["eps_E=0.6:0.6:1"], refine=False)                              # warm up this process
    c0 = time.process_time()
    if a.serial_rows:
        sub = [f"eps_E=0.4:1.0:{a.count}", f"eps_I=0.4:{0.4 + 0.6 * (a.serial_rows - 1) / (a.count - 1)}:{a.serial_rows}"]
        t = time.perf_counter()
        sweep("ring_ei", sub, refine=False)
        per_point = (time.perf_counter() - t) / (a.count * a.serial_rows)
        cpu_ser = (time.process_time() - c0) / (a.count * a.serial_rows) * npts
        t_ser, how = per_point * npts, f"extrapolated from {a.serial_rows} rows"
        same = None
    else:
        t = time.perf_counter()
        ser = sweep("ring_ei", axes, refine=False)
        t_ser = time.perf_counter() - t
        cpu_ser = time.process_time() - c0
        per_point, how = t_ser / npts, "measured"
        same = comparable(ser) == comparable(par)
    print(f"serially in this process: {per_point * 1e3:.1f} ms per point wall, {cpu_ser / npts * 1e3:.1f} ms CPU; "
          f"{t_ser:.1f} s for the grid ({how})   [load: {load()}]")
    print(f"speed-up with {a.workers} workers: {t_ser / t_par:.2f}x wall; serial CPU / (parallel wall): "
          f"{cpu_ser / t_par:.2f}x; CPU cost ratio parallel / serial {cpu / cpu_ser:.2f}" +
          ("" if same is None else f"; serial and distributed tables identical bit for bit: {same}"))
    print(f"parallelism the machine gives now (control): {control(client, a.workers):.2f}x")
    if not a.boundaries:
        client.close()
        cluster.close()
        return

    t = time.perf_counter()
    full = sweep("ring_ei", axes, scheduler=client, refine=True)
    t_full = time.perf_counter() - t
    print(f"with the boundaries located ({len(full.boundaries)} boundary points, Brent to 1e-10): {t_full:.1f} s "
          f"on {a.workers} workers (grid {full.timings['grid']:.1f} s, boundaries {full.timings['boundaries']:.1f} s)"
          f"   [load: {load()}]")
    client.close()
    cluster.close()


if __name__ == "__main__":
    main()
