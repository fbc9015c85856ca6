"""`balkin solve MODEL --stationary [--n N] [--npos NPOS] [--json FILE] [--param NAME=VALUE ...]`.

Modes are a registry: SOLVE_MODES maps a mode name to (run function, help text, argument adder).
Exactly one mode flag (--stationary, --kinetic, --field, ...) is given per call; the shared options
(--n, --npos, --json, --param) are parsed for every mode.  To add a mode from another module, put
there

    from balkin.cli.solve import register_mode
    def add_arguments(parser): parser.add_argument("--T", type=float, ...)   # mode-specific options
    def run(args, model) -> int: ...                                          # model: CompiledModel
    register_mode("kinetic", run, "time-dependent kinetic Fokker-Planck solve", add_arguments)

and list the module in MODE_MODULES below (it is imported before the parser is built; a missing
module is skipped).  Until then --kinetic and --field exit with status 2 and "not implemented yet".
This module never imports SymPy.
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from solvers.loading import model_name

from .errors import param_dict

#: Modules that register further solve modes (imported if present).
MODE_MODULES = ("balkin.cli.solve_kinetic", "balkin.cli.solve_field")
MAX_ROWS_PER_POPULATION = 16      # positions printed per population (subsampled evenly beyond)


@dataclass
class SolveMode:
    run: Callable            # run(args, model) -> exit status
    help: str
    add_arguments: Callable | None = None


SOLVE_MODES: dict[str, SolveMode] = {}


def register_mode(name: str, run, help: str, add_arguments=None) -> None:
    """Register (or replace) the mode behind ``balkin solve MODEL --NAME``."""
    SOLVE_MODES[name] = SolveMode(run, help, add_arguments)


def _not_implemented(name):
    def run(args, model) -> int:
        print(f"balkin solve: error: --{name} is not implemented yet", file=sys.stderr)
        return 2
    return run


# ---- --stationary ----------------------------------------------------------------------------

def _fmt_theta(pos, i) -> str:
    if not pos:
        return "-"
    return ",".join(f"{float(p[i]):.4f}" for p in pos)


def print_stationary(res, file=None, t=None) -> None:
    """A table per population and position (at most MAX_ROWS_PER_POPULATION positions, evenly
    subsampled), then the fast-manifold eigenvalues per mode.  t: the time of the frozen problem
    (printed in the header when given)."""
    file = file or sys.stdout
    head = (f"{res.kind}: model {res.model.name}" + (f", n = {res.n:g}" if res.n is not None else "")
            + (f", frozen at t = {t:g}" if t is not None else "")
            + (f", {res.lam.shape[1]} positions" if res.pos else ""))
    print(head, file=file)
    N = res.lam.shape[1]
    idx = np.unique(np.linspace(0, N - 1, min(N, MAX_ROWS_PER_POPULATION)).round().astype(int))
    if len(idx) < N:
        print(f"(showing {len(idx)} of {N} positions)", file=file)
    print(f"{'pop':>4} {'theta':>16} {'lambda':>14} {'gbar':>14} {'mean':>14} {'variance':>14}", file=file)
    for a, pop in enumerate(res.populations):
        for i in idx:
            print(f"{pop:>4} {_fmt_theta(res.pos, i):>16} {res.lam[a, i]:14.8g} {res.gbar[a, i]:14.8g} "
                  f"{res.mean[a, i]:14.8g} {res.variance[a, i]:14.8g}", file=file)
    print("fast manifold: eigenvalues of W D on Range(W) per mode", file=file)
    for label, w in res.modes.items():
        vals = ", ".join(f"{v.real:.6g}{v.imag:+.6g}j" for v in np.atleast_1d(w))
        print(f"  {label}: {vals}", file=file)
    print(f"residual {res.residual:.3e}, max |W gbar + h| {res.imbalance:.3e}, "
          f"{res.iterations} Newton iterations", file=file)


def time_dependence(model) -> list[str]:
    """What of the model depends on t: e.g. ['input of E', 'drive of I'] (from the generated USES)."""
    out = []
    for a in model.populations:
        if "t" in model.uses("drift", a):
            out.append(f"drift of {a}")
        if "t" in model.uses("input", a):
            out.append(f"input of {a}")
        if model.drive_time_dependent(a):
            out.append(f"drive of {a}")
    return out


def run_stationary(args, model) -> int:
    """Refuses a model whose drift, input or drive depends on t unless --t says at which time the
    frozen (snapshot) problem is meant; checks feasibility (solvers.feasibility) first."""
    from solvers.feasibility import check_feasible
    from solvers.output import write_json
    from solvers.stationary import solve_balanced, solve_finite_n
    t = args.t
    deps = time_dependence(model)
    if deps and t is None:
        raise ValueError(f"model {model.name!r}: the {', the '.join(deps)} depend(s) on t, so a stationary "
                         f"state exists only for the problem frozen at one time; give that time with --t T "
                         f"(e.g. --t 0), or solve in time with --kinetic / --field")
    t = 0.0 if t is None else float(t)
    check_feasible(model, t=t, npos=args.npos)
    if model.m == 2:
        from .solve_m2 import run_stationary_m2
        return run_stationary_m2(args, model, t)
    if args.n is None:
        res = solve_balanced(model, npos=args.npos, t=t)
    else:
        res = solve_finite_n(model, args.n, npos=args.npos, t=t)
    print_stationary(res, t=t if (deps or args.t is not None) else None)
    if args.json:
        rec = res.to_record()
        rec["t"] = t
        rec["time_dependent"] = deps
        write_json(args.json, rec)
        print(f"wrote {args.json}")
    return 0


register_mode("stationary", run_stationary,
              "stationary state: the balanced limit, or with --n the finite-n McKean-Vlasov state")
register_mode("kinetic", _not_implemented("kinetic"), "time-dependent kinetic limit (not implemented yet)")
register_mode("field", _not_implemented("field"), "neural-field equations (not implemented yet)")


# ---- the sub-command ------------------------------------------------------------------------

def _load_mode_modules() -> None:
    for name in MODE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def cmd_solve(args) -> int:
    from solvers.compiled import CompiledModel
    if args.n is not None and not args.n > 0:
        raise ValueError(f"--n must be positive, got {args.n:g}")
    if args.npos is not None and args.npos < 1:
        raise ValueError(f"--npos must be positive, got {args.npos}")
    model = CompiledModel(model_name(args.model), param_dict(args.param))
    return SOLVE_MODES[args.mode].run(args, model)


def add_command(subparsers) -> None:
    _load_mode_modules()
    p = subparsers.add_parser("solve", help="solve the limit equations of a model (stationary states, ...)")
    p.add_argument("model", help="model name or file, e.g. ring_ei or models/ring_ei.py")
    modes = p.add_mutually_exclusive_group(required=True)
    for name, mode in SOLVE_MODES.items():
        modes.add_argument(f"--{name}", dest="mode", action="store_const", const=name, help=mode.help)
    p.add_argument("--n", type=float, default=None,
                   help="network size: solve the finite-n McKean-Vlasov equation (default: the balanced limit)")
    p.add_argument("--npos", type=int, default=None,
                   help="lattice positions per angle (default 64 on a ring, 32 on a torus; 1 without space)")
    p.add_argument("--t", type=float, default=None, dest="t",
                   help="--stationary: the time at which a time-dependent input/drive is frozen (required "
                        "when the model depends on t; recorded as 't' in the JSON)")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON (schema: solvers/output.py)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="override a model parameter")
    for mode in SOLVE_MODES.values():
        if mode.add_arguments is not None:
            mode.add_arguments(p)
    p.set_defaults(func=cmd_solve)
