"""The m = 2 kinetic and stationary solvers (solvers/kinetic2d.py, solvers/stationary2d.py,
solvers/grid2d.py): against the exact Gaussian field of a linear model (balanced and finite n, over a
transient), the hypoelliptic adaptation model (positivity, mass, constraint; particles within their
standard errors), refusals and output."""
import functools
import json
import math

import numpy as np
import pytest
import sympy as sp
from scipy import stats as sstats
from scipy.integrate import solve_ivp
from scipy.special import ndtr

import balkin
from derive import Model, Phi, Point, Population
from solvers.field import FieldSolver, stationary_field
from solvers.grid2d import UnsupportedDimension, choose_grid2d
from solvers.kinetic import GridError
from solvers.kinetic2d import KineticSolver2D
from solvers.lattice_coupling import lattice_W
from solvers.stationary2d import solve_stationary2d

x, a, y = sp.symbols("x a y")
DRIFT_A = np.array([[-1.0, -0.5], [0.5, -0.5]])
SIGMA = np.array([[1.0, 0.0], [0.2, 0.4]])
KERNEL = {("E", "E"): 1.0, ("E", "I"): -2.0, ("I", "E"): 1.0, ("I", "I"): -1.8}


@functools.lru_cache(maxsize=None)
def linear_model():
    """E-I without space, m = 2: dx = (-x - a/2 + lambda) dt + dW1, da = (x - a)/2 dt + 0.2 dW1 + 0.4 dW2
    (correlated noise, D12 = 0.1), g = Phi(x); built in memory and compiled (balkin.compile)."""
    pops = [Population(p, drift=[-x - a / 2, (x - a) / 2], diffusion=[[1, 0], [sp.Rational(1, 5), sp.Rational(2, 5)]],
                       gain=Phi(x), drive=H) for p, H in (("E", sp.Rational(1, 10)), ("I", sp.Rational(3, 50)))]
    return balkin.compile(Model(name="lin2", state=[x, a], space=Point(), populations=pops, kernel=KERNEL))


@functools.lru_cache(maxsize=None)
def adaptation_model():
    """The issue's hypoelliptic adaptation model: dx = (-x - a + lambda) dt + s dW, da = (x - a)/tau_a dt,
    g = Phi(x); one inhibitory population, W = -1, h = 0.3 (balanced gbar = 0.3)."""
    s, tau, h = sp.symbols("s tau_a h_E")
    return balkin.compile(Model(name="adapt", state=[x, a], space=Point(),
                                populations=[Population("E", drift=[-x - a, (x - a) / tau], diffusion=[[s, 0], [0, 0]],
                                                        gain=Phi(x), drive=h)],
                                kernel={("E", "E"): -1.0}, parameters={s: 1.0, tau: 2.0, h: 0.3}))


def gaussian_field_finite_n(cm, n, times):
    """The finite-n Gaussian field of linear_model (exact: linear drift, additive noise):
    m' = A m + lambda e, C' = A C + C A^T + S S^T, lambda = sqrt(n) (W Phi(m_x / sqrt(1 + C_xx)) + h),
    from m = 0, C = I, integrated with Radau to 1e-11."""
    W, h, P = lattice_W(cm, ()), cm.drive((), 0.0).ravel(), cm.P
    Q = SIGMA @ SIGMA.T

    def rhs(t, yv):
        yv = yv.reshape(P, 6)
        m, C = yv[:, :2], yv[:, 2:].reshape(P, 2, 2)
        lam = math.sqrt(n) * (W @ ndtr(m[:, 0] / np.sqrt(1 + C[:, 0, 0])) + h)
        dm = m @ DRIFT_A.T
        dm[:, 0] += lam
        return np.concatenate([dm, (DRIFT_A @ C + C @ DRIFT_A.T + Q).reshape(P, 4)], 1).ravel()
    with np.errstate(under="ignore"):
        sol = solve_ivp(rhs, (0, times[-1]), np.tile([0, 0, 1, 0, 0, 1.0], P), t_eval=times, method="Radau",
                        rtol=1e-11, atol=1e-12)
    Y = sol.y.T.reshape(len(times), P, 6)
    return Y[..., :2], Y[..., 2:].reshape(len(times), P, 2, 2)


