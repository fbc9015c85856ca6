"""`balkin verify` for a state of dimension m = 2 (solvers.verify dispatches here): particles against
the finite-n kinetic (McKean–Vlasov) equation per component.

Prediction.  For each size n the window [t0, T] average of the finite-n kinetic equation started from
the particles' initial density, per population, position bin and quantity
    mean_c, var_c (c = both components), cov, gbar, lambda,
is taken as  Q_stat + (window average - end value) of a coarse kinetic run:  Q_stat the stationary
finite-n state (solvers.stationary2d, null vector of the discrete operator on the automatic grid), and
the bracket the part of the window average still carried by the transient, measured on the minimal
grid (solvers.grid2d MIN_CELLS_PER_SD cells per sd, kinetic dt = settings.kinetic_dt) — where that
correction is larger than the particles' standard error, the report says so.  The balanced limit
(stationary2d with n = None) is reported beside it.

Particles.  Each seed runs on [0, t0] and then in ``nbatch`` chunks over [t0, T] (chunk lengths rounded
to whole numbers of the coarse step 2 dt, so the window ends within nbatch dt of T; each chunk starts from
the last states: the network is Markov in them), at dt and at 2 dt with the same Brownian path
(solvers.verify.CoupledNoise), Richardson-extrapolated per batch, 2 m(dt) - m(2 dt), as in m = 1.  Per
batch: gbar, lambda and the input component's mean from the records averaged over the chunk; the
means, variances and the covariance of both components from the states at the chunk's end (their
expectation in the stationary regime is the same).  Standard errors from the S x nbatch batches.

Checks: finite-n (every |particles - prediction| / se below the Student-t quantile, S nbatch - 1
degrees of freedom, family-wise alpha = 1e-3 Bonferroni-corrected over all comparisons), dt-bias
(|m(dt) - m(2 dt)| within that tolerance), stability (the finite-n fast spectrum at each n).  Reported
without a check: the balanced limit and the particles' distance to it per n, and the Wasserstein-1
distances of each component's final-state marginal (pooled over seeds) to the stationary marginals.
The torus and time-dependent models are refused here.

solvers.verify.verify dispatches here and passes itself as ``common`` (its settings, report class,
coupled noise, bins, window weights and W1 distance are shared, not copied; importing it back would be
an import circle).
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
from scipy import stats as sstats

from .compiled import CompiledModel

QUANTITIES = ("mean", "gbar", "lam")


def _names(cm):
    c0, c1 = cm.module.STATE
    return (f"mean_{c0}", f"mean_{c1}", f"var_{c0}", f"var_{c1}", f"cov_{c0}_{c1}")


def _state_stats(X, mask):
    """(mean_0, mean_1, var_0, var_1, cov) of the states X (2, n_a) selected by mask."""
    Y = X[:, mask]
    m = Y.mean(axis=1)
    d = Y - m[:, None]
    return np.array([m[0], m[1], (d[0] ** 2).mean(), (d[1] ** 2).mean(), (d[0] * d[1]).mean()])


def _stationary_fields(vc, st, nbins, pos_dim):
    """Per quantity (P, bins) from a StationaryResult2D on the lattice of nbins * SUB points."""
    out = {"gbar": st.gbar, "lam": st.lam, "mean": st.mean}
    for k, q in enumerate(_names(st.model)):
        out[q] = (st.state_mean[..., 0], st.state_mean[..., 1], st.state_cov[..., 0, 0], st.state_cov[..., 1, 1],
                  st.state_cov[..., 0, 1])[k]
    return {q: (vc._bin_average(v, nbins, pos_dim) if q != "lam" else
                (v if pos_dim == 0 else v[..., ::vc.SUB])) for q, v in out.items()}


def _transient_correction(vc, cm, n, s, npos):
    """(window average - end value) per quantity of a kinetic run on the minimal grid from the initial
    density (see the module docstring), and the run's end time's distance to its own stationarity."""
    from .grid2d import MIN_CELLS_PER_SD, CELLS_PER_SD, choose_grid2d
    from .kinetic2d import KineticSolver2D
    g = choose_grid2d(cm, npos=npos, n=n)
    shape = tuple(max(16, int(8 * math.ceil(k * (MIN_CELLS_PER_SD + 1) / CELLS_PER_SD / 8))) for k in g.shape)
    ks = KineticSolver2D(cm, npos=npos, n=n, shape=shape, intervals=dict(zip(cm.populations, g.intervals)),
                         grid_check="off", step_check="off")
    r = ks.run(s.T, s.kinetic_dt, record_every=s.kinetic_dt, initial_layer=True, grid_convergence=False)
    sel, wt = vc._window_weights(r.times, s.t0)
    series = {"gbar": r.gbar, "lam": r.lam, "mean": r.mean,
              _names(cm)[0]: r.state_mean[..., 0], _names(cm)[1]: r.state_mean[..., 1],
              _names(cm)[2]: r.state_cov[..., 0, 0], _names(cm)[3]: r.state_cov[..., 1, 1],
              _names(cm)[4]: r.state_cov[..., 0, 1]}
    out = {}
    for q, v in series.items():
        corr = np.tensordot(wt, v[sel], axes=(0, 0)) - v[-1]
        out[q] = vc._bin_average(corr, s.nbins, cm.pos_dim) if q != "lam" else (corr if cm.pos_dim == 0 else corr[..., ::vc.SUB])
    return out, r.info["step_audit"]


def verify_m2(model, settings, *, progress=None, common):
    """Particles against the finite-n kinetic equation for an m = 2 model (module docstring); settings:
    a solvers.verify.VerifySettings; common: the module solvers.verify.  Returns its VerifyReport."""
    vc = common
    from .grid2d import check_model_m2
    from .particles import StepTooCoarse, simulate
    from .stationary2d import solve_stationary2d
    s = settings or common.VerifySettings()
    cm = model if isinstance(model, CompiledModel) else CompiledModel(model)
    check_model_m2(cm, "verify")
    if cm.pos_dim > 1:
        raise ValueError(f"model {cm.name!r}: verify for m = 2 supports the point and the ring, not the torus")
    deps = [a for a in cm.populations if cm.time_dependent(a) or cm.drive_time_dependent(a)]
    if deps:
        raise ValueError(f"model {cm.name!r}: verify for m = 2 compares window averages with stationary states; "
                         f"population(s) {deps} depend on t")
    if s.nx is not None or s.xmin is not None or s.xmax is not None:
        raise ValueError(f"model {cm.name!r} has m = 2: --nx/--xmin/--xmax set the m = 1 grid (the m = 2 grid is "
                         f"automatic, solvers.grid2d)")
    if s.unstable:
        raise ValueError(f"model {cm.name!r}: --unstable is not supported for m = 2")
    if not (0 <= s.t0 < s.T) or s.seeds < 2:
        raise ValueError(f"need 0 <= t0 < T and at least 2 seeds, got t0 = {s.t0}, T = {s.T}, seeds = {s.seeds}")
    say = progress or (lambda msg: None)
    nbins = s.nbins if cm.pos_dim else 1
    s.nbins = nbins
    npos = nbins * vc.SUB if cm.pos_dim else 1
    t_start = time.perf_counter()
    P, names = cm.P, _names(cm)
    quantities = QUANTITIES + names
    limit_st = solve_stationary2d(cm, npos=npos, check_stability=False)
    limit = _stationary_fields(vc, limit_st, nbins, cm.pos_dim)
    per_n, stability = [], []
    # chunks (batches) and t0 are whole numbers of coarse steps 2 dt; the window is [t0, t0 + nbatch chunk]
    step2 = 2 * s.dt
    if s.t0 <= 0 or abs(s.t0 / step2 - round(s.t0 / step2)) > 1e-9:
        raise ValueError(f"model {cm.name!r}: verify for m = 2 needs t0 > 0 a whole number of steps 2 dt = {step2:g}, "
                         f"got t0 = {s.t0:g}")
    chunk = max(1, round((s.T - s.t0) / s.nbatch / step2)) * step2
    window = dataclasses.replace(s, T=s.t0 + s.nbatch * chunk)
    for n in s.sizes:
        st = solve_stationary2d(cm, n=n, npos=npos, check_stability=False)
        w = st.eigenvalues
        stable = bool(w.size == 0 or w.real.max() < 0)
        lead = None if w.size == 0 else w[np.argmax(w.real)]
        stability.append({"n": n, "stable": stable, "leading": None if lead is None else [lead.real, lead.imag],
                          "eigenvalues": [[v.real, v.imag] for v in w], "note": None})
        say(f"[verify {cm.name}] n = {n}: finite-n stationary state (m = 2), fast spectrum "
            f"{'stable' if stable else 'UNSTABLE'}")
        if not stable:
            continue
        pred = _stationary_fields(vc, st, nbins, cm.pos_dim)
        corr, audit = _transient_correction(vc, cm, n, window, npos)
        pred = {q: pred[q] + corr[q] for q in quantities}
        batches = {q: [] for q in quantities}
        biases = {q: [] for q in quantities}
        finals = []
        dt_n = s.dt
        for seed in range(1, s.seeds + 1):
            t1 = time.perf_counter()
            while True:
                try:
                    runs = {}
                    for factor in (1, 2):
                        dtf = dt_n * factor
                        res = simulate(cm, n, s.t0, dtf, seed=seed, nbins=nbins if cm.pos_dim else None,
                                       noise=vc.CoupledNoise(seed * 7919, cm.populations, dt_n, factor), dt_guard="refuse")
                        rows = []
                        for chunk_i in range(s.nbatch):
                            init = {a: res.final_states[a] for a in cm.populations}
                            res = simulate(cm, n, chunk, dtf, seed=seed, init=init, nbins=nbins if cm.pos_dim else None,
                                           record_every=dtf * max(1, int(round(chunk / dtf / 40))),
                                           noise=vc.CoupledNoise(seed * 7919 + chunk_i + 1, cm.populations, dt_n, factor),
                                           dt_guard="refuse")
                            row = {"gbar": res.gbar.mean(axis=0), "lam": res.lam.mean(axis=0), "mean": res.mean.mean(axis=0)}
                            stats = np.zeros((len(names), P, nbins))
                            for ia, a in enumerate(cm.populations):
                                for b in range(nbins):
                                    mask = vc._in_bin(res.positions[a], b, nbins, cm.pos_dim)
                                    stats[:, ia, b] = _state_stats(res.final_states[a], mask)
                            for k, q in enumerate(names):
                                row[q] = stats[k]
                            rows.append(row)
                        runs[factor] = (rows, res)
                    break
                except StepTooCoarse as exc:
                    dt_n = dt_n / 2
                    if s.T / dt_n > 2e6:
                        raise
                    say(f"[verify {cm.name}] n = {n}: dt too coarse for the fast modes ({exc}); using dt = {dt_n:g}")
            for q in quantities:
                fine = np.array([r[q] for r in runs[1][0]])
                coarse = np.array([r[q] for r in runs[2][0]])
                batches[q].append(2 * fine - coarse)
                biases[q].append(fine - coarse)
            finals.append(runs[1][1])
            say(f"[verify {cm.name}] n = {n}, seed {seed}: {time.perf_counter() - t1:.1f} s")
        entry = {"n": n, "seeds": s.seeds, "dt": dt_n, "kinetic_dt": s.kinetic_dt, "kinetic_step_audit": audit,
                 "transient_correction": corr, "state_dimension": 2}
        for q in quantities:
            allb = np.concatenate(batches[q])
            allbias = np.concatenate(biases[q])
            est = allb.mean(axis=0)
            se = allb.std(axis=0, ddof=1) / math.sqrt(allb.shape[0])
            entry[q] = {"particles": est, "se": se, "seed_means": np.array([b.mean(axis=0) for b in batches[q]]),
                        "finite_n": pred[q], "limit": limit[q], "err_finite_n": est - pred[q],
                        "err_limit": est - limit[q], "dt_bias": allbias.mean(axis=0),
                        "dt_bias_se": allbias.std(axis=0, ddof=1) / math.sqrt(allbias.shape[0])}
        # Wasserstein-1 per component marginal, final states pooled over seeds, against the stationary marginals
        w1 = np.zeros((2, P, nbins))
        w1_lim = np.zeros((2, P, nbins))
        for ia, a in enumerate(cm.populations):
            for b in range(nbins):
                for k in (0, 1):
                    xs = np.concatenate([r.final_states[a][k][vc._in_bin(r.positions[a], b, nbins, cm.pos_dim)]
                                         for r in finals])
                    for target, W in ((st, w1), (limit_st, w1_lim)):
                        dens = vc._bin_average(np.moveaxis(target.marginals[k][ia], -1, 0), nbins, cm.pos_dim)
                        dens = dens if cm.pos_dim else dens[:, 0]
                        W[k, ia, b] = vc.wasserstein1(xs, target.x[ia][k], dens[:, b] if cm.pos_dim else dens)
        entry["w1_finite_n"] = w1[cm.e]
        entry["w1_limit"] = w1_lim[cm.e]
        entry["w1_finite_n_per_component"] = {cm.module.STATE[k]: w1[k] for k in (0, 1)}
        entry["w1_limit_per_component"] = {cm.module.STATE[k]: w1_lim[k] for k in (0, 1)}
        per_n.append(entry)
    bins = np.asarray(finals[-1].bin_centres) if per_n else np.zeros(nbins)
    report = vc.VerifyReport(cm.name, cm.populations, s, bins, per_n, stability,
                          {q: limit[q] for q in quantities})
    _checks_m2(vc, report, quantities)
    report.timings = {"total": time.perf_counter() - t_start}
    return report


def _checks_m2(vc, report, quantities) -> None:
    s = report.settings
    checks = {}
    unstable = [st["n"] for st in report.stability if not st["stable"]]
    if unstable:
        checks["stability"] = {"passed": False, "message": f"the finite-n state is not stable at n = {unstable}: "
                                                           "no stationary comparison there"}
    M, worst = vc.finite_n_z(report, quantities)
    dof = s.seeds * s.nbatch - 1
    if M:
        zcrit = float(sstats.t.ppf(1 - vc.ALPHA / (2 * M), dof))
        w = worst[1]
        msg = (f"max |particles - finite-n kinetic| / se = {abs(worst[0]):.2f} over {', '.join(quantities)} "
               f"(critical {zcrit:.2f}: Student t, {dof} dof, alpha {vc.ALPHA:g} over {M} comparisons)")
        if w:
            msg += f"; worst: n = {w[0]}, {w[1]}, population {w[2]}, bin {w[3]}: error {w[4]:+.4g} +- {w[5]:.4g}"
        checks["finite-n"] = {"passed": abs(worst[0]) <= zcrit, "message": msg, "max_z": abs(worst[0]),
                              "critical": zcrit}
        wb = 0.0
        for e in report.per_n:
            for q in quantities:
                wb = max(wb, float(np.max(np.abs(e[q]["dt_bias"]) / np.where(e[q]["se"] > 0, zcrit * e[q]["se"],
                                                                              np.inf))))
        checks["dt-bias"] = {"passed": wb <= 1.0, "message": f"largest |m(dt) - m(2 dt)| / (critical z * se) = "
                                                             f"{wb:.2f} (need <= 1)", "max_ratio": wb}
    report.checks = checks
    report.passed = bool(checks) and all(c["passed"] for c in checks.values())
