"""What `balkin sweep` shows: the printed summary and the figures of a SweepResult (solvers.sweep).

Figures: 2-D, the phase diagram coloured by verdict with the located boundary points (marker per
kind: Hopf, saddle-node, loss of balance, fold, slow); 1-D, the bifurcation diagram: the spatial mean
of lambda per population against the parameter along every branch the continuation followed (round
folds too: ``bifurcation_lines``), solid between two points neither of which is unstable, dashed
otherwise, with the boundaries as vertical lines, and the leading deciding fast eigenvalue's real
part below.
"""
from __future__ import annotations

import sys

import numpy as np

COLOURS = {"stable": "#4daf4a", "ringing": "#a6d96a", "marginal": "#ffff99", "slow-unstable": "#fdae61",
           "unstable-real": "#d7191c", "unstable-oscillatory": "#f46d43", "no-balance": "#bababa",
           "no-convergence": "#404040"}
MARKERS = {"hopf": "o", "saddle-node": "s", "loss-of-balance": "^", "unresolved": "x"}
STABLE = ("stable", "ringing")


def print_summary(res, file=None) -> None:
    file = file or sys.stdout
    names = " x ".join(f"{nm} [{v[0]:g}, {v[-1]:g}] ({len(v)})" for nm, v in res.axes)
    where = "balanced limit" if res.n is None else f"n = {res.n:g}"
    print(f"sweep of model {res.model} over {names}, {where}, on {res.scheduler} "
          f"({res.timings.get('total', 0):.1f} s)", file=file)
    counts = {}
    for p in res.points:
        counts[p["verdict"]] = counts.get(p["verdict"], 0) + 1
    print("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])), file=file)
    if res.branch_points:
        nb = len({p["branch"] for p in res.branch_points})
        print(f"round the folds: {len(res.branch_points)} more states at grid values, on {nb} other branch"
              f"{'es' if nb > 1 else ''} (column 'branch' of the table)", file=file)
    if res.boundaries:
        print(f"boundaries ({len(res.boundaries)}):", file=file)
    for b in res.boundaries:
        others = ", ".join(f"{k} = {v:.6g}" for k, v in b["params"].items()
                           if k != b["parameter"] and k in dict(res.axes))
        at = f"{b['parameter']} = {b['value']:.10g}" if b.get("value") is not None else "not located"
        txt = f"  {b['kind']:<16} {at}" + (f" ({others})" if others else "")
        if b.get("mode"):
            txt += f", mode {b['mode']}"
        if "eigenvalue" in b:
            re_, im = b["eigenvalue"]
            txt += f", eigenvalue {re_:.2e}{im:+.6g}i"
            if "angular_frequency" in b:
                txt += f" (angular frequency {b['angular_frequency']:.6g} at n = {res.n:g})"
            elif "angular_frequency_per_sqrt_n" in b:
                txt += f" (angular frequency {b['angular_frequency_per_sqrt_n']:.6g} sqrt(n))"
        if "population" in b:
            txt += (f", population {b['population']}: demanded activity {b['demanded_activity']:.6g} reaches "
                    f"{b['range_end']:g}")
        if b.get("error"):
            txt += f": {b['error']}"
        print(txt, file=file)
    for c in res.particle_checks:
        at = f"  particles at {c['parameter']} = {c['params'][c['parameter']]:.6g} (n = {c['n']:g}, {c['seeds']} seeds"
        if c.get("boundary") == "fold":
            at += f", branch {c['branch']} by the fold at {c['boundary_value']:.6g}"
        verdict = "agrees" if c["agrees"] else "DISAGREES"
        if c.get("check") == "activity":
            acts = ", ".join(f"{a} {c['measured_activity'][a]:.5g} +- {c['activity_se'][a]:.2g} (finite n "
                             f"{c['predicted_activity'][a]:.5g})" for a in c["measured_activity"])
            print(f"{at}): {c['predicted_state']} side of the loss of balance; activity {acts}: {verdict}", file=file)
            continue
        print(f"{at}): predicted {c['predicted_state']} (angular frequency {c['predicted_angular_frequency']:.4g}), "
              f"measured {c['measured_state']} (growth {c['measured_rate']:.3g} +- {c['rate_se']:.2g}, angular "
              f"frequency {c['measured_angular_frequency']:.4g}): {verdict}", file=file)


def _save(fig, path, files):
    import matplotlib.pyplot as plt

    from solvers.atomic import atomic_savefig
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    files.append(path)


def _unstable(verdict) -> bool:
    return verdict is not None and verdict not in STABLE and verdict != "marginal"


def bifurcation_lines(res) -> list:
    """The curves of a 1-D sweep's bifurcation diagram: per population and branch (the grid's points
    and the branch points round folds, solvers.sweep_line), the states in the order of the
    continuation path, joined at each end to the fold that begins or ends the branch (its state,
    marginal), cut at unsolved points, and split into runs: a piece between two neighbouring
    states is 'solid' when neither is unstable (a verdict other than stable, ringing or marginal),
    else 'dashed'.  Returns [{'population', 'branch', 'style', 'x': [...], 'y': [...] (lambda)}]."""
    pts = sorted(list(res.points) + list(res.branch_points), key=lambda p: p.get("path", 0))
    (pn, _), = res.axes
    folds = [b for b in res.boundaries if b.get("type") == "fold" and "populations" in b and "branches" in b]
    lines = []
    for a in res.populations:
        for br in sorted({p.get("branch", 0) for p in pts}):
            seq = [(f["value"], f["populations"][a]["lambda"], "marginal") for f in folds if f["branches"][1] == br]
            seq += [(p["params"][pn], p["populations"][a]["lambda"] if p["status"] == "ok" else None, p["verdict"])
                    for p in pts if p.get("branch", 0) == br]
            seq += [(f["value"], f["populations"][a]["lambda"], "marginal") for f in folds if f["branches"][0] == br]
            cur = None
            for (x0, y0, v0), (x1, y1, v1) in zip(seq[:-1], seq[1:]):
                if y0 is None or y1 is None:
                    cur = None
                    continue
                style = "dashed" if _unstable(v0) or _unstable(v1) else "solid"
                if cur is not None and cur["style"] == style:
                    cur["x"].append(x1)
                    cur["y"].append(y1)
                else:
                    cur = {"population": a, "branch": br, "style": style, "x": [x0, x1], "y": [y0, y1]}
                    lines.append(cur)
    return lines


def bifurcation_figure(res):
    """The 1-D bifurcation diagram (module docstring) as a matplotlib figure: the curves of
    ``bifurcation_lines`` (solid '-', dashed '--'), one colour per population; below, the largest
    real part of the deciding fast eigenvalues at every point."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    (pn, pv), = res.axes
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True, height_ratios=[2, 1])
    colours = {a: f"C{k}" for k, a in enumerate(res.populations)}
    labelled = set()
    for ln in bifurcation_lines(res):
        a = ln["population"]
        label = f"lambda_{a}" if a not in labelled else None
        labelled.add(a)
        ax.plot(ln["x"], ln["y"], "-" if ln["style"] == "solid" else "--", lw=2.0 if ln["style"] == "solid" else 1.2,
                color=colours[a], label=label)
    ax.set_ylabel("lambda (mean over positions)")
    pts = sorted(list(res.points) + list(res.branch_points), key=lambda p: p.get("path", 0))
    for br in sorted({p.get("branch", 0) for p in pts}):
        on = [p for p in pts if p.get("branch", 0) == br and p["status"] == "ok"]
        xs = [p["params"][pn] for p in on]
        mr = [max(float(np.max(np.real(w))) for w in p["fast"].values()) if p["fast"] else np.nan for p in on]
        ax2.plot(xs, mr, "k.-", ms=3, lw=0.8)
    ax2.axhline(0, color="grey", lw=0.8)
    ax2.set_ylabel("max Re (deciding fast)")
    ax2.set_xlabel(pn)
    for b in res.boundaries:
        if b.get("value") is not None:
            for axx in (ax, ax2):
                axx.axvline(b["value"], color="k", lw=0.7, ls=":")
    ax.legend(fontsize=8)
    where = "balanced limit" if res.n is None else f"n = {res.n:g}"
    ax.set_title(f"{res.model}: bifurcation diagram ({where})\nsolid: stable, dashed: unstable", fontsize=10)
    return fig


def write_plots(res, outdir) -> list:
    """The figures of a sweep in ``outdir`` (created): MODEL_phase_diagram.png (2-D) or
    MODEL_bifurcation.png (1-D).  Returns the paths."""
    import os

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch
    os.makedirs(outdir, exist_ok=True)
    files = []
    if len(res.axes) == 2:
        (pn, pv), (qn, qv) = res.axes
        verd = res.verdicts()
        present = [v for v in COLOURS if np.any(verd == v)]
        code = np.vectorize(lambda v: present.index(v))(verd).astype(float)
        fig, ax = plt.subplots(figsize=(6.4, 5.2))

        def edges(v):
            v = np.asarray(v, float)
            if v.size == 1:
                return np.array([v[0] - 0.5, v[0] + 0.5])
            mid = (v[1:] + v[:-1]) / 2
            return np.concatenate([[2 * v[0] - mid[0]], mid, [2 * v[-1] - mid[-1]]])
        ax.pcolormesh(edges(pv), edges(qv), code.T, cmap=ListedColormap([COLOURS[v] for v in present]),
                      vmin=-0.5, vmax=len(present) - 0.5, shading="flat")
        seen = {}
        palette = ["k", "#2c7bb6", "#7b3294", "#008837"]
        for b in res.boundaries:
            if b.get("value") is None:
                continue
            modes = b.get("modes_at_root") or b.get("modes") or []
            key = (b["kind"], ",".join(modes))
            if key not in seen:
                seen[key] = palette[len(seen) % len(palette)]
            ax.plot(b["params"][pn], b["params"][qn], MARKERS.get(b["kind"], "D"), color=seen[key], ms=4)
        handles = [Patch(color=COLOURS[v], label=v) for v in present]
        handles += [plt.Line2D([], [], marker=MARKERS.get(k, "D"), color=c, ls="",
                               label=f"{k}{', mode ' + m if m else ''} (located)") for (k, m), c in seen.items()]
        ax.legend(handles=handles, fontsize=7, loc="best", framealpha=0.85)
        ax.set_xlabel(pn)
        ax.set_ylabel(qn)
        where = "balanced limit" if res.n is None else f"n = {res.n:g}"
        ax.set_title(f"{res.model}: phase diagram ({where})", fontsize=10)
        _save(fig, os.path.join(outdir, f"{res.model}_phase_diagram.png"), files)
    else:
        fig = bifurcation_figure(res)
        _save(fig, os.path.join(outdir, f"{res.model}_bifurcation.png"), files)
    return files


__all__ = ["print_summary", "write_plots", "bifurcation_lines", "bifurcation_figure"]
