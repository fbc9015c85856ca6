"""The finite-n neural field (solvers/field.py, n=N) for m = 1 and m = 2: against the independent m = 1
stationary solver, an independent ODE integration (first order in dt), the closed forms of
models/ring_adaptation.py, its labelling, and particle simulations within sampling error."""
import functools
import math

import numpy as np
import pytest
import sympy as sp
from scipy import stats
from scipy.integrate import solve_ivp

from derive import Model, Phi, Point, Population
from derive.codegen import compile_module
from solvers.compiled import CompiledModel
from solvers.field import FieldNotApplicable, FieldSolver, stationary_field

x, a = sp.symbols("x a")
ALPHA = 1e-3          # two-sided level of the particle comparisons (each test: one family, Bonferroni)


@functools.lru_cache(maxsize=None)
def point_adaptation():
    """m = 2, linear/additive, no space: ring_adaptation's neuron (tau_a = 2) with ei_linear's W and h,
    so that the balanced limit demands gbar = (0.3, 0.2)."""
    pops = [Population(p, drift=[-x - a, (x - a) / 2], diffusion=[[1], [0]], gain=Phi(x), drive=h)
            for p, h in (("E", sp.Rational(1, 10)), ("I", sp.Rational(3, 50)))]
    return CompiledModel(compile_module(Model(name="point_adaptation", state=[x, a], space=Point(),
                                              populations=pops,
                                              kernel={("E", "E"): 1, ("E", "I"): -2, ("I", "E"): 1,
                                                      ("I", "I"): -sp.Rational(9, 5)})))


# ---- exact identities ------------------------------------------------------------------------------

@pytest.mark.parametrize("name,npos,n", [("ei_linear", None, 400), ("ei_linear", None, 25600), ("ring_ei", 16, 1600)])
def test_finite_n_field_equals_the_m1_stationary_solver(name, npos, n):
    """m = 1, linear/additive: the finite-n field is exact, so it equals solve_finite_n (zero-flux
    densities and Newton on lambda_n, an independent method) to rounding; DESIGN.md §4's
    illustration (ei_linear at n = 400: means (-1.045, -1.147))."""
    from solvers.stationary import solve_finite_n
    st = stationary_field(name, npos=npos, n=n)
    ref = solve_finite_n(name, n, npos=npos)
    for key in ("lam", "gbar", "mean", "variance"):
        np.testing.assert_allclose(getattr(st, key), getattr(ref, key), atol=1e-9, err_msg=key)
    assert st.kind == "stationary-field-finite-n" and not st.approximation and st.n == n
    assert st.info["finite_n_stable"]
    imbalance = FieldSolver(name, npos=npos).imbalance(st.state_mean, st.state_cov, 0.0)
    np.testing.assert_allclose(st.lam, math.sqrt(n) * imbalance, atol=1e-9)
    if name == "ei_linear" and n == 400:
        np.testing.assert_allclose(st.mean.ravel(), [-1.045, -1.147], atol=1e-3)


