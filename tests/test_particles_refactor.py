"""The parts of the particle simulator (solvers/particle_*.py) compose to solvers.particles.simulate.

simulate = setup (particle_setup) + coupling step (particle_coupling) + Euler–Maruyama / Milstein
increment (particle_steps) + step audit (particle_guard) + records (particle_records).  These tests
run the parts by hand and require simulate's output bit for bit, check the steps against the
formulas they implement, and check that the public names stay importable from solvers.particles.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from solvers import particle_guard, particles
from solvers.compiled import CompiledModel
from solvers.particle_coupling import (ExponentialCouplingStep, FieldCouplingStep, LowRankExplicitStep,
                                       make_coupling_step)
from solvers.particle_guard import StepGuard, StepTooCoarse, explicit_dt_limit
from solvers.particle_records import Recorder, record_stride
from solvers.particle_setup import check_run, generated_functions, resolve_model, setup_particles
from solvers.particle_steps import SchemeStep, diffusion_increment, milstein_increment
from solvers.particles import simulate


@pytest.fixture(scope="module")
def ring_ei():
    return CompiledModel("ring_ei")


def _by_hand(model, n, T, dt, *, seed=0, scheme="euler", coupling="auto", implicit=True,
             jacobian_every=1, positions="lattice", nbins=None, record_every=None):
    """simulate's loop written out with its parts (no refinement: the run must not need one)."""
    cm = resolve_model(model, None)
    n, T, dt, nsteps, jacobian_every = check_run(cm, n, T, dt, scheme=scheme, positions=positions,
                                                 jacobian_every=jacobian_every, dt_guard="refine")
    s = setup_particles(cm, n, nsteps, seed=seed, init=None, positions=positions, nbins=nbins,
                        coupling=coupling)
    fn = generated_functions(cm)
    cstep = make_coupling_step(cm, s.pos, s.sizes, coupling, lattice=positions == "lattice",
                               implicit=implicit, n=n, jacobian_every=jacobian_every)
    sq = math.sqrt(n)
    sch = SchemeStep(cm, fn, s.pos, s.sizes, s.bpos, s.nbt, sq, scheme, s.rng)
    guard = StepGuard(cm, cstep.coup, s.pos, n, cstep.kind, "refine", 0.02, dt)
    rec = Recorder(cm, s, n, nsteps, dt, record_every, lowrank=cstep.lowrank, positions=positions,
                   static_in=sch.static_in, h_centres=sch.h_centres, drive=fn["drive"])
    X, prm, GP = s.X, cm.params, [None] * s.P
    with np.errstate(all="ignore"):
        for step in range(nsteps):
            t = step * dt
            xs = [tuple(X[a]) for a in range(s.P)]
            G = [fn["gain"][a](*xs[a], *s.pos[a], t, **prm) for a in range(s.P)]
            check, refresh = guard.due(step), cstep.needs_slopes(step)
            if check or refresh:
                GP = [fn["gain_slope"][a](*xs[a], *s.pos[a], t, **prm) for a in range(s.P)]
            if check:
                assert guard.check(step, t, GP, dt) == 1
            c = cstep.start(G)
            if refresh:
                cstep.refresh(GP, dt)
            for a in range(s.P):
                cstep.field_into(a, sch.F[a])
                dxa = sch.increment(a, xs[a], t, step, dt, math.sqrt(dt), sch.F[a])
                cstep.add_increment(a, dxa[s.e], GP[a])
            c_eff = cstep.finish()
            rec.observe(step, nsteps, t, dt, X, G, c, c_eff, cstep.fields)
            for a in range(s.P):
                X[a] += sch.dX[a]
                cstep.correct(a, X[a][s.e], dt, sch.F[a])
    return X, rec, guard, cstep


CASES = [
    ("ring_ei", dict(scheme="euler", implicit=True, jacobian_every=2, nbins=4, record_every=0.03)),
    ("ei_multiplicative", dict(scheme="milstein", implicit=False)),
    ("ring_nonlinear", dict(scheme="milstein", implicit=True, positions="uniform", nbins=4)),
    ("ring_ei", dict(coupling="dense", nbins=8)),
    ("ring_ei", dict(coupling="fft", nbins=5)),
]


