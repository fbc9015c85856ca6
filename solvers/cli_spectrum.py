"""`balkin spectrum MODEL [--n N] [--json F] [--npos NPOS] [--closure] [--param NAME=VALUE ...]`:
the fast and slow spectra of the stationary balanced state per ring mode, with a verdict per mode
(solvers.spectrum).  With --n the fast rates and angular frequencies sqrt(n) x eig are printed too.
This module never imports SymPy."""
from __future__ import annotations


def _param(text: str):
    name, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"--param expects NAME=VALUE, got {text!r}")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise ValueError(f"--param {name.strip()}: {value!r} is not a number") from None


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
    from .compiled import CompiledModel
    from .loading import model_name
    from .output import write_json
    from .spectrum import print_spectrum, spectrum
    if args.n is not None and not args.n > 0:
        raise ValueError(f"--n must be positive, got {args.n:g}")
    if args.npos is not None and args.npos < 1:
        raise ValueError(f"--npos must be positive, got {args.npos}")
    model = CompiledModel(model_name(args.model), dict(_param(t) for t in args.param))
    from .feasibility import check_feasible
    check_feasible(model, t=0.0, npos=args.npos)          # infeasible balance: the same one-line diagnosis
    spec = spectrum(model, npos=args.npos, closure=args.closure)
    print_spectrum(spec, n=args.n)
    if args.json:
        write_json(args.json, spec.to_record(args.n))
        print(f"wrote {args.json}")
    return 0