def test_linear_model_balanced_transient_equals_the_field():
    """Balanced mode from N(0, I) (shifted onto the manifold): the kinetic solution's means and
    covariances per component against the exact Gaussian field (solvers.field) at t = 0.25 .. 1.
    Raw: second-order error (1.1e-3 in the means, 2.6e-3 in the covariances at 224^2 cells, ~8 per sd),
    which the grid-convergence estimate (|Q - Q_coarse| / 3) predicts within 30 %; the Richardson
    values (result.extrapolated) within 1e-4 (measured 4e-5, 8e-5 at 256^2); gbar to 1e-12 (the
    constraint is exact); the initial shift to 1e-9."""
    cm = linear_model()
    g = choose_grid2d(cm, npos=1)
    ks = KineticSolver2D(cm, shape=(256, 256), intervals=dict(zip(cm.populations, g.intervals)))
    r = ks.run(1.0, 0.05, record_every=0.25)
    fr = FieldSolver(cm).run(1.0, 0.01, record_every=0.25)
    np.testing.assert_allclose(r.times, fr.times)
    np.testing.assert_allclose(r.shift, fr.shift, atol=1e-9)
    assert np.abs(r.gbar - fr.gbar).max() < 1e-12
    err_m = np.abs(r.state_mean - fr.state_mean)[1:].max()
    err_c = np.abs(r.state_cov - fr.state_cov)[1:].max()
    est = r.info["grid_convergence"]["error_estimate"]
    assert err_m <= 1.3 * est["state_mean"] and err_c <= 1.3 * est["state_cov"], (err_m, err_c, est)
    ex = r.extrapolated
    assert np.abs(ex["state_mean"] - fr.state_mean)[1:].max() < 1e-4
    assert np.abs(ex["state_cov"] - fr.state_cov)[1:].max() < 1e-4
    assert r.mass_error.max() < 1e-12 and r.min_density.min() >= 0 and r.residual[1:].max() < 1e-12


def test_linear_model_finite_n_transient_equals_the_finite_n_field():
    """Finite n = 16 from N(0, I) (no shift: the equation resolves its own initial layer), trapezoidal
    coupling (second order; |dt nu| <= 0.04): the Richardson means and covariances against the
    finite-n Gaussian field within 1e-4 over t = 0.25 .. 1 (measured 4.4e-5, 6.9e-5); the relation
    lambda = sqrt(n) (W gbar + h) holds to 1e-11 at every record."""
    cm = linear_model()
    n = 16
    ks = KineticSolver2D(cm, n=n, shape=(224, 224), coupling_theta=0.5)
    r = ks.run(1.0, 0.025, record_every=0.25)
    m, C = gaussian_field_finite_n(cm, n, r.times)
    ex = r.extrapolated
    assert np.abs(ex["state_mean"][:, :, 0] - m).max() < 1e-4
    assert np.abs(ex["state_cov"][:, :, 0] - C).max() < 1e-4
    assert r.residual.max() < 1e-11 and r.mass_error.max() < 1e-12
    # the default implicit coupling is first order in dt: the differences between runs at dt, dt/2, dt/4
    # on one grid fall ~2x per halving (measured 1.95)
    runs = [KineticSolver2D(cm, n=n, shape=(96, 96), intervals=dict(zip(cm.populations, ks.grid.intervals)),
                            grid_check="off").run(1.0, dt, record_every=0.25, grid_convergence=False).state_mean
            for dt in (0.05, 0.025, 0.0125)]
    d1, d2 = np.abs(runs[0] - runs[1]).max(), np.abs(runs[1] - runs[2]).max()
    assert 1.7 < d1 / d2 < 2.3, (d1, d2)


