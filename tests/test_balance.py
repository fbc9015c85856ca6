"""Balance constraints (B), the multiplier equation (M) and the fast matrix W D (derive/balance.py,
derive/derivation.py) on the ei_linear illustration of DESIGN.md §4 and on a two-population ring."""
import runpy
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from derive import Model, Phi, Population, Ring, t
from derive import balance, derivation, kernels

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ei():
    model = runpy.run_path(str(ROOT / "models" / "ei_linear.py"))["model"]
    return model, derivation.derive(model)


def psym(model, name):
    return next(s for s in model.parameters if s.name == name)


def test_ei_linear_balance_constraints_hold_at_design_gbar(ei):
    """DESIGN.md §4: balance demands gbar = (0.3, 0.2)."""
    model, d = ei
    bal = d.balance
    assert len(bal.constraints) == 2
    at = {bal.gbar["E"]: sp.Rational(3, 10), bal.gbar["I"]: sp.Rational(2, 10)}
    for eq in bal.constraints:
        residual = (eq.lhs - eq.rhs).xreplace(at).subs(model.parameters)
        assert residual.is_number
        assert abs(float(residual)) < 1e-12
    # and they are the affine equations h + W gbar = 0, symbolically
    w = {n: psym(model, n) for n in ("w_EE", "w_EI", "w_IE", "w_II", "h_E", "h_I")}
    gE, gI = bal.gbar["E"], bal.gbar["I"]
    expected = [w["h_E"] + w["w_EE"] * gE + w["w_EI"] * gI, w["h_I"] + w["w_IE"] * gE + w["w_II"] * gI]
    for eq, e in zip(bal.constraints, expected):
        assert sp.expand(eq.lhs - eq.rhs - e) == 0


def test_ei_linear_constraints_fail_off_the_balanced_state(ei):
    """Control: at another gbar the constraints do not hold."""
    model, d = ei
    bal = d.balance
    at = {bal.gbar["E"]: sp.Rational(3, 10), bal.gbar["I"]: sp.Rational(3, 10)}
    residuals = [float((eq.lhs - eq.rhs).xreplace(at).subs(model.parameters)) for eq in bal.constraints]
    assert max(abs(r) for r in residuals) > 0.01


def test_ei_linear_fast_matrix(ei):
    model, d = ei
    Dsym, M = d.balance.homogeneous_multiplier
    DE, DI = Dsym
    w = {n: psym(model, n) for n in ("w_EE", "w_EI", "w_IE", "w_II")}
    expected = sp.Matrix([[w["w_EE"] * DE, w["w_EI"] * DI], [w["w_IE"] * DE, w["w_II"] * DI]])
    assert (M - expected).applyfunc(sp.expand) == sp.zeros(2, 2)
    assert len(d.modes) == 1
    atoms, block = d.modes[0]
    assert atoms == [1]
    assert (block - expected).applyfunc(sp.expand) == sp.zeros(2, 2)
    # the stability statement of models/ei_linear.py: trace DE - 1.8 DI, determinant 0.2 DE DI
    exact = {k: sp.Rational(str(v)) for k, v in model.parameters.items()}
    num = block.xreplace(exact)
    assert sp.expand(num.trace() - (DE - sp.Rational(9, 5) * DI)) == 0
    assert sp.expand(num.det() - sp.Rational(1, 5) * DE * DI) == 0


def test_ei_linear_multiplier_matches_numpy(ei, rng):
    model, d = ei
    bal = d.balance
    lams = [bal.lambda_symbols[("E", 0)], bal.lambda_symbols[("I", 0)]]
    W = np.array([[1.0, -2.0], [1.0, -1.8]])
    for _ in range(3):
        Lg = rng.uniform(-1, 1, 2)
        D = rng.uniform(0.1, 0.5, 2)
        at = {bal.Lg["E"]: Lg[0], bal.Lg["I"]: Lg[1], bal.slope["E"]: D[0], bal.slope["I"]: D[1]}
        eqs = [(eq.lhs - eq.rhs).xreplace(at).subs(model.parameters) for eq in bal.multiplier]
        (sol,) = sp.linsolve(eqs, lams)
        expected = np.linalg.solve(W @ np.diag(D), -(W @ Lg))
        assert np.allclose([float(v) for v in sol], expected, rtol=1e-12, atol=0)
        # W invertible: the multiplier cancels the drift of every gain, lambda = -Lg / D
        assert np.allclose(expected, -Lg / D, rtol=1e-12, atol=0)


