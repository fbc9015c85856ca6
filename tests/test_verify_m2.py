"""`balkin verify` on m = 2 models (solvers/verify_m2.py): the lattice interpolation and bin averages it
predicts with, its figures (density heat maps beside the particle histogram), and the torus."""
import functools

import numpy as np
import pytest
import sympy as sp

import balkin
from derive import Model, Phi, Point, Population, Torus2
from solvers.coupling import bin_index
from solvers.lattice_interp import bin_means, interpolate

x, a = sp.symbols("x a")


def _band_limited(rng, side, pos_dim):
    """A random real field on the lattice whose Fourier modes lie below side / 2 per angle, and the
    function it samples (so the trigonometric interpolant must reproduce it everywhere)."""
    kmax = side // 2 - 1
    ks = [(k1, k2) for k1 in range(-kmax, kmax + 1) for k2 in (range(-kmax, kmax + 1) if pos_dim == 2 else [0])]
    amp = rng.standard_normal(len(ks))
    ph = rng.uniform(0, 2 * np.pi, len(ks))

    def f(*th):
        t2 = th[1] if pos_dim == 2 else 0.0
        return sum(A * np.cos(k1 * th[0] + k2 * t2 + p) for (k1, k2), A, p in zip(ks, amp, ph))
    th = 2 * np.pi * np.arange(side) / side
    grid = (th,) if pos_dim == 1 else tuple(g.ravel() for g in np.meshgrid(th, th, indexing="ij"))
    return f(*grid), f


@pytest.mark.parametrize("pos_dim,side", [(1, 8), (1, 9), (2, 4), (2, 6)])
def test_trigonometric_interpolation_is_exact_for_band_limited_fields(pos_dim, side, rng):
    """lattice_interp.interpolate reproduces a field of modes below side / 2 at arbitrary positions to
    rounding (ring and torus, even and odd side), and bin_means is the plain mean over the neurons
    that the particles' binning (coupling.bin_index) puts in each bin."""
    field, f = _band_limited(rng, side, pos_dim)
    pos = tuple(rng.uniform(0, 2 * np.pi, 500) for _ in range(pos_dim))
    np.testing.assert_allclose(interpolate(field, side, pos_dim, pos), f(*pos), rtol=0, atol=1e-12)
    vals = rng.standard_normal((3, 500))
    idx = bin_index(pos, 2, pos_dim)
    expect = np.stack([vals[:, idx == b].mean(axis=1) for b in range(2 ** pos_dim)], axis=1)
    np.testing.assert_allclose(bin_means(vals, pos, 2, pos_dim), expect, rtol=0, atol=1e-14)


def adaptation_point():
    """Hypoelliptic adaptation (m = 2), one inhibitory population without space: dx = (-x - a + lambda) dt
    + dW, da = (x - a)/2 dt, g = Phi(x), W = -1, h = 0.3."""
    s, tau, h = sp.symbols("s tau_a h_E")
    return balkin.compile(Model(name="adapt", state=[x, a], space=Point(),
                                populations=[Population("E", drift=[-x - a, (x - a) / tau],
                                                        diffusion=[[s, 0], [0, 0]], gain=Phi(x), drive=h)],
                                kernel={("E", "E"): -1.0}, parameters={s: 1.0, tau: 2.0, h: 0.3}))


@functools.lru_cache(maxsize=None)
def adaptation_torus():
    """The same neuron on the torus, one inhibitory population, w = -(1 + (cos(theta1 - phi1) +
    cos(theta2 - phi2)) / 2), drive 0.3 (1 + cos(theta1) / 5 + cos(theta2) / 10): the state varies along
    both angles, linear drift and additive noise (the start at the Gaussian state is exact)."""
    t1, t2, p1, p2 = sp.symbols("theta1 theta2 phi1 phi2")
    s, tau = sp.symbols("s tau_a")
    pop = Population("E", drift=[-x - a, (x - a) / tau], diffusion=[[s, 0], [0, 0]], gain=Phi(x),
                     drive=sp.Rational(3, 10) * (1 + sp.cos(t1) / 5 + sp.cos(t2) / 10))
    return balkin.compile(Model(name="adapt_torus", state=[x, a], space=Torus2((t1, t2), (p1, p2)),
                                populations=[pop],
                                kernel={("E", "E"): -(1 + (sp.cos(t1 - p1) + sp.cos(t2 - p2)) / 2)},
                                parameters={s: 1.0, tau: 2.0}))


