"""`balkin verify`: particle simulations of the network against the limit equations it came from.

For each network size n and each of S independent seeds the particle system is simulated on
[0, T] and its mean state, mean gain and lambda_n = sqrt(n) r are averaged over [t0, T] per
population and position bin (t0 leaves out the initial layer and the relaxation).  The kinetic
solver, started from the same initial distribution, gives two predictions of the same window
averages: the finite-n McKean–Vlasov equation (DESIGN.md §4) at that n and the balanced limit
(§3); for linear/additive models the neural field is run as a third, which must equal the
kinetic limit.  Predictions are averaged over each position bin the way the particles are
(5 lattice points per bin on the ring, 5 x 5 on the torus, whose bins are the nbins x nbins products
of the ring's in the particles' order b1 * nbins + b2), lambda is read at the bin centre as the
particles record it.

Time-step bias.  Euler–Maruyama with the stiff sqrt(n) coupling has an O(dt) bias that at large n
exceeds the shrinking standard error (measured on ei_linear at n = 6400: the I mean moves by 1.5e-3
per halving of dt = 0.02 -> 0.01 -> 0.005, against a standard error of 1e-3).  Each seed is therefore run
at dt and at 2 dt with the same Brownian path (the coarse increments are sums of pairs of fine
ones), and the window averages are Richardson-extrapolated, 2 m(dt) - m(2 dt), per batch.

Standard errors.  The network's own common noise makes time averages autocorrelated, so every
run is cut into ``nbatch`` batches and the S x nbatch batch means are treated as independent
samples (runs are independent; batches are long compared with the relaxation times):
se = sd(batch means) / sqrt(S nbatch).

Checks (the verdict is PASS only when all hold):
  finite-n   every |particle - finite-n| / se is below the two-sided Student-t quantile with
             S nbatch - 1 degrees of freedom at family-wise level alpha = 1e-3, Bonferroni-corrected
             over all (quantity, population, bin) comparisons;
  limit-rate the RMS error e(n) of the mean state against the balanced limit, fitted as
             log e = c + s log n over the sizes, has a 95% bootstrap interval (resampling seeds)
             that contains the slope of the finite-n equation's own distance to the limit over the
             same sizes, and that distance decays like n^(-1/2) asymptotically: its slope between
             n = 1e8 and 1e10 is -0.5 +- 0.05.  (At the sizes a simulation affords the approach is
             pre-asymptotic: measured finite-n slopes over n = 500..8000 are -0.18..-0.41 for
             ei_linear and -0.23..-0.34 for ring_nonlinear, so a fixed band around -1/2 would reject
             correct models.)
Also reported: Wasserstein-1 distances between the final particle states (pooled over seeds) and
the finite-n and limit densities per population and bin, with their spread over seeds.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sstats

from .compiled import CompiledModel
from .output import Record

SUB = 5            # solver lattice points per particle bin (odd: centred on the bin)
ALPHA = 1e-3       # family-wise level of the finite-n check


@dataclass
class VerifySettings:
    sizes: tuple = (400, 1600, 6400)
    seeds: int = 4
    T: float = 12.0
    t0: float = 4.0
    dt: float = 0.01
    nbins: int = 8
    nbatch: int = 5
    nx: int | None = None          # kinetic x-grid cells: None = automatic (solvers.kinetic.choose_grid)
    xmin: float | None = None      # kinetic x-interval (both or neither): None = automatic
    xmax: float | None = None
    kinetic_dt: float = 0.05
    bootstrap: int = 400
    unstable: bool = False         # test unstable sizes (frequency and growth) instead of failing them


def settings_for(model, **given) -> VerifySettings:
    """VerifySettings from ``given`` (None values left out); what is not given comes from the defaults of
    the model's state dimension: m = 2 solvers.verify_m2.M2_DEFAULTS (sizes, seeds, window, bins chosen
    for the cost of the 2-D solves), m = 1 the VerifySettings defaults."""
    cm = model if isinstance(model, CompiledModel) else CompiledModel(model)
    vals = {k: v for k, v in given.items() if v is not None}
    if cm.m == 2:
        from .verify_m2 import M2_DEFAULTS
        vals = {**M2_DEFAULTS, **vals}
    return VerifySettings(**vals)


@dataclass
class VerifyReport(Record):
    model: str
    populations: tuple
    settings: VerifySettings
    bins: np.ndarray
    per_n: list = field(default_factory=list)
    stability: list = field(default_factory=list)
    limit: dict = field(default_factory=dict)
    slope: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)
    passed: bool = False
    timings: dict = field(default_factory=dict)
    plot_data: dict = field(default_factory=dict)

    def failure_lines(self) -> list[str]:
        return [f"FAIL {name}: {c['message']}" for name, c in self.checks.items() if not c["passed"]]

    def to_record(self) -> dict:
        from .output import _clean
        per_n = [{k: v for k, v in e.items() if not k.startswith("_")} for e in self.per_n]
        return _clean({"model": self.model, "settings": self.settings.__dict__, "bins": self.bins,
                       "per_n": per_n, "stability": self.stability, "limit": self.limit, "slope": self.slope,
                       "checks": self.checks, "verdict": "PASS" if self.passed else "FAIL",
                       "timings": self.timings})


def _progress(msg, report):
    """Progress lines go to the caller's ``report(msg)`` callable (the CLI prints them); None or False:
    silent.  The engine itself never prints."""
    if report:
        report(msg)


def _bin_members(nbins):
    """Lattice indices (nbins, SUB) per angle of the SUB solver points of each bin, centred on the
    bin centre 2 pi b / nbins (solver lattice of nbins * SUB points per angle)."""
    N = nbins * SUB
    return (np.arange(nbins)[:, None] * SUB + np.arange(-(SUB // 2), SUB // 2 + 1)[None, :]) % N


def _bin_average(field_, nbins, pos_dim):
    """Average a lattice field (..., N) over the SUB points (ring) or SUB x SUB points (torus) of
    each position bin, centred on the bin centre.  Ring: N = nbins SUB, result (..., nbins).  Torus:
    N = (nbins SUB)^2 in the order of CompiledModel.grid (index i1 * nbins SUB + i2), result
    (..., nbins^2) in the order of the particles' bins (solvers.coupling.bin_index: b1 * nbins + b2).
    On a point there is one bin."""
    if pos_dim == 0:
        return field_
    idx = _bin_members(nbins)
    if pos_dim == 1:
        return field_[..., idx].mean(axis=-1)
    if pos_dim != 2:
        raise ValueError(f"verify: position bins for {pos_dim} angles are not defined")
    side = nbins * SUB
    f = np.asarray(field_).reshape(np.shape(field_)[:-1] + (side, side))
    f = f[..., idx, :].mean(axis=-2)                 # (..., nbins, side): first angle averaged per bin
    f = f[..., idx].mean(axis=-1)                    # (..., nbins, nbins)
    return f.reshape(f.shape[:-2] + (nbins * nbins,))


def _bin_centre(field_, nbins, pos_dim):
    """A lattice field at the bin centres (the solver points 0, SUB, 2 SUB, ... per angle), in the
    particles' bin order."""
    if pos_dim == 0:
        return field_
    if pos_dim == 1:
        return field_[..., ::SUB]
    side = nbins * SUB
    f = np.asarray(field_).reshape(np.shape(field_)[:-1] + (side, side))[..., ::SUB, ::SUB]
    return f.reshape(f.shape[:-2] + (nbins * nbins,))