def test_ring_adaptation_closed_forms_and_spectrum():
    """The docstring of models/ring_adaptation.py: C = (5/12, 1/12, 1/12), m_a = m_x = lambda/2,
    balanced gbar modes (0.3, 0.2) and (0.2, 0.0889), lambda's coefficients, and the split of the
    linearised finite-n mean equation at n = 1e12 into sqrt(n) W D and the slow -1/tau_a, eig(A)."""
    st = stationary_field("ring_adaptation", npos=32)
    C = st.state_cov
    np.testing.assert_allclose(C[..., 0, 0], 5 / 12, atol=1e-13)
    np.testing.assert_allclose(C[..., 0, 1], 1 / 12, atol=1e-13)
    np.testing.assert_allclose(C[..., 1, 1], 1 / 12, atol=1e-13)
    np.testing.assert_allclose(st.state_mean[..., 0], st.lam / 2, atol=1e-13)
    np.testing.assert_allclose(st.state_mean[..., 1], st.lam / 2, atol=1e-13)
    th = st.pos[0]
    np.testing.assert_allclose(st.gbar.mean(axis=1), [0.3, 0.2], atol=1e-12)
    np.testing.assert_allclose(2 * (st.gbar * np.cos(th)).mean(axis=1), [0.2, 0.0889], atol=1e-4)
    np.testing.assert_allclose(st.lam.mean(axis=1), [-1.3661, -2.0563], atol=1e-4)
    np.testing.assert_allclose(2 * (st.lam * np.cos(th)).mean(axis=1), [1.4510, 0.7729], atol=1e-4)
    fs = FieldSolver("ring_adaptation", npos=32, n=1e12)
    w = fs.finite_n_spectrum(st.state_mean, st.state_cov, 0.0)
    slow = w[np.abs(w) < 1e3]
    fast = np.sort_complex(w[np.abs(w) >= 1e3] / 1e6)
    assert len(fast) == fs.r == 6
    np.testing.assert_allclose(np.sort(fast.real), [-0.0857, -0.0830, -0.0754, -0.0754, -0.0206, -0.0162], atol=1e-4)
    expect = {-0.5 + 0j, complex(-0.75, math.sqrt(1 - 0.5625)), complex(-0.75, -math.sqrt(1 - 0.5625))}
    for v in slow:
        # singular perturbation: the slow eigenvalues differ from their limits by O(1 / (sqrt(n) |mu|)),
        # |mu| >= 0.016 for the eigenvalues mu of W D: about 6e-5 at n = 1e12
        assert min(abs(v - e) for e in expect) < 2e-4, v
    assert {min(expect, key=lambda e: abs(v - e)) for v in slow} == expect


def test_finite_n_field_tends_to_the_balanced_limit_like_n_to_the_minus_half():
    """lambda_n / sqrt(n) = W G + h -> 0; far out the distance of the finite-n means to the balanced
    ones falls like n^(-1/2) (slope between n = 1e8 and 1e10 within 0.01 of -1/2)."""
    lim = stationary_field("ring_adaptation", npos=16)
    d = [np.abs(stationary_field("ring_adaptation", npos=16, n=n).state_mean - lim.state_mean).max()
         for n in (1e8, 1e10)]
    slope = math.log(d[1] / d[0]) / math.log(100.0)
    assert abs(slope + 0.5) < 0.01, slope


def test_finite_n_run_relaxes_to_the_stationary_finite_n_field():
    fs = FieldSolver("ring_adaptation", npos=16, n=2000)
    res = fs.run(40.0, 0.05, record_every=10.0)
    st = fs.stationary()
    np.testing.assert_allclose(res.state_mean[-1], st.state_mean, atol=1e-7)
    np.testing.assert_allclose(res.lam[-1], st.lam, atol=1e-6)
    np.testing.assert_allclose(res.state_cov[-1], st.state_cov, atol=1e-12)
    assert res.residual.max() < 1e-8 and res.n == 2000 and res.kind == "field-finite-n"
    rec = res.to_dict()
    assert rec["mode"] == "finite-n" and rec["n"] == 2000 and rec["approximation"] is False
    assert rec["finite_n_stable"] is True


def _finite_n_rhs(fs, t, z):
    """The finite-n field as a plain ODE (point model, m = 2): dm/dt = A m + b + sqrt(n)(W G + h) e,
    dC/dt = A C + C A^T + Q."""
    P, m = fs.P, fs.m
    mean = z[:P * m].reshape(P, 1, m)
    cov = z[P * m:].reshape(P, 1, m, m)
    A, b, Q = fs.linear_coefficients(t)
    lam = math.sqrt(fs.n) * fs.imbalance(mean, cov, t)
    dm = np.einsum("pnij,pnj->pni", A, mean) + b
    dm[..., fs.e] += lam
    dC = A @ cov + cov @ np.swapaxes(A, -1, -2) + Q
    return np.concatenate([dm.ravel(), dC.ravel()])


