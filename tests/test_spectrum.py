"""Spectra of stationary balanced states (solvers/spectrum.py): finite-difference Jacobians of the
field on the manifold, the generated fast matrix, the stationary solver's eigenvalues, the verdicts,
the unstable ring model (spectrum and particle simulation) and the `balkin spectrum` command."""
import json
import math

import numpy as np
import pytest

from solvers.field import FieldSolver
from balkin.cli.spectrum import print_spectrum
from solvers.spectrum import slow_jacobian, spectrum

# ring_unstable's cos/sin-mode eigenvalue of W D (models/ring_unstable.py docstring)
MU_UNSTABLE = 0.063083 + 0.201982j


def test_fast_spectrum_equals_finite_difference_jacobian_on_the_manifold():
    """d/dq U^T (W G(m* + U q, C*) + h) at q = 0 is U^T W D U: same matrix, same eigenvalues."""
    fs = FieldSolver("ring_ei", npos=32)
    st = fs.stationary()
    spec = spectrum("ring_ei", npos=32, state=st)
    h = fs.U.T @ fs.drive(0.0).ravel()

    def F(q):
        mg = st.mean + fs.lam_of(q)
        return fs.WtU.T @ fs.gain(mg, st.variance).ravel() + h

    eps = 1e-6
    J = np.column_stack([(F(eps * e) - F(-eps * e)) / (2 * eps) for e in np.eye(fs.r)])
    np.testing.assert_allclose(J, spec.fast_matrix, atol=1e-9)
    np.testing.assert_allclose(np.sort_complex(np.linalg.eigvals(J)), np.sort_complex(spec.fast), atol=1e-8)
    # the model docstring: coupled eigenvalues -0.0833, -0.0806, -0.0733 +- 0.0820i, -0.0201, -0.0157
    np.testing.assert_allclose(np.sort_complex(spec.fast),
                               np.sort_complex([-0.0833, -0.0806, -0.0733 + 0.0820j, -0.0733 - 0.0820j,
                                                -0.0201, -0.0157]), atol=1e-4)


def test_slow_spectrum_equals_finite_difference_jacobian_on_the_manifold():
    """m = 2 with a spatially varying drift: chart y -> m(y) = m* + V y + e U c(y) on the manifold (c from
    the balance, FieldSolver.solve_constraint), reduced field y' = V^T (A m + b + lambda(m) e) with the
    instantaneous multiplier (FieldSolver.multiplier); its Jacobian by central differences is J_T."""
    from test_field_solver import ring_adapt
    cm = ring_adapt()
    fs = FieldSolver(cm, npos=8)
    st = fs.stationary(0.0)
    spec = spectrum(cm, npos=8, state=st)
    JT, V, _ = slow_jacobian(st.A, fs.W, fs.U, st.slope, fs.e, fs.gc)
    np.testing.assert_allclose(JT, spec.slow_matrix)
    P, N, m = fs.P, fs.N, fs.m
    C = st.state_cov
    A, b, _ = fs.linear_coefficients(0.0)

    def field_rhs(mean):
        out = np.einsum("pnij,pnj->pni", A, mean) + b
        out[..., fs.e] += fs.multiplier(mean, C, 0.0)
        return out.ravel()

    def on_manifold(yv):
        mm = st.state_mean + (V @ yv).reshape(P, N, m)
        ell, _, _ = fs.solve_constraint(mm[..., 0], np.ones((P, N)), C[..., 0, 0], 0.0, np.zeros(fs.r))
        mm[..., 0] += fs.lam_of(ell)
        return mm

    assert np.abs(field_rhs(st.state_mean)).max() < 1e-12
    d = V.shape[1]
    assert d == P * N * m - fs.r
    eps = 1e-5
    J = np.column_stack([V.T @ (field_rhs(on_manifold(eps * e)) - field_rhs(on_manifold(-eps * e))) / (2 * eps)
                         for e in np.eye(d)])
    np.testing.assert_allclose(J, JT, atol=1e-8)
    ws = np.linalg.eigvals(JT)
    np.testing.assert_allclose(np.sort_complex(ws), np.sort_complex(spec.slow), atol=1e-10)
    assert np.ptp(ws.imag) > 0.1                       # a non-trivial slow spectrum
    assert spec.verdict in ("stable", "oscillatory")


