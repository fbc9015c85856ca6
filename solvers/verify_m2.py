"""`balkin verify` for a state of dimension m = 2 (solvers.verify dispatches here): particles against
the finite-n kinetic (McKean–Vlasov) equation per component, on the point, the ring and the torus.

Start.  Particles and kinetic equation start from the same density: at every neuron's position the
Gaussian stationary state of the finite-n field at that n (solvers.grid2d.gaussian_state: exact for a
linear drift with additive noise, the Gaussian closure otherwise), trigonometrically interpolated
from the lattice (solvers.lattice_interp).  So the relaxation that a far start would need (and the
wide grid that would hold it) is not simulated.

Prediction.  For each size n the window [t0, T] average of the finite-n kinetic equation from that
start, per population, position bin and quantity
    mean_c, var_c (c = both components), cov, gbar, lambda,
is  Q_stat + (window average - end value) of a kinetic run from the start:  Q_stat the stationary
finite-n state (solvers.stationary2d, null vector of the discrete operator), the bracket the part of
the window average still carried by the transient.  For linear/additive models the start is the
exact stationary state of the kinetic equation, the bracket is zero and the run is skipped (its
discretisation-level size is not worth the cost).  Grid: the interval of solvers.grid2d (tail mass
TAIL_MASS beyond each end of the Gaussian state) with CELLS_PER_SD cells per sd (>= the required
grid2d.MIN_CELLS_PER_SD, audited by the stationary solver with the tail mass in the outer cells).
Positions: a lattice of ``lattice_side`` points per angle (a multiple of nbins, so that lambda at the
bin centres, where the particles read it, is a lattice value); each lattice field is interpolated to
the neurons' positions and averaged over the neurons of each bin, as the particles are.  Variances and
the covariance of a bin pool its neurons: second moments are averaged, then the squared bin means
taken off (the spread of the means across the bin belongs to the pooled variance).  The balanced
limit (stationary2d with n = None) is reported beside it.

Particles.  Each seed runs on [0, t0] and then in ``nbatch`` chunks over [t0, T] (chunk lengths rounded
to whole numbers of the coarse step 2 dt; each chunk starts from the last states: the network is
Markov in them), at dt and at 2 dt with the same Brownian path (solvers.verify.CoupledNoise),
Richardson-extrapolated per batch, 2 m(dt) - m(2 dt), as in m = 1.  Per batch: gbar, lambda and the
input component's mean from the records averaged over the chunk; the means, variances and the
covariance of both components from the states at the chunk's end.  Standard errors from the
S x nbatch batches.

Checks: finite-n (every |particles - prediction| / se below the Student-t quantile, S nbatch - 1
degrees of freedom, family-wise alpha = 1e-3 Bonferroni-corrected over all comparisons), dt-bias
(|m(dt) - m(2 dt)| within that tolerance), stability (the finite-n fast spectrum at each n), and the
limit rate of m = 1 (solvers.verify.limit_rate_check: the particles' distance to the balanced limit
against the finite-n equation's, and the latter's slope -1/2 between n = 1e8 and 1e10, from two more
stationary solves).  Reported without a check: the Wasserstein-1 distances of each component's final
marginal (pooled over seeds) to the stationary marginals, and the 2-D densities for the figures.
Sizes whose finite-n state is unstable fail, or with --unstable get the oscillation check of
solvers.verify_stability (linear response along the leading fast mode, particles drawn from the 2-D
stationary density: verify_stability.State2D).  Refused here: time-dependent models (the prediction
is a stationary state plus a transient).

solvers.verify.verify dispatches here and passes itself as ``common`` (its settings, report class,
coupled noise, window weights, W1 distance and checks are shared, not copied; importing it back
would be an import circle).
"""
from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
from scipy import stats as sstats
from scipy.special import ndtri

from .compiled import CompiledModel

QUANTITIES = ("mean", "gbar", "lam")
# defaults of `balkin verify` for m = 2 (solvers.verify.settings_for): two sizes (the n = 2000
# among them), four bins on the ring (two per angle on the torus), a short window after a start at
# the stationary Gaussian state
M2_DEFAULTS = {"sizes": (500, 2000), "seeds": 4, "T": 10.0, "t0": 2.0, "nbins": 4, "nbatch": 4}
CELLS_PER_SD = (8, 12, 16)        # verify's grid, cells per sd of the Gaussian state (>= MIN_CELLS_PER_SD):
                                  # the next when the stationary density on the coarser grid is refused
