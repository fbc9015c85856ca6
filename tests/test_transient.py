"""Particles against the kinetic solver over a transient (issue 4), initial layer excluded.

From x ~ N(0, 1) the network relaxes onto its balanced state; on t in [0.5, 3] (the initial layer
lasts ~ 1/(sqrt(n) |Re eig W D|) < 0.2 here) the seed-averaged gbar and mean, per population and
position bin, must agree with the finite-n kinetic equation within sampling error, and the RMS
distance of the particle trajectory to the balanced-limit trajectory must fall with n.  Its
log-log slope must equal (within 0.05) the slope of the finite-n equation's own distance to the
limit over the same sizes, which in turn must tend to -1/2 (between n = 1e8 and 1e10), and it must
lie in [-0.8, -0.3] whenever the finite-n equation's slope does.  Measured: on ring_nonlinear the
finite-n slopes are -0.27, -0.28, -0.31, -0.39, -0.46 over n = 4000 -> 8000 -> 16000 -> 64000 ->
1e6 -> 1e8 (the particles give -0.27 over 4000..16000): the band [-0.8, -0.3] the issue asks for
holds there only beyond n ~ 16000, out of a test's reach; ei_multiplicative is in the band.

Standard errors come from independent seeds, the variance pooled over the position bins of a
population at each time (the bins of a ring model are statistically alike), so each z-score has
(seeds - 1) x bins degrees of freedom; the critical value is the Student-t quantile at family-wise
level 0.01, Bonferroni-corrected over all comparisons.  The Euler–Maruyama O(dt) bias is removed by
Richardson extrapolation with coupled Brownian paths (solvers.verify.CoupledNoise).  The coupled pair
(dt, 2 dt) must both resolve the fast coupling modes, so the runs use dt_guard='refuse' and dt is
halved from 0.01 until the coarse run is accurate (as verify does): ring_nonlinear needs 0.005 at
n = 8000 and 0.0025 at 16000 (the largest accurate step there is 0.0099 at t = 0.8)."""

import numpy as np
import pytest
from scipy import stats

from solvers.compiled import CompiledModel
from solvers.kinetic import KineticSolver
from solvers.particles import StepTooCoarse, simulate
from solvers.verify import SUB, CoupledNoise, _bin_average

T, DT, NBINS, SEEDS = 3.0, 0.01, 4, 6
TIMES = np.array([0.5, 1.0, 1.5, 2.0, 2.5])


def _step(cm, n):
    """The largest of DT, DT/2, DT/4 ... whose coarse partner 2 dt resolves the fast modes."""
    dt = DT
    while True:
        try:
            simulate(cm, n, T, 2 * dt, seed=1, nbins=NBINS if cm.pos_dim else None, record_every=0.04,
                     dt_guard="refuse")
            return dt
        except StepTooCoarse:
            dt /= 2


def particle_trajectories(cm, n):
    """(seeds, times, P, bins) of mean and gbar, Richardson-extrapolated in dt."""
    out = {"mean": [], "gbar": []}
    dt = _step(cm, n)
    for seed in range(1, SEEDS + 1):
        per = {}
        for factor in (1, 2):
            res = simulate(cm, n, T, dt * factor, seed=seed, nbins=NBINS if cm.pos_dim else None,
                           record_every=0.02, noise=CoupledNoise(seed, cm.populations, dt, factor),
                           dt_guard="refuse")
            idx = [int(np.argmin(np.abs(res.times - t))) for t in TIMES]
            for q in ("mean", "gbar"):
                v = getattr(res, q)[idx]
                per[q] = 2 * v if factor == 1 else per[q] - v
        for q in out:
            out[q].append(per[q])
    return {q: np.array(v) for q, v in out.items()}


def kinetic_trajectories(cm, n, initial_layer=None):
    npos = NBINS * SUB if cm.pos_dim else 1
    res = KineticSolver(cm, npos=npos, n=n).run(T, 0.01, record_every=0.01,
                                                        initial_layer=initial_layer)
    # the kinetic step's unresolved fast transient (finite n) must end before the first compared time
    assert res.info["step_audit"]["transient"] <= TIMES[0], (n, res.info["step_audit"])
    idx = [int(np.argmin(np.abs(res.times - t))) for t in TIMES]
    return {q: _bin_average(getattr(res, q)[idx], NBINS, cm.pos_dim) for q in ("mean", "gbar")}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ring_nonlinear", "ei_multiplicative"])
def test_transient_particles_against_kinetic(name):
    cm = CompiledModel(name)
    sizes = (4000, 8000, 16000)
    limit = kinetic_trajectories(cm, None)
    errs, gaps = [], []
    worst = 0.0
    nb = NBINS if cm.pos_dim else 1
    comparisons = len(sizes) * 2 * TIMES.size * cm.P * nb
    crit = stats.t.ppf(1 - 1e-2 / (2 * comparisons), (SEEDS - 1) * nb)
    for n in sizes:
        part = particle_trajectories(cm, n)
        fin = kinetic_trajectories(cm, n)
        for q in ("mean", "gbar"):
            est = part[q].mean(axis=0)                                     # (times, P, bins)
            var = part[q].var(axis=0, ddof=1).mean(axis=-1, keepdims=True)  # pooled over bins
            se = np.sqrt(var / SEEDS)
            z = (est - fin[q]) / se
            worst = max(worst, float(np.abs(z).max()))
        errs.append(float(np.sqrt(np.mean((part["mean"].mean(axis=0) - limit["mean"]) ** 2))))
        gaps.append(float(np.sqrt(np.mean((fin["mean"] - limit["mean"]) ** 2))))
    assert worst < crit, (worst, crit)
    assert errs[0] > errs[1] > errs[2], errs
    slope = np.polyfit(np.log(sizes), np.log(errs), 1)[0]
    gap_slope = np.polyfit(np.log(sizes), np.log(gaps), 1)[0]
    assert abs(slope - gap_slope) < 0.05, (errs, gaps, slope, gap_slope)
    far = [float(np.sqrt(np.mean((kinetic_trajectories(cm, nf, True)["mean"] - limit["mean"]) ** 2)))
           for nf in (1e8, 1e10)]
    assert abs(np.log(far[1] / far[0]) / np.log(100) + 0.5) < 0.05, far
    if -0.8 <= gap_slope <= -0.3:
        assert -0.8 <= slope <= -0.3, (errs, slope)
