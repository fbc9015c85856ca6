"""One fast-spectrum implementation (solvers.fast_spectrum, DESIGN.md §2 and §4b; issue 10).

The fast spectrum, mu = eig(W D) on Range(W) and nu = eig(diag(J) + sqrt(n) W D) at finite n, is
computed by every solver through solvers.fast_spectrum; here the callers must agree on several models
at the same state:

* the stationary solver's finite-n eigenvalues (LatticeCoupling, coefficients on span{psi}) equal the
  lattice computation (the kinetic and field solvers' coordinates) with the same D and J;
* the spectrum command's coupled fast eigenvalues and their per-mode grouping equal the stationary
  solver's (LatticeCoupling.fast_spectrum) at the spectrum's slopes, and J + sqrt(n) mu is the
  finite-n spectrum where J is one number (f = -x);
* the kinetic solver's fast_rates at the finite-n stationary density (interpolated onto its grid)
  equal the stationary solver's finite-n eigenvalues up to the grids' quadrature error;
* the particle couplings' fast_spectrum (low rank, and the coarse-lattice estimate of the FFT and dense
  couplings) with the neurons on the lattice and the stationary slopes equal W D's eigenvalues;
* the field solver's attraction check reports the spectrum's leading real part.
"""
import math

import numpy as np
import pytest

from solvers import fast_spectrum
from solvers.compiled import CompiledModel
from solvers.coupling import DenseCoupling, FFTCoupling, LowRankCoupling
from solvers.kinetic import KineticSolver
from solvers.lattice_coupling import LatticeCoupling, lattice_range_basis, lattice_W
from solvers.spectrum import spectrum
from solvers.stationary import solve_finite_n

# (model, positions per angle, n): point and ring, linear and nonlinear drift, additive and
# multiplicative noise
CASES = [("ei_linear", 1, 1e4), ("ei_multiplicative", 1, 400.0), ("ring_ei", 16, 1e4),
         ("ring_nonlinear", 16, 1e4)]


# ---- the implementations agree -----------------------------------------------------------------

@pytest.fixture(scope="module", params=CASES, ids=[c[0] for c in CASES])
def case(request):
    name, npos, n = request.param
    cm = CompiledModel(name)
    st = solve_finite_n(cm, n, npos=npos, check_stability=False)
    return cm, npos, n, st


def _close(a, b, rtol=1e-9):
    a, b = fast_spectrum.sort_eigenvalues(a), fast_spectrum.sort_eigenvalues(b)
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max(initial=0.0))))


def test_stationary_finite_n_equals_the_lattice_computation(case):
    """Coefficients on span{psi} (stationary solver) and lattice values (kinetic, field): same nu."""
    cm, npos, n, st = case
    cpl = LatticeCoupling(cm, npos)
    W = lattice_W(cm, cpl.pos)
    U = lattice_range_basis(cm, cpl.pos, W)
    Jbar = np.asarray(st.drift_slope).mean(axis=1)                    # J per population, as the solver
    j = np.repeat(Jbar, cpl.N)
    nu = fast_spectrum.eigenvalues(fast_spectrum.lattice_operator(W, st.slope), U, n=n, j=j)
    _close(nu, st.finite_n_eigenvalues)
    mu = fast_spectrum.eigenvalues(fast_spectrum.lattice_operator(W, st.slope), U)
    _close(mu, st.eigenvalues)
    if np.allclose(st.drift_slope, st.drift_slope.flat[0], rtol=0, atol=1e-12):   # J one number
        _close(st.drift_slope.flat[0] + math.sqrt(n) * mu, st.finite_n_eigenvalues)


def test_spectrum_command_equals_the_stationary_solver(case):
    """Same slopes: the spectrum command's coupled eigenvalues and per-mode groups equal
    LatticeCoupling.fast_spectrum's, and with J = -1 (f = -x) the finite-n ones are -1 + sqrt(n) mu."""
    cm, npos, n, st = case
    linear = all(dict(getattr(cm.module, "LINEAR_ADDITIVE", {})).get(a, False) for a in cm.populations)
    spec = spectrum(cm, npos=npos) if linear else spectrum(cm, npos=npos, state=st)
    if not linear:
        np.testing.assert_array_equal(spec.D, st.slope)
    cpl = LatticeCoupling(cm, npos)
    mu, modes = cpl.fast_spectrum(spec.D)
    _close(spec.fast, mu)
    if cm.pos_dim:
        for row in spec.modes:
            if row.fast.size:
                _close(row.fast, modes["psi=" + row.label])
    if linear:                                                          # f = -x: J = -1
        nu, _ = cpl.fast_spectrum(spec.D, n=n, J=-np.ones(cm.P))
        _close(nu, -1.0 + math.sqrt(n) * spec.fast)


