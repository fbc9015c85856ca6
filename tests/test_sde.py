"""Stochastic calculus of derive/sde.py checked against exact results.

* The Fokker–Planck operator annihilates known stationary densities (Ornstein–Uhlenbeck, the
  Cox–Ingersoll–Ross/Feller diffusion with its gamma density, a double well with additive noise, and
  a multiplicative case with a closed-form potential), and so does the stationary density that
  derive/stationary.py derives (for lambda = 0 and for a symbolic lambda).
* Stratonovich -> Itô for geometric Brownian motion.
* The generator is the L^2 adjoint of the Fokker–Planck operator (exact Gaussian integrals).
* The Milstein tensor L^j sigma_ik, and the refusal of non-commutative noise.
"""
from functools import lru_cache

import pytest
import sympy as sp

from derive import Model, Point, Population
from derive import sde, stationary

X = sp.Symbol("x")


def one_d(name, drift, diffusion, parameters=(), noise="ito", inp=0):
    """A one-population, one-dimensional model on a Point."""
    return Model(name=name, state=[X], space=Point(),
                 populations=[Population("A", drift=drift, diffusion=diffusion, gain=X, input=inp)],
                 parameters=dict(parameters), noise=noise)


def syms(model):
    """The model's own (real) symbols by name: state and parameters."""
    out = {s.name: s for s in model.state}
    out.update({s.name: s for s in model.parameters})
    return out


def vanishes(expr, p, positive=()):
    """True if expr / p simplifies to exactly 0, after replacing the named symbols by positive ones
    (for densities such as x**(2a/s^2 - 1) that need x > 0 to combine powers)."""
    ratio = expr / p
    if positive:
        ratio = ratio.xreplace({s: sp.Symbol(s.name, positive=True) for s in positive})
    ratio = sp.powsimp(sp.expand(sp.powsimp(ratio, force=True)), force=True)
    return sp.simplify(ratio) == 0


# --- the four exactly solvable cases -------------------------------------------------------------

a_, b_, s_ = sp.symbols("a b s")


def ou():
    m = one_d("ou", -b_ * X, s_, {b_: 1.5, s_: 0.7})
    S = syms(m)
    return m, sp.exp(-S["b"] * S["x"] ** 2 / S["s"] ** 2), ()


def cir():
    m = one_d("cir", a_ - b_ * X, s_ * sp.sqrt(X), {a_: 2.0, b_: 1.0, s_: 0.5})
    S = syms(m)
    x, a, b, s = S["x"], S["a"], S["b"], S["s"]
    return m, x ** (2 * a / s ** 2 - 1) * sp.exp(-2 * b * x / s ** 2), (x, a, b, s)


def double_well():
    m = one_d("double_well", X - X ** 3, s_, {s_: 0.8})
    S = syms(m)
    x, s = S["x"], S["s"]
    return m, sp.exp(2 * (x ** 2 / 2 - x ** 4 / 4) / s ** 2), ()


def multiplicative():
    m = one_d("multiplicative", -X, sp.sqrt(1 + X ** 2))
    x = m.state[0]
    return m, (1 + x ** 2) ** -2, ()


CASES = {"ou": ou, "cir": cir, "double_well": double_well, "multiplicative": multiplicative}


@pytest.mark.parametrize("case", CASES)
def test_fokker_planck_annihilates_known_stationary_density(case):
    model, p, positive = CASES[case]()
    pop = model.populations[0]
    assert vanishes(sde.fokker_planck(model, pop, p), p, positive)


@pytest.mark.parametrize("case", CASES)
def test_fokker_planck_does_not_annihilate_a_wrong_density(case):
    """Control: the check above is not vacuous (a perturbed density is not stationary)."""
    model, p, positive = CASES[case]()
    pop = model.populations[0]
    x = model.state[0]
    wrong = p * sp.exp(x)
    assert not vanishes(sde.fokker_planck(model, pop, wrong), wrong, positive)


@pytest.mark.parametrize("case", CASES)
def test_derived_stationary_density_is_closed_form_and_stationary(case):
    model, p, positive = CASES[case]()
    pop = model.populations[0]
    st = stationary.stationary_density(model, pop)
    assert st.closed_form
    q = sp.exp(st.log_density().subs(st.lam, 0))
    assert vanishes(sde.fokker_planck(model, pop, q), q, positive)
    # it is the known density up to a constant factor: d/dx log(q / p) = 0
    pos = {s: sp.Symbol(s.name, positive=True) for s in positive}
    x = model.state[0].xreplace(pos)
    log_ratio = sp.expand_log(sp.log((q / p).xreplace(pos)), force=True)
    assert sp.simplify(sp.diff(log_ratio, x)) == 0


