"""Kernel separation (derive/kernels.py) and the low-rank connectivity operator (derive/balance.py):
exact reconstruction, ranks, refusal of non-separable kernels, the constraint matrix B and the Gram
matrix of the Fourier atoms."""
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from derive import Model, Phi, Population, Ring, Torus2
from derive import balance, kernels

TH, PH = sp.symbols("theta phi", real=True)
U = TH - PH


def exact_reconstruction(sep, w):
    return sp.simplify(sp.expand_trig(sp.expand(sep.reconstruct() - w))) == 0


@pytest.mark.parametrize("w, rank", [
    (sp.cos(U), 2),
    (sp.sin(U), 2),
    (sp.cos(U) ** 2, 3),
    ((1 + sp.cos(TH)) * (2 + sp.sin(PH)), 1),
    (sp.cos(U) * sp.cos(2 * U), 4),
    (sp.Integer(3), 1),
    (sp.Rational(-1, 2), 1),
    (sp.cos(TH) * sp.cos(PH), 1),
    (sp.cos(TH) ** 2 + sp.sin(PH) ** 2, 2),      # (1 + cos 2θ)/2 + (1 - cos 2φ)/2: span {1, cos 2θ}
], ids=["cos", "sin", "cos^2", "product", "cos*cos2", "const", "neg_const", "rank1", "squares"])
def test_separate_reconstructs_exactly_with_rank(w, rank):
    sep = kernels.separate(w, (TH,), (PH,))
    assert sep.separable, sep.reason
    assert exact_reconstruction(sep, w)
    assert sep.rank == rank
    # every atom depends on its own angle only, every coefficient on neither
    for (psi, chi), c in sep.terms.items():
        assert psi.free_symbols <= {TH} and chi.free_symbols <= {PH}
        assert not c.free_symbols & {TH, PH}


def test_separate_cos_atoms():
    """cos(theta - phi) = cos theta cos phi + sin theta sin phi, exactly these two terms."""
    sep = kernels.separate(sp.cos(U), (TH,), (PH,))
    assert sep.terms == {(sp.cos(TH), sp.cos(PH)): 1, (sp.sin(TH), sp.sin(PH)): 1}


def test_separate_square_uses_double_angles():
    """cos^2(theta - phi) = 1/2 + (cos 2θ cos 2φ + sin 2θ sin 2φ)/2: independent atoms, not cos^2 θ."""
    sep = kernels.separate(sp.cos(U) ** 2, (TH,), (PH,))
    half = sp.Rational(1, 2)
    assert sep.terms == {(1, 1): half, (sp.cos(2 * TH), sp.cos(2 * PH)): half,
                         (sp.sin(2 * TH), sp.sin(2 * PH)): half}


def test_separate_symbolic_coefficients():
    J, eps = sp.symbols("J epsilon", real=True)
    w = J * (1 + eps * sp.cos(U))
    sep = kernels.separate(w, (TH,), (PH,))
    assert sep.separable and exact_reconstruction(sep, w)
    assert sep.terms == {(1, 1): J, (sp.cos(TH), sp.cos(PH)): J * eps, (sp.sin(TH), sp.sin(PH)): J * eps}
    assert sep.rank == 3


@pytest.mark.parametrize("w", [sp.exp(sp.cos(U)), 1 / (2 + sp.cos(U)), sp.exp(TH * PH)],
                         ids=["exp_cos", "rational", "exp_product"])
def test_nonseparable_kernel_is_flagged_with_reason(w):
    sep = kernels.separate(w, (TH,), (PH,))
    assert not sep.separable
    assert sep.terms == {}
    assert sep.rank == -1
    assert "theta" in sep.reason and "phi" in sep.reason


def test_separate_on_the_torus():
    t1, t2, p1, p2 = sp.symbols("theta1 theta2 phi1 phi2", real=True)
    w = sp.cos(t1 - p1) + sp.cos(t2 - p2)
    sep = kernels.separate(w, (t1, t2), (p1, p2))
    assert sep.separable and exact_reconstruction(sep, w)
    assert sep.rank == 4


