"""Particle ensembles on both sides of a sweep's boundaries (``check_particles K``, solvers.sweep).

Where a particle check means something, K points are taken on each side of a boundary p*, at
p* + (k / K) (p_side - p*), k = 1..K, between p* and the grid point p_side on that side (its state
solved there at the sweep's n), and a particle ensemble (``seeds`` runs of n neurons) is compared with
the prediction:

* fast boundaries (Hopf or saddle-node of diag(<f'>) + sqrt(n) W D at finite n): the linear response
  along the leading eigenvector nu (solvers.verify_stability.oscillation_check: pairs of runs with
  shared Brownian paths, one kicked along the mode; the difference fitted as
  e^{r t} (a cos w t + b sin w t) per seed, within the linear regime):
    predicted state: 'oscillating' where Re nu > 0 (growing oscillation at angular frequency |Im nu|),
    'growing' for a real nu > 0, 'steady' where Re nu < 0 (the perturbation decays, ringing at |Im nu|);
    measured state: from the sign of the seed-mean growth rate r when |r| exceeds RATE_SE standard
    errors over seeds ('undetermined' otherwise: that is a disagreement); measured frequency: the
    seed-mean w.
    agreement: the states match and, when nu is complex, |w / |Im nu| - 1| <= 5 %.
* folds (saddle-nodes of the branch, solvers.sweep_line): the two branches that meet at the fold exist
  on one side of it only.  There the same linear-response check runs at each of the two states (the
  stable one: steady; the other: growing along its real unstable eigenvector), so that the particles
  confirm which of the coexisting states the network can hold.  The other side is not checked: no
  state of either branch exists there, and what a network started near the fold does (it leaves for a
  distant branch after a slow passage) is a transient, not a prediction of the stationary theory.
* loss of balance at finite n (the balanced limit's demanded activity reaching the gain's range): the
  finite-n stationary state exists on both sides (on the infeasible side the population that lost
  balance is pinned near the end of its range, its input lambda_n growing like sqrt(n)).  The
  activity check (``activity_check``) starts every run from the finite-n stationary density and
  compares the time-averaged population activities (mean over seeds, standard error over seeds)
  with the finite-n prediction: agreement within ACTIVITY_SE standard errors plus ACTIVITY_RTOL of
  the gain's range for every population.  The second term is the finite-n equation's own error
  (DESIGN.md section 4: the network's common noise leaves a residual that shrinks slowly with n;
  ei_linear near its loss of balance, measured: about 1e-3 at n = 400, 2.6e-4 at n = 2500, below
  the 0.033 by which gbar_I at n = 400, h_E = 0.08 differs from the balanced limit's, so the check
  still tells the two apart); 'activity_z' reports the deviation in standard errors alone.  A bistable network
  whose seeds settle in different states shows as a large standard error.
  Each entry also reports the balanced limit's demanded activities (None on the infeasible side).
  In the balanced limit (no n) no particle check is possible.
* slow boundaries are not checked: the slow spectrum is the balanced limit's (n = infinity), which a
  finite network only approaches, and the sweep computes it only there.

Each point is one task (solvers.ensemble).  Particles need finite n: the sweep must be at a given n.
"""
from __future__ import annotations

import math

import numpy as np

from .ensemble import SERIAL, run_tasks

FREQ_TOL = 0.05
DT_RESOLVE = 0.1            # the particle step: dt <= DT_RESOLVE / max |nu| (every fast mode resolved)
RATE_SE = 3.0               # a measured growth rate decides the state when |r| > RATE_SE standard errors
ACTIVITY_SE = 3.0           # activity check: |measured - predicted| <= ACTIVITY_SE standard errors
ACTIVITY_RTOL = 0.005       # activity check: + this fraction of the gain's range, the finite-n equation's own error
ACTIVITY_T = 20.0           # activity check: run length in units of the slowest intrinsic time 1 / |<f'>|

__all__ = ["check_particles", "particle_point", "activity_check"]