def _window_weights(times, t0):
    """(selection of the records in [t0, T], trapezoid weights over them summing to 1)."""
    sel = times >= t0 - 1e-9
    tt = times[sel]
    wt = np.zeros_like(tt)
    wt[1:] += np.diff(tt) / 2
    wt[:-1] += np.diff(tt) / 2
    return sel, wt / wt.sum()


def _interval(s: VerifySettings):
    """The kinetic x-interval of the settings: None (automatic) or (xmin, xmax)."""
    if (s.xmin is None) != (s.xmax is None):
        raise ValueError(f"give both xmin and xmax or neither (got xmin = {s.xmin}, xmax = {s.xmax})")
    return None if s.xmin is None else (float(s.xmin), float(s.xmax))


def _kinetic_window(cm, n, s: VerifySettings, initial_layer=None, progress=None):
    """Kinetic run from the particles' initial distribution; window averages over [t0, T] per bin,
    the final density averaged over each bin, and the x-grid.  At finite n the run starts from the
    density shifted onto the manifold (initial_layer=True): the window [t0, T] excludes the initial
    layer, whose O(sqrt n) ringing the kinetic step need not resolve."""
    from .kinetic import KineticSolver
    if n is not None and initial_layer is None:
        initial_layer = True
    npos = s.nbins * SUB if cm.pos_dim else 1
    ks = KineticSolver(cm, npos=npos, nx=s.nx, n=n, interval=_interval(s))
    from .kinetic import STEP_TOL, KineticError, KineticStepTooCoarse
    dt = s.kinetic_dt
    while True:
        # the step is halved (or set to resolve the offending mode) until the unresolved fast
        # transient of the finite-n equation ends before the window [t0, T]
        try:
            res = ks.run(s.T, dt, record_every=dt, initial_layer=initial_layer)
            tr = res.info["step_audit"]["transient"]
            nu = res.info["step_audit"]["nu_transient"]
        except KineticStepTooCoarse as exc:
            tr, nu = float("inf"), [exc.nu.real, exc.nu.imag]
        if tr <= s.t0:
            break
        new = min(dt / 2, 0.99 * 2 * STEP_TOL / abs(complex(*nu)))
        if s.T / new > 2e5:
            raise KineticError(f"model {cm.name!r}: at n = {n:g} the kinetic step dt = {dt:g} does not resolve "
                               f"the fast modes, and their transient ({tr:.3g}) reaches into the averaging "
                               f"window [t0, T] = [{s.t0:g}, {s.T:g}]; resolving them needs dt = {new:.3g}: "
                               f"use a later --t0")
        _progress(f"[verify {cm.name}] n = {n:g}: kinetic dt = {dt:g} leaves an unresolved fast transient "
                  f"({tr:.3g} > t0 = {s.t0:g}); using dt = {new:.3g}", progress)
        dt = new
    sel, wt = _window_weights(res.times, s.t0)

    def avg(arr):
        return np.tensordot(wt, arr[sel], axes=(0, 0))
    out = {"mean": _bin_average(avg(res.mean), s.nbins, cm.pos_dim),
           "gbar": _bin_average(avg(res.gbar), s.nbins, cm.pos_dim),
           "lam": _bin_centre(avg(res.lam), s.nbins, cm.pos_dim),
           "density": _bin_average(np.moveaxis(res.density[-1], -1, -2), s.nbins, cm.pos_dim),  # (P, Nx, bins)
           "x": res.x, "residual": float(res.residual.max()),
           "times": res.times, "lam_series": _bin_centre(res.lam, s.nbins, cm.pos_dim),
           "kinetic_dt": dt, "step_audit": res.info["step_audit"]}
    return out


