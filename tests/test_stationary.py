"""Stationary balanced states and the finite-n McKean–Vlasov stationary state (solvers.stationary),
the 1-D stationary densities on automatic grids (solvers.density1d), the lattice form of W
(solvers.lattice_coupling) and `balkin solve --stationary`.

Exact references used below:
* f = -x, sigma = s (ei_linear, ring_ei): the stationary density is N(lambda, s^2/2), so with
  g = Phi,  gbar = Phi(lambda / sqrt(1 + s^2/2))  and  mean = lambda, variance = s^2 / 2;
  ei_linear (s = 1): balance gbar = W^-1(-h) = (0.3, 0.2), lambda = sqrt(1.5) Phi^-1(gbar).
* f = a + lambda - x, sigma = sqrt(x) (a wall at 0): p ~ x^(2(a+lambda)-1) e^(-2x), a Gamma law with
  mean a + lambda and variance (a + lambda)/2.
"""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from scipy import integrate
from scipy.special import ndtr, ndtri

from derive import Model, Phi, Point, Population, Ring
from balkin.cli import main as balkin
from derive.codegen import compile_module
from solvers.balance_errors import (DensityError, DriveOutsideRange, GainRangeExceeded,
                                    ManifoldNotAttracting, NoConvergence)
from solvers.compiled import CompiledModel
from solvers.density1d import DensityFamily, GridDensities, grid_holds, select_grid
from solvers.intervals import auto_interval_for_model
from solvers.stationary import solve_balanced, solve_finite_n

W_EI = np.array([[1.0, -2.0], [1.0, -1.8]])
H_EI = np.array([0.1, 0.06])
x = sp.Symbol("x")


def ei_point_model(name, drift, diffusion):
    """ei_linear's network (W, h, Phi gain) with another intrinsic drift and noise."""
    wEE, wEI, wIE, wII, hE, hI = sp.symbols("w_EE w_EI w_IE w_II h_E h_I")
    return Model(name=name, state=[x], space=Point(), populations=[
        Population("E", drift=drift, diffusion=diffusion, gain=Phi(x), drive=hE),
        Population("I", drift=drift, diffusion=diffusion, gain=Phi(x), drive=hI)],
        kernel={("E", "E"): wEE, ("E", "I"): wEI, ("I", "E"): wIE, ("I", "I"): wII},
        parameters={wEE: 1.0, wEI: -2.0, wIE: 1.0, wII: -1.8, hE: 0.1, hI: 0.06})


@pytest.fixture(scope="module")
def cubic():
    """f = -x - x^3, sigma = sqrt(1 + x^2): closed form U0 = -x^2, U1 = 2 atan x."""
    return compile_module(ei_point_model("cubic", -x - x**3, sp.sqrt(1 + x**2)))


@pytest.fixture(scope="module")
def noclosed():
    """sigma^2 = 1 + exp(-x^2): SymPy finds no closed-form potential (quadrature path only)."""
    return compile_module(ei_point_model("noclosed", -x, sp.sqrt(1 + sp.exp(-x**2))))


@pytest.fixture(scope="module")
def cir():
    """One population, f = a - x, sigma = sqrt(x): a wall at x = 0; kernel -1, drive b."""
    a, b = sp.symbols("a b")
    return compile_module(Model(name="cir", state=[x], space=Point(), populations=[
        Population("E", drift=a - x, diffusion=sp.sqrt(x), gain=Phi(x), drive=b)],
        kernel={("E", "E"): -1}, parameters={a: 1.0, b: 0.7}))


@pytest.fixture(scope="module")
def ring_cos2():
    """Ring kernel -J(1 + cos(theta - phi)) with drive H + H2 cos(2 theta): h outside Range(W)."""
    th, ph, J, H, H2 = sp.symbols("theta phi J H H2")
    return compile_module(Model(name="ring_cos2", state=[x], space=Ring(th, ph), populations=[
        Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=H + H2 * sp.cos(2 * th))],
        kernel={("I", "I"): -J * (1 + sp.cos(th - ph))}, parameters={J: 1.0, H: 0.5, H2: 0.1}))


