"""The printed verify report and its figures (`balkin verify`, `balkin demo`): presentation only,
from a solvers.verify.VerifyReport; the engine (solvers.verify) neither prints tables nor plots."""
from __future__ import annotations

import sys

import numpy as np

from solvers.verify import VerifyReport


def print_report(report: VerifyReport, file=None) -> None:
    file = sys.stdout if file is None else file
    cmname = report.model
    print(f"verification of {cmname}: sizes {list(report.settings.sizes)}, {report.settings.seeds} seeds, "
          f"window [{report.settings.t0:g}, {report.settings.T:g}], dt {report.settings.dt:g}", file=file)
    for st in report.stability:
        lead = st["leading"]
        txt = ("not determined (" + st["note"] + ")" if st.get("note") else
               ("no fast modes" if lead is None else f"leading {lead[0]:.4g}{lead[1]:+.4g}i") +
               (": stable" if st["stable"] else ": UNSTABLE"))
        print(f"stability at n = {st['n']}: eig(<f'> + sqrt(n) W D) on Range(W), {txt}", file=file)
    for e in report.per_n:
        print(f"n = {e['n']}: particle step dt = {e['dt']:g} (and 2 dt, Richardson-extrapolated)", file=file)
    mod_pops = report.populations
    print(f"{'n':>7} {'pop':>4} {'quantity':>10} {'particles':>11} {'+-se':>8} {'finite-n':>10} "
          f"{'z':>6} {'limit':>10} {'err(limit)':>11} {'W1(fin)':>8} {'W1(lim)':>8}", file=file)
    for e in report.per_n:
        extra = tuple(k for k in e if k.startswith(("mean_", "var_", "cov_")))        # m = 2: per component
        for ia, a in enumerate(mod_pops):
            for q in ("mean", "gbar", "lam") + extra:
                d = e[q]
                # summarise bins by the worst z (one line per population and quantity)
                z = d["z_finite_n"][ia]
                b = int(np.argmax(np.abs(z)))
                w1 = (f"{e['w1_finite_n'][ia].mean():8.4f} {e['w1_limit'][ia].mean():8.4f}" if q == "mean"
                      else f"{'':8} {'':8}")
                print(f"{e['n']:>7} {a:>4} {q:>10} {d['particles'][ia, b]:11.4f} {d['se'][ia, b]:8.4f} "
                      f"{d['finite_n'][ia, b]:10.4f} {z[b]:6.2f} {d['limit'][ia, b]:10.4f} "
                      f"{d['err_limit'][ia, b]:11.4f} {w1}", file=file)
    print("(per row: the bin with the largest |z|; W1: mean over bins of the Wasserstein-1 distance of "
          "the final states, pooled over seeds, to the finite-n and to the limit density; the spread "
          "over seeds is in the JSON)", file=file)
    for name, c in report.checks.items():
        print(f"{'PASS' if c['passed'] else 'FAIL'} {name}: {c['message']}", file=file)
    print(f"verdict: {'PASS' if report.passed else 'FAIL'}  (total {report.timings.get('total', 0):.1f} s)",
          file=file)