def wasserstein1(samples, x, p):
    """W1 between the empirical law of ``samples`` and the cell density p on cell centres x
    (uniform cells): integral |F_emp - F_pred| over the grid."""
    h = x[1] - x[0]
    edges = np.concatenate([[x[0] - h / 2], x + h / 2])
    Fp = np.concatenate([[0.0], np.cumsum(p) * h])
    Fp /= Fp[-1]
    Fe = np.searchsorted(np.sort(samples), edges, side="right") / max(len(samples), 1)
    inside = np.sum(np.abs(Fe - Fp)[:-1]) * h
    # mass of samples outside the grid: distance to the grid ends
    lo = samples[samples < edges[0]]
    hi = samples[samples > edges[-1]]
    return float(inside + (np.sum(edges[0] - lo) + np.sum(hi - edges[-1])) / max(len(samples), 1))


class CoupledNoise:
    """Brownian increments reproducible per (seed, population, fine step), so that a run at 2 dt
    sees exactly the sums of pairs of the increments of the run at dt."""

    def __init__(self, seed: int, populations, fine_dt: float, factor: int):
        self.seed, self.pops, self.fine_dt, self.factor = int(seed), list(populations), fine_dt, factor

    def __call__(self, step, pop, dt, out):
        if abs(dt - self.factor * self.fine_dt) > 1e-12 * dt:
            raise ValueError(f"CoupledNoise for steps of {self.factor} x {self.fine_dt:g} was asked for a step "
                             f"of {dt:g} (did the step guard refine dt? use dt_guard='refuse' with coupled noise)")
        ia = self.pops.index(pop)
        out[...] = 0.0
        buf = np.empty_like(out)
        for k in range(self.factor):
            np.random.default_rng([self.seed, ia, step * self.factor + k]).standard_normal(out=buf)
            out += buf
        out *= math.sqrt(self.fine_dt)


