"""`balkin demo [--model MODEL]`: the whole pipeline on a model (ring_ei by default, about a minute).

derive (print the equations) -> generate (check the committed module is fresh) -> stationary
balanced state -> kinetic transient (balanced and finite n) -> neural field -> verification against
particle simulations at three network sizes, with figures when matplotlib is installed.

A state of dimension m >= 2: the stationary states come from the neural field (exact for a
linear/additive model; the Gaussian closure, printed as an APPROXIMATION, otherwise), balanced and at
n = 1000; the kinetic step and verify run where the solvers support the model and are reported as
skipped (with the reason) where they do not; a demo whose verification was skipped exits with 1.
"""
from __future__ import annotations

import time


def run_demo(model="ring_ei", *, sizes=None, seeds=None, T=None, t0=None,
             plots="balkin-demo", quiet_derivation=False, out=print, nx=None, xmin=None, xmax=None) -> int:
    """Run the pipeline on ``model`` (a shipped model's name, or a model file of a user's project:
    its module is generated into the project's generated/ folder).  sizes, seeds, T, t0 default to
    those of `balkin verify`; nx, xmin, xmax: the kinetic x-grid (None: automatic,
    solvers.kinetic.choose_grid), used by the kinetic runs and verify.  Returns 0 when verify passes."""
    from derive.codegen import generate_source
    from derive.derivation import derive
    from derive.loader import load_model
    from derive.render_text import render
    from solvers.compiled import CompiledModel
    from solvers.kinetic import KineticSolver
    from solvers.loading import is_model_name, model_name, recorded_path, shown_path
    from solvers.stationary import solve_balanced
    from solvers.verify import settings_for, verify

    from balkin.project import generate_target

    from .models import model_file
    from .verify_report import print_report, write_plots

    if (xmin is None) != (xmax is None):
        raise ValueError(f"give both --xmin and --xmax or neither (got {xmin}, {xmax})")
    interval = None if xmin is None else (float(xmin), float(xmax))
    t_start = time.perf_counter()
    path = model_file(model)
    ref = model if is_model_name(model) else model_name(path)
    model = load_model(path)
    out(f"== 1. derive {shown_path(path)}")
    d = derive(model)
    text = render(d)
    out(text if not quiet_derivation else text.splitlines()[0] + " ... (derivation printed by `balkin derive`)")

    target = generate_target(path)
    out(f"== 2. generate {shown_path(target)}")
    src = generate_source(model, path, d, recorded_path=recorded_path(path))
    if target.exists() and target.read_text() == src:
        out(f"{shown_path(target)} is fresh (byte-identical regeneration)")
    else:
        from solvers.atomic import atomic_write_text
        atomic_write_text(target, src)
        out(f"wrote {shown_path(target)}")
    cm = CompiledModel(ref)
    dflt = settings_for(cm)               # the defaults of verify for the model's state dimension
    sizes = dflt.sizes if sizes is None else sizes
    seeds = dflt.seeds if seeds is None else seeds
    T = dflt.T if T is None else T
    t0 = dflt.t0 if t0 is None else t0

    linear = all(cm.module.LINEAR_ADDITIVE.values())
    if cm.m == 1:
        out("== 3. stationary balanced state")
        st = solve_balanced(cm, npos=16)
        for ia, a in enumerate(cm.populations):
            out(f"  {a}: lambda(theta) from {st.lam[ia].min():.4f} to {st.lam[ia].max():.4f}, "
                f"gbar from {st.gbar[ia].min():.4f} to {st.gbar[ia].max():.4f}")
        for label, w in st.modes.items():
            out(f"  fast manifold, mode {label}: eigenvalues {', '.join(f'{v:.4f}' for v in w)}")
    else:
        _stationary_field_step(cm, linear, out)

    out("== 4. kinetic equation from the initial density: balanced limit and finite n = 1000")
    for n in (None, 1000) if cm.m == 1 else ():
        ks = KineticSolver(cm, npos=16, nx=nx, n=n, interval=interval)
        res = ks.run(T, 0.05)
        label = "balanced limit" if n is None else f"finite n = {n}"
        out(f"  {label}: x-grid " + ", ".join(f"{a} [{lo:.3g}, {hi:.3g}]" for a, (lo, hi) in
                                              zip(cm.populations, ks.grid.intervals)) + f", {ks.nx} cells")
        out(f"  {label}: mean at theta = 0 at t = {T:g}: "
            + ", ".join(f"{a} {res.mean[-1, ia, 0]:.4f}" for ia, a in enumerate(cm.populations))
            + f"; mass error {res.mass_error.max():.1e}, constraint residual {res.residual.max():.1e}")
    if cm.m == 2:
        _kinetic2d_step(cm, T, out)
    elif cm.m != 1:
        out(f"  skipped: the kinetic solvers handle m = 1 and m = 2 (this model has m = {cm.m})")

    if linear:
        from solvers.field import solve_field
        out("== 5. neural field (exact here: linear drift, additive noise): balanced limit and finite n = 1000")
        for n in (None, 1000):
            fr = solve_field(cm, T, 0.05, npos=16, n=n)
            label = "balanced limit" if n is None else f"finite n = {n}"
            out(f"  {label}: mean at theta = 0 at t = {T:g}: "
                + ", ".join(f"{a} {fr.mean[-1, ia, 0]:.4f}" for ia, a in enumerate(cm.populations)))

    out(f"== 6. verify against particle simulations: n = {list(sizes)}, {seeds} seeds each")
    try:
        rep = verify(cm, settings_for(cm, sizes=tuple(sizes), seeds=seeds, T=T, t0=t0, nx=nx, xmin=xmin,
                                      xmax=xmax), progress=None)
    except (ValueError, RuntimeError) as exc:     # m >= 2: a refusal of the 2-D verify (e.g. its grid)
        if cm.m == 1:
            raise
        out(f"  skipped: {exc}")
        out(f"demo finished in {time.perf_counter() - t_start:.1f} s (NOT verified)")
        return 1
    import io
    buf = io.StringIO()
    print_report(rep, file=buf)
    out(buf.getvalue().rstrip())
    if plots:
        try:
            files = write_plots(rep, plots)
            out("figures: " + ", ".join(files))
        except RuntimeError as exc:
            out(f"figures skipped: {exc}")
    out(f"demo finished in {time.perf_counter() - t_start:.1f} s")
    return 0 if rep.passed else 1