LATTICE_MIN = {1: 8, 2: 4}        # lattice points per angle at least (ring, torus)
LOCATE_MARGIN = 1.0               # extra sd around a located density (verify_grid)
FAR_SIZES = (1e8, 1e10)           # the finite-n equation's asymptotic rate


def lattice_side(nbins: int, pos_dim: int) -> int:
    """Lattice points per angle: the smallest multiple of nbins that is at least LATTICE_MIN."""
    return 1 if pos_dim == 0 else nbins * math.ceil(LATTICE_MIN[pos_dim] / nbins)


def _names(cm):
    c0, c1 = cm.module.STATE
    return (f"mean_{c0}", f"mean_{c1}", f"var_{c0}", f"var_{c1}", f"cov_{c0}_{c1}")


def _state_stats(X, mask):
    """(mean_0, mean_1, var_0, var_1, cov) of the states X (2, n_a) selected by mask."""
    Y = X[:, mask]
    m = Y.mean(axis=1)
    d = Y - m[:, None]
    return np.array([m[0], m[1], (d[0] ** 2).mean(), (d[1] ** 2).mean(), (d[0] * d[1]).mean()])


def verify_grid(cm, side, n=None, cells_per_sd=CELLS_PER_SD[0], located=None):
    """(shape, intervals) of verify's grid, the same shape for all populations, a multiple of 8 (at least
    grid2d.N_MIN) with cells_per_sd cells per smallest sd.  Intervals: grid2d's, from the Gaussian state
    (tail mass grid2d.TAIL_MASS beyond each end); or, ``located`` = (mean (P, N, 2), cov (P, N, 2, 2)) of
    a first solve, mean +- (Phi^-1(1 - TAIL_MASS) + LOCATE_MARGIN) sd over the positions."""
    from .grid2d import N_MIN, TAIL_MASS, choose_grid2d
    if located is None:
        g = choose_grid2d(cm, npos=side, n=n, stationary_only=True, check=False)
        ivs, sds = g.intervals, [g.sd[a] for a in cm.populations]
    else:
        z = float(-ndtri(TAIL_MASS)) + LOCATE_MARGIN
        mu, C = located
        sd = np.sqrt(np.maximum(np.diagonal(C, axis1=-2, axis2=-1), 0.0))          # (P, N, 2)
        ivs = [tuple((float((mu[ia, :, k] - z * sd[ia, :, k]).min()), float((mu[ia, :, k] + z * sd[ia, :, k]).max()))
                     for k in (0, 1)) for ia in range(cm.P)]
        sds = [sd[ia].min(axis=0) for ia in range(cm.P)]
    shape = []
    for k in (0, 1):
        need = max((ivs[ia][k][1] - ivs[ia][k][0]) * cells_per_sd / sds[ia][k] for ia in range(cm.P))
        shape.append(max(N_MIN, 8 * math.ceil(need / 8)))
    return tuple(shape), {a: ivs[ia] for ia, a in enumerate(cm.populations)}


def _stationary(cm, n, side, memo):
    """(stationary state, shape, intervals) on verify's grid.  When the Gaussian state is an
    approximation (the closure), a first solve on its grid at CELLS_PER_SD[0] locates the density
    (negative values allowed there) and the grid is laid around that density's means and sds (done
    once, for the first n asked, kept in ``memo`` with LOCATE_MARGIN sd to spare for the others; the
    solver's audit of tail mass and cells per sd checks each).  Then the coarsest of CELLS_PER_SD (from
    the one that last worked) on which the stationary solver accepts the density (no negative values
    beyond its tolerance — the central flux of a noiseless axis is not monotone on coarse grids)."""
    from .kinetic import GridError, KineticError
    from .stationary2d import solve_stationary2d
    if "located" not in memo:
        memo["located"], memo["k"] = None, 0
        if not all(dict(cm.module.LINEAR_ADDITIVE).values()):
            shape, iv = verify_grid(cm, side, n)
            first = solve_stationary2d(cm, n=n, npos=side, shape=shape, intervals=iv, check_stability=False,
                                       neg_tol=np.inf)
            memo["located"] = (first.state_mean, first.state_cov)
    for k in range(memo["k"], len(CELLS_PER_SD)):
        shape, iv = verify_grid(cm, side, n, CELLS_PER_SD[k], memo["located"])
        try:
            st = solve_stationary2d(cm, n=n, npos=side, shape=shape, intervals=iv, check_stability=False)
            memo["k"] = k
            return st, shape, iv
        except (KineticError, GridError):
            if k == len(CELLS_PER_SD) - 1:
                raise