def test_stationary_linear_model_equals_stationary_field():
    """The null-vector stationary solver against the stationary Gaussian field: balanced lambda, means
    and covariances to the grid's O(h^2) (measured 3e-5 in lambda and means, 2.3e-4 in covariances
    at the automatic 160^2 grid); the finite-n state (n = 1600) against the finite-n Gaussian state."""
    cm = linear_model()
    st = solve_stationary2d(cm)
    fs = stationary_field(cm)
    assert np.abs(st.lam - fs.lam).max() < 1e-4
    assert np.abs(st.state_mean - fs.state_mean).max() < 1e-4
    assert np.abs(st.state_cov - fs.state_cov).max() < 5e-4
    assert st.imbalance < 1e-10 and np.all(st.eigenvalues.real < 0)
    m, C = gaussian_field_finite_n(cm, 1600, np.array([0.0, 40.0]))
    stn = solve_stationary2d(cm, n=1600)
    assert np.abs(stn.state_mean[:, 0] - m[-1]).max() < 1e-4
    rec = json.loads(stn.to_json())
    assert rec["kind"] == "stationary-finite-n" and rec["components"] == ["x", "a"]
    assert set(rec["E"]) >= {"lambda", "gbar", "mean", "variance", "mean_x", "mean_a", "var_x", "var_a", "cov_x_a"}
    assert len(rec["marginals"]["E"]["a"]["density"][0]) == len(rec["marginals"]["E"]["a"]["x"])


def test_hypoelliptic_positivity_mass_constraint_and_output():
    """Noise on x only: the balanced run keeps p >= 0 (negatives of at most 1e-5 of the maximum are
    zeroed and reported), mass to 1e-12, the constraint to 1e-12 every step; gbar -> 0.3; the output
    schema carries per-component moments and marginals, to_dict/to_json/population(name)."""
    cm = adaptation_model()
    ks = KineticSolver2D(cm, shape=(112, 128), intervals=((-6.0, 5.0), (-3.0, 3.0)), init=((0.0, 0.0), (1.0, 0.4)))
    r = ks.run(2.0, 0.05, record_every=0.5, grid_convergence=False)
    assert r.min_density.min() >= 0 and r.mass_error.max() < 1e-12 and r.residual[1:].max() < 1e-12
    assert r.info["positivity"]["negative_mass_zeroed"] < 1e-7      # measured 4.6e-9 over 40 steps
    np.testing.assert_allclose(r.gbar[1:], 0.3, atol=1e-12)
    d = r.to_dict()
    assert d["kind"] == "kinetic-balanced" and d["input_component"] == "x"
    assert set(r.population("E")) >= {"mean_x", "mean_a", "var_a", "cov_x_a", "lambda", "gbar"}
    assert len(d["time_series"]["E"]["mean_a"]) == len(r.times)
    with pytest.raises(KeyError, match="no population 'Z'"):
        r.population("Z")


def test_refusals_name_the_model_and_the_reason():
    """m = 3 is refused with the reason; a gain that ignores the input component (D = 0, higher-index
    balance) is refused; a given grid that does not resolve the density is refused before any step."""
    pops3 = [Population("E", drift=[-x, -a, -y], diffusion=[1, 1, 1], gain=Phi(x), drive=sp.Rational(1, 10))]
    m3 = balkin.compile(Model(name="three", state=[x, a, y], space=Point(), populations=pops3,
                              kernel={("E", "E"): -1.0}))
    with pytest.raises(UnsupportedDimension, match="m = 3"):
        KineticSolver2D(m3)
    pops = [Population("E", drift=[-x + a, -a], diffusion=[[1, 0], [0, 1]], gain=Phi(a), drive=sp.Rational(1, 10))]
    mg = balkin.compile(Model(name="gain_on_a", state=[x, a], space=Point(), populations=pops,
                              kernel={("E", "E"): -1.0}))
    with pytest.raises(UnsupportedDimension, match="higher index"):
        KineticSolver2D(mg)
    with pytest.raises(GridError, match="population E, component x.*cells per sd"):
        KineticSolver2D(adaptation_model(), shape=(16, 16))