def test_ei_linear_gain_generator_and_slope(ei):
    """L g = -x phi(x) + 1/2 phi'(x) = -(3/2) x phi(x) for g = Phi, f = -x, sigma = 1; slope phi(x)."""
    model, d = ei
    x = model.state[0]
    pd = d.populations["E"]
    phi = sp.exp(-x ** 2 / 2) / sp.sqrt(2 * sp.pi)
    assert sp.simplify(pd.gain_slope - phi) == 0
    assert sp.simplify(pd.gain_generator + sp.Rational(3, 2) * x * phi) == 0


# --- the ring -------------------------------------------------------------------------------------

J = sp.symbols("J_EE J_EI J_IE J_II")
eps, H, delta, alpha_I = sp.symbols("epsilon H delta alpha_I")
X, TH, PH = sp.symbols("x theta phi")
PAIRS = [("E", "E"), ("E", "I"), ("I", "E"), ("I", "I")]


def ring(drive_E, drive_I, name="ring_bal"):
    kern = 1 + eps * sp.cos(TH - PH)
    return Model(
        name=name, state=[X], space=Ring(TH, PH),
        populations=[Population("E", drift=-X, diffusion=1, gain=Phi(X), drive=drive_E),
                     Population("I", drift=-X, diffusion=1, gain=Phi(X), drive=drive_I, fraction=alpha_I)],
        kernel={pair: Jp * kern for pair, Jp in zip(PAIRS, J)},
        parameters={J[0]: 1.0, J[1]: -2.0, J[2]: 1.0, J[3]: -1.8, eps: 0.5, H: 0.1, delta: 0.3,
                    alpha_I: 0.25})


@pytest.fixture(scope="module")
def ring_derivation():
    model = ring(H * (1 + delta * sp.cos(TH)), H * (1 + delta * sp.cos(TH)))
    return model, derivation.derive(model)


def test_ring_modes_and_blocks(ring_derivation):
    model, d = ring_derivation
    th = model.space.theta[0]
    blocks = {tuple(atoms): block for atoms, block in d.modes}
    assert set(blocks) == {(1,), (sp.cos(th),), (sp.sin(th),)}
    e = psym(model, "epsilon")
    const = blocks[(1,)]
    assert const.shape == (2, 2)
    for key in [(sp.cos(th),), (sp.sin(th),)]:
        block = blocks[key]
        for i in range(2):
            for j in range(2):
                assert sp.simplify(block[i, j] - e / 2 * const[i, j]) == 0, (key, i, j)
    # the constant block is [[J_EE D_E, alpha_I J_EI D_I], [J_IE D_E, alpha_I J_II D_I]]
    DE, DI = d.balance.homogeneous_multiplier[0]
    Js = [psym(model, s.name) for s in J]
    aI = psym(model, "alpha_I")
    expected = sp.Matrix([[Js[0] * DE, aI * Js[1] * DI], [Js[2] * DE, aI * Js[3] * DI]])
    assert (const - expected).applyfunc(sp.expand) == sp.zeros(2, 2)


def test_ring_drive_in_range_has_zero_residual(ring_derivation):
    model, d = ring_derivation
    th = model.space.theta[0]
    assert d.balance.drive_residual == {"E": 0, "I": 0}
    ks = d.kernels
    Hs, ds = psym(model, "H"), psym(model, "delta")
    for a in ("E", "I"):
        coeffs = dict(zip(ks.psi, d.balance.drive[a]))
        assert coeffs == {1: Hs, sp.cos(th): Hs * ds, sp.sin(th): 0}