# --- hypothesis: finite Fourier kernels ----------------------------------------------------------

small = st.integers(min_value=-3, max_value=3)


@settings(max_examples=20, deadline=None)
@given(a0=small, a1=small, b1=small, a2=small, b2=small)
def test_fourier_kernels_reconstruct_with_predicted_rank(a0, a1, b1, a2, b2):
    """a cos(k u) + b sin(k u), u = theta - phi, k >= 1, has the coefficient block [[a, -b], [b, a]] on
    (cos kθ, sin kθ) x (cos kφ, sin kφ): determinant a^2 + b^2, so rank 2 unless a = b = 0.
    The constant a0 has rank 1 unless it is 0.  Different k use different atoms, so ranks add."""
    w = a0 + a1 * sp.cos(U) + b1 * sp.sin(U) + a2 * sp.cos(2 * U) + b2 * sp.sin(2 * U)
    sep = kernels.separate(w, (TH,), (PH,))
    assert sep.separable
    assert exact_reconstruction(sep, w)
    expected = (a0 != 0) + 2 * ((a1, b1) != (0, 0)) + 2 * ((a2, b2) != (0, 0))
    assert sep.rank == expected
    if (a1, b1) != (0, 0):
        # the k = 1 block is exactly [[a1, -b1], [b1, a1]]
        c, s, cp, spp = sp.cos(TH), sp.sin(TH), sp.cos(PH), sp.sin(PH)
        block = [[sep.terms.get((c, cp), 0), sep.terms.get((c, spp), 0)],
                 [sep.terms.get((s, cp), 0), sep.terms.get((s, spp), 0)]]
        assert block == [[a1, -b1], [b1, a1]]


# --- kernel structure and the constraint matrix on a two-population ring ------------------------

J_EE, J_EI, J_IE, J_II, eps, kap, alpha_I = sp.symbols("J_EE J_EI J_IE J_II epsilon kappa alpha_I")


def ring_model():
    x, th, ph = sp.symbols("x theta phi")
    return Model(
        name="ring_test", state=[x], space=Ring(th, ph),
        populations=[Population("E", drift=-x, diffusion=1, gain=Phi(x)),
                     Population("I", drift=-x, diffusion=1, gain=Phi(x), fraction=alpha_I)],
        kernel={("E", "E"): J_EE * (1 + eps * sp.cos(th - ph)),
                ("E", "I"): J_EI * (1 + eps * sp.cos(th - ph)),
                ("I", "E"): J_IE * (1 + kap * sp.sin(th - ph)),
                ("I", "I"): J_II},
        parameters={J_EE: 1.0, J_EI: -2.0, J_IE: 1.0, J_II: -1.8, eps: 0.5, kap: 0.3, alpha_I: 0.25})