@pytest.mark.parametrize("name,kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_parts_compose_to_simulate_bit_for_bit(name, kw):
    n, T, dt = 256, 0.2, 0.005
    res = simulate(name, n, T, dt, seed=3, **kw)
    X, rec, guard, cstep = _by_hand(name, n, T, dt, seed=3, **kw)
    assert res.dt == dt and res.coupling_step == cstep.kind
    for pop, Xa in zip(res.model.populations, X):
        assert np.array_equal(res.final_states[pop], Xa), pop
    for got, ref in ((res.times, rec.times), (res.mean, rec.mean), (res.variance, rec.var),
                     (res.gbar, rec.gbar), (res.lam, rec.lam), (res.lam_state, rec.lam_state)):
        assert np.array_equal(got, ref)
    assert res.step_audit == guard.audit
    assert np.array_equal(res.fast_eigenvalues, guard.eig)


def test_coupling_step_kinds(ring_ei):
    pos = [(2 * np.pi * np.arange(64) / 64,)] * 2
    kw = dict(lattice=True, n=64)
    assert isinstance(make_coupling_step(ring_ei, pos, [64, 64], "auto", implicit=True, **kw),
                      ExponentialCouplingStep)
    st = make_coupling_step(ring_ei, pos, [64, 64], "lowrank", implicit=False, **kw)
    assert type(st) is LowRankExplicitStep and st.kind == "explicit" and not st.uses_slopes
    for kind in ("fft", "dense"):
        st = make_coupling_step(ring_ei, pos, [64, 64], kind, implicit=True, **kw)
        assert type(st) is FieldCouplingStep and st.kind == "explicit" and st.coup.kind == kind


def test_explicit_euler_written_out(ring_ei):
    """Euler–Maruyama with the explicit low-rank coupling, from the formulas alone: dx = dt (f + u
    + sqrt(n) (psi . B mu + h)) + sigma dW with the Generator's normals in order."""
    n, T, dt, seed = 200, 0.05, 0.01, 5
    res = simulate(ring_ei, n, T, dt, seed=seed, implicit=False)
    cm = ring_ei
    rng = np.random.default_rng(seed)
    sizes = [int(math.floor(a * n + 0.5)) for a in cm.alpha]
    th = [2 * np.pi * np.arange(s) / s for s in sizes]
    X = [x for x in (rng.standard_normal((1, s)) for s in sizes)]
    for p, Xa in zip(cm.populations, X):                 # the model's INITIAL (mean, sd), if any
        spec = cm.module.INITIAL.get(p) if isinstance(cm.module.INITIAL, dict) else None
        if spec is not None:
            Xa[:] = np.asarray(spec[0], float) + np.asarray(spec[1], float) * Xa
    B = np.asarray(cm.constraint_matrix(), float).reshape(cm.P * cm.K, cm.P * cm.L)
    sq = math.sqrt(n)
    for step in range(round(T / dt)):
        t = step * dt
        G = [cm.call("gain", p, X[a][0], th[a], t) for a, p in enumerate(cm.populations)]
        mu = np.concatenate([cm.chi((th[a],)) @ G[a] / sizes[a] for a in range(cm.P)])
        c = B @ mu
        new = []
        for a, p in enumerate(cm.populations):
            dW = rng.standard_normal((1, sizes[a])) * math.sqrt(dt)
            sig = np.broadcast_to(cm.call("diffusion", p, X[a][0], th[a], t)[0][0], (sizes[a],))
            r = cm.psi((th[a],)).T @ c[a * cm.K:(a + 1) * cm.K]
            u = cm.call("input", p, th[a], t)
            h = cm.call("drive", p, th[a], t)
            f = cm.call("drift", p, X[a][0], th[a], t)[0]
            new.append(X[a][0] + dt * (f + u + sq * (r + h)) + sig * dW[0])
        X = [x[None, :] for x in new]
    for a, p in enumerate(cm.populations):
        assert np.allclose(res.final_states[p], X[a], rtol=1e-12, atol=1e-12)


def test_scheme_increments_are_the_formulas(rng):
    dW = rng.standard_normal((2, 50))
    sig = [[0.5, np.linspace(0, 1, 50)], [np.zeros(50) + 0.3, 0.0]]
    out = np.empty((2, 50))
    diffusion_increment(sig, dW, out)
    assert np.allclose(out[0], 0.5 * dW[0] + np.linspace(0, 1, 50) * dW[1], rtol=0, atol=1e-15)
    assert np.allclose(out[1], 0.3 * dW[0], rtol=0, atol=1e-15)
    M = [[[1.0, 0.2], [0.2, 0.0]], [[0.0, 0.0], [0.0, np.full(50, 2.0)]]]
    before = out.copy()
    milstein_increment(M, dW, 0.01, out)
    exp0 = 0.5 * (dW[0] ** 2 - 0.01) + 0.5 * 0.2 * 2 * dW[0] * dW[1]
    exp1 = 0.5 * 2.0 * (dW[1] ** 2 - 0.01)
    assert np.allclose(out[0] - before[0], exp0, rtol=0, atol=1e-14)
    assert np.allclose(out[1] - before[1], exp1, rtol=0, atol=1e-14)


def test_guard_refines_refuses_and_checks_stability():
    cm = CompiledModel("ei_linear")
    n = 40000
    s = setup_particles(cm, n, 4, seed=1, init=None, positions="lattice", nbins=None, coupling="auto")
    st = make_coupling_step(cm, s.pos, s.sizes, "auto", lattice=True, implicit=True, n=n)
    GP = [cm.call("gain_slope", p, s.X[a][0], 0.0) for a, p in enumerate(cm.populations)]
    ev = np.asarray(st.coup.fast_spectrum(s.pos, GP)) * math.sqrt(n)
    zmax = 0.05 * np.max(np.abs(ev))
    g = StepGuard(cm, st.coup, s.pos, n, "exponential", "refine", 0.02, 0.05)
    assert g.due(0)
    k = g.check(0, 0.0, GP, 0.05)
    assert k == math.ceil(zmax / g.z_accurate) and k > 1 and g.last_check == 0
    assert not g.due(19) and g.due(20)
    assert g.audit["refinements"] == [(0.0, 0.05, 0.05 / k, zmax)]
    with pytest.raises(StepTooCoarse) as err:
        StepGuard(cm, st.coup, s.pos, n, "exponential", "refuse", 0.02, 0.05).check(0, 0.0, GP, 0.05)
    assert math.isclose(err.value.dt_accurate, g.z_accurate / np.max(np.abs(ev)))
    lim, _ = explicit_dt_limit(ev)
    off = StepGuard(cm, st.coup, s.pos, n, "explicit", "off", 0.02, 1.0)
    assert off.check(0, 0.0, GP, 0.99 * lim) == 1
    with pytest.raises(ValueError, match="unstable at the initial state"):
        off.check(0, 0.0, GP, 1.01 * lim)
    with pytest.raises(particle_guard.SimulationUnstable):
        off.check(20, 0.5, GP, 1.01 * lim)


def test_record_stride():
    assert record_stride(200, 0.01, None) == 1
    assert record_stride(201, 0.01, None) == 10
    assert record_stride(10 ** 6, 0.01, None) == 100
    assert record_stride(100, 0.01, 0.05) == 5 and record_stride(100, 0.01, 0.001) == 1


def test_public_names_stay_in_particles():
    for name in ("SimulationBlowUp", "SimulationUnstable", "StepTooCoarse", "explicit_dt_limit",
                 "STABILITY_CHECK_EVERY", "MAX_REFINE"):
        assert getattr(particles, name) is getattr(particle_guard, name)
    assert "particle_steps" in particles.__doc__ and "particle_setup" in simulate.__doc__