# ---- ei_linear: the balanced limit against the closed form of DESIGN.md §4 ---------------------

def test_ei_linear_balanced_limit_equals_closed_form():
    res = solve_balanced("ei_linear")
    assert res.kind == "stationary-balanced" and res.n is None
    gbar = res.gbar[:, 0]
    assert np.allclose(gbar, [0.3, 0.2], atol=1e-10, rtol=0)
    assert np.allclose(res.mean[:, 0], [-0.642, -1.031], atol=1e-3, rtol=0)       # DESIGN.md §4
    lam_exact = math.sqrt(1.5) * ndtri(np.linalg.solve(W_EI, -H_EI))              # N(lam, 1/2)
    assert np.allclose(res.lam[:, 0], lam_exact, atol=1e-9, rtol=0)
    assert np.allclose(res.mean[:, 0], lam_exact, atol=1e-9, rtol=0)
    assert np.allclose(res.variance[:, 0], 0.5, atol=1e-9, rtol=0)
    # D = <Phi'> = phi(lam / sqrt 1.5) / sqrt 1.5, and the fast matrix is the generated one
    D = np.exp(-lam_exact**2 / 3) / math.sqrt(2 * math.pi * 1.5)
    assert np.allclose(res.slope[:, 0], D, atol=1e-10, rtol=0)
    ref = np.linalg.eigvals(CompiledModel("ei_linear").module.fast_matrix(*D))
    assert np.allclose(np.sort_complex(res.eigenvalues), np.sort_complex(ref), atol=1e-10)
    assert np.all(res.eigenvalues.real < 0) and np.all(res.eigenvalues.imag != 0)   # rings, stable
    assert res.residual <= 1e-12 and res.imbalance <= 1e-12
    # the density on its grid is the normal density N(lam, 1/2)
    for a, pop in enumerate(res.populations):
        xg, p = res.x(pop), res.densities[pop][0]
        exact = np.exp(-(xg - lam_exact[a]) ** 2) / math.sqrt(math.pi)
        assert np.max(np.abs(p - exact)) < 1e-12
        assert abs(np.sum(p) * res.grids[pop].h - 1) < 1e-12


def test_ei_linear_jacobian_is_cov_g_U1():
    """d gbar / d lambda = Cov(g, U1) = phi(lam/sqrt 1.5)/sqrt 1.5 for N(lam, 1/2) (U1 = 2x)."""
    fam = DensityFamily(CompiledModel("ei_linear"), "E")
    lam = np.array([-0.4])
    st = GridDensities(fam, fam.select_grid(lam)).stats(lam)
    assert abs(st.dgbar[0] - math.exp(-0.16 / 3) / math.sqrt(3 * math.pi)) < 1e-12


# ---- finite n: DESIGN.md §4 numbers and the n -> infinity limit ---------------------------------

def _ei_linear_finite_n_exact(n, lam0, h=H_EI):
    """Independent reference: lam = sqrt(n) (W Phi(lam / sqrt 1.5) + h), Newton on the closed form."""
    s, c = math.sqrt(n), math.sqrt(1.5)
    lam = np.array(lam0, float)
    for _ in range(50):
        F = lam / s - (W_EI @ ndtr(lam / c) + h)
        J = np.eye(2) / s - W_EI * (np.exp(-lam**2 / 3) / math.sqrt(2 * math.pi) / c)[None, :]
        lam = lam - np.linalg.solve(J, F)
    assert np.max(np.abs(lam / s - (W_EI @ ndtr(lam / c) + h))) < 1e-14
    return lam


@pytest.mark.parametrize("n, design_means", [
    (400, (-1.045, -1.147)), (1600, (-0.937, -1.155)), (6400, (-0.816, -1.115)), (25600, (-0.736, -1.078))])
