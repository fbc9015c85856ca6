"""`balkin solve MODEL --kinetic --T T [--dt DT] [--nx NX] [--scheme trbdf2|euler] [--n N]
[--npos NPOS] [--json F] [--npz F]`: the time-dependent kinetic equation (balanced limit, or the
finite-n McKean–Vlasov equation with --n).  JSON: the final state in the stationary schema plus
"time_series" and "invariants"; NPZ: all arrays including densities."""
from __future__ import annotations

import sys

import numpy as np

from .cli_solve import MAX_ROWS_PER_POPULATION, _fmt_theta, register_mode


def add_arguments(p) -> None:
    g = p.add_argument_group("--kinetic options")
    g.add_argument("--T", type=float, default=20.0, help="end time (default 20)")
    g.add_argument("--dt", type=float, default=0.1, help="time step (default 0.1)")
    g.add_argument("--nx", type=int, default=256, help="cells in x per population (default 256)")
    g.add_argument("--xmin", type=float, default=None, help="x-interval lower end (default: automatic)")
    g.add_argument("--xmax", type=float, default=None, help="x-interval upper end (default: automatic)")
    g.add_argument("--scheme", choices=("trbdf2", "euler"), default="trbdf2", help="time stepping")
    g.add_argument("--record-every", type=float, default=None, help="time between recorded moments")
    g.add_argument("--npz", metavar="FILE", help="write all arrays (densities included) as NPZ")


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


def run(args, model) -> int:
    from .kinetic import KineticSolver
    from .output import write_json
    interval = None
    if (args.xmin is None) != (args.xmax is None):
        raise ValueError("give both --xmin and --xmax, or neither")
    if args.xmin is not None:
        interval = (args.xmin, args.xmax)
    ks = KineticSolver(model, npos=args.npos or (64 if model.pos_dim == 1 else 16), nx=args.nx,
                       interval=interval, n=args.n)
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
