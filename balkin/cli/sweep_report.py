"""What `balkin sweep` shows: the printed summary and the figures of a SweepResult (solvers.sweep).

Figures: 2-D, the phase diagram coloured by verdict with the located boundary points (marker per
kind: Hopf, saddle-node, loss of balance, fold, slow); 1-D, the bifurcation diagram: the spatial mean
of lambda per population against the parameter, solid where stable (stable, ringing), dashed where
not, with the boundaries as vertical lines, and the leading deciding fast eigenvalue's real part below.
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
        print(f"  particles at {c['parameter']} = {c['params'][c['parameter']]:.6g} (n = {c['n']:g}, {c['seeds']} "
              f"seeds): predicted {c['predicted_state']} (angular frequency {c['predicted_angular_frequency']:.4g}), "
              f"measured {c['measured_state']} (growth {c['measured_rate']:.3g} +- {c['rate_se']:.2g}, angular "
              f"frequency {c['measured_angular_frequency']:.4g}): {'agrees' if c['agrees'] else 'DISAGREES'}",
              file=file)


def _save(fig, path, files):
    import matplotlib.pyplot as plt

    from solvers.atomic import atomic_savefig
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)
    files.append(path)


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
        (pn, pv), = res.axes
        fig, (ax, ax2) = plt.subplots(2, 1, figsize=(6.4, 6.0), sharex=True, height_ratios=[2, 1])
        verd = res.verdicts()
        stable = np.array([v in STABLE for v in verd])
        for a in res.populations:
            lam = res.values("lambda", a)
            ln, = ax.plot(pv, lam, "--", lw=1.0)                   # every solved point: dashed
            ax.plot(pv, np.where(stable, lam, np.nan), "-", lw=2.0, color=ln.get_color(), label=f"lambda_{a}")
        ax.set_ylabel("lambda (mean over positions)")
        mr = res.values("max_re")
        ax2.plot(pv, mr, "k.-", ms=3)
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
        _save(fig, os.path.join(outdir, f"{res.model}_bifurcation.png"), files)
    return files


__all__ = ["print_summary", "write_plots"]