def test_ei_linear_finite_n_reproduces_design_means(n, design_means):
    res = solve_finite_n("ei_linear", n)
    assert res.kind == "stationary-finite-n" and res.n == n
    means = res.mean[:, 0]
    assert np.allclose(means, design_means, atol=2e-3, rtol=0)
    exact = _ei_linear_finite_n_exact(n, means)
    assert np.allclose(res.lam[:, 0], exact, atol=1e-9, rtol=0)
    assert np.allclose(means, exact, atol=1e-9, rtol=0)
    # lambda_n = sqrt(n) (W gbar + h) holds with the solver's own gbar
    assert np.allclose(res.lam[:, 0], math.sqrt(n) * (W_EI @ res.gbar[:, 0] + H_EI), atol=1e-8, rtol=0)


def test_finite_n_converges_to_balanced_limit_like_n_to_minus_half():
    lim = solve_balanced("ei_linear")
    ns = np.array([1e4, 1e6, 1e8])
    errs = np.array([np.max(np.abs(solve_finite_n("ei_linear", n).mean - lim.mean)) for n in ns])
    slope = np.polyfit(np.log(ns), np.log(errs), 1)[0]
    assert abs(slope + 0.5) <= 0.05, (errs, slope)
    # and the finite-n state started without the limit (continuation from n = 1) is the same one
    cont = solve_finite_n("ei_linear", 1e6, start=np.zeros((2, 1)))
    assert np.allclose(cont.lam, solve_finite_n("ei_linear", 1e6).lam, atol=1e-10, rtol=0)


def test_finite_n_exists_where_balance_is_infeasible():
    """h demanding gbar_E = 1.2: no balanced limit, but the finite-n equation has a solution."""
    prm = {"h_E": -0.2, "h_I": -0.3}
    with pytest.raises(GainRangeExceeded):
        solve_balanced("ei_linear", params=prm)
    res = solve_finite_n("ei_linear", 1e4, params=prm)
    exact = _ei_linear_finite_n_exact(1e4, res.lam[:, 0], h=np.array([-0.2, -0.3]))
    assert np.allclose(res.lam[:, 0], exact, atol=1e-9, rtol=0)
    assert res.gbar[0, 0] > 0.9 and res.imbalance > 1e-3   # E near saturation, balance out of reach


# ---- ring_ei ------------------------------------------------------------------------------------

def test_ring_ei_balanced_state_on_the_lattice():
    model = CompiledModel("ring_ei")
    res = solve_balanced(model, npos=64)
    pos = model.grid(64)
    # balance W gbar + h = 0, with W applied by CompiledModel (an independent code path)
    assert np.max(np.abs(model.apply_W(res.gbar, pos) + model.drive(pos))) < 1e-10
    # lambda lies in Range(W): coefficients in colspace(B), and lambda = sum_k Lambda_k psi_k
    B = model.constraint_matrix()
    U, s, _ = np.linalg.svd(B)
    Qb = U[:, s > 1e-10 * s[0]]
    Lam = res.Lambda.ravel()
    assert np.linalg.norm(Lam - Qb @ (Qb.T @ Lam)) < 1e-12
    assert np.allclose(res.lam, res.Lambda @ model.psi(pos), atol=1e-14, rtol=0)
    # Gaussian densities N(lambda, 1/2): gbar = Phi(lambda / sqrt 1.5), mean = lambda
    assert np.allclose(res.gbar, ndtr(res.lam / math.sqrt(1.5)), atol=1e-12, rtol=0)
    assert np.allclose(res.mean, res.lam, atol=1e-12, rtol=0)
    assert np.allclose(res.variance, 0.5, atol=1e-12, rtol=0)
    # the drive has no sin(theta) part: lambda is even in theta
    assert np.allclose(res.lam, res.lam[:, (-np.arange(64)) % 64], atol=1e-12, rtol=0)
    assert set(res.modes) == {"psi=1", "psi=sin(theta)", "psi=cos(theta)"}
    assert all(len(v) == 2 for v in res.modes.values()) and res.stable()


