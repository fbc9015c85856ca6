"""`balkin solve MODEL --stationary | --kinetic` for a state of dimension m = 2 (solvers.stationary2d,
solvers.kinetic2d): the tables per population and position, per component, and the run.  Called by
balkin.cli.solve (--stationary) and balkin.cli.solve_kinetic (--kinetic) when model.m == 2; m >= 3 is
refused there with the solvers' message.  Options of the m = 1 grid (--nx, --xmin, --xmax, --scheme)
do not apply: the m = 2 grid is --cells N1 N2 (default automatic, solvers.grid2d)."""
from __future__ import annotations

import sys

import numpy as np

MAX_ROWS_PER_POPULATION = 16      # as balkin.cli.solve (not imported: solve imports this module)


def _fmt_theta(pos, i) -> str:
    return "-" if not pos else ",".join(f"{float(p[i]):.4f}" for p in pos)


def _rows(N):
    return np.unique(np.linspace(0, N - 1, min(N, MAX_ROWS_PER_POPULATION)).round().astype(int))


def print_state_m2(res, lam, gbar, mean, cov, file=None) -> None:
    """One row per population and position: lambda, gbar, the means, variances and the covariance of
    the two components."""
    file = file or sys.stdout
    c0, c1 = res.model.module.STATE
    head = (f"{'pop':>4} {'theta':>16} {'lambda':>12} {'gbar':>12} {'mean_' + c0:>12} {'mean_' + c1:>12} "
            f"{'var_' + c0:>12} {'var_' + c1:>12} {'cov':>12}")
    print(head, file=file)
    for a, pop in enumerate(res.model.populations):
        for i in _rows(lam.shape[1]):
            print(f"{pop:>4} {_fmt_theta(res.pos, i):>16} {lam[a, i]:12.7g} {gbar[a, i]:12.7g} "
                  f"{mean[a, i, 0]:12.7g} {mean[a, i, 1]:12.7g} {cov[a, i, 0, 0]:12.7g} {cov[a, i, 1, 1]:12.7g} "
                  f"{cov[a, i, 0, 1]:12.7g}", file=file)


def _grid_line(g) -> str:
    return "grid: " + "; ".join(
        f"{a}: " + ", ".join(f"{c} [{iv[0]:.4g}, {iv[1]:.4g}] ({g['cells_per_sd'][a][c]:.3g} cells per sd)"
                             for c, iv in comps.items())
        for a, comps in g["interval"].items()) + f", cells {g['shape'][0]} x {g['shape'][1]}" + (
        " (automatic)" if g["automatic"] else "")


def run_stationary_m2(args, model, t: float) -> int:
    from solvers.output import write_json
    from solvers.stationary2d import solve_stationary2d
    res = solve_stationary2d(model, n=args.n, npos=args.npos, t=t, shape=getattr(args, "cells", None))
    print(f"{res.kind} (m = 2): model {model.name}" + (f", n = {res.n:g}" if res.n is not None else ""))
    print_state_m2(res, res.lam, res.gbar, res.state_mean, res.state_cov)
    print(_grid_line(res.info["grid"]))
    print("fast eigenvalues: " + ", ".join(f"{w.real:.6g}{w.imag:+.6g}j" for w in res.eigenvalues))
    print(f"residual {res.residual:.3e}, max |W gbar + h| {res.imbalance:.3e}, {res.iterations} Newton iterations")
    if args.json:
        rec = res.to_record()
        rec["t"] = t
        write_json(args.json, rec)
        print(f"wrote {args.json}")
    return 0


def run_kinetic_m2(args, model) -> int:
    from solvers.kinetic2d import KineticSolver2D
    from solvers.output import write_json
    given = [f for f, v in (("--nx", args.nx), ("--xmin", args.xmin), ("--xmax", args.xmax)) if v is not None]
    if given:
        raise ValueError(f"model {model.name!r} has a two-dimensional state: {', '.join(given)} set the m = 1 "
                         f"grid; give --cells N1 N2 (cells per component) or leave them out (automatic grid)")
    npos = args.npos or (32 if model.pos_dim == 1 else 8)
    from solvers.feasibility import check_feasible
    check_feasible(model, t=0.0, npos=npos)
    ks = KineticSolver2D(model, npos=npos, n=args.n, shape=getattr(args, "cells", None))
    res = ks.run(args.T, args.dt, record_every=args.record_every)
    N = res.lam.shape[2]
    print(f"kinetic-{res.mode} (m = 2): model {model.name}" + (f", n = {res.n:g}" if res.n else "")
          + f", t = {res.times[-1]:g}, {N} position(s), {res.info['scheme']}")
    print_state_m2(res, res.lam[-1], res.gbar[-1], res.state_mean[-1], res.state_cov[-1])
    print(f"invariants: max mass error {res.mass_error.max():.2e}, min density {res.min_density.min():.2e}, "
          f"max constraint residual {res.residual.max():.2e}, negative mass zeroed "
          f"{res.info['positivity']['negative_mass_zeroed']:.2e}")
    print(_grid_line(res.info["grid"]))
    gc = res.info.get("grid_convergence")
    if gc and "max_abs_diff" in gc:
        print(f"grid convergence ({gc['shape']} vs {gc['shape_coarse']}, max over time): "
              + ", ".join(f"{k} {v:.2e}" for k, v in gc["max_abs_diff"].items()))
    sa = res.info.get("step_audit")
    if sa and res.n and sa["transient"] > 0:
        print(f"step audit: fast modes not resolved, results before t = {sa['transient']:.3g} are not accurate")
    if args.json:
        write_json(args.json, res.to_record())
        print(f"wrote {args.json}")
    if args.npz:
        res.save_npz(args.npz)
        print(f"wrote {args.npz}")
    return 0