@pytest.mark.slow
def test_verify_m2_figures_show_the_density_beside_the_particle_histogram(tmp_path):
    """`verify --plots` on an m = 2 model writes the 2-D density figure and the error-vs-n figure; the
    arrays drawn: the kinetic density has mass 1 on its cells, the histogram counts every final
    particle state (seeds x n, those outside the grid counted apart, none here) and as a density it
    has mass 1 too, and both marginals of both integrate to 1."""
    from balkin.cli.verify_report import density_panels, write_plots
    rep = balkin.verify(adaptation_point(), sizes=(200, 800), seeds=2, T=2.0, t0=0.5, nbatch=2)
    files = write_plots(rep, tmp_path / "figs")
    names = sorted(p.rsplit("/", 1)[-1] for p in files)
    assert names == ["adapt_densities2d.png", "adapt_error_vs_n.png"]
    for f in files:
        with open(f, "rb") as fh:
            assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    (pnl,) = density_panels(rep)
    assert pnl["n"] == 800 and pnl["samples"] == 2 * 800
    assert pnl["counts"].sum() + pnl["outside"] == pnl["samples"] and pnl["outside"] == 0
    assert abs(pnl["density"].sum() * pnl["cell_area"] - 1) < 1e-10
    assert abs(pnl["histogram"].sum() * pnl["cell_area"] - 1) < 1e-12
    assert pnl["density"].shape == pnl["histogram"].shape == (len(pnl["edges"][0]) - 1, len(pnl["edges"][1]) - 1)
    for c, (dm, hm) in pnl["marginals"].items():
        k = ("x", "a").index(c)
        h = pnl["edges"][k][1] - pnl["edges"][k][0]
        assert abs(dm.sum() * h - 1) < 1e-10 and abs(hm.sum() * h - 1) < 1e-12


@pytest.mark.slow
def test_verify_m2_on_the_torus_passes():
    """verify on an m = 2 torus model (position bins on the torus lattice, nbins = 2: four bins; the
    predictions on a 4 x 4 lattice interpolated to the neurons): n = 400 and 1600 (squares, the
    lattice of neurons), 3 seeds x 3 batches: PASS — every |z| below the Bonferroni-corrected
    Student-t quantile — and the four bins' finite-n gbar differ by more than their standard errors."""
    rep = balkin.verify(adaptation_torus(), sizes=(400, 1600), seeds=3, T=5.0, t0=1.0, nbatch=3, nbins=2)
    assert rep.passed, rep.failure_lines()
    big = rep.per_n[-1]
    assert big["gbar"]["finite_n"].shape == (1, 4)
    spread = np.ptp(big["gbar"]["finite_n"][0])
    assert spread > 5 * big["gbar"]["se"].max(), (spread, big["gbar"]["se"])


# ---- stability and the unstable regime on m = 2 (issue 9's verify, issue 11) ------------------------
@functools.lru_cache(maxsize=None)
def _hopf_adaptation():
    """Point E-I model near a Hopf point of the fast manifold (issue 9's W = [[1, -2], [1, -1.3]], balanced
    gbar = (0.45, 0.2)) with an adaptation variable a (noise on x only): the finite-n fast matrix
    <f_e'> + sqrt(n) W D is stable at n = 400 (-0.63 +- 3.75i) and unstable at n = 10^4 (0.87 +- 22.3i)."""
    from derive.codegen import compile_module
    from solvers.compiled import CompiledModel
    W = np.array([[1.0, -2.0], [1.0, -1.3]])
    h = -W @ np.array([0.45, 0.2])
    pops = [Population(p, drift=[-x - a / 2, (x - a) / 2], diffusion=[[1, 0], [0, 0]], gain=Phi(x), drive=float(hh),
                       fraction=1) for p, hh in (("E", h[0]), ("I", h[1]))]
    return CompiledModel(compile_module(Model(
        name="hopf_adaptation", state=[x, a], space=Point(), populations=pops,
        kernel={("E", "E"): 1.0, ("E", "I"): -2.0, ("I", "E"): 1.0, ("I", "I"): -1.3}, parameters={})))


def test_m2_unstable_size_fails_naming_size_and_eigenvalue():
    from solvers.verify import VerifySettings, verify
    rep = verify(_hopf_adaptation(), VerifySettings(sizes=(400, 10_000), seeds=2, T=4, t0=1, nbins=4),
                 progress=None)
    stab = {e["n"]: e for e in rep.stability}
    assert stab[400]["stable"] and not stab[10_000]["stable"]
    assert stab[400]["leading"][0] < 0 < stab[10_000]["leading"][0]
    msg = rep.checks["stability"]["message"]
    assert not rep.passed and "n = 10000 (eigenvalue 0.86" in msg and "--unstable" in msg
    assert [e["n"] for e in rep.per_n] == [400]                 # no stationary comparison at the unstable size


@pytest.mark.slow
def test_m2_unstable_regime_frequency_and_growth():
    """--unstable on m = 2: the particles (drawn from the 2-D stationary density, kicked along the leading
    eigenvector) grow and oscillate as the finite-n fast eigenvalue says (frequency within 5 %, growth within
    3 SE over 4 seeds); a wrong prediction (the intrinsic rate J shifted by -0.5) fails the same check."""
    from solvers import verify_stability as vs
    from solvers.stationary2d import solve_stationary2d
    from solvers.verify import VerifySettings, verify
    cm = _hopf_adaptation()
    rep = verify(cm, VerifySettings(sizes=(10_000,), seeds=4, unstable=True), progress=None)
    c = rep.checks["oscillation n=10000"]
    assert rep.passed, c["message"]
    assert abs(c["frequency"] / c["predicted"][1] - 1) < 0.05
    assert abs(c["rate"] - c["predicted"][0]) < 3 * c["rate_se"] + 0.05
    st = vs.State2D(solve_stationary2d(cm, n=10_000, check_stability=False))
    st.drift_slope = st.drift_slope - 0.5                         # the negative control
    wrong = vs.oscillation_check(cm, 10_000, st, 0.005, 4)
    assert not wrong["passed"] and "MISS" in wrong["message"]