@pytest.mark.slow
def test_adaptation_particles_match_the_finite_n_kinetic_transient():
    """n = 2000 particles (Euler–Maruyama, dt = 0.005, 8 independent seeds) from N(0, I) against the
    finite-n kinetic equation from the same density: the means and variances of x and a, their
    covariance and gbar at t = 0.5, 1, ..., 3 agree within the two-sided Student-t quantile (7 degrees
    of freedom) at family-wise level 1e-3 (Bonferroni over the 36 comparisons) of the seeds' standard
    error.  The particles' states are snapshots of chained runs (each chunk starts from the last
    states; the network is Markov in them)."""
    from solvers.particles import simulate
    cm = adaptation_model()
    n, S, chunk, nchunk = 2000, 8, 0.5, 6
    r = KineticSolver2D(cm, n=n).run(chunk * nchunk, 0.01, record_every=chunk, grid_convergence=False)
    rows = np.zeros((S, nchunk, 6))
    for seed in range(S):
        init = None
        for c in range(nchunk):
            sim = simulate(cm, n, chunk, 0.005, seed=1000 * seed + c, init=init, record_every=chunk)
            X = sim.final_states["E"]
            init = {"E": X}
            rows[seed, c] = [X[0].mean(), X[1].mean(), X[0].var(), X[1].var(), np.cov(X)[0, 1],
                             ndtr(X[0]).mean()]
    est, se = rows.mean(0), rows.std(0, ddof=1) / math.sqrt(S)
    kin = np.stack([r.state_mean[1:, 0, 0, 0], r.state_mean[1:, 0, 0, 1], r.state_cov[1:, 0, 0, 0, 0],
                    r.state_cov[1:, 0, 0, 1, 1], r.state_cov[1:, 0, 0, 0, 1], r.gbar[1:, 0, 0]], -1)
    z = np.abs(est - kin) / se
    crit = sstats.t.ppf(1 - 1e-3 / (2 * z.size), S - 1)
    assert z.max() < crit, (z.round(2), crit)


@pytest.mark.slow
def test_verify_on_the_adaptation_model_passes():
    """balkin.verify on an m = 2 model (solvers/verify_m2.py): particles at n = 500 and 2000 (3 seeds x 4
    batches, dt and 2 dt Richardson) against the finite-n kinetic window averages per component (means,
    variances, covariance of x and a, gbar, lambda): PASS, the worst |z| below the Bonferroni-corrected
    Student-t quantile (measured 1.44 against 6.25, with the start at the Gaussian state), and the
    particles are closer to the finite-n equation than to the balanced limit in W1 for both components."""
    rep = balkin.verify(adaptation_model(), sizes=(500, 2000), seeds=3, T=6.0, t0=2.0, nbatch=4)
    assert rep.passed, rep.failure_lines()
    for e in rep.per_n:
        for c in ("x", "a"):
            assert (e["w1_finite_n_per_component"][c] < e["w1_limit_per_component"][c]).all()
        assert set(e) >= {"mean_x", "mean_a", "var_x", "var_a", "cov_x_a", "gbar", "lam"}
    json.loads(rep.to_json())


ADAPT_FILE = '''"""Adaptation (m = 2): dx = (-x - a + lambda) dt + s dW, da = (x - a)/tau_a dt, g = Phi(x)."""
import sympy as sp
from balkin import Model, Phi, Point, Population
x, a = sp.symbols("x a")
s, tau, h = sp.symbols("s tau_a h_E")
model = Model(name="adapt", state=[x, a], space=Point(),
              populations=[Population("E", drift=[-x - a, (x - a) / tau], diffusion=[[s, 0], [0, 0]],
                                      gain=Phi(x), drive=h)],
              kernel={("E", "E"): -1.0}, parameters={s: 1.0, tau: 2.0, h: 0.3})
'''


