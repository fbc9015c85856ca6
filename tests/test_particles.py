"""Particle simulator (solvers/particles.py, solvers/coupling.py) and the `balkin simulate` command."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import sympy as sp

from derive import Model, Phi, Point, Population, Ring, Torus2
from derive.codegen import compile_module
from derive.dsl import t as t_sym
from solvers.compiled import CompiledModel
from solvers.coupling import (KERNEL_TEMPORARIES, DenseCoupling, block_rows, make_coupling,
                              translation_invariant)
from solvers.particles import SimulationBlowUp, SimulationUnstable, explicit_dt_limit, simulate


@pytest.fixture(autouse=True)
def _fp_errors_raise():
    """Floating-point warnings are errors (as in the project conftest): the simulator must not
    produce any in normal operation."""
    old = np.seterr(all="raise")
    yield
    np.seterr(**old)


x, y = sp.symbols("x y")
theta, phi = sp.symbols("theta phi")


@pytest.fixture(scope="module")
def ring_ei():
    return CompiledModel("ring_ei")


@pytest.fixture(scope="module")
def ei_linear():
    return CompiledModel("ei_linear")


@pytest.fixture(scope="module")
def gbm():
    """dx = mu x dt + s x dW, no coupling (kernel {}), no drive."""
    mu, s = sp.symbols("mu s")
    m = Model(name="gbm", state=[x], space=Point(),
              populations=[Population("A", drift=mu * x, diffusion=s * x, gain=x)],
              kernel={}, parameters={mu: 0.5, s: 0.8})
    return CompiledModel(compile_module(m))


def nonseparable_ring(name="nsep"):
    """E-I ring with the non-separable, translation-invariant kernel exp(k cos(theta - phi))."""
    k = sp.Symbol("k")
    w = sp.exp(k * sp.cos(theta - phi))
    m = Model(name=name, state=[x], space=Ring(theta, phi),
              populations=[Population("E", drift=-x, diffusion=1, gain=Phi(x), drive=0.1),
                           Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=0.06)],
              kernel={("E", "E"): w, ("E", "I"): -2 * w, ("I", "E"): w, ("I", "I"): -1.8 * w},
              parameters={k: 0.5})
    return CompiledModel(compile_module(m))


@pytest.fixture(scope="module")
def nonseparable():
    return nonseparable_ring()


@pytest.fixture(scope="module")
def torus():
    t1, t2, p1, p2 = sp.symbols("t1 t2 p1 p2")
    m = Model(name="tor", state=[x], space=Torus2((t1, t2), (p1, p2)),
              populations=[Population("E", drift=-x, diffusion=1, gain=Phi(x), drive=0.1),
                           Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=0.06)],
              kernel={("E", "E"): 1 + sp.cos(t1 - p1) / 2 + 3 * sp.cos(t2 - p2) / 10, ("E", "I"): -2,
                      ("I", "E"): 1, ("I", "I"): -sp.Rational(9, 5) * (1 + sp.cos(t1 - p1) / 5)})
    return CompiledModel(compile_module(m))


@pytest.fixture(scope="module")
def timedep():
    """One population without coupling, time-dependent input u = cos t and drive h = sin(t)/100,
    Gaussian initial condition (2, 0.1)."""
    m = Model(name="tdep", state=[x], space=Point(),
              populations=[Population("A", drift=-x, diffusion=sp.Rational(1, 10), gain=Phi(x),
                                      drive=sp.sin(t_sym) / 100, input=sp.cos(t_sym), initial=(2.0, 0.1))],
              kernel={})
    return CompiledModel(compile_module(m))


# ---------------------------------------------------------------------------------------------
# determinism, positions, records
# ---------------------------------------------------------------------------------------------
def _same(r1, r2):
    for name in ("times", "mean", "variance", "gbar", "lam"):
        assert np.array_equal(getattr(r1, name), getattr(r2, name)), name
    for p in r1.final_states:
        assert np.array_equal(r1.final_states[p], r2.final_states[p])
        for a, b in zip(r1.positions[p], r2.positions[p]):
            assert np.array_equal(a, b)


@pytest.mark.parametrize("positions", ["lattice", "uniform"])
def test_same_seed_same_result_bit_for_bit(ring_ei, positions):
    kw = dict(seed=7, positions=positions)
    r1 = simulate(ring_ei, 300, 0.5, 0.01, **kw)
    r2 = simulate(ring_ei, 300, 0.5, 0.01, **kw)
    _same(r1, r2)
    r3 = simulate(ring_ei, 300, 0.5, 0.01, seed=8, positions=positions)
    assert not np.array_equal(r1.final_states["E"], r3.final_states["E"])


def test_lattice_and_uniform_positions(ring_ei):
    lat = simulate(ring_ei, 2000, 6.0, 0.02, seed=1, positions="lattice", nbins=4)
    uni = simulate(ring_ei, 2000, 6.0, 0.02, seed=1, positions="uniform", nbins=4)
    n_a = lat.sizes["E"]
    assert np.allclose(lat.positions["E"][0], 2 * np.pi * np.arange(n_a) / n_a, rtol=0, atol=1e-15)
    u = uni.positions["E"][0]
    assert u.shape == (n_a,) and u.min() >= 0 and u.max() < 2 * np.pi
    assert not np.allclose(np.sort(u), lat.positions["E"][0], atol=1e-3)
    # i.i.d. uniform: the empirical CDF is within the Kolmogorov bound of the uniform one
    ks = np.max(np.abs(np.sort(u) / (2 * np.pi) - (np.arange(n_a) + 0.5) / n_a))
    assert ks < 1.63 / math.sqrt(n_a)        # 1% level
    # the same network statistics within sampling error (population means over the ring)
    a, b = lat.time_average(2.0, nbatch=8), uni.time_average(2.0, nbatch=8)
    for key in ("mean", "gbar", "lam"):
        da = a[key].mean(axis=1) - b[key].mean(axis=1)
        se = np.hypot(a[key + "_se"].mean(axis=1), b[key + "_se"].mean(axis=1))
        assert np.all(np.abs(da) < 5 * se + 0.02), (key, da, se)


def test_records_shapes_and_time_average(ring_ei):
    res = simulate(ring_ei, 400, 2.0, 0.01, seed=3, record_every=0.05, nbins=8)
    nt = 40
    assert res.times.shape == (nt,) and np.allclose(np.diff(res.times), 0.05)
    for name in ("mean", "gbar", "lam", "variance"):
        arr = getattr(res, name)
        assert arr.shape == (nt, 2, 8) and np.all(np.isfinite(arr))
    assert np.allclose(res.bin_centres, 2 * np.pi * np.arange(8) / 8)
    assert np.all((res.gbar > 0) & (res.gbar < 1)) and np.all(res.variance >= 0)
    av = res.time_average(1.0, nbatch=4)
    sel = res.times >= 1.0 - 1e-12
    assert av["window"] == (1.0, 2.0) and av["samples"] == int(sel.sum()) == 20
    assert np.allclose(av["mean"], res.mean[sel].mean(axis=0))
    batches = res.lam[sel].reshape(4, 5, 2, 8).mean(axis=1)
    assert np.allclose(av["lam_se"], batches.std(axis=0, ddof=1) / 2)
    # final state histogram is a density
    dens, edges = res.histogram("E", bins=30)
    assert np.isclose(np.sum(dens * np.diff(edges)), 1.0)
    assert res.final_states["E"].shape == (1, res.sizes["E"])
    with pytest.raises(ValueError, match="fewer than nbatch"):
        res.time_average(1.9, nbatch=10)


def test_binned_records_match_hand_computation(ring_ei):
    res = simulate(ring_ei, 256, 0.2, 0.01, seed=4, record_every=0.01, nbins=4)
    one = simulate(ring_ei, 256, 0.01, 0.01, seed=4, nbins=4)      # same first step, same draws
    th = one.positions["E"][0]
    x1 = one.final_states["E"][0]
    b = np.floor(th * 4 / (2 * np.pi) + 0.5).astype(int) % 4       # bins centred on 2 pi i / 4
    assert np.array_equal(np.bincount(b), [64, 64, 64, 64])
    assert np.allclose(res.mean[1, 0], [x1[b == i].mean() for i in range(4)], rtol=0, atol=1e-12)
    assert np.allclose(res.variance[1, 0], [x1[b == i].var() for i in range(4)], rtol=0, atol=1e-12)
    g1 = ring_ei.call("gain", "E", x1, th, 0.01)
    assert np.allclose(res.gbar[1, 0], [g1[b == i].mean() for i in range(4)], rtol=0, atol=1e-12)


def test_torus_lattice_and_paths(torus):
    res = simulate(torus, 256, 0.2, 0.01, seed=0, nbins=4)
    assert res.mean.shape[2] == 16 and res.bin_centres.shape == (16, 2)
    side = 16
    a, b = res.positions["E"]
    assert np.allclose(a.reshape(side, side)[:, 0], 2 * np.pi * np.arange(side) / side)
    with pytest.raises(ValueError, match="square"):
        simulate(torus, 250, 0.1, 0.01)
    # coupling paths on the torus lattice
    pos = [torus.grid(side)] * 2
    rng = np.random.default_rng(5)
    G = [rng.random(side * side), rng.random(side * side)]
    ref = np.array(make_coupling(torus, pos, [256, 256], "lowrank").field(G))
    for kind in ("fft", "dense"):
        got = np.array(make_coupling(torus, pos, [256, 256], kind).field(G))
        assert np.max(np.abs(got - ref)) < 1e-10


# ---------------------------------------------------------------------------------------------
# coupling paths
# ---------------------------------------------------------------------------------------------
def test_coupling_paths_agree_on_separable_kernel(ring_ei):
    n = 1000
    pos = [(2 * np.pi * np.arange(n) / n,)] * 2
    rng = np.random.default_rng(11)
    G = [rng.random(n), rng.random(n)]
    assert translation_invariant(ring_ei)
    ref = np.array(make_coupling(ring_ei, pos, [n, n], "lowrank").field(G))
    # independent reference: the kernel matrices directly
    direct = np.zeros((2, n))
    for ia, a in enumerate(ring_ei.populations):
        for ib, b in enumerate(ring_ei.populations):
            direct[ia] += ring_ei.kernel_matrix(a, b, pos[ia], pos[ib]) @ G[ib] / n
    assert np.max(np.abs(ref - direct)) < 1e-12
    for kind in ("fft", "dense"):
        got = np.array(make_coupling(ring_ei, pos, [n, n], kind).field(G))
        assert np.max(np.abs(got - ref)) < 1e-10, kind
    blocked = DenseCoupling(ring_ei, pos, [n, n], budget=2 ** 20)
    assert not blocked.stored
    assert np.max(np.abs(np.array(blocked.field(G)) - ref)) < 1e-10


def test_whole_runs_agree_across_coupling_paths(ring_ei):
    runs = {k: simulate(ring_ei, 512, 0.5, 0.01, seed=2, coupling=k, implicit=False, nbins=8)
            for k in ("lowrank", "fft", "dense")}
    assert [runs[k].coupling for k in runs] == ["lowrank", "fft", "dense"]
    # explicit: the applied multiplier is the empirical one
    assert np.array_equal(runs["lowrank"].lam, runs["lowrank"].lam_state)
    for k in ("fft", "dense"):
        for name in ("mean", "gbar", "lam"):
            assert np.max(np.abs(getattr(runs[k], name) - getattr(runs["lowrank"], name))) < 1e-10
        assert np.max(np.abs(runs[k].final_states["I"] - runs["lowrank"].final_states["I"])) < 1e-10


def test_nonseparable_kernel_fft_and_dense(nonseparable):
    assert not nonseparable.separable and translation_invariant(nonseparable)
    r_auto = simulate(nonseparable, 256, 0.3, 0.01, seed=1)
    assert r_auto.coupling == "fft" and not r_auto.implicit
    r_dense = simulate(nonseparable, 256, 0.3, 0.01, seed=1, coupling="dense")
    for name in ("mean", "gbar", "lam"):
        assert np.max(np.abs(getattr(r_auto, name) - getattr(r_dense, name))) < 1e-10
    # uniform positions: no lattice, auto falls back to dense
    r_uni = simulate(nonseparable, 200, 0.1, 0.01, seed=1, positions="uniform")
    assert r_uni.coupling == "dense"
    with pytest.raises(ValueError, match="not separable"):
        simulate(nonseparable, 256, 0.1, 0.01, coupling="lowrank")
    with pytest.raises(ValueError, match="lattice"):
        simulate(nonseparable, 256, 0.1, 0.01, coupling="fft", positions="uniform")
    # lambda at the bin centres: sqrt(n) (direct kernel sum over the neurons + h) at the centres
    from solvers.coupling import field_at
    n = 256
    rng = np.random.default_rng(0)
    x0 = {"E": rng.standard_normal((1, n)), "I": rng.standard_normal((1, n))}
    for positions in ("lattice", "uniform"):
        res = simulate(nonseparable, n, 0.01, 0.01, seed=3, nbins=16, init=x0, positions=positions)
        pos = [res.positions[p] for p in ("E", "I")]
        G = [nonseparable.call("gain", p, x0[p][0], *res.positions[p], 0.0) for p in ("E", "I")]
        c = nonseparable.grid(16)
        expect = math.sqrt(n) * (field_at(nonseparable, c, pos, [n, n], G) + nonseparable.drive(c))
        assert np.max(np.abs(res.lam[0] - expect)) < 1e-10


def test_dense_working_memory_is_bounded():
    budget = 256 * 2 ** 20
    for n in (10, 10 ** 4, 10 ** 6, 10 ** 8):
        rows = block_rows(n, budget)
        assert rows >= 1
        assert rows == 1 or rows * n * 8 * KERNEL_TEMPORARIES <= budget


# ---------------------------------------------------------------------------------------------
# stiffness: the exponential coupling step, refusal of unstable explicit steps
# ---------------------------------------------------------------------------------------------
def test_exponential_coupling_stable_at_n_1e6_with_small_n_dt(ei_linear):
    """Stability beyond accuracy: with the accuracy guard off, the exponential step at
    dt sqrt(n) |mu| >> 1 stays on the manifold (the linearised fast flow is propagated exactly)."""
    dt = 0.05
    small = simulate(ei_linear, 1000, 1.0, dt, seed=1)
    assert np.all(np.isfinite(small.mean))
    big = simulate(ei_linear, 10 ** 6, 0.5, dt, seed=1, record_every=dt, dt_guard="off")
    lim, _ = explicit_dt_limit(big.fast_eigenvalues)
    assert dt > 3 * lim                       # explicit Euler would be unstable by far
    assert np.all(np.isfinite(big.final_states["E"])) and np.all(np.isfinite(big.final_states["I"]))
    assert np.all(np.abs(big.mean) < 3)
    # on the balanced manifold: the applied multiplier stays O(1) after the initial layer (one step)
    assert np.all(np.abs(big.lam[2:]) < 3)
    # and the imbalance W gbar + h is small: O(1/sqrt(n)) plus the O(dt) residual of the linearised
    # step (1/2 g'' sigma^2 dt per step is not predicted by the linearisation), not O(1)
    W = np.array([[1.0, -2.0], [1.0, -1.8]])
    imb = big.gbar[-1, :, 0] @ W.T + np.array([0.1, 0.06])
    assert np.all(np.abs(imb) < 0.2 * dt)
    assert np.allclose(big.gbar[-1, :, 0], [0.3, 0.2], atol=0.01)


def test_explicit_unstable_dt_refused_with_largest_stable_dt(ei_linear):
    n, dt = 10 ** 6, 0.05
    with pytest.raises(ValueError, match="largest stable dt") as exc:
        simulate(ei_linear, n, 0.5, dt, seed=1, implicit=False, dt_guard="off")
    lim = float(re.search(r"largest stable dt is ([0-9.eE+-]+)", str(exc.value)).group(1))
    # the same limit from the fast eigenvalues of the implicit run started from the same state
    ref = simulate(ei_linear, n, dt, dt, seed=1, dt_guard="off")
    expect, mu = explicit_dt_limit(ref.fast_eigenvalues)
    assert lim == pytest.approx(expect, rel=1e-5)
    # and from the generated fast matrix with D = <Phi'(x)>, x ~ N(0,1): D = phi(0)/sqrt(2)
    D = math.exp(0) / math.sqrt(2 * math.pi) / math.sqrt(2)
    eig = np.linalg.eigvals(ei_linear.module.fast_matrix(D, D, **ei_linear.params)) * math.sqrt(n)
    assert lim == pytest.approx(explicit_dt_limit(eig)[0], rel=0.02)
    # a dt just below the limit is accepted
    simulate(ei_linear, n, 0.9 * lim, 0.9 * lim, seed=1, implicit=False, dt_guard="off")


def test_explicit_run_stopped_when_dt_becomes_unstable(ei_linear):
    # dt is stable for the initial slopes but not for those of the balanced state
    with pytest.raises(SimulationUnstable, match="exceeds the stability limit"):
        simulate(ei_linear, 10 ** 5, 20.0, 0.04, seed=1, implicit=False, dt_guard="off")


def test_jacobian_refresh_every_k_steps(ei_linear):
    a = simulate(ei_linear, 10 ** 4, 10.0, 0.05, seed=2)
    b = simulate(ei_linear, 10 ** 4, 10.0, 0.05, seed=2, jacobian_every=10)
    A, B = a.time_average(3.0), b.time_average(3.0)
    for key in ("mean", "lam", "gbar"):
        assert np.all(np.abs(A[key] - B[key]) < 5 * np.hypot(A[key + "_se"], B[key + "_se"]) + 0.01)
    # lambda is the applied multiplier, so its time average equals the mean state (f = -x)
    assert np.allclose(B["lam"], B["mean"], atol=0.02)


# ---------------------------------------------------------------------------------------------
# numerical trouble
# ---------------------------------------------------------------------------------------------
def test_blow_up_is_detected_and_reported():
    m = Model(name="cubic", state=[x], space=Point(),
              populations=[Population("A", drift=x ** 3, diffusion=1, gain=Phi(x))], kernel={})
    with pytest.raises(SimulationBlowUp, match=r"blew up at t = [0-9.]+.*population 'A'"):
        simulate(compile_module(m), 100, 10.0, 0.01, seed=0)


def test_argument_errors(ei_linear, gbm):
    with pytest.raises(ValueError, match="whole number of steps"):
        simulate(ei_linear, 100, 1.0, 0.03)
    with pytest.raises(ValueError, match="scheme"):
        simulate(ei_linear, 100, 1.0, 0.01, scheme="heun")
    with pytest.raises(ValueError, match="no space"):
        simulate(ei_linear, 100, 1.0, 0.01, nbins=4)
    with pytest.raises(ValueError, match="shape"):
        simulate(ei_linear, 100, 1.0, 0.01, init={"E": np.zeros((1, 99)), "I": np.zeros((1, 100))})
    with pytest.raises(ValueError, match="unknown parameter"):
        simulate("ei_linear", 100, 1.0, 0.01, params={"nope": 1.0})
    with pytest.raises(ValueError, match="positive integer"):
        simulate(ei_linear, 0, 1.0, 0.01)


def test_milstein_refused_without_derived_terms():
    m = Model(name="noncomm", state=[x, y], space=Point(),
              populations=[Population("A", drift=[-x, -y], diffusion=[[1, 0], [0, x]], gain=Phi(x))],
              kernel={})
    cm = CompiledModel(compile_module(m))
    assert not cm.module.MILSTEIN["A"]
    with pytest.raises(ValueError, match="Milstein.*'A'"):
        simulate(cm, 100, 0.1, 0.01, scheme="milstein")
    # Euler–Maruyama with m = 2, q = 2 runs; component y has E y(t) = y0 e^{-t}
    res = simulate(cm, 4000, 0.5, 0.01, seed=1,
                   init={"A": np.vstack([np.zeros(4000), np.ones(4000)])})
    xT, yT = res.final_states["A"]
    # Euler–Maruyama: E y_N = (1 - dt)^N y0 exactly (the noise x dW has mean zero); Var x_N
    assert abs(yT.mean() - 0.99 ** 50) < 4 * yT.std() / math.sqrt(4000)
    var_x = (1 - 0.99 ** 100) / (1 - 0.99 ** 2) * 0.01
    assert xT.var() == pytest.approx(var_x, rel=4 * math.sqrt(2 / 4000))


# ---------------------------------------------------------------------------------------------
# initial states, time-dependent inputs
# ---------------------------------------------------------------------------------------------
def test_initial_states(timedep, ring_ei):
    r = simulate(timedep, 4000, 0.01, 0.01, seed=0)       # model INITIAL = (2.0, 0.1)
    assert r.mean[0, 0, 0] == pytest.approx(2.0, abs=4 * 0.1 / math.sqrt(4000))
    assert math.sqrt(r.variance[0, 0, 0]) == pytest.approx(0.1, rel=0.05)
    r = simulate(ring_ei, 200, 0.01, 0.01, seed=0)         # N(0, 1)
    assert abs(r.mean[0].mean()) < 0.2 and r.variance[0].mean() == pytest.approx(1.0, rel=0.2)
    x0 = {"E": np.full((1, 200), 0.5), "I": np.full(200, -0.5)}
    r = simulate(ring_ei, 200, 0.01, 0.01, init=x0)
    assert np.allclose(r.mean[0, 0], 0.5) and np.allclose(r.mean[0, 1], -0.5)

    def init(rng, pop, m, n_a, positions):
        return np.cos(positions[0])[None, :] * (1 if pop == "E" else 2)
    r = simulate(ring_ei, 320, 0.01, 0.01, init=init, nbins=4)
    th = r.positions["I"][0]
    b = np.floor(th * 4 / (2 * np.pi) + 0.5).astype(int) % 4
    assert np.allclose(r.mean[0, 1], [2 * np.cos(th[b == i]).mean() for i in range(4)], atol=1e-12)
    assert np.allclose(r.mean[0, 0], r.mean[0, 1] / 2, atol=1e-12)


def test_time_dependent_input_and_drive(timedep):
    assert "t" in timedep.uses("input", "A")                  # generated USES: input uses t
    assert "t" not in CompiledModel("ring_ei").uses("drive", "E")
    n, dt, T = 400, 0.01, 2.0
    res = simulate(timedep, n, T, dt, seed=3, record_every=0.1)
    # no coupling: lambda = sqrt(n) h(t) = 20 sin(t) / 100, averaged over the 10 steps of a record
    tk = np.arange(int(round(T / dt))) * dt
    expect = (math.sqrt(n) * np.sin(tk) / 100).reshape(-1, 10).mean(axis=1)
    assert np.allclose(res.lam[:, 0, 0], expect, rtol=0, atol=1e-12)
    # mean state: m' = -m + cos t + sqrt(n) sin(t)/100, m(0) = 2 (Euler error O(dt), noise 0.1/sqrt(n))
    a = math.sqrt(n) / 100
    t = res.times
    exact = (2 - 0.5 + a / 2) * np.exp(-t) + 0.5 * (np.cos(t) + np.sin(t)) + a * 0.5 * (np.sin(t) - np.cos(t))
    assert np.max(np.abs(res.mean[:, 0, 0] - exact)) < 0.02


# ---------------------------------------------------------------------------------------------
# strong order on geometric Brownian motion, same Brownian paths
# ---------------------------------------------------------------------------------------------
def test_strong_order_on_geometric_brownian_motion(gbm):
    npaths, T, pf = 2000, 1.0, 8
    mu, s = gbm.params["mu"], gbm.params["s"]
    rng = np.random.default_rng(2024)
    dW_fine = rng.standard_normal((2 ** pf, npaths)) * math.sqrt(T / 2 ** pf)
    exact = np.exp((mu - s * s / 2) * T + s * dW_fine.sum(axis=0))
    slopes = {}
    for scheme in ("euler", "milstein"):
        dts, errs = [], []
        for p in range(4, pf + 1):
            dW = dW_fine.reshape(2 ** p, 2 ** (pf - p), npaths).sum(axis=1)

            def noise(step, pop, dt, out, dW=dW):
                out[0] = dW[step]
            r = simulate(gbm, npaths, T, 2.0 ** -p, scheme=scheme, noise=noise,
                         init={"A": np.ones((1, npaths))})
            dts.append(2.0 ** -p)
            errs.append(np.mean(np.abs(r.final_states["A"][0] - exact)))
        slopes[scheme] = np.polyfit(np.log(dts), np.log(errs), 1)[0]
    assert 0.35 <= slopes["euler"] <= 0.65, slopes
    assert 0.8 <= slopes["milstein"] <= 1.2, slopes


# ---------------------------------------------------------------------------------------------
# JSON record and CLI
# ---------------------------------------------------------------------------------------------
def test_to_record_schema(ring_ei):
    res = simulate(ring_ei, 300, 1.0, 0.01, seed=5, nbins=6)
    rec = res.to_record(0.5)
    json.dumps(rec)
    assert rec["kind"] == "particles" and rec["model"] == "ring_ei"
    assert len(rec["theta"]) == 6 and rec["theta"][1] == pytest.approx(2 * np.pi / 6)
    for pop in ("E", "I"):
        assert set(rec[pop]) == {"lambda", "gbar", "mean", "variance"}
        assert all(len(v) == 6 for v in rec[pop].values())
        assert set(rec["stderr"][pop]) == {"lambda", "gbar", "mean", "variance"}
    assert rec["window"] == [0.5, 1.0] and rec["n"] == 300 and rec["seed"] == 5 and rec["dt"] == 0.01


def test_cli_simulate(tmp_path, capsys):
    from balkin.cli import main
    out = tmp_path / "o.json"
    rc = main(["simulate", "ei_linear", "--n", "200", "--T", "2", "--dt", "0.01", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mean" in text and "lambda" in text and re.search(r"\n\s+E\s+-?[0-9.]+ ± [0-9.]+", text)
    rec = json.loads(out.read_text())
    assert rec["theta"] == [0.0] and rec["window"] == [1.0, 2.0] and rec["n"] == 200
    assert rec["seed"] == 0 and rec["dt"] == 0.01
    assert len(rec["E"]["mean"]) == 1 and len(rec["stderr"]["I"]["lambda"]) == 1
    # the same numbers as the library call
    res = simulate("ei_linear", 200, 2.0, 0.01)
    assert rec["E"]["mean"][0] == pytest.approx(res.time_average(1.0)["mean"][0, 0], rel=1e-12)
    # a model path, and an error exit with a message
    assert main(["simulate", "models/ring_ei.py", "--n", "64", "--T", "0.1", "--dt", "0.01",
                 "--nbins", "4"]) == 0
    assert main(["simulate", "ei_linear", "--n", "1000000", "--T", "1", "--dt", "0.05", "--explicit",
                 "--dt-guard", "off"]) == 2
    assert "largest stable dt" in capsys.readouterr().err
    assert main(["simulate", "ei_linear", "--n", "1000000", "--T", "1", "--dt", "0.05",
                 "--dt-guard", "refuse"]) == 2
    assert "largest accurate dt" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# slow: DESIGN.md §4 illustration
# ---------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ei_linear_n400_matches_design_illustration(ei_linear):
    """DESIGN.md §4: particle means at n = 400 about (-1.044, -1.140); finite-n McKean–Vlasov
    (-1.045, -1.147).  Loose check of one long run (time average with batch-means error)."""
    res = simulate(ei_linear, 400, 200.0, 0.01, seed=11)
    av = res.time_average(20.0, nbatch=20)
    target = np.array([-1.045, -1.147])
    assert np.all(np.abs(av["mean"][:, 0] - target) < 5 * av["mean_se"][:, 0] + 0.03), av


def test_simulate_refuses_a_run_that_does_not_fit_in_memory(ei_linear):
    """The memory estimate comes before any allocation (issue 14): 10^12 neurons are refused at once."""
    from solvers.resources import InsufficientMemory
    with pytest.raises(InsufficientMemory, match="nothing was allocated"):
        simulate(ei_linear, 10 ** 12, 1.0, 0.01)