def verify(model, settings: VerifySettings | None = None, *, progress=None,
           bias: dict | None = None, prediction_model=None, scheduler="serial") -> VerifyReport:
    """Run the verification (see the module docstring).

    model: the network that is simulated (CompiledModel or name).  progress: a callable taking one
    line of progress (e.g. print), None for silence.  prediction_model: the model whose
    limit equations are the prediction (default: the same); tests of the verifier itself use a
    different one, or ``bias``, which adds constants to the finite-n prediction ({"mean": 0.05}).
    scheduler: where the particle runs go (solvers.ensemble: 'serial', 'local', an address, a Client)."""
    s = settings or VerifySettings()
    cm = model if isinstance(model, CompiledModel) else CompiledModel(model)
    pm = cm if prediction_model is None else (
        prediction_model if isinstance(prediction_model, CompiledModel) else CompiledModel(prediction_model))
    if cm.m == 2 and prediction_model is None and not bias:
        import sys
        from .verify_m2 import verify_m2   # m = 2 (per component); this module's helpers passed, not imported back
        return verify_m2(cm, s, progress=progress, common=sys.modules[__name__])
    if cm.m != 1:
        raise ValueError(f"model {cm.name!r}: verify needs the kinetic solver, which handles m = 1 "
                         f"(the state has dimension {cm.m})")
    if not (0 <= s.t0 < s.T):
        raise ValueError(f"need 0 <= t0 < T, got t0 = {s.t0}, T = {s.T}")
    if s.seeds < 2:
        raise ValueError("verify needs at least 2 seeds for standard errors")
    if not (np.isfinite(s.kinetic_dt) and 0 < s.kinetic_dt < s.T):
        raise ValueError(f"need 0 < kinetic dt < T, got {s.kinetic_dt} (T = {s.T})")
    _interval(s)
    if s.nx is not None:
        from .kinetic import _check_nx
        _check_nx(s.nx)
    nbins = s.nbins if cm.pos_dim else 1
    s.nbins = nbins
    nbt = cm.n_positions(nbins)          # position bins in all: nbins per angle (torus: nbins^2)
    P = cm.P
    t_start = time.perf_counter()
    timings = {}

    # ---- feasibility of the balance (the same diagnosis as every other command), then stability
    from .feasibility import check_feasible
    check_feasible(pm)
    # ---- stability of the finite-n state at every tested size (DESIGN.md §4b)
    from .verify_stability import finite_n_stability, oscillation_check
    stab = finite_n_stability(pm, s.sizes, s.nbins * SUB if cm.pos_dim else None)
    stability = []
    for n in s.sizes:
        lead = stab[n]["leading"]
        why = stab[n].get("undetermined")
        stability.append({"n": n, "stable": stab[n]["stable"] if why is None else None,
                          "leading": None if lead is None else [lead.real, lead.imag],
                          "eigenvalues": [[w.real, w.imag] for w in stab[n]["eigenvalues"]],
                          "note": why})
        verdict = ("not determined: " + why if why else
                   f"leading eigenvalue {'none' if lead is None else f'{lead.real:.4g}{lead.imag:+.4g}i'}: "
                   f"{'stable' if stab[n]['stable'] else 'UNSTABLE'}")
        _progress(f"[verify {cm.name}] n = {n}: finite-n fast spectrum <f'> + sqrt(n) W D, {verdict}", progress)
    unstable_sizes = [n for n in s.sizes if not stab[n]["stable"]]
    checks_extra = {}
    if unstable_sizes:
        bad = ", ".join(f"n = {n} (eigenvalue {stab[n]['leading'].real:.4g}{stab[n]['leading'].imag:+.4g}i)"
                        for n in unstable_sizes)
        if not s.unstable:
            report = VerifyReport(cm.name, cm.populations, s, np.zeros(nbt), [], stability)
            report.checks = {"stability": {"passed": False, "message":
                             f"the finite-n state is not stable at {bad}: a stationary comparison is "
                             f"meaningless there; test smaller sizes, or the unstable regime with --unstable "
                             f"(frequency and growth against the prediction)"}}
            report.passed = False
            report.timings = {"total": time.perf_counter() - t_start}
            return report
        for n in unstable_sizes:
            res = oscillation_check(cm, n, stab[n]["state"], s.dt / 2, s.seeds)
            checks_extra[f"oscillation n={n}"] = {"passed": res["passed"], "message": res["message"],
                                                  **{k: v for k, v in res.items() if k not in ("passed", "message")}}
            _progress(f"[verify {cm.name}] {res['message']}", progress)
    sizes = tuple(n for n in s.sizes if n not in unstable_sizes)     # the stationary comparisons
    if not sizes:
        report = VerifyReport(cm.name, cm.populations, s, np.zeros(nbt), [], stability)
        report.checks = checks_extra
        report.passed = all(c["passed"] for c in checks_extra.values())
        report.timings = {"total": time.perf_counter() - t_start}
        return report

    # ---- predictions: balanced limit (and field), finite n per size
    tk = time.perf_counter()
    limit = _kinetic_window(pm, None, s, progress=progress)
    timings["kinetic_limit"] = time.perf_counter() - tk
    _progress(f"[verify {cm.name}] kinetic balanced limit: {timings['kinetic_limit']:.1f} s", progress)
    field_check = None
    if all(cm.module.LINEAR_ADDITIVE.values()):
        field_check = _field_window(pm, s, limit)
    # ---- particle runs: one task per (n, seed), serially or on Dask (solvers.verify_runs, solvers.ensemble)
    from .verify_runs import particle_runs
    per_n = []
    results, dt_used = particle_runs(cm, sizes, s, nbins, CoupledNoise, scheduler=scheduler, progress=progress)

    for n in sizes:
        tk = time.perf_counter()
        fin = _kinetic_window(pm, n, s, progress=progress)
        timings[f"kinetic_n{n}"] = time.perf_counter() - tk
        if bias:
            for q, v in bias.items():
                fin[q] = fin[q] + v
        runs_n = results[n]
        entry = {"n": n, "seeds": s.seeds, "dt": dt_used[n], "kinetic_dt": fin["kinetic_dt"],
                 "kinetic_step_audit": fin["step_audit"]}
        for q in ("mean", "gbar", "lam"):
            allb = np.concatenate([r["batches"][q] for r in runs_n])          # (S nbatch, P, bins)
            seed_means = np.array([r["batches"][q].mean(axis=0) for r in runs_n])
            est = allb.mean(axis=0)
            se = allb.std(axis=0, ddof=1) / math.sqrt(allb.shape[0])
            allbias = np.concatenate([r["bias"][q] for r in runs_n])
            entry[q] = {"particles": est, "se": se, "seed_means": seed_means,
                        "finite_n": fin[q], "limit": limit[q],
                        "err_finite_n": est - fin[q], "err_limit": est - limit[q],
                        "dt_bias": allbias.mean(axis=0),
                        "dt_bias_se": allbias.std(axis=0, ddof=1) / math.sqrt(allbias.shape[0])}
        # Wasserstein-1 per population and bin, final states pooled over seeds
        w1 = np.zeros((P, nbt))
        w1_lim = np.zeros((P, nbt))
        w1_seeds = np.zeros((len(runs_n), P, nbt))
        for ia, a in enumerate(cm.populations):
            for b in range(nbt):
                pooled = []
                for r_i, r in enumerate(runs_n):
                    xs = r["final"][a][cm.e]
                    mask = _in_bin(r["positions"][a], b, nbins, cm.pos_dim)
                    pooled.append(xs[mask])
                    w1_seeds[r_i, ia, b] = wasserstein1(xs[mask], fin["x"][ia], fin["density"][ia][:, b])
                w1[ia, b] = wasserstein1(np.concatenate(pooled), fin["x"][ia], fin["density"][ia][:, b])
                w1_lim[ia, b] = wasserstein1(np.concatenate(pooled), limit["x"][ia], limit["density"][ia][:, b])
        entry["w1_finite_n"] = w1
        entry["w1_limit"] = w1_lim
        entry["w1_finite_n_seed_sd"] = w1_seeds.std(axis=0, ddof=1)
        entry["kinetic_residual"] = fin["residual"]
        entry["_plot"] = {"x": fin["x"], "density": fin["density"], "times": fin["times"],
                          "lam_series": fin["lam_series"], "particle_series": runs_n[0]["series"],
                          "samples": [[np.concatenate([r["final"][a][cm.e][_in_bin(r["positions"][a], b, nbins,
                                                                                    cm.pos_dim)]
                                                       for r in runs_n]) for b in range(nbt)]
                                      for a in cm.populations]}
        per_n.append(entry)
        _progress(f"[verify {cm.name}] kinetic finite n = {n}: {timings[f'kinetic_n{n}']:.1f} s", progress)

    # the finite-n equation's distance to the limit far out, where the rate must be n^(-1/2)
    far = (1e8, 1e10)
    gaps = []
    for nf in far:
        w = _kinetic_window(pm, nf, s, initial_layer=True, progress=progress)
        gaps.append(float(np.sqrt(np.mean((w["mean"] - limit["mean"]) ** 2))))
    report = VerifyReport(cm.name, cm.populations, s, np.asarray(results[sizes[0]][0]["bin_centres"]), per_n,
                          stability, {"mean": limit["mean"], "gbar": limit["gbar"], "lam": limit["lam"],
                                      "asymptotic_gap": (far, gaps)})
    report.plot_data = {"limit": limit}
    _checks(report, results, field_check)
    if checks_extra:
        report.checks.update(checks_extra)
        report.passed = all(c["passed"] for c in report.checks.values())
    timings["total"] = time.perf_counter() - t_start
    report.timings = timings
    return report


