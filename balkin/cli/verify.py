"""`balkin verify MODEL [--sizes N,N,N] [--seeds S] [--T T] [--t0 T0] [--dt DT] [--nbins B]
[--kinetic-dt DT] [--nx NX] [--xmin A --xmax B] [--unstable] [--scheduler ADDRESS] [--json F] [--plots DIR]`: particles against the limit equations; exit 0 on PASS, 1 on FAIL.
Sizes whose finite-n state is unstable fail (or, with --unstable, are tested by frequency and growth)."""
from __future__ import annotations

import sys


def add_command(subparsers) -> None:
    from solvers.verify import VerifySettings
    d = VerifySettings()
    p = subparsers.add_parser("verify", help="check the limit equations against particle simulations "
                                             "(exit 0 on PASS, 1 on FAIL)")
    p.add_argument("model", help="model name or file")
    from solvers.verify_m2 import M2_DEFAULTS as d2
    p.add_argument("--sizes", default=None,
                   help=f"network sizes n, comma separated (default {','.join(str(n) for n in d.sizes)}; m = 2: "
                        f"{','.join(str(n) for n in d2['sizes'])})")
    p.add_argument("--seeds", type=int, default=None, help=f"independent runs per size (default {d.seeds}; "
                                                            f"m = 2: {d2['seeds']})")
    p.add_argument("--T", type=float, default=None, help=f"simulated time (default {d.T:g}; m = 2: {d2['T']:g})")
    p.add_argument("--t0", type=float, default=None, help=f"averaging window start (default {d.t0:g}; m = 2: "
                                                          f"{d2['t0']:g})")
    p.add_argument("--dt", type=float, default=d.dt, help=f"particle time step (default {d.dt:g}; runs use dt "
                                                          "and 2 dt for Richardson extrapolation)")
    p.add_argument("--kinetic-dt", type=float, default=d.kinetic_dt,
                   help=f"kinetic solver time step (default {d.kinetic_dt:g}; at finite n it must resolve "
                        "growing fast modes, and the transient of unresolved decaying ones must end before t0)")
    p.add_argument("--nbins", type=int, default=None, help=f"position bins per angle (default {d.nbins}; m = 2: "
                                                             f"{d2['nbins']})")
    p.add_argument("--nx", type=int, default=None,
                   help="kinetic x-grid cells (default: automatic, >= 20 cells per standard deviation)")
    p.add_argument("--xmin", type=float, default=None, help="kinetic x-interval start (with --xmax; default automatic)")
    p.add_argument("--xmax", type=float, default=None, help="kinetic x-interval end (with --xmin)")
    p.add_argument("--unstable", action="store_true",
                   help="test sizes at which the finite-n state is unstable by the frequency and growth of "
                        "the unstable mode (default: such sizes fail verify)")
    p.add_argument("--scheduler", default="serial", metavar="ADDRESS",
                   help="where the particle runs go: 'serial' (default, this process), 'local' (a Dask "
                        "LocalCluster on this machine's cores) or a Dask scheduler address, e.g. tcp://10.0.0.5:8786")
    p.add_argument("--json", metavar="FILE", help="write every number as JSON")
    p.add_argument("--plots", metavar="DIR", help="write figures (needs matplotlib: pip install -e '.[plot]')")
    p.set_defaults(func=run)


def run(args) -> int:
    from solvers.loading import model_name
    from solvers.output import write_json
    from solvers.compiled import CompiledModel
    from solvers.verify import settings_for, verify
    from .verify_report import print_report, write_plots
    sizes = None
    if args.sizes is not None:
        try:
            sizes = tuple(int(float(v)) for v in args.sizes.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"--sizes must be comma-separated integers, got {args.sizes!r}") from None
        if not sizes or min(sizes) < 1:
            raise ValueError(f"--sizes must be positive integers, got {args.sizes!r}")
    cm = CompiledModel(model_name(args.model))
    s = settings_for(cm, sizes=sizes, seeds=args.seeds, T=args.T, t0=args.t0, dt=args.dt, nbins=args.nbins,
                     unstable=args.unstable, kinetic_dt=args.kinetic_dt, nx=args.nx, xmin=args.xmin, xmax=args.xmax)
    report = verify(cm, s, progress=lambda msg: print(msg, flush=True),
                    scheduler=args.scheduler.strip())
    print_report(report)
    if args.json:
        write_json(args.json, report.to_record())
        print(f"wrote {args.json}")
    if args.plots:
        for f in write_plots(report, args.plots):
            print(f"wrote {f}")
    if not report.passed:
        for line in report.failure_lines():
            print(line, file=sys.stderr)
    return 0 if report.passed else 1