def _kinetic2d_step(cm, T, out) -> None:
    """Step 4 for m = 2: the 2-D kinetic equation (solvers.kinetic2d) from the model's initial density,
    balanced and at n = 1000, on a few lattice positions (KINETIC2D_NPOS per angle) and to
    t = min(T, KINETIC2D_T): enough to show the transient and the invariants at demo cost (the grid is
    automatic and must hold the initial density, which is wide)."""
    from solvers.kinetic2d import KineticSolver2D
    npos = KINETIC2D_NPOS if cm.pos_dim else 1
    Tk = min(T, KINETIC2D_T)
    comps = [str(c) for c in cm.module.STATE]
    for n in (None, 1000):
        ks = KineticSolver2D(cm, npos=npos, n=n)
        res = ks.run(Tk, 0.05, grid_convergence=False)
        label = "balanced limit" if n is None else f"finite n = {n}"
        out(f"  {label} ({npos ** cm.pos_dim} positions, {ks.shape[0]} x {ks.shape[1]} cells): means at theta = 0 "
            f"at t = {Tk:g}: " + ", ".join(
                f"{a} ({', '.join(f'{comps[k]} {res.state_mean[-1, ia, 0, k]:.4f}' for k in range(2))})"
                for ia, a in enumerate(cm.populations))
            + f"; mass error {res.mass_error.max():.1e}, constraint residual {res.residual.max():.1e}")


#: the demo's m = 2 kinetic run: lattice positions per angle and end time
KINETIC2D_NPOS = 4
KINETIC2D_T = 2.0


def _stationary_field_step(cm, linear, out) -> None:
    """Step 3 for m >= 2: the stationary field, balanced and at n = 1000 (FieldSolver.stationary)."""
    from solvers.field import CLOSURE_NOTE, FieldSolver
    how = "exact: linear drift, additive noise" if linear else "Gaussian closure"
    out(f"== 3. stationary states from the neural field ({how}; state dimension m = {cm.m})")
    if not linear:
        out(f"  *** {CLOSURE_NOTE} ***")
    for n in (None, 1000):
        st = FieldSolver(cm, npos=16, closure=not linear, n=n).stationary()
        label = "balanced limit" if n is None else f"finite n = {n}"
        for ia, a in enumerate(cm.populations):
            out(f"  {label}, {a}: lambda from {st.lam[ia].min():.4f} to {st.lam[ia].max():.4f}, gbar from "
                f"{st.gbar[ia].min():.4f} to {st.gbar[ia].max():.4f} (mean over positions {st.gbar[ia].mean():.4f})")
        if n is not None and st.info.get("finite_n_leading_eigenvalue") is not None:
            lead = st.info["finite_n_leading_eigenvalue"]
            out(f"  {label}: leading eigenvalue of the finite-n mean equation {lead[0]:.4f}{lead[1]:+.4f}i "
                f"({'stable' if st.info['finite_n_stable'] else 'UNSTABLE'})")


def cmd_demo(args) -> int:
    grid = {"nx": args.nx, "xmin": args.xmin, "xmax": args.xmax}
    if args.quick:
        return run_demo(args.model, sizes=(200, 800), seeds=2, T=4.0, t0=1.5, plots=args.plots,
                        quiet_derivation=True, **grid)
    return run_demo(args.model, plots=args.plots, **grid)


def add_command(sub) -> None:
    m = sub.add_parser("demo", help="derive, generate, solve and verify a model (ring_ei: about a minute)")
    m.add_argument("--model", default="ring_ei",
                   help="a model file (e.g. proj/models/my_ei.py) or a shipped model's name (default ring_ei)")
    m.add_argument("--plots", default="balkin-demo", help="folder for the figures (default balkin-demo/)")
    m.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test, not a verification)")
    m.add_argument("--nx", type=int, default=None,
                   help="kinetic x-grid cells (default: automatic, >= 20 cells per standard deviation)")
    m.add_argument("--xmin", type=float, default=None, help="kinetic x-interval start (with --xmax)")
    m.add_argument("--xmax", type=float, default=None, help="kinetic x-interval end (with --xmin)")
    m.set_defaults(func=cmd_demo)