def test_ring_fast_matrix_matches_generated_for_constant_slopes():
    """With delta = 0 the state is uniform, D is constant and W D is the generated fast_matrix."""
    model = CompiledModel("ring_ei", {"delta": 0.0})
    res = solve_balanced(model, npos=16)
    D = res.slope.mean(axis=1)
    assert np.allclose(res.slope, D[:, None], atol=1e-14, rtol=0)
    ref = np.linalg.eigvals(model.module.fast_matrix(*D, **model.params))
    assert np.allclose(np.sort_complex(res.eigenvalues), np.sort_complex(ref), atol=1e-12)
    for label, k in (("psi=1", 0), ("psi=cos(theta)", 2)):
        idx = [k, 3 + k]
        block = model.module.fast_matrix(*D, **model.params)[np.ix_(idx, idx)]
        assert np.allclose(np.sort_complex(res.modes[label]), np.sort_complex(np.linalg.eigvals(block)),
                           atol=1e-12)


def test_ring_ei_finite_n_self_consistent():
    model = CompiledModel("ring_ei")
    res = solve_finite_n(model, 2000, npos=32)
    pos = model.grid(32)
    r = model.apply_W(res.gbar, pos) + model.drive(pos)
    assert np.max(np.abs(res.lam - math.sqrt(2000) * r)) < 1e-9
    assert np.allclose(res.gbar, ndtr(res.lam / math.sqrt(1.5)), atol=1e-12, rtol=0)


def test_non_separable_kernel_is_discretised_on_the_lattice():
    th, ph, J, H, k = sp.symbols("theta phi J H kappa")
    mod = compile_module(Model(name="vonmises", state=[x], space=Ring(th, ph), populations=[
        Population("I", drift=-x, diffusion=1, gain=Phi(x), drive=H * (1 + sp.cos(th) / 5))],
        kernel={("I", "I"): -J * sp.exp(k * sp.cos(th - ph))}, parameters={J: 1.0, H: 0.5, k: 1.0}))
    assert not mod.KERNEL_SEPARABLE
    model = CompiledModel(mod)
    res = solve_balanced(model, npos=32)
    pos = model.grid(32)
    assert np.max(np.abs(model.apply_W(res.gbar, pos) + model.drive(pos))) < 1e-10
    assert np.allclose(res.gbar, ndtr(res.lam / math.sqrt(1.5)), atol=1e-12, rtol=0)
    assert res.stable()


# ---- closed form vs quadrature --------------------------------------------------------------------

@pytest.mark.parametrize("which", ["ei_linear", "cubic"])
def test_closed_form_and_quadrature_agree(which, cubic):
    module = "ei_linear" if which == "ei_linear" else cubic
    a = solve_balanced(CompiledModel(module))
    b = solve_balanced(CompiledModel(module), closed_form=False)
    assert all(a.closed_form.values()) and not any(b.closed_form.values())
    assert np.allclose(a.gbar, b.gbar, atol=1e-8, rtol=0)
    assert np.allclose(a.lam, b.lam, atol=1e-8, rtol=0)
    assert np.allclose(a.mean, b.mean, atol=1e-8, rtol=0)
    assert np.allclose(a.gbar[:, 0], [0.3, 0.2], atol=1e-10, rtol=0)     # same W and h as ei_linear


def test_quadrature_only_model_against_scipy_quad(noclosed):
    assert not any(noclosed.STATIONARY_CLOSED_FORM.values())
    res = solve_balanced(CompiledModel(noclosed))
    assert np.allclose(res.gbar[:, 0], [0.3, 0.2], atol=1e-10, rtol=0)

    def gbar_quad(lam):   # p ~ exp(int_0^x 2 (lam - s) / sigma^2 ds) / sigma^2, sigma^2 = 1 + e^-x^2
        s2 = lambda y: 1.0 + math.exp(-y * y)  # noqa: E731
        U = lambda y: integrate.quad(lambda s: 2 * (lam - s) / s2(s), 0.0, y, epsabs=1e-13)[0]  # noqa: E731
        dens = lambda y: math.exp(U(y)) / s2(y)  # noqa: E731
        Z = integrate.quad(dens, -12 + lam, 12 + lam, epsabs=1e-13, limit=200)[0]
        return integrate.quad(lambda y: dens(y) * ndtr(y), -12 + lam, 12 + lam, epsabs=1e-13, limit=200)[0] / Z

    with np.errstate(under="ignore"):
        for a in range(2):
            assert abs(gbar_quad(res.lam[a, 0]) - res.gbar[a, 0]) < 1e-8