def test_finite_n_run_against_an_ode_integration_is_first_order_in_dt():
    """From an off-manifold start the finite-n field (end-of-step multiplier) against Radau (rtol
    1e-11) at t = 1, 2: the error falls by 2 (first order) per halving of dt = 0.02, 0.01, 0.005; the
    covariances (exponential propagators, exact) agree to 1e-10."""
    cm = point_adaptation()
    n = 400.0
    m0 = np.array([[[0.5, -0.2]], [[-0.3, 0.1]]])
    C0 = np.broadcast_to(np.diag([0.8, 0.3]), (2, 1, 2, 2)).copy()
    fs = FieldSolver(cm, n=n)
    z0 = np.concatenate([m0.ravel(), C0.ravel()])
    with np.errstate(under="ignore"):          # scipy's Radau computes nextafter(0) at the start
        ref = solve_ivp(lambda t, z: _finite_n_rhs(fs, t, z), (0, 2), z0, method="Radau", rtol=1e-11,
                        atol=1e-12, t_eval=[1.0, 2.0])
    errs = []
    for dt in (0.02, 0.01, 0.005):
        res = FieldSolver(cm, n=n).run(2.0, dt, record_every=1.0, m0=m0, C0=C0)
        assert res.shift is None
        errs.append(max(np.abs(res.state_mean[k + 1].ravel() - ref.y[:4, k]).max() for k in (0, 1)))
        np.testing.assert_allclose(res.state_cov[-1].ravel(), ref.y[4:, 1], atol=1e-10)
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    assert all(1.8 < r < 2.2 for r in ratios), (errs, ratios)


def test_nonlinear_model_needs_the_labelled_closure_at_finite_n():
    with pytest.raises(FieldNotApplicable, match="population E"):
        FieldSolver("ei_fhn", n=1000)
    st = stationary_field("ei_fhn", n=1000, closure=True)
    assert st.approximation and st.kind == "stationary-field-gaussian-closure-finite-n"
    rec = st.to_dict()
    assert rec["approximation"] is True and "APPROXIMATION" in rec["note"] and rec["n"] == 1000
    res = FieldSolver("ei_fhn", n=1000, closure=True).run(2.0, 0.1)
    assert res.approximation and res.to_dict()["approximation"] is True


def test_bad_n_is_refused():
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            FieldSolver("ei_linear", n=bad)


# ---- particles --------------------------------------------------------------------------------------

def _gaussian_init(st):
    """init callable for solvers.particles.simulate: N(state_mean, state_cov) of a stationary field
    (point model), so that the runs start stationary and short windows suffice."""
    pops = list(st.populations)

    def init(rng, pop, m, n_a, positions):
        ia = pops.index(pop)
        L = np.linalg.cholesky(st.state_cov[ia, 0] + 1e-15 * np.eye(m))
        return st.state_mean[ia, 0][:, None] + L @ rng.standard_normal((m, n_a))
    return init


def _batch_means(series, nbatch):
    return np.array([b.mean(axis=0) for b in np.array_split(series, nbatch)])


def _richardson_batches(cm, n, T, dt, seed, t0, nbatch, reduce, **kw):
    """Batch means over [t0, T] of reduce(run) (an array (records, k)), Richardson-extrapolated in the
    step, 2 m(dt) - m(2 dt), with the same Brownian path at both steps (solvers.verify.CoupledNoise,
    as `balkin verify` removes the O(dt) Euler bias).  Returns (extrapolated, m(dt) - m(2 dt))."""
    from solvers.particles import simulate
    from solvers.verify import CoupledNoise
    out = []
    for factor in (1, 2):
        r = simulate(cm, n, T, dt * factor, seed=seed, noise=CoupledNoise(seed, cm.populations, dt, factor),
                     dt_guard="refuse", record_every=4 * dt, **kw)
        out.append(_batch_means(reduce(r)[r.times >= t0 - 1e-12], nbatch))
    return 2 * out[0] - out[1], out[0] - out[1]


