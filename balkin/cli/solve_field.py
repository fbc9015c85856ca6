"""`balkin solve MODEL --field (--T T | --steady) [--n N] [--dt DT] [--closure] [--json F] [--npz F]`: the
neural field (solvers.field), registered as a solve mode; the options, the printed tables and the command.
With --n N the finite-n field (lambda_n = sqrt(n)(W G + h)); with --steady its stationary state (balanced
or finite n).  Exact for linear/additive models, any state dimension m; --closure (a Gaussian closure,
printed and written as an APPROXIMATION) otherwise."""
from __future__ import annotations

import sys

import numpy as np

from .errors import param_dict
from .solve import register_mode
from solvers.compiled import CompiledModel
from solvers.field import CLOSURE_NOTE, DEFAULT_DT, FieldResult, FieldSolver, FieldStationary


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
              help="do not shift the initial state onto the balanced manifold (at finite n: the default)")
    _add_once(parser, "--steady", action="store_true",
              help="--field: the stationary field (balanced, or finite n with --n) instead of a run to --T "
                   "(--T, --dt, --record-every are then ignored)")
    for flag, kw in (("--npos", dict(type=int, default=None, help="lattice positions per angle")),
                     ("--json", dict(metavar="FILE", default=None, help="write the result as JSON")),
                     ("--param", dict(action="append", metavar="NAME=VALUE", help="override a parameter"))):
        _add_once(parser, flag, **kw)


def print_field(res: FieldResult, file=None, max_rows: int = 16) -> None:
    file = file or sys.stdout
    if res.approximation:
        print(f"*** {CLOSURE_NOTE} ***", file=file)
    N = res.lam.shape[2]
    print(f"{res.kind}: model {res.model.name}" + (f", n = {res.n:g}" if res.n is not None else "")
          + f", {N} position(s), T = {res.times[-1]:g}, dt = {res.info['dt']:g}, {len(res.times)} records", file=file)
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
    if res.n is None:
        print(f"max |W G + h| over the run {res.residual.max():.3e}", file=file)
    else:
        print(f"max |lambda_step - sqrt(n)(W G + h)| over the run {res.residual.max():.3e}", file=file)
        _print_finite_n_stability(res.info, file)
    if not res.info.get("manifold_attracting", True):
        print("warning: W D on Range(W) has an eigenvalue with Re >= 0 at the final state "
              f"(max Re {res.info['max_real_fast_eigenvalue']:.4g}): the balanced manifold is not attracting, "
              "so the network has no balanced large-n limit here (see `balkin spectrum`)", file=file)


def _print_finite_n_stability(info, file) -> None:
    lead = info.get("finite_n_leading_eigenvalue")
    if lead is None:
        print(f"finite-n stability: {info.get('finite_n_spectrum_note', 'not computed')}", file=file)
        return
    verdict = "stable" if info["finite_n_stable"] else "UNSTABLE: the finite-n field does not settle here"
    print(f"finite-n mean equation: leading eigenvalue {lead[0]:.6g}{lead[1]:+.6g}i ({verdict})", file=file)


def print_field_stationary(st: FieldStationary, file=None, max_rows: int = 16) -> None:
    """The stationary field: a table per population and position, residuals, and at finite n the
    stability of the finite-n field there; the approximation note first when it is the closure."""
    file = file or sys.stdout
    if st.approximation:
        print(f"*** {CLOSURE_NOTE} ***", file=file)
    N = st.lam.shape[1]
    print(f"{st.kind}: model {st.model.name}" + (f", n = {st.n:g}" if st.n is not None else "")
          + f", {N} position(s)", file=file)
    idx = np.unique(np.linspace(0, N - 1, min(N, max_rows)).round().astype(int))
    if len(idx) < N:
        print(f"(showing {len(idx)} of {N} positions)", file=file)
    comps = st.model.module.STATE
    extra = "".join(f" {'mean ' + c:>14}" for c in comps) if st.model.m > 1 else ""
    print(f"{'pop':>4} {'theta':>16} {'lambda':>14} {'gbar':>14} {'mean':>14} {'variance':>14}{extra}", file=file)
    for a, pop in enumerate(st.populations):
        for i in idx:
            th = ",".join(f"{float(p[i]):.4f}" for p in st.pos) if st.pos else "-"
            more = "".join(f" {st.state_mean[a, i, k]:14.8g}" for k in range(st.model.m)) if st.model.m > 1 else ""
            print(f"{pop:>4} {th:>16} {st.lam[a, i]:14.8g} {st.gbar[a, i]:14.8g} {st.mean[a, i]:14.8g} "
                  f"{st.variance[a, i]:14.8g}{more}", file=file)
    if st.n is None:
        print(f"max |W G + h| {st.residual:.3e}", file=file)
    else:
        print(f"max |W G + h| = {st.info['imbalance']:.4g} (= max |lambda| / sqrt(n)); "
              f"max |lambda - sqrt(n)(W G + h)| {st.residual:.3e}", file=file)
        _print_finite_n_stability(st.info, file)


def solve_field_command(args, model=None) -> int:
    """`balkin solve MODEL --field`: args carries model, T, dt, npos, json, npz, param, closure,
    record_every, no_initial_layer (missing attributes take their defaults); ``model`` (a
    CompiledModel) may be passed by a dispatcher that already built it.  Returns the exit status."""
    from solvers.loading import model_name
    from solvers.output import write_json
    n = getattr(args, "n", None)
    steady = bool(getattr(args, "steady", False))
    T = getattr(args, "T", None)
    if T is None and not steady:
        print("balkin solve: error: --field needs --T (the end time), or --steady for the stationary field",
              file=sys.stderr)
        return 2
    if steady and getattr(args, "npz", None):
        print("balkin solve: error: --npz writes a time series; --field --steady has none (use --json)",
              file=sys.stderr)
        return 2
    if model is None:
        model = CompiledModel(model_name(args.model), param_dict(getattr(args, "param", None)))
    from solvers.feasibility import check_feasible
    if n is None:
        check_feasible(model, t=0.0, npos=getattr(args, "npos", None))  # the same diagnosis as every command
    solver = FieldSolver(model, npos=getattr(args, "npos", None), closure=bool(getattr(args, "closure", False)),
                         n=n)
    if steady:
        st = solver.stationary()
        print_field_stationary(st)
        if getattr(args, "json", None):
            write_json(args.json, st.to_record())
            print(f"wrote {args.json}")
        return 0
    layer = False if getattr(args, "no_initial_layer", False) else None
    res = solver.run(T, getattr(args, "dt", None), record_every=getattr(args, "record_every", None),
                     initial_layer=layer)
    print_field(res)
    if getattr(args, "json", None):
        write_json(args.json, res.to_record())
        print(f"wrote {args.json}")
    if getattr(args, "npz", None):
        res.save_npz(args.npz)
        print(f"wrote {args.npz}")
    return 0


register_mode("field", solve_field_command,
              "neural field of means and covariances, balanced or finite n (--n), in time (--T) or stationary "
              "(--steady); exact for linear/additive models, --closure: a labelled Gaussian-closure "
              "approximation otherwise", add_field_arguments)