def test_kernel_structure_and_constraint_matrix():
    model = ring_model()
    th, ph = model.space.theta[0], model.space.phi[0]
    S = {s.name: s for s in model.parameters}
    ks = kernels.kernel_structure(model)
    assert ks.separable and ks.failures == {}
    assert set(ks.psi) == {1, sp.cos(th), sp.sin(th)}
    assert set(ks.chi) == {1, sp.cos(ph), sp.sin(ph)}
    # every kernel is reconstructed from the global basis
    for (a, b), w in model.kernel.items():
        C = ks.coefficients[(a, b)]
        rec = sum(C[k, l] * ks.psi[k] * ks.chi[l] for k in range(3) for l in range(3))
        assert sp.simplify(sp.expand_trig(rec - w)) == 0, (a, b)
    B = balance.constraint_matrix(model, ks)
    assert B.shape == (6, 6)
    alpha = {"E": 1, "I": S["alpha_I"]}
    names = model.names
    for ia, a in enumerate(names):
        for ib, b in enumerate(names):
            C = ks.coefficients[(a, b)]
            for k in range(3):
                for l in range(3):
                    assert sp.expand(B[3 * ia + k, 3 * ib + l] - alpha[b] * C[k, l]) == 0
    # one explicit entry: row (E, cos θ), column (I, cos φ) is alpha_I J_EI epsilon
    k, l = ks.psi.index(sp.cos(th)), ks.chi.index(sp.cos(ph))
    assert sp.expand(B[k, 3 + l] - S["alpha_I"] * S["J_EI"] * S["epsilon"]) == 0
    # sin(θ - φ) = sin θ cos φ - cos θ sin φ in the (I, E) block
    C_IE = ks.coefficients[("I", "E")]
    assert C_IE[ks.psi.index(sp.sin(th)), ks.chi.index(sp.cos(ph))] == S["J_IE"] * S["kappa"]
    assert C_IE[ks.psi.index(sp.cos(th)), ks.chi.index(sp.sin(ph))] == -S["J_IE"] * S["kappa"]


def test_gram_of_fourier_atoms():
    model = ring_model()
    th, ph = model.space.theta[0], model.space.phi[0]
    ks = kernels.kernel_structure(model)
    G = balance.gram(model, ks)
    half = sp.Rational(1, 2)
    value = {1: 1, sp.cos(th): half, sp.sin(th): half}
    for l, chi in enumerate(ks.chi):
        for j, psi in enumerate(ks.psi):
            expected = value[psi] if chi == psi.xreplace({th: ph}) else 0
            assert G[l, j] == expected, (chi, psi)
    order = [sp.Integer(1), sp.cos(th), sp.sin(th)]
    perm_psi = [ks.psi.index(p) for p in order]
    perm_chi = [ks.chi.index(p.xreplace({th: ph})) for p in order]
    assert G.extract(perm_chi, perm_psi) == sp.diag(1, half, half)


def test_kernel_structure_reports_nonseparable_pair():
    x, th, ph = sp.symbols("x theta phi")
    model = Model(name="ring_bad", state=[x], space=Ring(th, ph),
                  populations=[Population("E", drift=-x, gain=Phi(x))],
                  kernel={("E", "E"): sp.exp(sp.cos(th - ph))})
    ks = kernels.kernel_structure(model)
    assert not ks.separable
    assert set(ks.failures) == {("E", "E")}
    assert ks.failures[("E", "E")]


def test_torus_kernel_structure_gram():
    x = sp.Symbol("x")
    t1, t2, p1, p2 = sp.symbols("theta1 theta2 phi1 phi2")
    model = Model(name="torus_test", state=[x], space=Torus2((t1, t2), (p1, p2)),
                  populations=[Population("E", drift=-x, gain=Phi(x))],
                  kernel={("E", "E"): 1 + sp.cos(t1 - p1) * sp.cos(t2 - p2)})
    ks = kernels.kernel_structure(model)
    assert ks.separable
    T1, T2 = model.space.theta
    # products of the two angles are reduced to sum and difference angles (independent atoms)
    assert set(ks.psi) == {1, sp.cos(T1 - T2), sp.cos(T1 + T2), sp.sin(T1 - T2), sp.sin(T1 + T2)}
    assert ks.rank == 5
    sep = ks.separations[("E", "E")]
    assert sp.simplify(sp.expand_trig(sep.reconstruct() - model.kernel[("E", "E")])) == 0
    assert sep.rank == 5
    G = balance.gram(model, ks)
    half = sp.Rational(1, 2)
    for l, chi in enumerate(ks.chi):
        for j, psi in enumerate(ks.psi):
            same = chi == psi.xreplace(dict(zip(model.space.theta, model.space.phi)))
            expected = (1 if psi == 1 else half) if same else 0
            assert G[l, j] == expected, (chi, psi)