def _lattice_moments(cm, mean, cov, gbar, lam):
    """Per quantity a lattice field (P, N): the five state moments as first and second moments
    (E x_c, E x_c x_d; centred per bin later), gbar, lambda and the input component's mean."""
    return {"mean": mean[..., cm.e], "gbar": gbar, "lam": lam,
            "m0": mean[..., 0], "m1": mean[..., 1], "s00": cov[..., 0, 0] + mean[..., 0] ** 2,
            "s11": cov[..., 1, 1] + mean[..., 1] ** 2, "s01": cov[..., 0, 1] + mean[..., 0] * mean[..., 1]}


def _to_bins(cm, fields, side, positions, nbins):
    """Lattice fields (P, N) -> the particles' bin quantities (P, bins): interpolated to each
    population's neurons and averaged over their bins; lambda read at the bin centres; variances and
    the covariance pooled over each bin."""
    from .lattice_interp import binned
    P = cm.P
    nb = nbins ** cm.pos_dim
    out = {}
    for q, f in fields.items():
        if q == "lam":
            if cm.pos_dim == 0:
                out[q] = f
            else:
                k = side // nbins
                lat = np.asarray(f).reshape((P,) + (side,) * cm.pos_dim)
                lat = lat[:, ::k] if cm.pos_dim == 1 else lat[:, ::k, ::k]
                out[q] = lat.reshape(P, nb)
            continue
        out[q] = np.array([binned(f[ia], side, cm.pos_dim, positions[a], nbins)
                           for ia, a in enumerate(cm.populations)])
    names = _names(cm)
    res = {"mean": out["mean"], "gbar": out["gbar"], "lam": out["lam"],
           names[0]: out["m0"], names[1]: out["m1"], names[2]: out["s00"] - out["m0"] ** 2,
           names[3]: out["s11"] - out["m1"] ** 2, names[4]: out["s01"] - out["m0"] * out["m1"]}
    return res


def _gaussian_density(ks, mean, cov):
    """The Gaussian N(mean, cov) per population and lattice point on the kinetic grid (P, N, n1, n2),
    unnormalised (the kinetic run normalises it on the grid)."""
    P, N = mean.shape[:2]
    p = np.empty((P, N) + ks.shape)
    for ia in range(P):
        X1, X2 = ks._X[ia]
        for j in range(N):
            Ci = np.linalg.inv(cov[ia, j])
            d1, d2 = X1 - mean[ia, j, 0], X2 - mean[ia, j, 1]
            p[ia, j] = np.exp(-0.5 * (Ci[0, 0] * d1 ** 2 + 2 * Ci[0, 1] * d1 * d2 + Ci[1, 1] * d2 ** 2))
    return p


def _gaussian_init(cm, mean, cov, side):
    """simulate's init callable: each neuron drawn from N(mean, cov) interpolated to its position."""
    from .lattice_interp import interpolate

    def init(rng, pop, m, n_a, positions):
        ia = cm.populations.index(pop)
        mu = interpolate(mean[ia].T, side, cm.pos_dim, positions if cm.pos_dim else (np.zeros(n_a),))
        C = interpolate(cov[ia].reshape(-1, 4).T, side, cm.pos_dim, positions if cm.pos_dim else (np.zeros(n_a),))
        l11 = np.sqrt(np.maximum(C[0], 0.0))
        l21 = np.where(l11 > 0, C[1] / np.where(l11 > 0, l11, 1.0), 0.0)
        l22 = np.sqrt(np.maximum(C[3] - l21 ** 2, 0.0))
        z = rng.standard_normal((2, n_a))
        return np.array([mu[0] + l11 * z[0], mu[1] + l21 * z[0] + l22 * z[1]])
    return init