def _fold_points(res, bd, K: int) -> list:
    """Entries at K points on the existing side of a fold, on each of its two branches: the start of
    each solve is the chord from the fold's state to the branch's nearest point there."""
    name, root = bd["parameter"], bd["value"]
    y = bd.get("_y")
    out = []
    for br in bd["branches"]:
        pts = [p for p in list(res.points) + list(res.branch_points)
               if p.get("branch", 0) == br and p["status"] == "ok"]
        if not pts or y is None:
            continue
        near = min(pts, key=lambda p: abs(p["params"][name] - root))
        end, L_end = near["params"][name], np.ravel(near["_Lambda"])
        for k in range(1, K + 1):
            w = k / K
            out.append({"check": "linear-response", "boundary": "fold", "boundary_kind": bd["kind"],
                        "boundary_value": root, "parameter": name, "branch": br,
                        "params": {**bd["params"], name: float(root + w * (end - root))},
                        "side_verdict": near["verdict"], "_start": (1 - w) * np.asarray(y[:-1], float) + w * L_end})
    return out


def _points(res, K: int) -> list:
    out = []
    for bd in res.boundaries:
        if bd.get("value") is None:
            continue
        name, root = bd["parameter"], bd["value"]
        if bd.get("type") == "fold":
            out.extend(_fold_points(res, bd, K))
            continue
        if bd.get("type") not in ("fast", "balance"):
            continue                                            # slow: module docstring
        check = "linear-response" if bd["type"] == "fast" else "activity"
        for side, end in zip(bd["verdicts"], bd["bracket"]):
            for k in range(1, K + 1):
                v = root + (k / K) * (end - root)
                out.append({"check": check, "boundary": bd["mode"] if check != "activity" else "loss-of-balance",
                            "boundary_kind": bd["kind"], "boundary_value": root, "parameter": name,
                            "params": {**bd["params"], name: float(v)}, "side_verdict": side})
    return out


def activity_check(cm, n, st, dt: float, seeds: int, T: float) -> dict:
    """Time-averaged population activities of ``seeds`` particle runs of size n started from the
    finite-n stationary state st (solvers.verify_stability._sampler), over [T / 10, T]: per population
    the mean over seeds and its standard error over seeds, against st's gbar (mean over positions)."""
    from .particles import simulate
    from .verify_stability import _sampler
    init = _sampler(st)
    per_seed = []
    for seed in range(1, seeds + 1):
        run = simulate(cm, n, T, dt, seed=seed, init=init, dt_guard="refuse")
        keep = run.times >= T / 10
        per_seed.append(run.gbar[keep].mean(axis=(0, 2)))
    per_seed = np.array(per_seed)                                   # (seeds, P)
    mean = per_seed.mean(axis=0)
    se = per_seed.std(axis=0, ddof=1) / math.sqrt(seeds) if seeds > 1 else np.full(mean.shape, math.inf)
    return {"measured": mean, "se": se, "per_seed": per_seed, "predicted": np.mean(st.gbar, axis=1)}


def particle_point(task) -> dict:
    """One point: (spec, entry, seeds, dt or None, T cap) -> the entry with the prediction, the
    measured growth rate and angular frequency per seed, the states and the agreement."""
    from .sweep_point import load_model, solve_state
    from .verify_stability import oscillation_check
    spec, entry, seeds, dt = task
    cm = load_model(spec, entry["params"])
    _, st = solve_state(spec, entry["params"], entry.get("_start"))
    entry = {k: v for k, v in entry.items() if not k.startswith("_")}
    w = np.asarray(st.finite_n_eigenvalues, complex)
    if dt is None:
        dt = min(0.01, DT_RESOLVE / max(float(np.abs(w).max()), 1e-12))
    if entry["check"] == "activity":
        return _activity_entry(spec, cm, st, entry, seeds, dt)
    lead = w[np.argmax(w.real)]
    T = None
    if lead.real < 0:           # a decaying mode: 3 decay times, at least 3 and at most 10 periods
        T = 3.0 / abs(lead.real)
        if abs(lead.imag) > 0:
            per = 2 * math.pi / abs(lead.imag)
            T = min(max(T, 3 * per), 10 * per)
    res = oscillation_check(cm, spec.n, st, dt, seeds, T=T)
    nu = complex(*res["predicted"])
    tol = 1e-9 * max(1.0, abs(nu))
    predicted = "steady" if nu.real < 0 else ("oscillating" if abs(nu.imag) > tol else "growing")
    rate, freq, se = res["rate"], res["frequency"], res["rate_se"]
    if not math.isfinite(rate):
        measured = "untestable"
    elif rate + RATE_SE * se < 0:
        measured = "steady"
    elif rate - RATE_SE * se > 0:
        measured = "oscillating" if abs(nu.imag) > tol else "growing"
    else:                       # the sign of the growth rate is not resolved (or the fit did not move)
        measured = "undetermined"
    f_ok = abs(nu.imag) <= tol or (math.isfinite(freq) and abs(freq / abs(nu.imag) - 1) <= FREQ_TOL)
    return {**entry, "n": spec.n, "dt": dt, "seeds": seeds, "predicted_eigenvalue": [nu.real, nu.imag],
            "predicted_state": predicted, "predicted_angular_frequency": abs(nu.imag),
            "measured_state": measured, "measured_rate": rate, "rate_se": res["rate_se"],
            "measured_angular_frequency": freq, "rates": list(res["rates"]), "frequencies": list(res["frequencies"]),
            "agrees": bool(measured == predicted and f_ok), "frequency_within_5pc": bool(f_ok)}