def test_linear_m2_finite_n_field_against_particles():
    """point_adaptation at n = 1000: particles (6 independent seeds x 2 batches of length 4 over [1, 9],
    dt = 0.01 Richardson-extrapolated with 2 dt, started from the stationary finite-n Gaussian) against
    the stationary finite-n field: gbar and the mean of x within the Student-t quantile (11 dof,
    two-sided, alpha = 1e-3 Bonferroni over the 4 comparisons) of the batch-mean standard error.  A batch
    lasts 2.5 relaxation times (the leading finite-n eigenvalue is -0.62 + 0.08i), so batches are close
    to independent.  The balanced limit (gbar = (0.3, 0.2)) is more than 20 standard errors away."""
    cm = point_adaptation()
    n = 1000
    st = stationary_field(cm, n=n)
    bm = np.concatenate([_richardson_batches(cm, n, 9.0, 0.01, seed, 1.0, 2,
                                             lambda r: np.concatenate([r.gbar[:, :, 0], r.mean[:, :, 0]], axis=1),
                                             init=_gaussian_init(st))[0] for seed in range(1, 7)])
    est = bm.mean(axis=0)
    se = bm.std(axis=0, ddof=1) / math.sqrt(len(bm))
    pred = np.concatenate([st.gbar[:, 0], st.mean[:, 0]])
    zcrit = stats.t.ppf(1 - ALPHA / (2 * 4), len(bm) - 1)
    z = (est - pred) / se
    assert np.all(np.abs(z) < zcrit), (est, pred, se, z)
    assert np.all(np.abs(est[:2] - [0.3, 0.2]) > 20 * se[:2])


@pytest.mark.slow
def test_ring_adaptation_finite_n_gbar_against_particles_at_n_2000():
    """The issue's example: ring_adaptation at n = 2000, ring-averaged gbar and mean x from particles
    (4 seeds x 4 batches of [8, 32], dt = 0.01 Richardson-extrapolated with 2 dt, from the model's
    N(0, 1) start) against the stationary finite-n field, within the Student-t quantile (15 dof,
    alpha = 1e-3 over 4 comparisons); the balanced limit 0.300 is far outside."""
    from solvers.compiled import CompiledModel
    n = 2000
    cm = CompiledModel("ring_adaptation")
    st = stationary_field(cm, npos=16, n=n)
    bm = np.concatenate([_richardson_batches(cm, n, 32.0, 0.01, seed, 8.0, 4,
                                             lambda r: np.concatenate([r.gbar.mean(axis=2), r.mean.mean(axis=2)],
                                                                      axis=1), nbins=16)[0]
                         for seed in range(1, 5)])
    est = bm.mean(axis=0)
    se = bm.std(axis=0, ddof=1) / math.sqrt(len(bm))
    pred = np.concatenate([st.gbar.mean(axis=1), st.mean.mean(axis=1)])
    zcrit = stats.t.ppf(1 - ALPHA / (2 * 4), len(bm) - 1)
    assert np.all(np.abs(est - pred) < zcrit * se), (est, pred, se)
    assert abs(est[0] - 0.3) > 50 * se[0]


# ---- command line ------------------------------------------------------------------------------------

def test_solve_field_steady_finite_n_command(tmp_path, capsys):
    """`balkin solve MODEL --field --steady --n N`: the stationary finite-n field, printed and written
    (m = 2 means per component in the JSON); a nonlinear model needs --closure and is then printed and
    written as an APPROXIMATION."""
    import json

    from tests.cli_helpers import one_error_line, run
    js = tmp_path / "st.json"
    code, out, err = run(["solve", "ring_adaptation", "--field", "--steady", "--n", "2000", "--npos", "16",
                          "--json", js], capsys)
    assert code == 0, err
    assert "stationary-field-finite-n: model ring_adaptation, n = 2000" in out and "(stable)" in out
    rec = json.loads(js.read_text())
    st = stationary_field("ring_adaptation", npos=16, n=2000)
    np.testing.assert_allclose(rec["E"]["gbar"], st.gbar[0], atol=1e-12)
    np.testing.assert_allclose(np.array(rec["state_mean"]["I"]), st.state_mean[1].T, atol=1e-12)
    assert rec["n"] == 2000 and rec["approximation"] is False
    code, out, err = run(["solve", "ei_fhn", "--field", "--steady", "--n", "2000"], capsys)
    assert code != 0 and "closure" in one_error_line(err, "solve")
    code, out, err = run(["solve", "ei_fhn", "--field", "--steady", "--n", "2000", "--closure", "--json", js], capsys)
    assert code == 0 and out.startswith("*** APPROXIMATION")
    assert json.loads(js.read_text())["approximation"] is True
