"""`balkin solve MODEL --kinetic --T T [--dt DT] [--nx NX] [--scheme trbdf2|euler] [--n N]
[--npos NPOS] [--json F] [--npz F]`: the time-dependent kinetic equation (balanced limit, or the
finite-n McKean–Vlasov equation with --n).  JSON: the final state in the stationary schema plus
"time_series" and "invariants"; NPZ: all arrays including densities."""
from __future__ import annotations

import sys

import numpy as np

from .solve import MAX_ROWS_PER_POPULATION, _fmt_theta, register_mode


def add_arguments(p) -> None:
    g = p.add_argument_group("--kinetic options")
    g.add_argument("--T", type=float, default=20.0, help="end time (default 20)")
    g.add_argument("--dt", type=float, default=0.1, help="time step (default 0.1)")
    g.add_argument("--nx", type=int, default=None,
                   help="cells in x per population (>= 16; default: automatic, >= 20 cells per standard "
                        "deviation of the densities, see solvers.kinetic.choose_grid)")
    g.add_argument("--xmin", type=float, default=None, help="x-interval lower end (default: automatic)")
    g.add_argument("--xmax", type=float, default=None, help="x-interval upper end (default: automatic)")
    g.add_argument("--scheme", choices=("trbdf2", "euler"), default="trbdf2", help="time stepping")
    g.add_argument("--record-every", type=float, default=None, help="time between recorded moments")
    g.add_argument("--npz", metavar="FILE", help="write all arrays (densities included) as NPZ")
    g.add_argument("--cells", type=int, nargs=2, metavar=("N1", "N2"), default=None,
                   help="m = 2: cells per state component (default: automatic, solvers.grid2d)")


def print_kinetic(res, file=None) -> None:
    file = file or sys.stdout
    P = res.lam.shape[1]
    N = res.lam.shape[2]
    print(f"kinetic-{res.mode}: model {res.model.name}" + (f", n = {res.n:g}" if res.n else "")
          + f", t = {res.times[-1]:g}, {N} position(s), {res.info['nx']} cells, scheme {res.info['scheme']}",
          file=file)
    if res.shift is not None:
        print("initial layer: shift delta = " + "; ".join(
            f"{a}: {np.round(res.shift[ia][:4], 4).tolist()}{' ...' if N > 4 else ''}"
            for ia, a in enumerate(res.model.populations)), file=file)
    idx = np.unique(np.linspace(0, N - 1, min(N, MAX_ROWS_PER_POPULATION)).round().astype(int))
    print(f"{'pop':>4} {'theta':>16} {'lambda':>14} {'gbar':>14} {'mean':>14} {'variance':>14}", file=file)
    for a in range(P):
        for i in idx:
            print(f"{res.model.populations[a]:>4} {_fmt_theta(res.pos, i):>16} {res.lam[-1, a, i]:14.8g} "
                  f"{res.gbar[-1, a, i]:14.8g} {res.mean[-1, a, i]:14.8g} {res.variance[-1, a, i]:14.8g}",
                  file=file)
    print(f"invariants: max mass error {res.mass_error.max():.2e}, min density {res.min_density.min():.2e}, "
          f"max constraint residual {res.residual.max():.2e}", file=file)
    g, au = res.info.get("grid"), res.info.get("grid_audit")
    if g:
        print("x-grid: " + "; ".join(
            f"{a}: [{lo:.4g}, {hi:.4g}] {g['cells_per_sd'][a]:.3g} cells per sd (s = {g['effective_sd'][a]:.3g})"
            for a, (lo, hi) in g["interval"].items()) + f", nx = {g['nx']}"
            + (" (automatic)" if g["automatic_nx"] else ""), file=file)
    if au:
        print(f"grid audit: max mass in the outer {au['edge_cells']} cells {au['max_edge_mass']:.2e}, "
              f"min cells per sd during the run {au['min_cells_per_sd']:.3g}", file=file)
    sa = res.info.get("step_audit")
    if sa and res.n:
        line = (f"step audit (finite-n fast modes): max |dt nu| {sa['max_z']:.3g} (accurate up to "
                f"{sa['z_accurate']:.3g})")
        if sa["transient"] > 0:
            line += (f"; fast modes not resolved: results before t = {sa['transient']:.3g} are not accurate "
                     f"(the unresolved transient), later ones are")
        if sa["unresolved_growing"]:
            line += "; WARNING: a growing fast mode is not resolved (step check off): the run damps it"
        print(line, file=file)
    gc = res.info.get("grid_convergence")
    if gc and "max_abs_diff" in gc:
        d = gc["max_abs_diff"]
        print(f"grid convergence (nx = {gc['nx']} vs {gc['nx_coarse']}, max over time): "
              + ", ".join(f"{k} {v:.2e}" for k, v in d.items()), file=file)
    elif gc:
        print(f"grid convergence: {gc.get('skipped') or gc.get('failed')}", file=file)


def run(args, model) -> int:
    from solvers.feasibility import check_feasible
    from solvers.kinetic import NX_MIN, KineticSolver, choose_grid
    from solvers.output import write_json
    if model.m == 2:
        from .solve_m2 import run_kinetic_m2
        return run_kinetic_m2(args, model)
    interval = None
    if (args.xmin is None) != (args.xmax is None):
        raise ValueError("give both --xmin and --xmax, or neither")
    if args.xmin is not None:
        if not args.xmin < args.xmax:
            raise ValueError(f"--xmin must be below --xmax, got {args.xmin:g} and {args.xmax:g}")
        interval = (args.xmin, args.xmax)
    if args.nx is not None and args.nx < NX_MIN:
        raise ValueError(f"--nx must be at least {NX_MIN} (cells of the x-grid per population), got {args.nx}")
    npos = args.npos or (64 if model.pos_dim == 1 else 16)
    from solvers.kinetic import NX_AUTO_MIN
    from solvers.resources import check_kinetic_run_memory
    # a lower bound first (the automatic grid has >= NX_AUTO_MIN cells), before any lattice work
    check_kinetic_run_memory(model, npos, args.nx or NX_AUTO_MIN, args.T, args.dt, args.record_every)
    check_feasible(model, t=0.0, npos=npos)
    grid = choose_grid(model, npos=npos, n=args.n, nx=args.nx, interval=interval)
    check_kinetic_run_memory(model, npos, grid.nx, args.T, args.dt, args.record_every)
    ks = KineticSolver(model, npos=npos, nx=grid.nx, interval=dict(zip(model.populations, grid.intervals)),
                       n=args.n)
    res = ks.run(args.T, args.dt, scheme=args.scheme, record_every=args.record_every)
    print_kinetic(res)
    if args.json:
        write_json(args.json, res.to_record())
        print(f"wrote {args.json}")
    if args.npz:
        res.save_npz(args.npz)
        print(f"wrote {args.npz}")
    return 0


register_mode("kinetic", run, "time-dependent kinetic Fokker-Planck equation (balanced limit; finite n with --n)",
              add_arguments)
