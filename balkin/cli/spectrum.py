"""`balkin spectrum MODEL [--n N] [--json F] [--npos NPOS] [--closure] [--param NAME=VALUE ...]`:
the fast and slow spectra of the stationary balanced state per ring mode, with a verdict per mode
(solvers.spectrum).  With --n the fast rates and angular frequencies sqrt(n) x eig are printed too.
This module never imports SymPy."""
from __future__ import annotations

import math
import sys

import numpy as np

from solvers.field import CLOSURE_NOTE
from solvers.spectrum import REL_TOL, Spectrum

from .errors import param_dict


def add_command(subparsers) -> None:
    p = subparsers.add_parser("spectrum", help="stability of the balanced state: fast and slow spectra per ring mode",
                              description=__doc__)
    p.add_argument("model", help="model name or file, e.g. ring_ei or models/ring_ei.py")
    p.add_argument("--n", type=float, default=None,
                   help="network size: also print the fast rates and frequencies sqrt(n) x eigenvalue")
    p.add_argument("--npos", type=int, default=None,
                   help="lattice positions per angle (default 64 on a ring, 32 on a torus)")
    p.add_argument("--json", metavar="FILE", default=None, help="write the spectrum as JSON")
    p.add_argument("--closure", action="store_true",
                   help="for a model that is not linear/additive: use the Gaussian-closure field (an "
                        "approximation; gives a slow spectrum) instead of the kinetic stationary state")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="override a parameter")
    p.set_defaults(func=run)


def run(args) -> int:
    from solvers.compiled import CompiledModel
    from solvers.loading import model_name
    from solvers.output import write_json
    from solvers.spectrum import spectrum
    if args.n is not None and not args.n > 0:
        raise ValueError(f"--n must be positive, got {args.n:g}")
    if args.npos is not None and args.npos < 1:
        raise ValueError(f"--npos must be positive, got {args.npos}")
    model = CompiledModel(model_name(args.model), param_dict(args.param))
    from solvers.feasibility import check_feasible
    check_feasible(model, t=0.0, npos=args.npos)          # infeasible balance: the same one-line diagnosis
    spec = spectrum(model, npos=args.npos, closure=args.closure)
    print_spectrum(spec, n=args.n)
    if args.json:
        write_json(args.json, spec.to_record(args.n))
        print(f"wrote {args.json}")
    return 0


# ---- the printed report ------------------------------------------------------------------------

def _fmt_list(w, scale=1.0, limit=4) -> str:
    """Eigenvalues, conjugate pairs as a±bi, repeats as (xk); at most ``limit`` distinct entries."""
    if w is None:
        return "n/a"
    w = np.asarray(w, complex) * scale
    if w.size == 0:
        return "-"
    tol = 1e-9 * max(1.0, float(np.abs(w).max()))
    items = []
    used = np.zeros(w.size, bool)
    for i, v in enumerate(w):
        if used[i]:
            continue
        if abs(v.imag) > tol:
            used[i] = True
            j = [k for k in range(w.size) if not used[k] and abs(w[k] - v.conjugate()) <= 1e-7 * max(1, abs(v))]
            if j:
                used[j[0]] = True
            items.append(f"{v.real:.4g}±{abs(v.imag):.4g}i" if j else f"{v.real:.4g}{v.imag:+.4g}i")
        else:
            items.append(f"{v.real:.4g}")
            used[i] = True
    counts = {}
    for s in items:
        counts[s] = counts.get(s, 0) + 1
    out = [s if c == 1 else f"{s} (x{c})" for s, c in counts.items()]
    if len(out) > limit:
        cplx = ", some complex" if np.any(np.abs(w.imag) > tol) else ""
        return f"{w.size} values, Re in [{w.real.min():.4g}, {w.real.max():.4g}]{cplx}"
    return ", ".join(out)


def print_spectrum(spec: Spectrum, n: float | None = None, file=None) -> None:
    file = file or sys.stdout
    cm = spec.model
    if spec.approximation:
        print(f"*** {CLOSURE_NOTE} ***", file=file)
    where = f"{spec.npos} positions" if cm.pos_dim else "no space"
    print(f"spectrum of model {cm.name} at its stationary balanced state ({spec.source}, {where}, "
          f"rank W = {spec.info['rank_W']})", file=file)
    print("gain slopes D = dG/dm averaged over theta: "
          + ", ".join(f"{a} {spec.Dbar[i]:.6g}" for i, a in enumerate(cm.populations)), file=file)
    print("fast: eigenvalues mu of W D on Range(W) (rates sqrt(n) mu at network size n); slow: the field on "
          "the manifold (O(1) rates)", file=file)
    w1, w2, w3 = 28, 28, 36
    print(f"{'mode (psi)':<18} {'fast, theta-avg D':<{w1}} {'fast, coupled':<{w2}} {'slow, coupled':<{w3}} verdict",
          file=file)
    for r in spec.modes:
        print(f"{r.label:<18} {_fmt_list(r.fast_block):<{w1}} {_fmt_list(r.fast):<{w2}} "
              f"{_fmt_list(r.slow, limit=3):<{w3}} {r.verdict}", file=file)
    if spec.covariance is not None and spec.covariance.size:
        print(f"covariance equation (decoupled): {_fmt_list(spec.covariance)}", file=file)
    if n is not None:
        s = math.sqrt(n)
        print(f"at n = {n:g} (sqrt(n) = {s:.6g}): fast rates and angular frequencies sqrt(n) x mu", file=file)
        for r in spec.modes:
            if r.fast.size == 0:
                continue
            parts = []
            shown = [v for v in r.fast[::-1] if v.imag >= -REL_TOL]     # largest real parts first
            for v in shown[:6]:
                txt = f"rate {s * v.real:.5g}"
                if abs(v.imag) > REL_TOL:
                    txt += f", frequency {s * v.imag:.5g} rad/time (period {2 * math.pi / (s * v.imag):.5g})"
                parts.append(txt)
            more = f"; ... ({len(shown) - 6} more)" if len(shown) > 6 else ""
            print(f"  {r.label:<16} " + "; ".join(parts) + more, file=file)
    if spec.verdict == "unstable":
        bad = []
        for r in spec.modes:
            if r.verdict not in ("unstable", "marginal"):
                continue
            lead = r.leading()
            txt = f"mode {r.label} ({r.verdict}"
            if lead is not None:
                txt += f", leading eigenvalue{'s' if abs(lead.imag) > 0 else ''} {_fmt_list([lead, lead.conjugate()] if abs(lead.imag) > 0 else [lead])}"
                if n is not None and r.fast.size and lead.real > 0 and np.any(np.isclose(r.fast, lead)):
                    txt += f"; at n = {n:g}: growth {math.sqrt(n) * lead.real:.4g}"
                    if abs(lead.imag) > 0:
                        txt += f", frequency {math.sqrt(n) * abs(lead.imag):.4g}"
            bad.append(txt + ")")
        print("verdict: UNSTABLE: " + "; ".join(bad) + ". The balanced manifold is not attracting there: no "
              "balanced large-n limit (patterns or oscillations instead).", file=file)
    else:
        print(f"verdict: {spec.verdict} (every eigenvalue in the open left half-plane)", file=file)