def _transient(vc, cm, n, s, side, shape, intervals, gauss):
    """(window average - end value) per lattice quantity of a kinetic run from the Gaussian start, and
    its step audit; zeros (and None) for linear/additive models, whose start is stationary."""
    if all(dict(cm.module.LINEAR_ADDITIVE).values()):
        return None, None
    from .kinetic2d import KineticSolver2D
    ks = KineticSolver2D(cm, npos=side, n=n, shape=shape, intervals=intervals, grid_check="off", step_check="off")
    p0 = _gaussian_density(ks, gauss[0], gauss[1])
    r = ks.run(s.T, s.kinetic_dt, record_every=s.kinetic_dt, p0=p0, initial_layer=False, grid_convergence=False)
    sel, wt = vc._window_weights(r.times, s.t0)
    series = _lattice_moments(cm, r.state_mean, r.state_cov, r.gbar, r.lam)
    return {q: np.tensordot(wt, v[sel], axes=(0, 0)) - v[-1] for q, v in series.items()}, r.info["step_audit"]


def verify_m2(model, settings, *, progress=None, common):
    """Particles against the finite-n kinetic equation for an m = 2 model (module docstring); settings:
    a solvers.verify.VerifySettings; common: the module solvers.verify.  Returns its VerifyReport."""
    vc = common
    from .grid2d import check_model_m2, gaussian_state
    from .particles import StepTooCoarse, simulate
    from .stationary2d import solve_stationary2d
    s = settings or vc.settings_for(model)
    cm = model if isinstance(model, CompiledModel) else CompiledModel(model)
    check_model_m2(cm, "verify")
    deps = [a for a in cm.populations if cm.time_dependent(a) or cm.drive_time_dependent(a)]
    if deps:
        raise ValueError(f"model {cm.name!r}: verify for m = 2 compares window averages with stationary states; "
                         f"population(s) {deps} depend on t (time-dependent m = 2 models are not supported)")
    if s.nx is not None or s.xmin is not None or s.xmax is not None:
        raise ValueError(f"model {cm.name!r} has m = 2: --nx/--xmin/--xmax set the m = 1 grid (the m = 2 grid is "
                         f"automatic, solvers.verify_m2.verify_grid)")
    if not (0 <= s.t0 < s.T) or s.seeds < 2:
        raise ValueError(f"need 0 <= t0 < T and at least 2 seeds, got t0 = {s.t0}, T = {s.T}, seeds = {s.seeds}")
    say = progress or (lambda msg: None)
    nbins = s.nbins if cm.pos_dim else 1
    s.nbins = nbins
    side = lattice_side(nbins, cm.pos_dim)
    t_start = time.perf_counter()
    timings = {}
    P, names = cm.P, _names(cm)
    quantities = QUANTITIES + names
    step2 = 2 * s.dt
    if s.t0 <= 0 or abs(s.t0 / step2 - round(s.t0 / step2)) > 1e-9:
        raise ValueError(f"model {cm.name!r}: verify for m = 2 needs t0 > 0 a whole number of steps 2 dt = {step2:g}, "
                         f"got t0 = {s.t0:g}")
    chunk = max(1, round((s.T - s.t0) / s.nbatch / step2)) * step2
    window = dataclasses.replace(s, T=s.t0 + s.nbatch * chunk)
    tk = time.perf_counter()
    memo = {}
    limit_st, shape_lim, iv_lim = _stationary(cm, None, side, memo)
    limit_fields = _lattice_moments(cm, limit_st.state_mean, limit_st.state_cov, limit_st.gbar, limit_st.lam)
    timings["stationary_limit"] = time.perf_counter() - tk
    say(f"[verify {cm.name}] balanced limit (m = 2, {side ** cm.pos_dim} lattice positions, grid "
        f"{shape_lim[0]} x {shape_lim[1]}): {timings['stationary_limit']:.1f} s")
    per_n, stability, oscillations = [], [], {}
    positions = None
    for n in s.sizes:
        tk = time.perf_counter()
        st, shape, iv = _stationary(cm, n, side, memo)
        w = st.eigenvalues
        stable = bool(w.size == 0 or w.real.max() < 0)
        lead = None if w.size == 0 else w[np.argmax(w.real)]
        stability.append({"n": n, "stable": stable, "leading": None if lead is None else [lead.real, lead.imag],
                          "eigenvalues": [[v.real, v.imag] for v in w], "note": None})
        say(f"[verify {cm.name}] n = {n}: finite-n stationary state (m = 2, grid {shape[0]} x {shape[1]}), fast "
            f"spectrum {'stable' if stable else 'UNSTABLE'}: {time.perf_counter() - tk:.1f} s")
        if not stable:
            if s.unstable:                  # the unstable regime: frequency and growth of the leading mode
                from .verify_stability import State2D, oscillation_check
                res = oscillation_check(cm, n, State2D(st), s.dt / 2, s.seeds)
                oscillations[f"oscillation n={n}"] = {"passed": res["passed"], "message": res["message"],
                                                      **{k: v for k, v in res.items() if k not in ("passed", "message")}}
                say(f"[verify {cm.name}] {res['message']}")
            continue
        gauss = gaussian_state(cm, side, n)
        corr, audit = _transient(vc, cm, n, window, side, shape, iv, gauss)
        timings[f"prediction_n{n}"] = time.perf_counter() - tk
        init = _gaussian_init(cm, gauss[0], gauss[1], side)
        batches = {q: [] for q in quantities}
        biases = {q: [] for q in quantities}
        finals = []
        dt_n = s.dt
        tp = time.perf_counter()
        for seed in range(1, s.seeds + 1):
            t1 = time.perf_counter()
            while True:
                try:
                    runs = {}
                    for factor in (1, 2):
                        dtf = dt_n * factor
                        res = simulate(cm, n, s.t0, dtf, seed=seed, init=init, nbins=nbins if cm.pos_dim else None,
                                       noise=vc.CoupledNoise(seed * 7919, cm.populations, dt_n, factor), dt_guard="refuse")
                        rows = []
                        for chunk_i in range(s.nbatch):
                            start = {a: res.final_states[a] for a in cm.populations}
                            res = simulate(cm, n, chunk, dtf, seed=seed, init=start, nbins=nbins if cm.pos_dim else None,
                                           record_every=dtf * max(1, int(round(chunk / dtf / 40))),
                                           noise=vc.CoupledNoise(seed * 7919 + chunk_i + 1, cm.populations, dt_n, factor),
                                           dt_guard="refuse")
                            row = {"gbar": res.gbar.mean(axis=0), "lam": res.lam.mean(axis=0), "mean": res.mean.mean(axis=0)}
                            stats = np.zeros((len(names), P, nbins ** cm.pos_dim))
                            for ia, a in enumerate(cm.populations):
                                for b in range(nbins ** cm.pos_dim):
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
        timings[f"particles_n{n}"] = time.perf_counter() - tp
        positions = {a: finals[0].positions[a] for a in cm.populations}
        fields = _lattice_moments(cm, st.state_mean, st.state_cov, st.gbar, st.lam)
        if corr is not None:
            fields = {q: fields[q] + corr[q] for q in fields}
        pred = _to_bins(cm, fields, side, positions, nbins)
        limit = _to_bins(cm, limit_fields, side, positions, nbins)
        entry = {"n": n, "seeds": s.seeds, "dt": dt_n, "kinetic_dt": s.kinetic_dt, "kinetic_step_audit": audit,
                 "transient_correction": None if corr is None else _to_bins(cm, corr, side, positions, nbins),
                 "state_dimension": 2, "lattice_side": side, "grid": list(shape)}
        for q in quantities:
            allb = np.concatenate(batches[q])
            allbias = np.concatenate(biases[q])
            est = allb.mean(axis=0)
            se = allb.std(axis=0, ddof=1) / math.sqrt(allb.shape[0])
            entry[q] = {"particles": est, "se": se, "seed_means": np.array([b.mean(axis=0) for b in batches[q]]),
                        "finite_n": pred[q], "limit": limit[q], "err_finite_n": est - pred[q],
                        "err_limit": est - limit[q], "dt_bias": allbias.mean(axis=0),
                        "dt_bias_se": allbias.std(axis=0, ddof=1) / math.sqrt(allbias.shape[0])}
        _w1(vc, cm, entry, finals, st, limit_st, side, positions, nbins)
        entry["_plot"] = _plot_data(cm, st, limit_st, finals)
        per_n.append(entry)
    tk = time.perf_counter()
    gaps = []
    for nf in FAR_SIZES if len(per_n) >= 2 else ():
        far = solve_stationary2d(cm, n=nf, npos=side, shape=shape_lim, intervals=iv_lim, check_stability=False)
        gaps.append(float(np.sqrt(np.mean((far.mean - limit_st.mean) ** 2))))      # on the lattice
    timings["asymptotic_rate"] = time.perf_counter() - tk
    bins = np.asarray(finals[-1].bin_centres) if per_n else np.zeros(nbins ** cm.pos_dim)
    lim_record = {q: per_n[-1][q]["limit"] for q in quantities} if per_n else {}
    if gaps:
        lim_record["asymptotic_gap"] = (FAR_SIZES, gaps)
    report = vc.VerifyReport(cm.name, cm.populations, s, bins, per_n, stability, lim_record)
    _checks_m2(vc, report, quantities, oscillations)
    timings["total"] = time.perf_counter() - t_start
    report.timings = timings
    return report