def test_analytic_derivative_matches_finite_difference(noclosed):
    fam = DensityFamily(CompiledModel(noclosed), "E")
    lam, eps = 0.3, 1e-5
    gd = GridDensities(fam, fam.select_grid(lam))
    st = gd.stats(np.array([lam]))
    fd = (gd.stats(np.array([lam + eps])).gbar - gd.stats(np.array([lam - eps])).gbar) / (2 * eps)
    assert abs(st.dgbar[0] - fd[0]) < 1e-8


# ---- automatic grids and walls -----------------------------------------------------------------

def test_select_grid_finds_narrow_far_density():
    grid = select_grid(lambda xs: np.atleast_2d(-0.5 * ((xs - 1000.0) / 1e-3) ** 2))
    assert 1000 - 0.0095 < grid.lo < 1000 - 0.0089 and 1000 + 0.0089 < grid.hi < 1000 + 0.0095
    lp = -0.5 * ((grid.x - 1000.0) / 1e-3) ** 2
    assert grid_holds(grid, lp[None, :]) and not grid.wall_lo and not grid.wall_hi


def test_select_grid_half_line_wall_and_non_normalisable():
    with np.errstate(all="ignore"):
        grid = select_grid(lambda xs: np.atleast_2d(-0.5 * np.log(xs) - xs))   # x^-1/2 e^-x, x > 0
    assert grid.lo == 0.0 and grid.wall_lo and not grid.wall_hi and 30 < grid.hi < 45
    with pytest.raises(DensityError, match="not normalisable"):
        select_grid(lambda xs: np.zeros((1, len(xs))))


def test_wall_at_zero_gamma_density(cir):
    model = CompiledModel(cir)
    for closed in (True, False):
        fam = DensityFamily(model, "E", closed_form=closed)
        lam = np.array([0.5])                       # Gamma(shape 3, scale 1/2): mean 1.5, var 0.75
        gd = GridDensities(fam, fam.select_grid(lam))
        assert gd.grid.wall_lo and gd.grid.lo == 0.0
        st = gd.stats(lam)
        assert abs(st.mean[0] - 1.5) < 1e-7 and abs(st.variance[0] - 0.75) < 1e-7
    lo, hi = fam.gain_range()
    assert abs(lo[0] - 0.5) < 1e-4 and hi[0] == 1.0            # Phi on the domain x > 0
    assert auto_interval_for_model(model, "E")[0] == 0.0       # the interval starts at the wall


def test_wall_model_balanced_and_gain_range_on_the_domain(cir):
    res = solve_balanced(CompiledModel(cir))                  # balance: gbar = b = 0.7
    assert abs(res.gbar[0, 0] - 0.7) < 1e-10 and res.grids["E"].wall_lo
    with pytest.raises(GainRangeExceeded) as exc:
        solve_balanced(CompiledModel(cir, {"b": 0.3}))         # Phi(x > 0) > 1/2: 0.3 is unreachable
    assert exc.value.demanded == pytest.approx(0.3) and exc.value.gain_range[0] == pytest.approx(0.5, abs=1e-4)
    assert "gbar_E = 0.3" in str(exc.value)


# ---- infeasible models: errors with numbers ----------------------------------------------------

