"""The m = 2 models models/ring_adaptation.py and models/ei_fhn.py: the claims of their docstrings,
symbolically (from the model files) and against particle simulations (slow)."""
import math
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from scipy import stats

from derive.loader import load_model

ROOT = Path(__file__).resolve().parents[1]
ALPHA = 1e-3


def _fhn():
    model = load_model(ROOT / "models" / "ei_fhn.py")
    prm = {k.name: v for k, v in model.parameters.items()}
    return model, prm


# ---- ei_fhn: the single neuron, symbolically ---------------------------------------------------------

def test_ei_fhn_neuron_has_one_stable_fixed_point_and_no_cycle_for_every_input():
    """The docstring's argument, checked on the model file: with the parameters substituted, for every
    constant input lambda (i) the fixed point is unique (the nullcline function v - v^3/3 - (v + c)/b +
    lambda is strictly decreasing: 1 - v^2 - 1/b < 0 as b < 1), (ii) the Jacobian there has positive
    determinant eps (1 - b (1 - v^2)) and negative trace 1 - v^2 - eps b, and (iii) the divergence of
    the drift, 1 - v^2 - eps b, is negative everywhere (eps b > 1), so by Bendixson's criterion the
    noise-free neuron has no periodic orbit; noise enters v only."""
    model, prm = _fhn()
    v, w = model.state
    lam = sp.Symbol("lam", real=True)
    for pop in model.populations:
        f = [sp.sympify(fi).subs({k: val for k, val in model.parameters.items()}) for fi in pop.drift]
        sig = sp.Matrix(pop.diffusion).subs({k: val for k, val in model.parameters.items()})
        assert sig[1, :] == sp.zeros(1, sig.shape[1]) and sig[0, 0] != 0          # noise on v only
        def even_quadratic(q):
            """q = q0 + q2 v^2 (no other powers): its sign is that of q0 and q2 when they agree."""
            P = sp.Poly(q, v)
            assert P.degree() == 2 and P.coeff_monomial(v).is_zero and not (q.free_symbols - {v})
            return P.coeff_monomial(1), P.coeff_monomial(v ** 2)

        div = sp.expand(sp.diff(f[0], v) + sp.diff(f[1], w))
        # divergence <= 1 - eps b < 0 for every v
        q0, q2 = even_quadratic(div)
        assert q0 < 0 and q2 < 0
        wstar = sp.solve(f[1], w)[0]
        null = sp.expand(f[0].subs(w, wstar) + lam)
        dnull = sp.diff(null, v)
        q0, q2 = even_quadratic(dnull)
        assert q0 < 0 and q2 < 0                                                 # strictly decreasing
        J = sp.Matrix([[sp.diff(fi, z) for z in (v, w)] for fi in f])
        det, tr = sp.expand(J.det()), sp.expand(J.trace())
        q0, q2 = even_quadratic(det)
        assert q0 > 0 and q2 > 0
        q0, q2 = even_quadratic(tr)
        assert q0 < 0 and q2 < 0
    assert prm["eps"] * prm["b"] > 1 and prm["b"] < 1


def test_ei_fhn_demanded_activities_are_inside_the_gain_range():
    """(B) W gbar + h = 0 with W = [[J_EE, -J_EI], [J_IE, -J_II]] demands gbar = (0.25, 0.35)."""
    _, p = _fhn()
    W = np.array([[p["J_EE"], -p["J_EI"]], [p["J_IE"], -p["J_II"]]])
    g = np.linalg.solve(W, -np.array([p["h_E"], p["h_I"]]))
    np.testing.assert_allclose(g, [0.25, 0.35], atol=1e-12)


# the reference numbers of ei_fhn's docstring (stationary 2-D Fokker–Planck, Richardson-extrapolated from
# 120^2 and 240^2 cells, first order in w); their error is bounded by the size of that extrapolation's
# correction, at most 1.5e-3 in gbar and 3.6e-3 in the mean of v (and 0.008 in lambda = gbar error / slope)
FHN_BALANCED = {"lambda": (0.0958, 0.4365), "gbar": (0.25, 0.35), "mean_v": (-0.8293, -0.4897)}
FHN_FINITE_N = {1000: {"gbar": (0.2780, 0.3608), "lambda": (0.199, 0.470), "mean_v": (-0.732, -0.454)},
                4000: {"gbar": (0.2665, 0.3570), "lambda": (0.158, 0.458), "mean_v": (-0.772, -0.466)}}
REF_ERR = {"gbar": 2e-3, "mean_v": 4e-3, "lambda": 1e-2}