def test_ring_constraints_on_a_cosine_profile(ring_derivation):
    """With gbar_b(phi) = g0_b + g1_b cos(phi) the constraints are, per mode,
        const:  H + sum_b alpha_b J_ab g0_b = 0,
        cos:    H delta + (epsilon / 2) sum_b alpha_b J_ab g1_b = 0,
        sin:    0 = 0."""
    model, d = ring_derivation
    bal, ks = d.balance, d.kernels
    th, ph = model.space.theta[0], model.space.phi[0]
    g0 = {b: sp.Symbol(f"g0_{b}", real=True) for b in ("E", "I")}
    g1 = {b: sp.Symbol(f"g1_{b}", real=True) for b in ("E", "I")}
    profile = {bal.gbar[b]: g0[b] + g1[b] * sp.cos(ph) for b in ("E", "I")}
    Js = dict(zip(PAIRS, [psym(model, s.name) for s in J]))
    alpha = {"E": 1, "I": psym(model, "alpha_I")}
    Hs, ds, e = psym(model, "H"), psym(model, "delta"), psym(model, "epsilon")
    K = len(ks.psi)
    for ia, a in enumerate(("E", "I")):
        for k, psi in enumerate(ks.psi):
            eq = bal.constraints[ia * K + k]
            lhs = sp.simplify((eq.lhs - eq.rhs).xreplace(profile).doit())
            if psi == 1:
                expected = Hs + sum(alpha[b] * Js[(a, b)] * g0[b] for b in ("E", "I"))
            elif psi == sp.cos(th):
                expected = Hs * ds + e / 2 * sum(alpha[b] * Js[(a, b)] * g1[b] for b in ("E", "I"))
            else:
                expected = 0
            assert sp.expand(lhs - expected) == 0, (a, psi)


def test_ring_multiplier_for_homogeneous_slopes(ring_derivation):
    """With spatially constant slopes D_b (and Lg = 0, a drive constant in time) the multiplier
    equations (M) are homogeneous and linear in the unknowns Lambda with the fast matrix W D."""
    model, d = ring_derivation
    bal, ks = d.balance, d.kernels
    names = model.names
    K = len(ks.psi)
    Dsym, M = bal.homogeneous_multiplier
    at = {bal.slope[b]: Dsym[i] for i, b in enumerate(names)}
    at.update({bal.Lg[b]: 0 for b in names})
    unknowns = [bal.lambda_symbols[(b, j)] for b in names for j in range(K)]
    eqs = [sp.simplify((eq.lhs - eq.rhs).xreplace(at).doit()) for eq in bal.multiplier]
    A, rhs = sp.linear_eq_to_matrix(eqs, unknowns)
    assert rhs == sp.zeros(len(eqs), 1)             # the drive is constant in time: d_t h = 0
    assert (A - M).applyfunc(sp.simplify) == sp.zeros(*M.shape)


def test_ring_drive_outside_range_leaves_residual():
    model = ring(H * sp.cos(2 * TH), 0, name="ring_cos2")
    d = derivation.derive(model)
    th = model.space.theta[0]
    Hs = psym(model, "H")
    assert sp.expand(d.balance.drive_residual["E"] - Hs * sp.cos(2 * th)) == 0
    assert d.balance.drive_residual["I"] == 0
    assert d.balance.drive["E"] == [0] * len(d.kernels.psi)


def test_time_dependent_drive_enters_multiplier():
    """(M) carries d_t h: for h_E = H cos(t) the constant-mode equation of E contains -H sin(t)."""
    model = ring(H * sp.cos(t), H, name="ring_time")
    d = derivation.derive(model)
    bal, ks = d.balance, d.kernels
    Hs = psym(model, "H")
    k0 = ks.psi.index(1)
    eq = bal.multiplier[k0]                       # population E, mode 1
    zero = {bal.slope[b]: 0 for b in model.names}
    zero.update({bal.Lg[b]: 0 for b in model.names})
    assert sp.simplify((eq.lhs - eq.rhs).xreplace(zero).doit() + Hs * sp.sin(t)) == 0
    cons = bal.constraints[k0]
    zero_g = {bal.gbar[b]: 0 for b in model.names}
    assert sp.simplify((cons.lhs - cons.rhs).xreplace(zero_g).doit() - Hs * sp.cos(t)) == 0


def test_constraint_matrix_scales_with_fraction():
    """B[(a,k),(b,l)] = alpha_b C_ab[k,l]: the I columns carry alpha_I, the E columns alpha_E = 1."""
    model = ring(H, H, name="ring_frac")
    ks = kernels.kernel_structure(model)
    B = balance.constraint_matrix(model, ks)
    K, L = len(ks.psi), len(ks.chi)
    aI = psym(model, "alpha_I")
    for ia, a in enumerate(model.names):
        for k in range(K):
            for l in range(L):
                assert B[ia * K + k, l] == ks.coefficients[(a, "E")][k, l]
                assert sp.expand(B[ia * K + k, L + l] - aI * ks.coefficients[(a, "I")][k, l]) == 0
    assert B.has(aI)
