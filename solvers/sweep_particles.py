"""Particle ensembles on both sides of a sweep's boundaries (``check_particles K``, solvers.sweep).

For every fast boundary located at finite n (Hopf or saddle-node of diag(<f'>) + sqrt(n) W D), K
points on each side are taken at the parameter values p* + (k / K) (p_side - p*), k = 1..K, between
the boundary p* and the grid point p_side on that side.  At each the finite-n stationary state and
its leading fast eigenvalue nu (with its eigenvector) are computed, and a particle ensemble measures
the linear response of the network along that eigenvector (solvers.verify_stability.oscillation_check:
pairs of runs with shared Brownian paths, one kicked along the mode; the difference fitted as
e^{r t} (a cos w t + b sin w t) per seed, within the linear regime):

  predicted state: 'oscillating' where Re nu > 0 (growing oscillation at angular frequency |Im nu|),
  'growing' for a real nu > 0, 'steady' where Re nu < 0 (the perturbation decays, ringing at |Im nu|);
  measured state: from the sign of the seed-mean growth rate r; measured frequency: the seed-mean w.
  agreement: the states match and, when nu is complex, |w / |Im nu| - 1| <= 5 %.

Each point is one task (solvers.ensemble).  Particles need finite n: the sweep must be at a given n.
"""
from __future__ import annotations

import math

import numpy as np

from .ensemble import SERIAL, run_tasks

FREQ_TOL = 0.05
DT_RESOLVE = 0.1            # the particle step: dt <= DT_RESOLVE / max |nu| (every fast mode resolved)

__all__ = ["check_particles", "particle_point"]


def _points(res, K: int) -> list:
    out = []
    for bd in res.boundaries:
        if bd.get("type") != "fast" or bd.get("value") is None:
            continue
        name, root = bd["parameter"], bd["value"]
        for side, end in zip(bd["verdicts"], bd["bracket"]):
            for k in range(1, K + 1):
                v = root + (k / K) * (end - root)
                out.append({"boundary": bd["mode"], "boundary_value": root, "parameter": name,
                            "params": {**bd["params"], name: float(v)}, "side_verdict": side})
    return out


def particle_point(task) -> dict:
    """One point: (spec, entry, seeds, dt or None, T cap) -> the entry with the prediction, the
    measured growth rate and angular frequency per seed, the states and the agreement."""
    from .sweep_point import load_model, solve_state
    from .verify_stability import oscillation_check
    spec, entry, seeds, dt = task
    cm = load_model(spec, entry["params"])
    _, st = solve_state(spec, entry["params"])
    w = np.asarray(st.finite_n_eigenvalues, complex)
    if dt is None:
        dt = min(0.01, DT_RESOLVE / max(float(np.abs(w).max()), 1e-12))
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
    rate, freq = res["rate"], res["frequency"]
    if not math.isfinite(rate):
        measured = "untestable"
    else:
        measured = "steady" if rate < 0 else ("oscillating" if abs(nu.imag) > tol else "growing")
    f_ok = abs(nu.imag) <= tol or (math.isfinite(freq) and abs(freq / abs(nu.imag) - 1) <= FREQ_TOL)
    return {**entry, "n": spec.n, "dt": dt, "seeds": seeds, "predicted_eigenvalue": [nu.real, nu.imag],
            "predicted_state": predicted, "predicted_angular_frequency": abs(nu.imag),
            "measured_state": measured, "measured_rate": rate, "rate_se": res["rate_se"],
            "measured_angular_frequency": freq, "rates": list(res["rates"]), "frequencies": list(res["frequencies"]),
            "agrees": bool(measured == predicted and f_ok), "frequency_within_5pc": bool(f_ok)}


def check_particles(spec, res, K: int, *, scheduler=SERIAL, progress=None, seeds: int = 3, dt=None) -> list:
    """Particle checks at K points on each side of every fast boundary of ``res`` (module docstring)."""
    if spec.n is None:
        raise ValueError("particle checks need a network size: give n (--n N) to the sweep")
    if K < 1:
        raise ValueError(f"check_particles must be a positive number of points per side, got {K}")
    entries = _points(res, int(K))
    return run_tasks(particle_point, [(spec, e, int(seeds), dt) for e in entries], scheduler=scheduler,
                     progress=progress, label="particles")