def _w1(vc, cm, entry, finals, st, limit_st, side, positions, nbins):
    """Wasserstein-1 per component marginal and bin, final states pooled over seeds, against the
    stationary finite-n and limit marginals interpolated to the neurons and averaged over each bin."""
    from .lattice_interp import binned
    nb = nbins ** cm.pos_dim
    w1 = np.zeros((2, cm.P, nb))
    w1_lim = np.zeros((2, cm.P, nb))
    for ia, a in enumerate(cm.populations):
        for k in (0, 1):
            dens = {id(t): binned(t.marginals[k][ia].T, side, cm.pos_dim, positions[a], nbins)     # (n_k, bins)
                    for t in (st, limit_st)}
            for b in range(nb):
                xs = np.concatenate([r.final_states[a][k][vc._in_bin(r.positions[a], b, nbins, cm.pos_dim)]
                                     for r in finals])
                for t, W in ((st, w1), (limit_st, w1_lim)):
                    W[k, ia, b] = vc.wasserstein1(xs, t.x[ia][k], dens[id(t)][:, b])
    entry["w1_finite_n"] = w1[cm.e]
    entry["w1_limit"] = w1_lim[cm.e]
    entry["w1_finite_n_per_component"] = {cm.module.STATE[k]: w1[k] for k in (0, 1)}
    entry["w1_limit_per_component"] = {cm.module.STATE[k]: w1_lim[k] for k in (0, 1)}