def _in_bin(pos, b, nbins, pos_dim):
    """Mask of the neurons in position bin b (ring: b < nbins; torus: b = b1 * nbins + b2), the
    particles' own binning (solvers.coupling.bin_index)."""
    if pos_dim == 0:
        return np.ones(len(pos[0]) if pos else 0, bool) if pos else slice(None)
    from .coupling import bin_index
    return bin_index([np.mod(p, 2 * np.pi) for p in pos], nbins, pos_dim) == b


def _field_window(cm, s, limit):
    """The neural field over the same window: it must equal the kinetic balanced limit."""
    try:
        from .field import solve_field
    except ImportError:
        return None
    npos = s.nbins * SUB if cm.pos_dim else None
    res = solve_field(cm, s.T, s.kinetic_dt, npos=npos)
    sel, wt = _window_weights(res.times, s.t0)
    mean = _bin_average(np.tensordot(wt, res.mean[sel], axes=(0, 0)), s.nbins, cm.pos_dim)
    diff = float(np.abs(mean - limit["mean"]).max())
    return diff


def finite_n_z(report: VerifyReport, quantities) -> tuple:
    """z = (particles - finite-n prediction) / se per size, quantity, population and bin, stored as
    e[q]["z_finite_n"]; returns (number of comparisons M, (worst z, (n, quantity, population, bin,
    error, se)))."""
    M, worst = 0, (0.0, None)
    for e in report.per_n:
        for q in quantities:
            z = e[q]["err_finite_n"] / np.where(e[q]["se"] > 0, e[q]["se"], np.inf)
            e[q]["z_finite_n"] = z
            M += z.size
            k = np.unravel_index(np.argmax(np.abs(z)), z.shape)
            if abs(z[k]) > abs(worst[0]):
                worst = (float(z[k]), (e["n"], q, report.populations[k[0]], int(k[1]),
                                       float(e[q]["err_finite_n"][k]), float(e[q]["se"][k])))
    return M, worst