def test_mode_blocks_equal_the_generated_fast_matrix():
    """With the theta-averaged slopes the per-mode blocks are those of module.fast_matrix(D_E, D_I)."""
    spec = spectrum("ring_ei", npos=64)
    mod, prm = spec.model.module, spec.model.params
    M = mod.fast_matrix(*spec.Dbar, **prm)
    K = len(mod.PSI)
    for grp, row in zip(mod.MODES, spec.modes):
        idx = [a * K + k for a in range(spec.model.P) for k in grp]
        w = np.linalg.eigvals(M[np.ix_(idx, idx)])
        np.testing.assert_allclose(np.sort_complex(row.fast_block), np.sort_complex(w), atol=1e-12)
    # ring_ei docstring: theta-averaged D = (0.2597, 0.2228); blocks -0.0706 +- 0.0811i and -0.0186, -0.0839
    np.testing.assert_allclose(spec.Dbar, [0.2597, 0.2228], atol=1e-4)
    np.testing.assert_allclose(np.sort_complex(spec.mode("1").fast_block), [-0.0706 - 0.0811j, -0.0706 + 0.0811j],
                               atol=1e-4)
    np.testing.assert_allclose(np.sort(spec.mode("cos(theta)").fast_block.real), [-0.0839, -0.0186], atol=1e-4)


def test_homogeneous_state_shares_degenerate_eigenvalues_among_cos_and_sin():
    """delta = 0: the state is homogeneous, the blocks are exact and the cos and sin modes carry the same
    two eigenvalues each (a degenerate eigenspace whose eigenvectors mix the two modes)."""
    for npos in (16, 33):
        spec = spectrum("ring_ei", npos=npos, params={"delta": 0.0})
        for row in spec.modes[:3]:
            assert row.fast.size == 2
            np.testing.assert_allclose(row.fast, row.fast_block, atol=1e-12)
        np.testing.assert_allclose(spec.mode("cos(theta)").fast, spec.mode("sin(theta)").fast, atol=1e-12)


def test_coupled_fast_spectrum_equals_the_stationary_solver():
    from solvers.stationary import solve_balanced
    sb = solve_balanced("ring_ei", npos=32)
    spec = spectrum("ring_ei", npos=32)
    np.testing.assert_allclose(np.sort_complex(spec.fast), np.sort_complex(sb.eigenvalues), atol=1e-8)
    for row in spec.modes[:3]:
        np.testing.assert_allclose(np.sort_complex(row.fast), np.sort_complex(sb.modes["psi=" + row.label]),
                                   atol=1e-8)


def test_ring_ei_verdicts_and_slow_spectrum():
    spec = spectrum("ring_ei", npos=32)
    verdicts = {r.label: r.verdict for r in spec.modes}
    assert verdicts == {"1": "oscillatory", "sin(theta)": "stable", "cos(theta)": "stable",
                        "outside Range(W)": "stable"}
    assert spec.verdict == "oscillatory" and spec.stable
    # f = -x: J = -(I - Pi) is -1 on the tangent space (P N - r eigenvalues), all outside Range(W)
    np.testing.assert_allclose(spec.slow, -1.0, atol=1e-12)
    assert spec.slow.size == 2 * 32 - 6 and spec.mode("outside Range(W)").slow.size == 2 * 32 - 6
    np.testing.assert_allclose(spec.covariance, [-2.0])
    rec = spec.to_record(n=10000)
    row = rec["modes"][0]
    assert row["mode"] == "1" and row["verdict"] == "oscillatory"
    np.testing.assert_allclose(sorted(row["fast_angular_frequencies"]), 100 * np.abs(spec.mode("1").fast.imag),
                               rtol=1e-12)
    assert rec["state"]["kind"] == "stationary-field"


def test_ring_unstable_spectrum_says_which_mode(capsys):
    """models/ring_unstable.py: homogeneous balanced state gbar = (0.3, 0.4); the constant mode is
    stable, the cos and sin modes are unstable and oscillatory with mu = 0.0631 +- 0.2020i."""
    spec = spectrum("ring_unstable", npos=32)
    st = spec.state
    np.testing.assert_allclose(st.gbar, np.array([[0.3], [0.4]]) * np.ones((1, 32)), atol=1e-12)
    np.testing.assert_allclose(st.lam[:, 0], [-0.642257, -0.310286], atol=1e-6)
    assert spec.mode("1").verdict == "oscillatory"
    assert spec.mode("1").fast.real.max() < -0.3
    for label in ("cos(theta)", "sin(theta)"):
        row = spec.mode(label)
        assert row.verdict == "unstable" and row.oscillatory
        np.testing.assert_allclose(np.sort_complex(row.fast), [MU_UNSTABLE.conjugate(), MU_UNSTABLE], atol=1e-6)
        np.testing.assert_allclose(np.sort_complex(row.fast_block), np.sort_complex(row.fast), atol=1e-12)
    assert spec.verdict == "unstable" and spec.unstable_modes == ["sin(theta)", "cos(theta)"]
    print_spectrum(spec, n=40000)
    out = capsys.readouterr().out
    assert "UNSTABLE" in out and "mode cos(theta) (unstable" in out and "frequency 40.4" in out