def test_drive_outside_range_of_W_ring(ring_cos2):
    with pytest.raises(DriveOutsideRange) as exc:
        solve_balanced(CompiledModel(ring_cos2), npos=32)
    assert exc.value.residual == pytest.approx(0.1 / math.sqrt(2), rel=1e-10)      # rms of 0.1 cos 2theta
    assert exc.value.residual_outside_span == pytest.approx(0.1 / math.sqrt(2), rel=1e-10)
    assert "outside Range(W)" in str(exc.value) and "0.0707107" in str(exc.value)
    res = solve_balanced(CompiledModel(ring_cos2, {"H2": 0.0}), npos=32)            # feasible without it
    assert res.imbalance < 1e-12


def test_drive_outside_range_of_rank_deficient_W():
    """W = [[1, -2], [1, -2]] has range span (1, 1); h = (0.1, 0.2) is 0.05 (rms) away from it."""
    with pytest.raises(DriveOutsideRange) as exc:
        solve_balanced("ei_linear", params={"w_II": -2.0, "h_E": 0.1, "h_I": 0.2})
    assert exc.value.residual == pytest.approx(0.05, rel=1e-10)
    assert "rms 0.05 " in str(exc.value) and "rank of W: 1" in str(exc.value)


def test_demanded_gbar_outside_gain_range():
    with pytest.raises(GainRangeExceeded) as exc:
        solve_balanced("ei_linear", params={"h_E": -0.2, "h_I": -0.3})   # W^-1(-h) = (1.2, 0.5)
    e = exc.value
    assert e.population == "E" and e.demanded == pytest.approx(1.2, abs=1e-12)
    assert e.gain_range == (0.0, 1.0)
    assert "gbar_E = 1.2" in str(e) and "[0, 1]" in str(e)


def test_gain_range_exceeded_found_by_newton_on_the_ring():
    """delta = 1 demands <cos, gbar_E> = 1/3 with mean 0.3; no gbar in [0, 1] has it (max 0.257)."""
    with pytest.raises(GainRangeExceeded) as exc:
        solve_balanced("ring_ei", params={"delta": 1.0}, npos=32)
    assert exc.value.population in ("E", "I") and exc.value.gain_range == (0.0, 1.0)
    assert "pinned at the end of the gain's range" in str(exc.value)


def test_manifold_not_attracting():
    """w_II = +0.5 (excitatory-dominated), h chosen so that balance still demands (0.3, 0.2)."""
    prm = {"w_II": 0.5, "h_E": 0.1, "h_I": -0.4}
    with pytest.raises(ManifoldNotAttracting) as exc:
        solve_balanced("ei_linear", params=prm)
    eig = exc.value.modes["psi=1"]
    lam = math.sqrt(1.5) * ndtri(np.array([0.3, 0.2]))
    D = np.exp(-lam**2 / 3) / math.sqrt(2 * math.pi * 1.5)
    ref = np.linalg.eigvals(np.array([[1.0, -2.0], [1.0, 0.5]]) * D[None, :])
    assert np.allclose(np.sort_complex(eig), np.sort_complex(ref), atol=1e-10)
    assert np.all(eig.real > 0)
    assert "not attracting" in str(exc.value) and "psi=1" in str(exc.value)
    assert f"{ref[0].real:.4g}" in str(exc.value)
    res = solve_balanced("ei_linear", params=prm, check_stability=False)   # the root itself exists
    assert np.allclose(res.gbar[:, 0], [0.3, 0.2], atol=1e-10, rtol=0) and not res.stable()


def test_no_convergence_reports_residual():
    with pytest.raises(NoConvergence) as exc:
        solve_balanced("ring_ei", max_iter=1, npos=16)
    assert exc.value.residual > 1e-6 and exc.value.iterations == 1
    assert f"residual {exc.value.residual:.3e}" in str(exc.value)


# ---- output and command line ---------------------------------------------------------------------