def limit_rate_check(report: VerifyReport) -> dict:
    """The limit-rate check (module docstring) from report.per_n[i]["mean"] (seed_means, finite_n, limit)
    and report.limit["asymptotic_gap"] = ((n1, n2), (gap1, gap2)); sets report.slope, returns the check."""
    s = report.settings
    sizes = np.array([e["n"] for e in report.per_n], float)
    if len(sizes) < 2:
        return {"passed": False, "message": "need at least two sizes to fit the rate"}

    def rms_err(seed_means, lim):
        return float(np.sqrt(np.mean((seed_means.mean(axis=0) - lim) ** 2)))
    errs = np.array([rms_err(e["mean"]["seed_means"], e["mean"]["limit"]) for e in report.per_n])
    pred = np.array([float(np.sqrt(np.mean((e["mean"]["finite_n"] - e["mean"]["limit"]) ** 2)))
                     for e in report.per_n])
    slope = float(np.polyfit(np.log(sizes), np.log(errs), 1)[0])
    pred_slope = float(np.polyfit(np.log(sizes), np.log(np.maximum(pred, 1e-300)), 1)[0])
    rng = np.random.default_rng(2024)
    boots = []
    for _ in range(s.bootstrap):
        eb = []
        for e in report.per_n:
            sm = e["mean"]["seed_means"]
            pick = sm[rng.integers(0, sm.shape[0], sm.shape[0])]
            eb.append(rms_err(pick, e["mean"]["limit"]))
        boots.append(np.polyfit(np.log(sizes), np.log(eb), 1)[0])
    lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
    asym = report.limit.get("asymptotic_gap")
    s_inf = None
    if asym is not None:
        s_inf = float(np.log(asym[1][1] / asym[1][0]) / np.log(asym[0][1] / asym[0][0]))
    ok = (lo <= pred_slope <= hi) and s_inf is not None and abs(s_inf + 0.5) <= 0.05
    report.slope = {"sizes": sizes, "rms_error_limit": errs, "slope": slope, "ci95": [lo, hi],
                    "finite_n_limit_gap": pred, "finite_n_slope": pred_slope,
                    "asymptotic_slope": s_inf, "asymptotic_sizes": None if asym is None else asym[0]}
    return {"passed": bool(ok), "message":
            f"limit error slope {slope:.3f}, 95% CI [{lo:.3f}, {hi:.3f}] "
            f"{'contains' if lo <= pred_slope <= hi else 'misses'} the finite-n "
            f"equation's slope {pred_slope:.3f} over the same sizes; its asymptotic "
            f"slope (n = 1e8..1e10) is {s_inf:.3f} (need -0.5 +- 0.05)"}