def _window_samples(res, t0, nbatch, quantities):
    """Batch means over [t0, T] of the record series (population order), concatenated per batch."""
    sel = res.times >= t0 - 1e-12
    cols = np.concatenate([getattr(res, q)[sel, :, 0] for q in quantities], axis=1)
    return np.array([b.mean(axis=0) for b in np.array_split(cols, nbatch)])


def _compare(samples, expect, allowance, what):
    """|mean - expect| <= t-quantile * se + allowance, Bonferroni over the compared numbers."""
    est = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / math.sqrt(len(samples))
    zc = stats.t.ppf(1 - ALPHA / (2 * len(est)), len(samples) - 1)
    assert np.all(np.abs(est - expect) <= zc * se + allowance), (what, est, expect, se, zc)
    return est, se


@pytest.mark.slow
def test_ei_fhn_uncoupled_neurons_at_the_balanced_lambda_have_the_demanded_activity():
    """The docstring's balanced state: neurons at the constant input lambda* (the network with J = 0 and
    h = lambda* / sqrt(n), n = 2000, 3 seeds x 2 batches of [5, 20], dt = 0.01) have gbar = (0.25, 0.35)
    and the docstring's mean v, within the t-quantile of the standard error plus the reference error."""
    from solvers.compiled import CompiledModel
    from solvers.particles import simulate
    n = 2000
    lam = FHN_BALANCED["lambda"]
    cm = CompiledModel("ei_fhn", {"J_EE": 0.0, "J_EI": 0.0, "J_IE": 0.0, "J_II": 0.0,
                                  "h_E": lam[0] / math.sqrt(n), "h_I": lam[1] / math.sqrt(n)})
    smp = np.concatenate([_window_samples(simulate(cm, n, 20.0, 0.01, seed=seed, record_every=0.1), 5.0, 2,
                                          ("gbar", "mean")) for seed in (1, 2, 3)])
    _compare(smp[:, :2], FHN_BALANCED["gbar"], REF_ERR["gbar"], "gbar")
    _compare(smp[:, 2:], FHN_BALANCED["mean_v"], REF_ERR["mean_v"], "mean v")


@pytest.mark.slow
def test_ei_fhn_network_settles_on_the_finite_n_state_of_its_docstring():
    """Coupled networks at n = 1000 and 4000 (3 seeds x 2 batches of [6, 20], dt = 0.01): gbar, lambda_n
    and mean v against the docstring's finite-n values (stationary 2-D Fokker–Planck with
    lambda_n = sqrt(n)(W gbar + h)) within the t-quantile of the standard error plus the reference error;
    the activity moves toward the balanced (0.25, 0.35) as n grows."""
    from solvers.particles import simulate
    est = {}
    for n, ref in FHN_FINITE_N.items():
        smp = np.concatenate([_window_samples(simulate("ei_fhn", n, 20.0, 0.01, seed=seed, record_every=0.1),
                                              6.0, 2, ("gbar", "lam", "mean")) for seed in (1, 2, 3)])
        est[n], _ = _compare(smp[:, :2], ref["gbar"], REF_ERR["gbar"], f"gbar at n = {n}")
        _compare(smp[:, 2:4], ref["lambda"], REF_ERR["lambda"], f"lambda at n = {n}")
        _compare(smp[:, 4:], ref["mean_v"], REF_ERR["mean_v"], f"mean v at n = {n}")
    g = np.array(FHN_BALANCED["gbar"])
    assert np.all(np.abs(est[4000] - g) < 0.8 * np.abs(est[1000] - g))


@pytest.mark.slow
def test_demo_runs_on_an_m2_model(capsys):
    """`balkin demo --model ring_adaptation --quick`: the stationary states from the exact field (balanced
    and n = 1000), the 2-D kinetic equation (balanced and n = 1000), the field in time, and verify (solvers/verify_m2.py) runs on the model's m = 2
    defaults for the bins, at the quick sizes, to a verdict (it is no longer skipped)."""
    from tests.cli_helpers import run
    code, out, err = run(["demo", "--model", "ring_adaptation", "--quick", "--plots", ""], capsys)
    assert "== 3. stationary states from the neural field (exact" in out
    assert "finite n = 1000, E: lambda from" in out and "(stable)" in out
    kinetic = out.split("== 4. kinetic equation", 1)[1].split("== 5.", 1)[0]
    assert "skipped" not in kinetic and "balanced limit (4 positions" in kinetic and "finite n = 1000 (4 positions" in kinetic
    assert "E (x " in kinetic and "mass error" in kinetic
    assert "== 5. neural field" in out and "== 6. verify" in out
    verify_part = out.split("== 6. verify", 1)[1]
    assert "skipped:" not in verify_part and "verdict:" in verify_part and "mean_a" in verify_part
    assert code == (0 if "verdict: PASS" in verify_part else 1)