def test_nonlinear_model_spectrum_from_the_stationary_solver(capsys):
    from solvers.stationary import solve_balanced
    spec = spectrum("ring_nonlinear", npos=32)
    assert spec.source == "stationary-balanced" and not spec.approximation
    assert spec.slow is None and all(r.slow is None for r in spec.modes)
    np.testing.assert_allclose(np.sort_complex(spec.fast),
                               np.sort_complex(solve_balanced("ring_nonlinear", npos=32).eigenvalues), atol=1e-12)
    assert spec.verdict == "stable"
    clos = spectrum("ring_nonlinear", npos=16, closure=True)
    assert clos.approximation and clos.source == "field-gaussian-closure" and clos.slow is not None
    assert clos.to_record()["approximation"] is True
    print_spectrum(clos)
    assert "APPROXIMATION" in capsys.readouterr().out


def test_balkin_spectrum_command(tmp_path, capsys):
    from balkin.cli import main
    path = tmp_path / "spec.json"
    assert main(["spectrum", "ring_unstable", "--n", "40000", "--npos", "16", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "mode (psi)" in out and "cos(theta)" in out and "UNSTABLE" in out
    rec = json.loads(path.read_text())
    assert rec["kind"] == "spectrum" and rec["verdict"] == "unstable" and rec["n"] == 40000
    row = {r["mode"]: r for r in rec["modes"]}["cos(theta)"]
    assert row["verdict"] == "unstable"
    np.testing.assert_allclose(sorted(row["fast_angular_frequencies"]), [200 * MU_UNSTABLE.imag] * 2, rtol=1e-5)
    assert main(["spectrum", "ei_linear", "--param", "h_E=0.12"]) == 0
    assert "verdict: oscillatory" in capsys.readouterr().out


# ---- the particle network shows the instability ------------------------------------------------

def _fit_growing_oscillation(t, y, omega0):
    """Least-squares fit of y (nt, k) by e^(g t) (a cos w t + b sin w t) + c per column, common (g, w)."""
    from scipy.optimize import least_squares

    def resid(p):
        g, w = p
        B = np.stack([np.exp(g * t) * np.cos(w * t), np.exp(g * t) * np.sin(w * t), np.ones_like(t)], 1)
        coef, *_ = np.linalg.lstsq(B, y, rcond=None)
        return (B @ coef - y).ravel()

    return least_squares(resid, [1.0, omega0]).x


def test_particles_show_the_unstable_mode():
    """ring_unstable at n = 40000, started at the balanced state with a small cos perturbation of x_E:
    the cos coefficient of gbar_E oscillates with growing amplitude.  Its zero crossings are pi/omega
    apart and a fit e^(g t)(a cos wt + b sin wt) gives w = sqrt(n) Im mu (+-10 %) and
    g = sqrt(n) Re mu - 1 (+-25 %): the mean field x' = -x + lambda_n linearises to -1 + sqrt(n) mu."""
    particles = pytest.importorskip("solvers.particles", reason="solvers/particles.py (particle simulator) "
                                    "is not available yet")
    n, dt, T = 40000, 0.001, 0.27
    st = FieldSolver("ring_unstable", npos=16).stationary()
    mstar, sd = st.mean[:, 0], np.sqrt(st.variance[:, 0])

    def init(rng, pop, m, n_a, pos):
        a = 0 if pop == "E" else 1
        return (mstar[a] + (0.02 * np.cos(pos[0]) if a == 0 else 0.0) + sd[a] * rng.standard_normal(n_a))[None, :]

    res = particles.simulate("ring_unstable", n, T, dt, seed=1, init=init, nbins=16, record_every=dt)
    tt = res.times
    c = 2 * np.mean(res.gbar * np.cos(res.bin_centres), axis=-1)          # (nt, P): cos coefficients
    omega = math.sqrt(n) * MU_UNSTABLE.imag
    growth = math.sqrt(n) * MU_UNSTABLE.real - 1.0
    xe = c[:, 0]
    k = np.flatnonzero(np.sign(xe[:-1]) * np.sign(xe[1:]) < 0)
    crossings = tt[k] - xe[k] * (tt[k + 1] - tt[k]) / (xe[k + 1] - xe[k])
    assert len(crossings) >= 3, crossings
    omega_cross = math.pi / np.mean(np.diff(crossings))
    g_fit, w_fit = _fit_growing_oscillation(tt, c, omega_cross)
    assert abs(omega_cross / omega - 1) < 0.1, (omega_cross, omega)
    assert abs(w_fit / omega - 1) < 0.1, (w_fit, omega)
    assert abs(g_fit / growth - 1) < 0.25, (g_fit, growth)
    early, late = np.abs(c[tt < 0.1]).max(), np.abs(c[tt > 0.17]).max()
    assert late > 5 * early, (early, late)