def _checks(report: VerifyReport, results, field_check):
    s = report.settings
    checks = {}
    # finite-n agreement
    M, worst = finite_n_z(report, ("mean", "gbar", "lam"))
    dof = s.seeds * s.nbatch - 1
    zcrit = float(sstats.t.ppf(1 - ALPHA / (2 * M), dof))
    ok = abs(worst[0]) <= zcrit
    w = worst[1]
    msg = (f"max |particles - finite-n| / se = {abs(worst[0]):.2f} (critical {zcrit:.2f}: Student t, "
           f"{dof} dof, alpha {ALPHA:g} over {M} comparisons)")
    if w:
        msg += (f"; worst: n = {w[0]}, {w[1]}, population {w[2]}, bin {w[3]}: error {w[4]:+.4f} "
                f"+- {w[5]:.4f}")
    checks["finite-n"] = {"passed": bool(ok), "message": msg, "max_z": abs(worst[0]), "critical": zcrit}

    # the step's own bias: m(dt) - m(2 dt), the first-order Euler bias of the fine runs, which the
    # Richardson extrapolation removes; it must stay within the statistical tolerance zcrit * se,
    # else the step is too coarse for the extrapolation to be trusted
    worst_b = (0.0, None)
    for e in report.per_n:
        for q in ("mean", "gbar", "lam"):
            ratio = np.abs(e[q]["dt_bias"]) / np.where(e[q]["se"] > 0, zcrit * e[q]["se"], np.inf)
            e[q]["dt_bias_ratio"] = ratio
            k = np.unravel_index(np.argmax(ratio), ratio.shape)
            if ratio[k] > worst_b[0]:
                worst_b = (float(ratio[k]), (e["n"], q, report.populations[k[0]], int(k[1]),
                                             float(e[q]["dt_bias"][k]), float(zcrit * e[q]["se"][k]), e["dt"]))
    wb = worst_b[1]
    msg = f"largest |m(dt) - m(2 dt)| / (critical z * se) = {worst_b[0]:.2f} (need <= 1)"
    if wb:
        msg += (f"; at n = {wb[0]} (dt = {wb[6]:g}), {wb[1]}, population {wb[2]}, bin {wb[3]}: bias {wb[4]:+.2e} "
                f"against tolerance {wb[5]:.2e}")
    checks["dt-bias"] = {"passed": worst_b[0] <= 1.0, "message": msg, "max_ratio": worst_b[0]}

    checks["limit-rate"] = limit_rate_check(report)
    if field_check is not None:
        checks["field"] = {"passed": field_check < 1e-3, "message":
                           f"neural field vs kinetic limit: max |mean difference| {field_check:.2e} (< 1e-3)"}
    report.checks = checks
    report.passed = all(c["passed"] for c in checks.values())