@pytest.mark.parametrize("case", CASES)
def test_derived_stationary_density_with_multiplier(case):
    """With a symbolic lambda the zero-flux density solves the Fokker–Planck equation that carries
    the same lambda in its drift."""
    model, p, positive = CASES[case]()
    pop = model.populations[0]
    st = stationary.stationary_density(model, pop)
    q = sp.exp(st.log_density())
    assert q.has(st.lam)
    assert vanishes(sde.fokker_planck(model, pop, q, lam=st.lam), q, positive)


def test_stationary_density_with_input():
    """The O(1) input u enters the potential exactly like lambda: OU with input u has the Gaussian
    density centred at (u + lambda)/b."""
    u = sp.Symbol("u")
    model = one_d("ou_input", -b_ * X, s_, {b_: 1.5, s_: 0.7, u: 0.3}, inp=u)
    S = syms(model)
    pop = model.populations[0]
    st = stationary.stationary_density(model, pop)
    x, b, s, uu = S["x"], S["b"], S["s"], S["u"]
    expected = -b * (x - (uu + st.lam) / b) ** 2 / s ** 2
    assert sp.simplify(sp.diff(st.log_density() - expected, x)) == 0


# --- Stratonovich -> Itô -------------------------------------------------------------------------

def test_stratonovich_gbm_ito_drift():
    mu = sp.Symbol("mu")
    model = one_d("gbm", mu * X, s_ * X, {mu: 0.1, s_: 0.2}, noise="stratonovich")
    S = syms(model)
    f = sde.ito_drift(model, model.populations[0])
    assert f.shape == (1, 1)
    assert sp.expand(f[0] - (S["mu"] * S["x"] + S["s"] ** 2 * S["x"] / 2)) == 0


def test_ito_model_drift_unchanged():
    mu = sp.Symbol("mu")
    model = one_d("gbm_ito", mu * X, s_ * X, {mu: 0.1, s_: 0.2})
    S = syms(model)
    assert sp.expand(sde.ito_drift(model, model.populations[0])[0] - S["mu"] * S["x"]) == 0


def test_stratonovich_correction_two_dimensional():
    """c_i = 1/2 sum_{j,k} sigma_jk d_j sigma_ik for a full 2 x 2 multiplicative matrix."""
    x1, x2 = sp.symbols("x1 x2")
    sig = [[x1, x2], [0, x1 * x2]]
    model = Model(name="strat2", state=[x1, x2], space=Point(), noise="stratonovich",
                  populations=[Population("A", drift=[0, 0], diffusion=sig, gain=x1)])
    y1, y2 = model.state
    # by hand: c_1 = 1/2 (sigma_11 d1 sigma_11 + sigma_21 d2 sigma_11 + sigma_12 d1 sigma_12
    #                     + sigma_22 d2 sigma_12) = 1/2 (y1 + 0 + 0 + y1 y2)
    #          c_2 = 1/2 (sigma_11 d1 sigma_21 + sigma_21 d2 sigma_21 + sigma_12 d1 sigma_22
    #                     + sigma_22 d2 sigma_22) = 1/2 (0 + 0 + y2 * y2 + y1 y2 * y1)
    f = sde.ito_drift(model, model.populations[0])
    assert sp.expand(f[0] - (y1 + y1 * y2) / 2) == 0
    assert sp.expand(f[1] - (y2 ** 2 + y1 ** 2 * y2) / 2) == 0


# --- generator = adjoint of Fokker–Planck --------------------------------------------------------

C0 = sp.Rational(1, 3)


@lru_cache(maxsize=None)
def _gauss_moment(k):
    """integral_R x^k exp(-(x - 1/3)^2) dx, by SymPy (cached: each is used by several checks)."""
    x = sp.Symbol("x", real=True)
    return sp.integrate(x ** k * sp.exp(-(x - C0) ** 2), (x, -sp.oo, sp.oo))


def _integrate_against_gaussian(expr, x):
    """integral_R expr dx for expr = polynomial(x) * exp(-(x - 1/3)^2), exactly: the polynomial
    factor is extracted and each monomial integrated by SymPy."""
    poly = sp.Poly(sp.cancel(sp.expand(expr) / sp.exp(-(x - C0) ** 2)), x)
    return sp.expand(sum(c * _gauss_moment(k) for (k,), c in poly.terms()))


@pytest.mark.parametrize("power", [1, 2, 3, 4])
def test_generator_is_adjoint_of_fokker_planck(power):
    u = sp.Symbol("u")
    model = one_d("adjoint", 1 - X + X ** 2 / 3, 1 + X ** 2 / 2, {u: 0.25}, inp=u)
    pop = model.populations[0]
    x = model.state[0]
    assert x == sp.Symbol("x", real=True)
    lam = sp.Symbol("lam_test", real=True)
    rho = sp.exp(-(x - C0) ** 2)
    phi = x ** power
    lhs = _integrate_against_gaussian(sde.generator(model, pop, phi, lam=lam) * rho, x)
    rhs = _integrate_against_gaussian(phi * sde.fokker_planck(model, pop, rho, lam=lam), x)
    assert lhs.has(lam) and lhs.has(syms(model)["u"])
    assert sp.simplify(lhs - rhs) == 0


