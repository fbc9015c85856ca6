"""`balkin sweep MODEL --param NAME=START:STOP:COUNT [--param NAME2=START:STOP:COUNT] [--param NAME=VALUE ...]
[--n N] [--npos NPOS] [--check-particles K] [--critical-n] [--scheduler ADDRESS] [--no-refine] [--json F] [--csv F]
[--plots DIR]`:
the phase diagram of a model over one or two parameters (solvers.sweep): at every point feasibility,
the stationary state, the fast and slow spectra per mode and the verdict; the boundaries between
verdicts located to 1e-10 in the parameter (loss of balance, Hopf, saddle-node, slow, folds of the
branch; a 1-D sweep follows the branch round its folds and lists every coexisting state, column
'branch'); with --check-particles K (and --n) particle ensembles next to each boundary where they
test something (fast boundaries: steady / oscillating / growing; folds: the two coexisting states;
loss of balance: the activities on both sides; solvers.sweep_particles).  The points run
on a Dask LocalCluster of this machine's cores by default (--scheduler serial: in this process;
--scheduler tcp://HOST:8786: an existing cluster); the results are the same bit for bit.
This module never imports SymPy."""
from __future__ import annotations

import sys

from .errors import param_value


def add_command(subparsers) -> None:
    p = subparsers.add_parser("sweep", help="phase diagram: parameter sweep, boundaries located, on Dask",
                              description=__doc__)
    p.add_argument("model", help="model name or file, e.g. ring_ei or models/ring_ei.py")
    p.add_argument("--param", dest="sweep_params", action="append", default=[], metavar="NAME=START:STOP:COUNT",
                   help="a swept parameter (one or two), or NAME=VALUE to fix a parameter")
    p.add_argument("--n", type=float, default=None, help="network size (default: the balanced limit)")
    p.add_argument("--npos", type=int, default=None, help="lattice positions per angle (default 64 on a ring)")
    p.add_argument("--check-particles", type=int, default=0, metavar="K",
                   help="particle ensembles at K points on each side of the fast, fold and loss-of-balance "
                        "boundaries (needs --n)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per particle check (default 3)")
    p.add_argument("--scheduler", default="local", metavar="ADDRESS",
                   help="'local' (default: a Dask LocalCluster on this machine's cores), 'serial', or the "
                        "address of a running Dask scheduler, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--no-refine", action="store_true", help="do not locate the boundaries")
    p.add_argument("--critical-n", action="store_true",
                   help="at every point whose balanced limit is fast-unstable: the network size above which "
                        "the finite-n state is unstable (a mode crosses), column critical_n")
    p.add_argument("--json", metavar="FILE", help="write the table, boundaries and checks as JSON")
    p.add_argument("--csv", metavar="FILE", help="write the tidy table (one row per point and population) as CSV")
    p.add_argument("--plots", metavar="DIR", help="write figures (needs matplotlib: pip install -e '.[plot]')")
    p.set_defaults(func=run)


def parse_params(items) -> tuple[list, dict]:
    """(axes [(name, values)], fixed {name: value}) from the --param items."""
    from solvers.sweep import parse_range
    axes, fixed = [], {}
    for item in items:
        name, sep, value = str(item).partition("=")
        if ":" in value:
            axes.append(parse_range(item))
            continue
        name, v = param_value(item, expects="NAME=START:STOP:COUNT or NAME=VALUE")
        fixed[name] = v
    if not 1 <= len(axes) <= 2:
        raise ValueError(f"give one or two swept parameters --param NAME=START:STOP:COUNT (got {len(axes)})")
    clash = sorted({nm for nm, _ in axes} & set(fixed))
    if clash:
        raise ValueError(f"--param {clash[0]} is both swept and fixed")
    return axes, fixed


def _bar(stream):
    def progress(label, done, total, seconds):
        width = 30
        k = int(width * done / max(total, 1))
        stream.write(f"\r[{label}] [{'#' * k}{'.' * (width - k)}] {done}/{total} ({seconds:.1f} s)")
        if done == total:
            stream.write("\n")
        stream.flush()
    return progress


def run(args) -> int:
    from solvers.loading import model_name
    from solvers.sweep import sweep
    from .sweep_report import print_summary, write_plots
    axes, fixed = parse_params(args.sweep_params)
    if args.n is not None and not args.n > 0:
        raise ValueError(f"--n must be positive, got {args.n:g}")
    if args.npos is not None and args.npos < 1:
        raise ValueError(f"--npos must be positive, got {args.npos}")
    if args.check_particles < 0:
        raise ValueError(f"--check-particles must be >= 0, got {args.check_particles}")
    if args.check_particles and args.n is None:
        raise ValueError("--check-particles needs --n (the network size of the particle ensembles)")
    scheduler = args.scheduler.strip()
    res = sweep(model_name(args.model), axes, n=args.n, npos=args.npos, params=fixed, scheduler=scheduler,
                refine=not args.no_refine, check_particles=args.check_particles, critical_n=args.critical_n,
                particle_settings={"seeds": args.seeds}, progress=_bar(sys.stderr))
    print_summary(res)
    if args.json:
        res.to_json(args.json)
        print(f"wrote {args.json}")
    if args.csv:
        res.to_csv(args.csv)
        print(f"wrote {args.csv}")
    if args.plots:
        for f in write_plots(res, args.plots):
            print(f"wrote {f}")
    bad = [c for c in res.particle_checks if not c["agrees"]]
    if bad:
        for c in bad:
            print(f"particle check DISAGREES at {c['params']}: predicted {c['predicted_state']}, measured "
                  f"{c['measured_state']}", file=sys.stderr)
        return 1
    return 0