def test_record_schema(tmp_path):
    from solvers.output import write_json
    res = solve_balanced("ring_ei", npos=8)
    rec = res.to_record(include_density=True)
    assert rec["kind"] == "stationary-balanced" and rec["n"] is None and len(rec["theta"]) == 8
    for pop in ("E", "I"):
        assert set(rec[pop]) == {"lambda", "gbar", "mean", "variance"}
        assert all(len(rec[pop][k]) == 8 for k in rec[pop])
        assert np.shape(rec["density"][pop]["p"]) == (8, len(rec["density"][pop]["x"]))
    assert len(rec["eigenvalues"]) == 6 and all(len(v) == 2 for v in rec["eigenvalues"])
    write_json(tmp_path / "r.json", rec)
    back = json.loads((tmp_path / "r.json").read_text())
    assert back["E"]["gbar"] == pytest.approx(list(res.gbar[0]), abs=1e-15)
    fin = solve_finite_n("ei_linear", 400).to_record()
    assert fin["kind"] == "stationary-finite-n" and fin["n"] == 400 and fin["theta"] == [0.0]


def test_cli_stationary_balanced_and_finite_n(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert balkin(["solve", "models/ei_linear.py", "--stationary", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["kind"] == "stationary-balanced" and rec["E"]["gbar"][0] == pytest.approx(0.3, abs=1e-10)
    assert balkin(["solve", "ei_linear", "--stationary", "--n", "400", "--json", str(out)]) == 0
    rec = json.loads(out.read_text())
    assert rec["n"] == 400 and rec["I"]["mean"][0] == pytest.approx(-1.147, abs=2e-3)
    text = capsys.readouterr().out
    assert "stationary-finite-n" in text and "psi=1" in text
    assert balkin(["solve", "ring_ei", "--stationary", "--npos", "48"]) == 0
    text = capsys.readouterr().out
    assert "showing 16 of 48 positions" in text and "psi=cos(theta)" in text


def test_cli_errors_and_placeholders(capsys):
    from balkin.cli import solve as cli_solve
    assert {"stationary", "kinetic", "field"} <= set(cli_solve.SOLVE_MODES)
    cli_solve.register_mode("dummy", cli_solve._not_implemented("dummy"), "a placeholder mode")
    try:                                   # the hook other modes use; placeholders exit 2
        assert balkin(["solve", "ring_ei", "--dummy"]) == 2
        assert "--dummy is not implemented yet" in capsys.readouterr().err
    finally:
        del cli_solve.SOLVE_MODES["dummy"]
    assert balkin(["solve", "ei_linear", "--stationary", "--param", "h_E=-0.2", "--param", "h_I=-0.3"]) == 2
    assert "gbar_E = 1.2" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        balkin(["solve", "ei_linear"])                      # a mode is required


def test_solvers_do_not_import_sympy():
    code = ("import sys, solvers.stationary, solvers.density1d, solvers.lattice_coupling, "
            "balkin.cli.solve; assert 'sympy' not in sys.modules, 'sympy imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(Path(__file__).resolve().parent.parent))


def test_sympy_integration_failure_falls_back_to_quadrature():
    """Multiplicative noise 0.7 sqrt(1 + x^2/4) with a softplus gain: SymPy's integrate raises
    NotInvertible on the potential; the derivation falls back to quadrature and the stationary
    solver still finds the state (balanced: W gbar + h = 0)."""
    import sympy as sp

    from derive import Model, Point, Population
    from derive.codegen import compile_module
    x = sp.Symbol("x")
    g = sp.log(1 + sp.exp(3 * (x - 0.3))) / 3
    model = Model(name="sympy_fallback", state=[x], space=Point(),
                  populations=[Population("E", drift=-x, diffusion=0.7 * sp.sqrt(1 + x ** 2 / 4), gain=g,
                                          drive=0.4),
                               Population("I", drift=-1.5 * x, diffusion=0.9, gain=g, drive=0.1)],
                  kernel={("E", "E"): 1.0, ("E", "I"): -2.5, ("I", "E"): 1.5, ("I", "I"): -2.0})
    cm = CompiledModel(compile_module(model))
    assert cm.module.STATIONARY_CLOSED_FORM["E"] is False
    st = solve_balanced(cm)
    W = np.array([[1.0, -2.5], [1.5, -2.0]])
    np.testing.assert_allclose(W @ st.gbar[:, 0] + [0.4, 0.1], 0, atol=1e-8)