def test_generator_on_monomials_by_hand():
    """L x^2 = 2 x (f + u + lam) + sigma^2 for a scalar model."""
    u = sp.Symbol("u")
    model = one_d("gen", 1 - X + X ** 2 / 3, 1 + X ** 2 / 2, {u: 0.25}, inp=u)
    pop = model.populations[0]
    x, uu = model.state[0], syms(model)["u"]
    lam = sp.Symbol("lam_test", real=True)
    expected = 2 * x * (1 - x + x ** 2 / 3 + uu + lam) + (1 + x ** 2 / 2) ** 2
    assert sp.expand(sde.generator(model, pop, x ** 2, lam=lam) - expected) == 0
    # without the input, only lambda is added
    expected0 = 2 * x * (1 - x + x ** 2 / 3 + lam) + (1 + x ** 2 / 2) ** 2
    assert sp.expand(sde.generator(model, pop, x ** 2, include_input=False, lam=lam) - expected0) == 0


# --- Milstein ------------------------------------------------------------------------------------

def test_milstein_scalar_multiplicative():
    model = one_d("mil1", -X, s_ * X, {s_: 0.3})
    S = syms(model)
    M = sde.milstein_terms(model, model.populations[0])
    assert len(M) == 1 and len(M[0]) == 1 and len(M[0][0]) == 1
    assert sp.expand(M[0][0][0] - S["s"] ** 2 * S["x"]) == 0


def test_milstein_additive_noise_is_zero():
    model = one_d("mil0", -X, s_, {s_: 0.3})
    assert sde.milstein_terms(model, model.populations[0]) == [[[0]]]


def test_milstein_diagonal_two_dimensional():
    x1, x2, s1, s2 = sp.symbols("x1 x2 s1 s2")
    model = Model(name="mil2", state=[x1, x2], space=Point(),
                  populations=[Population("A", drift=[-x1, -x2], diffusion=[s1 * x1, s2 * x2 ** 2],
                                          gain=x1)],
                  parameters={s1: 0.5, s2: 0.25})
    S = syms(model)
    y1, y2, t1, t2 = S["x1"], S["x2"], S["s1"], S["s2"]
    M = sde.milstein_terms(model, model.populations[0])
    expected = [[[t1 ** 2 * y1, 0], [0, 0]],
                [[0, 0], [0, 2 * t2 ** 2 * y2 ** 3]]]
    for i in range(2):
        for j in range(2):
            for k in range(2):
                assert sp.expand(M[i][j][k] - expected[i][j][k]) == 0, (i, j, k)


def test_milstein_commutative_full_matrix_is_symmetric():
    """sigma = [[x1, x1], [x2, x2]] has two equal columns: commutative, and M[i][j][k] = M[i][k][j]."""
    x1, x2 = sp.symbols("x1 x2")
    model = Model(name="mil3", state=[x1, x2], space=Point(),
                  populations=[Population("A", drift=[0, 0], diffusion=[[x1, x1], [x2, x2]],
                                          gain=x1)])
    y1, y2 = model.state
    assert sde.is_commutative(model, model.populations[0])
    M = sde.milstein_terms(model, model.populations[0])
    # L^j sigma_ik = sum_l sigma_lj d_l sigma_ik: for i = 0 it is x1, for i = 1 it is x2
    for j in range(2):
        for k in range(2):
            assert sp.expand(M[0][j][k] - y1) == 0
            assert sp.expand(M[1][j][k] - y2) == 0


def test_milstein_refuses_noncommutative_noise():
    x1, x2 = sp.symbols("x1 x2")
    model = Model(name="noncomm", state=[x1, x2], space=Point(),
                  populations=[Population("Exc", drift=[-x1, -x2], diffusion=[[1, 0], [0, x1]],
                                          gain=x1)])
    pop = model.populations[0]
    y1, y2 = model.state
    sigma = pop.diffusion

    def L(j, col):
        return sp.Matrix([sum(sigma[l, j] * sp.diff(sigma[i, col], model.state[l]) for l in range(2))
                          for i in range(2)])

    assert L(0, 1) != L(1, 0)           # L^1 sigma_2 = (0, 1) but L^2 sigma_1 = (0, 0)
    assert not sde.is_commutative(model, pop)
    with pytest.raises(sde.NonCommutativeNoiseError, match=r"model 'noncomm', population Exc"):
        sde.milstein_terms(model, pop)
