"""`balkin simulate MODEL --n N --T T --dt DT --seed S [--backend auto|numba|numpy] [--json FILE] [--npz FILE]`:
particle simulation of the network (solvers.particles), printed as a table of time averages with batch-means standard errors
over the window [t0, T] (default t0 = T/2), optionally written as JSON (solvers.output schema plus
'window', 'stderr', 'n', 'seed', 'dt')."""
from __future__ import annotations

from .errors import param_dict


def add_command(subparsers) -> None:
    p = subparsers.add_parser("simulate", help="particle simulation of the network (DESIGN.md §1)",
                              description=__doc__)
    p.add_argument("model", help="model name or models/NAME.py")
    p.add_argument("--n", type=int, required=True, help="size parameter (population a has alpha_a n neurons)")
    p.add_argument("--T", type=float, required=True, help="end time")
    p.add_argument("--dt", type=float, required=True, help="time step")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--scheme", choices=("euler", "milstein"), default="euler")
    p.add_argument("--positions", choices=("lattice", "uniform"), default="lattice")
    p.add_argument("--coupling", choices=("auto", "lowrank", "fft", "dense"), default="auto")
    p.add_argument("--explicit", action="store_true",
                   help="explicit coupling (refused if dt exceeds the stability limit)")
    p.add_argument("--dt-guard", choices=("refine", "refuse", "off"), default="refine",
                   help="when dt cannot resolve the fast coupling modes (|dt sqrt(n) mu| above the step's "
                        "accurate limit): refine dt (default), refuse with the largest accurate dt, or "
                        "off (only unstable explicit steps are refused)")
    p.add_argument("--backend", choices=("auto", "numba", "numpy"), default="auto",
                   help="the particle step: numba (the compiled step generated with the model; low-rank "
                        "couplings), numpy (the reference path), or auto (default: numba for runs of at least "
                        "10^7 neuron-steps where it applies, else numpy)")
    p.add_argument("--nbins", type=int, default=None, help="position bins per angle")
    p.add_argument("--record-every", type=float, default=None, help="time between records")
    p.add_argument("--t0", type=float, default=None, help="start of the averaging window (default T/2)")
    p.add_argument("--nbatch", type=int, default=10, help="batches for the standard errors (default 10)")
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                   help="parameter override (repeatable)")
    p.add_argument("--json", default=None, metavar="FILE", help="write the record as JSON")
    p.add_argument("--npz", default=None, metavar="FILE",
                   help="write the time series (times, mean, variance, gbar, lambda per population and bin) as NPZ")
    p.set_defaults(func=run)


def _fmt(v, se):
    return f"{v:10.4f} ± {se:.4f}"


def run(args) -> int:
    from solvers.loading import model_name
    from solvers.output import write_json
    from solvers.particles import simulate

    from solvers.resources import check_simulation_memory

    params = param_dict(args.param)
    from solvers.feasibility import check_feasible
    check_feasible(model_name(args.model), t=0.0, params=params or None)   # infeasible balance: refuse first
    check_simulation_memory(args.model, args.n, args.T, args.dt, coupling=args.coupling,
                            record_every=args.record_every, nbins=args.nbins, params=params or None)
    res = simulate(model_name(args.model), args.n, args.T, args.dt, seed=args.seed, scheme=args.scheme,
                   positions=args.positions, coupling=args.coupling, implicit=not args.explicit,
                   nbins=args.nbins, record_every=args.record_every, params=params or None,
                   dt_guard=args.dt_guard, backend=None if args.backend == "auto" else args.backend)
    t0 = args.T / 2 if args.t0 is None else args.t0
    # short runs: fewer batches rather than no table (time_average refuses fewer than 2)
    in_window = int((res.times >= t0 - 1e-12 * max(1.0, res.T)).sum())
    nbatch = max(2, min(args.nbatch, in_window))
    av = res.time_average(t0, nbatch)
    sizes = ", ".join(f"{p}: {s}" for p, s in res.sizes.items())
    print(f"model {res.model.name}: n = {res.n} ({sizes}), T = {res.T}, dt = {res.dt}, seed = {res.seed}, "
          f"scheme {res.scheme}, coupling {res.coupling} ({res.coupling_step} step), "
          f"positions {res.positions_kind}, backend {res.backend}")
    au = res.step_audit
    print(f"step audit: largest |dt sqrt(n) mu| = {au['max_z']:.3g} (accurate limit {au['z_accurate']:.3g}, "
          f"{au['checks']} checks)" + "".join(f"; dt refined {old:g} -> {new:g} at t = {t:g} (|z| was {z:.3g})"
                                             for t, old, new, z in au["refinements"]))
    print(f"time averages over [{av['window'][0]:g}, {av['window'][1]:g}] ({av['samples']} records), "
          f"± batch-means standard error ({nbatch} batches)")
    space = res.model.pos_dim > 0
    head = f"{'pop':>4} " + (f"{'theta':>16} " if space else "") + \
        f"{'mean':>19} {'gbar':>19} {'lambda':>19}"
    print(head)
    for ia, pop in enumerate(res.model.populations):
        for ib in range(res.mean.shape[2]):
            where = ""
            if space:
                c = res.bin_centres[ib]
                where = (f"{float(c):16.4f} " if res.model.pos_dim == 1
                         else f"({c[0]:6.3f}, {c[1]:6.3f}) ")
            print(f"{pop:>4} {where}{_fmt(av['mean'][ia, ib], av['mean_se'][ia, ib])} "
                  f"{_fmt(av['gbar'][ia, ib], av['gbar_se'][ia, ib])} "
                  f"{_fmt(av['lam'][ia, ib], av['lam_se'][ia, ib])}")
    if args.json:
        write_json(args.json, res.to_record(t0, nbatch))
        print(f"wrote {args.json}")
    if args.npz:
        res.save_npz(args.npz)
        print(f"wrote {args.npz}")
    return 0