def test_cli_solve_stationary_and_kinetic_on_m2(tmp_path, capsys):
    """`balkin solve FILE --stationary --n N --json` and `--kinetic --cells N1 N2 --npz` on an m = 2 model
    of a user's project: per-component tables, the JSON schema of README ("m = 2"), the NPZ arrays;
    --nx is refused in one line naming --cells."""
    from cli_helpers import one_error_line, run
    proj = tmp_path / "proj"
    assert run(["init", proj], capsys)[0] == 0
    (proj / "models" / "adapt.py").write_text(ADAPT_FILE)
    model = proj / "models" / "adapt.py"
    assert run(["generate", model], capsys)[0] == 0
    code, out, _ = run(["solve", model, "--stationary", "--n", "2000", "--json", tmp_path / "st.json"], capsys)
    assert code == 0 and "mean_a" in out and "stationary-finite-n (m = 2)" in out
    rec = json.loads((tmp_path / "st.json").read_text())
    assert rec["components"] == ["x", "a"] and abs(rec["E"]["gbar"][0] - 0.3243) < 1e-3
    code, out, _ = run(["solve", model, "--kinetic", "--T", "0.5", "--dt", "0.05", "--cells", "144", "304",
                        "--npz", tmp_path / "k.npz"], capsys)
    assert code == 0 and "kinetic-balanced (m = 2)" in out
    with np.load(tmp_path / "k.npz") as z:
        assert z["state_mean"].shape[-1] == 2 and z["marginal_a"].shape[-1] == 304
    code, _, err = run(["solve", model, "--kinetic", "--nx", "64"], capsys)
    assert code == 2 and "--cells" in one_error_line(err, "solve")


@pytest.mark.parametrize("n", [None, 400])
def test_time_stepping_reaches_the_stationary_null_vector(n):
    """The HV step's fixed points are the null vectors of the same discrete operator: on one grid the
    kinetic run (hypoelliptic model, balanced and n = 400) reaches the stationary solver's density,
    lambda and moments at T = 30 (measured: density 4e-7 / 4e-8 of the maximum, lambda 2e-7 / 1e-8,
    covariances 1e-15; what remains is the slow adaptation mode, e^-30 / tau_a-ish)."""
    cm = adaptation_model()
    iv = ((-6.0, 5.0), (-3.0, 3.0))
    r = KineticSolver2D(cm, n=n, shape=(112, 128), intervals=iv, init=((0.0, 0.0), (1.0, 0.4))).run(
        30.0, 0.1, record_every=10.0, grid_convergence=False)
    st = solve_stationary2d(cm, n=n, shape=(112, 128), intervals=iv)
    assert np.abs(r.density - st.density).max() < 2e-6 * st.density.max()
    assert np.abs(r.lam[-1] - st.lam).max() < 1e-6 and np.abs(r.state_mean[-1] - st.state_mean).max() < 1e-6
    assert np.abs(r.state_cov[-1] - st.state_cov).max() < 1e-9


def test_constraint_exact_after_the_positivity_clip():
    """ei_fhn at n = 1000 from its initial density: the first steps produce small negative densities that
    the positivity safeguard zeroes (mass moved: 3.7e-6); the multiplier is then corrected once more on the
    clipped state, so the finite-n relation still holds to rounding (it was 4.9e-7 without the correction)."""
    from solvers.kinetic2d import KineticSolver2D
    ks = KineticSolver2D("ei_fhn", npos=1, n=1000)
    res = ks.run(0.2, 0.05, grid_convergence=False)
    assert ks.clipped_mass > 1e-7                     # the clip did fire
    assert res.residual.max() < 1e-11
    assert res.mass_error.max() < 1e-12 and res.min_density.min() >= 0