def test_kinetic_fast_rates_at_the_stationary_density(case):
    cm, npos, n, st = case
    ks = KineticSolver(cm, npos=npos, n=n)
    p = np.zeros((cm.P, ks.Npos, ks.nx))
    for ia, a in enumerate(cm.populations):
        xg = st.grids[a].x
        for i in range(ks.Npos):
            p[ia, i] = np.interp(ks.x[ia], xg, st.densities[a][i], left=0.0, right=0.0)
            p[ia, i] /= p[ia, i].sum() * ks.h[ia]
    _close(ks.fast_rates(p, 0.0), st.finite_n_eigenvalues, rtol=2e-3)


def test_particle_couplings_at_the_stationary_slopes(case):
    """Neurons on the lattice carrying the stationary slopes: the particles' step-audit spectrum."""
    cm, npos, n, st = case
    cpl = LatticeCoupling(cm, npos)
    sizes = [cpl.N] * cm.P
    positions = [cpl.pos] * cm.P
    GP = [st.slope[ia] for ia in range(cm.P)]
    mu = st.eigenvalues
    lowrank = LowRankCoupling(cm, positions, sizes).fast_spectrum(positions, GP)
    assert lowrank.shape == (cm.P * cm.K,) and cpl.rank == cm.P * cm.K      # full rank: no zeros
    _close(lowrank, mu)
    if cm.pos_dim:
        for coup in (FFTCoupling(cm, positions, sizes), DenseCoupling(cm, positions, sizes)):
            ev = coup.fast_spectrum(positions, GP)                      # coarse lattice = the lattice
            assert ev.shape == (cm.P * cpl.N,)
            top = ev[np.argsort(-np.abs(ev))[:mu.size]]
            _close(top, mu, rtol=1e-8)
            assert np.all(np.abs(ev[np.argsort(-np.abs(ev))[mu.size:]]) < 1e-10 * np.abs(mu).max())


def test_field_attraction_check_uses_the_same_spectrum():
    from solvers.field import FieldSolver
    fs = FieldSolver("ring_ei", npos=16)
    stf = fs.stationary()
    info = fs.attraction_info(stf.state_mean, stf.state_cov)
    spec = spectrum("ring_ei", npos=16, state=stf)
    assert info["manifold_attracting"] == bool(spec.fast.real.max() < 0)
    assert abs(info["max_real_fast_eigenvalue"] - float(spec.fast.real.max())) < 1e-12


# ---- the module's own algebra --------------------------------------------------------------------

def test_compress_is_basis_independent_and_whole_space_adds_zeros():
    rng = np.random.default_rng(3)
    d, r = 6, 3
    Q, _ = np.linalg.qr(rng.normal(size=(d, r)))
    W = Q @ rng.normal(size=(r, d))                                   # Range(W) = span Q
    D = rng.uniform(0.1, 1.0, d)
    WD = fast_spectrum.lattice_matrix(W, D)
    mu = fast_spectrum.eigenvalues(WD, Q)
    R, _ = np.linalg.qr(rng.normal(size=(r, r)))
    _close(fast_spectrum.eigenvalues(fast_spectrum.lattice_operator(W, D), Q @ R), mu)   # another basis
    whole = fast_spectrum.eigenvalues(WD)
    big = whole[np.argsort(-np.abs(whole))]
    _close(big[:r], mu)
    assert np.all(np.abs(big[r:]) < 1e-12)
    _close(fast_spectrum.eigenvalues(WD, Q, n=100.0, j=-np.ones(d)), -1.0 + 10.0 * mu)
    w, X = fast_spectrum.eigensystem(WD, Q, n=100.0, j=-np.ones(d))
    np.testing.assert_allclose(WD @ X * 10.0 - X, X * w[None, :], atol=1e-10)


def test_degenerate_pair_is_shared_between_its_modes():
    """Two identical uncoupled 2 x 2 blocks (cos and sin of a homogeneous ring): each mode gets one
    copy of each eigenvalue, whatever basis of the degenerate eigenspaces eig returns."""
    A = np.array([[0.5, -2.0], [1.0, -1.8]])
    M = np.kron(np.eye(2), A)                                        # coordinates (mode, population)
    R, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(4, 4)))
    w, X = fast_spectrum.eigensystem(M, R)
    owner = fast_spectrum.assign_modes(w, X, fast_spectrum.index_weights([[0, 1], [2, 3]]))
    groups = fast_spectrum.by_mode(w, owner, ["cos", "sin"])
    ref = fast_spectrum.sort_eigenvalues(np.linalg.eigvals(A))
    for label in ("cos", "sin"):
        np.testing.assert_allclose(groups[label], ref, atol=1e-12)
