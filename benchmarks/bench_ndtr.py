"""Cost of the compiled step's normal CDF (solvers.numba_runtime._ndtr) in a kernel-like loop (issue 12).

    python benchmarks/bench_ndtr.py [--n 1000000] [--rounds 15]

Times, in one process on one thread (process time, median of --rounds, so that other jobs on a shared
machine disturb it less), a loop summing Phi(x_i) over normal samples x_i ~ N(-0.75, 1) (where ring_ei's
neurons are), alone and with the gain slope phi(x_i) = exp(-x_i^2/2)/sqrt(2 pi) written as the printer
writes it, for
  * the baseline: scipy's formula with libm's erf/erfc (the compiled step's _ndtr before this change),
  * balkin's _ndtr (Mills-ratio table, Estrin; its exp shared with the slope's),
and prints ns per element and the ratio.
"""
import argparse
import math
import os
import time

import numba
import numpy as np

from solvers.numba_runtime import _ndtr

_SQRT1_2 = 0.7071067811865476


@numba.njit
def libm_ndtr(a):
    """scipy.special.ndtr's formula (cephes) with libm's erf and erfc: the baseline."""
    x = a * _SQRT1_2
    z = abs(x)
    if z < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0 else y


def loop(fn, slope):
    if slope:
        @numba.njit
        def f(x):
            s = 0.0
            for i in range(x.size):
                s += fn(x[i]) + (1/2)*math.sqrt(2)*math.exp(-1/2*x[i]**2)/math.sqrt(math.pi)
            return s
    else:
        @numba.njit
        def f(x):
            s = 0.0
            for i in range(x.size):
                s += fn(x[i])
            return s
    return f


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=15)
    args = ap.parse_args()
    x = np.random.default_rng(1).normal(-0.75, 1.0, args.n)
    fs = {(name, slope): loop(fn, slope) for name, fn in (("libm erf/erfc", libm_ndtr), ("balkin _ndtr", _ndtr))
          for slope in (False, True)}
    for f in fs.values():
        f(x)
    times = {k: [] for k in fs}
    for _ in range(args.rounds):                 # interleaved
        for k, f in fs.items():
            t = time.process_time()
            f(x)
            times[k].append(time.process_time() - t)
    ns = {k: np.median(v) / args.n * 1e9 for k, v in times.items()}
    print(f"load average {os.getloadavg()[0]:.2f}; {args.n} elements, median of {args.rounds} rounds, one thread")
    for slope in (False, True):
        what = "Phi(x) + phi(x)" if slope else "Phi(x)         "
        base, mine = ns[("libm erf/erfc", slope)], ns[("balkin _ndtr", slope)]
        print(f"  {what}: libm erf/erfc {base:6.2f} ns, balkin _ndtr {mine:6.2f} ns, ratio {base / mine:.2f}")


if __name__ == "__main__":
    main()