def _activity_entry(spec, cm, st, entry, seeds, dt) -> dict:
    from .balance_errors import InfeasibleBalance
    from .sweep_point import margin_of
    J = float(np.min(np.abs(np.asarray(st.drift_slope, float)))) or 1.0
    T = max(50, int(round(ACTIVITY_T / J / dt))) * dt
    out = activity_check(cm, spec.n, st, dt, seeds, T)
    try:
        m = margin_of(spec, cm)
    except InfeasibleBalance:
        m = None
    feasible = m is not None and m > 0
    demanded = None
    if feasible:
        mu = _demanded(spec, cm)
        demanded = None if mu is None else {a: float(v) for a, v in zip(cm.populations, mu)}
    dev = np.abs(out["measured"] - out["predicted"])
    tol = ACTIVITY_SE * out["se"] + ACTIVITY_RTOL * _widths(cm, st)
    ok = bool(np.all(dev <= tol))
    pops = cm.populations
    return {**entry, "n": spec.n, "dt": dt, "T": T, "seeds": seeds,
            "predicted_state": "balanced" if feasible else "unbalanced",
            "predicted_activity": {a: float(v) for a, v in zip(pops, out["predicted"])},
            "demanded_activity": demanded,
            "measured_activity": {a: float(v) for a, v in zip(pops, out["measured"])},
            "activity_se": {a: float(v) for a, v in zip(pops, out["se"])},
            "activity_z": {a: float(d / s) if s > 0 else math.inf for a, d, s in zip(pops, dev, out["se"])},
            "activity_tolerance": {a: float(v) for a, v in zip(pops, tol)},
            "per_seed": out["per_seed"].tolist(), "agrees": ok}


def _widths(cm, st) -> np.ndarray:
    """Per population the width of the gain's range (mean over positions; 1 where it is infinite)."""
    from .feasibility import gain_range
    out = []
    for a in cm.populations:
        lo, hi = gain_range(cm, a, st.pos, 0.0)
        w = float(np.mean(np.asarray(hi, float) - np.asarray(lo, float)))
        out.append(w if np.isfinite(w) and w > 0 else 1.0)
    return np.array(out)


def _demanded(spec, cm):
    """The balanced limit's demanded spatial-mean activity per population (None if balance does not fix it)."""
    from .feasibility import demanded_checks
    from .sweep_point import lattice_of
    checks = demanded_checks(lattice_of(spec, cm))
    by = {pop: dem for pop, dem, *_ in checks}
    if set(by) != set(cm.populations):
        return None
    return [by[a] for a in cm.populations]


def check_particles(spec, res, K: int, *, scheduler=SERIAL, progress=None, seeds: int = 3, dt=None) -> list:
    """Particle checks at K points on each side of the boundaries of ``res`` where one means something
    (module docstring: fast boundaries, folds, loss of balance at finite n)."""
    if spec.n is None:
        raise ValueError("particle checks need a network size: give n (--n N) to the sweep")
    if K < 1:
        raise ValueError(f"check_particles must be a positive number of points per side, got {K}")
    entries = _points(res, int(K))
    return run_tasks(particle_point, [(spec, e, int(seeds), dt) for e in entries], scheduler=scheduler,
                     progress=progress, label="particles")