def _save(fig, path, files: list) -> None:
    """Lay out, write atomically (solvers.atomic), close; the path joins ``files``."""
    import matplotlib.pyplot as plt

    from solvers.atomic import atomic_savefig
    fig.tight_layout()
    files.append(path)
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def write_plots(report: VerifyReport, outdir) -> list:
    """Figures (needs matplotlib, the 'plot' extra): the particle histogram against the finite-n and
    limit densities at two bins, lambda(t) of one particle run against the kinetic predictions, and
    the limit error against n on log-log axes with an n^(-1/2) guide; m = 2: the 2-D densities beside
    the particle histograms and their marginals (_write_plots_m2) and the limit error.  Returns the
    file paths."""
    try:
        import matplotlib
        import matplotlib.ticker
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError("--plots needs matplotlib: pip install -e '.[plot]'") from None
    from pathlib import Path

    from solvers.output import check_output_dir
    check_output_dir(outdir, "--plots")       # an existing non-folder is refused, not overwritten
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    if not report.per_n:            # no stationary comparison was made (unstable sizes only)
        return []
    if report.per_n[-1].get("state_dimension") == 2:
        return _write_plots_m2(report, out, plt)
    pops = report.populations
    big = report.per_n[-1]
    pdat = big["_plot"]
    lim = report.plot_data["limit"]
    nb = len(report.bins)
    show = sorted({0, nb // 2})
    files = []
    fig, axes = plt.subplots(len(pops), len(show), figsize=(5 * len(show), 3.2 * len(pops)), squeeze=False)
    for ia, a in enumerate(pops):
        for jb, b in enumerate(show):
            ax = axes[ia, jb]
            x = pdat["x"][ia]
            ax.hist(pdat["samples"][ia][b], bins=60, density=True, alpha=0.4, label=f"particles n={big['n']}")
            ax.plot(x, pdat["density"][ia][:, b], label="finite-n equation")
            ax.plot(lim["x"][ia], lim["density"][ia][:, b], "--", label="balanced limit")
            smp = pdat["samples"][ia][b]
            if len(smp):
                lo_, hi_ = np.percentile(smp, [0.1, 99.9])
                ax.set_xlim(lo_ - 1.0, hi_ + 1.0)
            centre = np.atleast_1d(np.asarray(report.bins, float)[b])     # ring: theta; torus: (theta1, theta2)
            ax.set_title(f"{a}, bin at theta = {', '.join(f'{c:.2f}' for c in centre)}")
            ax.set_xlabel("x")
            ax.legend(fontsize=7)
    _save(fig, out / f"{report.model}_densities.png", files)

    fig, axes = plt.subplots(1, len(pops), figsize=(5 * len(pops), 3.2), squeeze=False)
    tp, lp = pdat["particle_series"]
    for ia, a in enumerate(pops):
        ax = axes[0, ia]
        ax.plot(tp, lp[:, ia, 0], lw=0.6, label=f"particles n={big['n']} (seed 1)")
        ax.plot(pdat["times"], pdat["lam_series"][:, ia, 0], label="finite-n equation")
        ax.plot(lim["times"], lim["lam_series"][:, ia, 0], "--", label="balanced limit")
        ax.set_xlabel("t")
        ax.set_ylabel(f"lambda_{a} (bin 0)")
        ax.legend(fontsize=7)
    _save(fig, out / f"{report.model}_lambda.png", files)

    _error_vs_n(report, out, files, plt, matplotlib)
    return [str(f) for f in files]


def _error_vs_n(report, out, files, plt, matplotlib) -> None:
    sl = report.slope
    if sl:
        fig, ax = plt.subplots(figsize=(5, 3.6))
        n = np.asarray(sl["sizes"], float)
        ax.loglog(n, sl["rms_error_limit"], "o-", label=f"particles (slope {sl['slope']:.2f})")
        ax.loglog(n, sl["finite_n_limit_gap"], "s--", label=f"finite-n equation (slope {sl['finite_n_slope']:.2f})")
        guide = sl["rms_error_limit"][-1] * (n / n[-1]) ** -0.5
        ax.loglog(n, guide, ":", color="k", label="n^(-1/2)")
        ax.set_xticks(n)
        ax.set_xticklabels([f"{int(v)}" for v in n])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xlabel("n")
        ax.set_ylabel("RMS error of the mean vs the limit")
        ax.legend(fontsize=7)
        _save(fig, out / f"{report.model}_error_vs_n.png", files)


def density_panels(report: VerifyReport) -> list:
    """The arrays of the m = 2 density figure, per population: the finite-n stationary density p(x1, x2)
    at the largest n averaged over the lattice positions (point: the one position), the 2-D histogram
    of the particles' final states (all seeds and positions) as a density on the same cells, the cell
    edges, and both marginals of each.  Keys: population, n, edges (2 arrays), density, histogram,
    counts (the histogram's raw counts, with the particles outside the grid in ``outside``), samples
    (the particle count), marginals {component: (density marginal, histogram marginal)}."""
    big = report.per_n[-1]
    pd = big["_plot"]
    panels = []
    for ia, a in enumerate(report.populations):
        x1, x2 = pd["x"][ia]
        edges = [np.concatenate([[x[0] - (x[1] - x[0]) / 2], x + (x[1] - x[0]) / 2]) for x in (x1, x2)]
        h1, h2 = x1[1] - x1[0], x2[1] - x2[0]
        X = pd["samples"][ia]
        counts, _, _ = np.histogram2d(X[0], X[1], bins=edges)
        M = X.shape[1]
        hist = counts / (M * h1 * h2)
        dens = pd["density"][ia]
        comps = pd["components"]
        panels.append({"population": a, "n": big["n"], "edges": edges, "density": dens, "histogram": hist,
                       "counts": counts, "samples": M, "outside": int(M - counts.sum()), "cell_area": h1 * h2,
                       "marginals": {comps[0]: (dens.sum(axis=1) * h2, hist.sum(axis=1) * h2),
                                     comps[1]: (dens.sum(axis=0) * h1, hist.sum(axis=0) * h1)},
                       "centres": (x1, x2)})
    return panels


def _write_plots_m2(report: VerifyReport, out, plt) -> list:
    """m = 2: per population the finite-n kinetic density (largest n; on a ring or torus averaged over
    the positions) as a heat map beside the particles' 2-D histogram on the same cells and colour
    scale, and the two marginals (density, histogram); then the limit error against n."""
    import matplotlib
    files = []
    panels = density_panels(report)
    comps = report.per_n[-1]["_plot"]["components"]
    where = "" if report.per_n[-1].get("lattice_side", 1) == 1 else ", averaged over positions"
    fig, axes = plt.subplots(len(panels), 4, figsize=(18, 3.8 * len(panels)), squeeze=False)
    for row, pnl in zip(axes, panels):
        e1, e2 = pnl["edges"]
        vmax = max(pnl["density"].max(), pnl["histogram"].max())
        for ax, arr, title in ((row[0], pnl["density"], f"finite-n kinetic, n = {pnl['n']}{where}"),
                               (row[1], pnl["histogram"], f"particles, n = {pnl['n']} ({pnl['samples']} states)")):
            im = ax.pcolormesh(e1, e2, arr.T, vmin=0.0, vmax=vmax, shading="flat")
            ax.set_title(f"{pnl['population']}: {title}", fontsize=9)
            ax.set_xlabel(comps[0])
            ax.set_ylabel(comps[1])
        fig.colorbar(im, ax=row[1])
        for k, ax in ((0, row[2]), (1, row[3])):
            dm, hm = pnl["marginals"][comps[k]]
            ax.stairs(hm, pnl["edges"][k], label="particles", alpha=0.6)
            ax.plot(pnl["centres"][k], dm, label="finite-n kinetic")
            ax.set_xlabel(comps[k])
            ax.set_title(f"{pnl['population']}: marginal of {comps[k]}", fontsize=9)
            ax.legend(fontsize=7)
    _save(fig, out / f"{report.model}_densities2d.png", files)
    _error_vs_n(report, out, files, plt, matplotlib)
    return [str(f) for f in files]
