"""`balkin solve MODEL --field --T T [--dt DT] [--closure] [--json F] [--npz F]`: the neural field
(solvers.field), registered as a solve mode; the options, the printed table and the command."""
from __future__ import annotations

import sys

import numpy as np

from .solve import register_mode
from solvers.compiled import CompiledModel
from solvers.field import CLOSURE_NOTE, DEFAULT_DT, FieldResult, FieldSolver

def _add_once(parser, *flags, **kw):
    """Add an option unless another mode already defined it on the shared parser."""
    have = getattr(parser, "_option_string_actions", {})
    if any(f in have for f in flags):
        return
    parser.add_argument(*flags, **kw)


def add_field_arguments(parser) -> None:
    """Options of `balkin solve MODEL --field` (options another mode already added are shared)."""
    _add_once(parser, "--T", type=float, default=None, help="end time (--field, --kinetic)")
    _add_once(parser, "--dt", type=float, default=None, help=f"time step (--field default {DEFAULT_DT})")
    _add_once(parser, "--npz", metavar="FILE", default=None, help="write the time series as .npz")
    _add_once(parser, "--record-every", type=float, default=None, dest="record_every",
              help="time between records (default: every step)")
    _add_once(parser, "--closure", action="store_true",
              help="--field on a model that is not linear/additive: Gaussian closure (an approximation)")
    _add_once(parser, "--no-initial-layer", action="store_true", dest="no_initial_layer",
              help="do not shift the initial state onto the balanced manifold")
    for flag, kw in (("--npos", dict(type=int, default=None, help="lattice positions per angle")),
                     ("--json", dict(metavar="FILE", default=None, help="write the result as JSON")),
                     ("--param", dict(action="append", metavar="NAME=VALUE", help="override a parameter"))):
        _add_once(parser, flag, **kw)


def _params(items) -> dict:
    out = {}
    for item in items or ():
        name, sep, value = str(item).partition("=")
        if not sep:
            raise ValueError(f"--param expects NAME=VALUE, got {item!r}")
        out[name.strip()] = float(value)
    return out


def print_field(res: FieldResult, file=None, max_rows: int = 16) -> None:
    file = file or sys.stdout
    if res.approximation:
        print(f"*** {CLOSURE_NOTE} ***", file=file)
    N = res.lam.shape[2]
    print(f"{res.kind}: model {res.model.name}, {N} position(s), T = {res.times[-1]:g}, dt = {res.info['dt']:g}, "
          f"{len(res.times)} records", file=file)
    idx = np.unique(np.linspace(0, N - 1, min(N, max_rows)).round().astype(int))
    if len(idx) < N:
        print(f"(showing {len(idx)} of {N} positions)", file=file)
    if res.shift is not None:
        print("initial layer: shift delta = " + "; ".join(
            f"{a}: {np.round(res.shift[ia][:4], 4).tolist()}{' ...' if N > 4 else ''}"
            for ia, a in enumerate(res.populations)), file=file)
    print(f"final state (t = {res.times[-1]:g}):", file=file)
    print(f"{'pop':>4} {'theta':>16} {'lambda':>14} {'gbar':>14} {'mean':>14} {'variance':>14}", file=file)
    for a, pop in enumerate(res.populations):
        for i in idx:
            th = ",".join(f"{float(p[i]):.4f}" for p in res.pos) if res.pos else "-"
            print(f"{pop:>4} {th:>16} {res.lam[-1, a, i]:14.8g} {res.gbar[-1, a, i]:14.8g} "
                  f"{res.mean[-1, a, i]:14.8g} {res.variance[-1, a, i]:14.8g}", file=file)
    print(f"max |W G + h| over the run {res.residual.max():.3e}", file=file)
    if not res.info.get("manifold_attracting", True):
        print("warning: W D on Range(W) has an eigenvalue with Re >= 0 at the final state "
              f"(max Re {res.info['max_real_fast_eigenvalue']:.4g}): the balanced manifold is not attracting, "
              "so the network has no balanced large-n limit here (see `balkin spectrum`)", file=file)


def solve_field_command(args, model=None) -> int:
    """`balkin solve MODEL --field`: args carries model, T, dt, npos, json, npz, param, closure,
    record_every, no_initial_layer (missing attributes take their defaults); ``model`` (a
    CompiledModel) may be passed by a dispatcher that already built it.  Returns the exit status."""
    from solvers.loading import model_name
    from solvers.output import write_json
    if getattr(args, "n", None) is not None:
        print("balkin solve: error: --field solves the balanced limit (n -> infinity); the finite-n field "
              "is not implemented (drop --n)", file=sys.stderr)
        return 2
    T = getattr(args, "T", None)
    if T is None:
        print("balkin solve: error: --field needs --T (the end time)", file=sys.stderr)
        return 2
    if model is None:
        model = CompiledModel(model_name(args.model), _params(getattr(args, "param", None)))
    from solvers.feasibility import check_feasible
    check_feasible(model, t=0.0, npos=getattr(args, "npos", None))      # the same diagnosis as every command
    solver = FieldSolver(model, npos=getattr(args, "npos", None), closure=bool(getattr(args, "closure", False)))
    res = solver.run(T, getattr(args, "dt", None), record_every=getattr(args, "record_every", None),
                     initial_layer=not getattr(args, "no_initial_layer", False))
    print_field(res)
    if getattr(args, "json", None):
        write_json(args.json, res.to_record())
        print(f"wrote {args.json}")
    if getattr(args, "npz", None):
        res.save_npz(args.npz)
        print(f"wrote {args.npz}")
    return 0


register_mode("field", solve_field_command,
              "neural field of means and covariances (exact for linear/additive models; --closure: "
              "a labelled Gaussian-closure approximation otherwise)", add_field_arguments)