def _plot_data(cm, st, limit_st, finals):
    """For the figures (not in the JSON): per population the 2-D stationary densities averaged over the
    lattice positions (finite n and limit; on a uniform lattice the average over the ring or torus),
    their cell centres, and the final particle states pooled over seeds and positions (2, M)."""
    return {"x": st.x, "density": st.density.mean(axis=1), "x_limit": limit_st.x,
            "density_limit": limit_st.density.mean(axis=1),
            "samples": [np.concatenate([r.final_states[a] for r in finals], axis=1) for a in cm.populations],
            "components": tuple(cm.module.STATE)}


def _checks_m2(vc, report, quantities, oscillations) -> None:
    """The verdicts: stability (unstable sizes fail unless --unstable, where their oscillation checks
    stand instead), finite-n, dt-bias and limit-rate."""
    s = report.settings
    checks = dict(oscillations)
    unstable = [(st["n"], st["leading"]) for st in report.stability if not st["stable"]]
    if unstable and not s.unstable:
        bad = ", ".join(f"n = {n} (eigenvalue {lead[0]:.4g}{lead[1]:+.4g}i)" for n, lead in unstable)
        checks["stability"] = {"passed": False, "message": f"the finite-n state is not stable at {bad}: a "
                               f"stationary comparison is meaningless there; test smaller sizes, or the unstable "
                               f"regime with --unstable (frequency and growth against the prediction)"}
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
    if report.per_n:
        checks["limit-rate"] = vc.limit_rate_check(report)
    report.checks = checks
    report.passed = bool(checks) and all(c["passed"] for c in checks.values())
