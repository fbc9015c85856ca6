"""The neural field of derive/field.py: closed forms of G(m, C) = E[g(m + sqrt(C) Z)] against
quadrature, the mean/covariance equations of the Ornstein–Uhlenbeck model, and the refusal of a
model that is not linear with additive noise."""
import math

import pytest
import sympy as sp
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate

from derive import Model, Phi, Point, Population, Ring
from derive import field

x, m, C = sp.symbols("x m C", real=True)
a, b, beta, c = sp.symbols("a b beta c", real=True)

NODES, WEIGHTS = hermegauss(80)
WEIGHTS = WEIGHTS / math.sqrt(2 * math.pi)     # E[f(Z)] = sum w_i f(z_i), Z ~ N(0, 1)


def gauss_hermite(g, mv, Cv):
    f = sp.lambdify(x, g, "math")
    sd = math.sqrt(Cv)
    return math.fsum(w * f(mv + sd * z) for z, w in zip(NODES, WEIGHTS))


def quad_expectation(g, mv, Cv, kinks):
    """E[g(m + sqrt(C) Z)] by adaptive quadrature on pieces split at the kinks of g (for ReLU)."""
    f = sp.lambdify(x, g, "math")
    sd = math.sqrt(Cv)

    def integrand(y):
        return f(y) * math.exp(-(y - mv) ** 2 / (2 * Cv)) / math.sqrt(2 * math.pi * Cv)

    edges = [-math.inf] + sorted(kinks) + [math.inf]
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        lo_, hi_ = max(lo, mv - 40 * sd), min(hi, mv + 40 * sd)
        if lo_ < hi_:
            total += integrate.quad(integrand, lo_, hi_, epsabs=0, epsrel=1e-13, limit=200)[0]
    return total


def evaluate(G, values, mv, Cv):
    return float(G.subs(values).subs({m: mv, C: Cv}).evalf(30))


# (gain, {coefficient: range}); ranges keep |slope| sqrt(C) moderate so that 80 Gauss–Hermite nodes
# resolve the gain to better than 1e-12 (the quadrature, not the closed form, is the limit).
SMOOTH = {
    "probit": (Phi(beta * x), {beta: (0.2, 1.2)}),
    "erf": (sp.erf(a * x + b), {a: (-0.8, 0.8), b: (-1.0, 1.0)}),
    "linear": (a + b * x, {a: (-2.0, 2.0), b: (-2.0, 2.0)}),
    "cubic": (x ** 3 - x, {}),
    "exp": (sp.exp(c * x), {c: (-1.5, 1.5)}),
}


@pytest.mark.parametrize("name", SMOOTH)
def test_closed_form_matches_gauss_hermite(name, rng):
    g, ranges = SMOOTH[name]
    G = field.gaussian_expectation(g, x, m, C)
    assert G is not None
    assert not G.has(x)
    checked = 0
    while checked < 12:
        mv, Cv = rng.uniform(-2, 2), rng.uniform(0.05, 3)
        values = {k: rng.uniform(*r) for k, r in ranges.items()}
        ref = gauss_hermite(g.subs(values), mv, Cv)
        if abs(ref) < 0.05:
            continue          # a relative comparison needs a value away from 0 (erf, linear, cubic)
        assert evaluate(G, values, mv, Cv) == pytest.approx(ref, rel=1e-10, abs=0)
        checked += 1


def test_probit_closed_form_is_the_design_formula():
    """DESIGN.md §5: probit Phi(beta x) gives Phi(beta m / sqrt(1 + beta^2 C))."""
    G = field.gaussian_expectation(Phi(beta * x), x, m, C)
    assert sp.simplify(G - Phi(beta * m / sp.sqrt(1 + beta ** 2 * C))) == 0


def test_polynomial_closed_form_exact():
    """E[(m + sqrt C Z)^4] = m^4 + 6 m^2 C + 3 C^2, E[x^3 - x] = m^3 + 3 m C - m."""
    assert sp.expand(field.gaussian_expectation(x ** 4, x, m, C) - (m ** 4 + 6 * m ** 2 * C + 3 * C ** 2)) == 0
    assert sp.expand(field.gaussian_expectation(x ** 3 - x, x, m, C) - (m ** 3 + 3 * m * C - m)) == 0


@pytest.mark.parametrize("g, kinks", [
    (sp.Max(0, x), [0.0]),
    (sp.Max(0, 2 * x - 1), [0.5]),
    (3 * sp.Max(0, 1 - x), [1.0]),
    (sp.Max(0, x) + sp.exp(x / 2) - 2, [0.0]),
], ids=["relu", "relu_affine", "relu_negative_slope", "sum_of_kinds"])
def test_relu_closed_form_matches_adaptive_quadrature(g, kinks, rng):
    G = field.gaussian_expectation(g, x, m, C)
    assert G is not None
    for _ in range(12):
        mv, Cv = rng.uniform(-2, 2), rng.uniform(0.05, 3)
        ref = quad_expectation(g, mv, Cv, kinks)
        assert evaluate(G, {}, mv, Cv) == pytest.approx(ref, rel=1e-10, abs=0)


@pytest.mark.parametrize("g", [1 / (1 + sp.exp(-x)), sp.tanh(x), sp.exp(x ** 2 / 4), sp.sqrt(1 + x ** 2)],
                         ids=["logistic", "tanh", "exp_quadratic", "sqrt"])
def test_no_closed_form_returns_none(g):
    assert field.gaussian_expectation(g, x, m, C) is None


@pytest.mark.parametrize("g", [sp.exp(sp.sin(x)), sp.erf(sp.exp(x)), sp.Max(0, sp.sin(x))],
                         ids=["exp_sin", "erf_exp", "relu_sin"])
def test_non_affine_argument_returns_none(g):
    """exp/erf/Max of a non-polynomial argument: no closed form (quadrature), not a crash."""
    assert field.gaussian_expectation(g, x, m, C) is None


# --- field equations -----------------------------------------------------------------------------

def test_field_system_ou_exact():
    X, u = sp.symbols("x u")
    model = Model(name="ou_field", state=[X], space=Point(),
                  populations=[Population("E", drift=-X, diffusion=1, gain=Phi(X), input=u)],
                  parameters={u: 0.2})
    pop = model.populations[0]
    fs = field.field_system(model, pop)
    assert fs.approximate is False
    mx, Cxx = fs.mean[0], fs.cov[0, 0]
    uu = next(iter(model.parameters))
    assert sp.expand(fs.mean_rhs[0] - (-mx + fs.lam + uu)) == 0
    assert sp.expand(fs.cov_rhs[0] - (1 - 2 * Cxx)) == 0
    assert fs.A == sp.Matrix([[-1]]) and fs.c == sp.Matrix([[0]]) and fs.Q == sp.Matrix([[1]])
    assert fs.gain_component == 0
    assert sp.simplify(fs.G - Phi(mx / sp.sqrt(1 + Cxx))) == 0


def test_field_system_two_dimensional_linear():
    """d_t C = A C + C A^T + sigma sigma^T with a non-symmetric A and a full sigma."""
    X1, X2, k = sp.symbols("x1 x2 k")
    model = Model(name="lin2", state=[X1, X2], space=Point(),
                  populations=[Population("E", drift=[-X1 + k * X2, -2 * X2 + 1],
                                          diffusion=[[1, 0], [k, 2]], gain=X1)],
                  parameters={k: 0.5})
    pop = model.populations[0]
    fs = field.field_system(model, pop)
    kk = next(iter(model.parameters))
    A = sp.Matrix([[-1, kk], [0, -2]])
    sig = sp.Matrix([[1, 0], [kk, 2]])
    assert fs.A == A
    assert (fs.c - sp.Matrix([0, 1])).applyfunc(sp.expand) == sp.zeros(2, 1)
    expected_cov = A * fs.cov + fs.cov * A.T + sig * sig.T
    assert (fs.cov_rhs - expected_cov).applyfunc(sp.expand) == sp.zeros(2, 2)
    assert fs.cov_rhs.is_symmetric()
    expected_mean = A * fs.mean + sp.Matrix([0, 1]) + fs.lam * sp.Matrix([1, 0])
    assert (fs.mean_rhs - expected_mean).applyfunc(sp.expand) == sp.zeros(2, 1)
    assert sp.expand(fs.G - fs.mean[0]) == 0


def test_field_on_the_ring_keeps_position_dependence():
    X, th, ph = sp.symbols("x theta phi")
    model = Model(name="ring_field", state=[X], space=Ring(th, ph),
                  populations=[Population("E", drift=-X + sp.cos(th), diffusion=1, gain=Phi(X))],
                  kernel={("E", "E"): sp.cos(th - ph)})
    fs = field.field_system(model, model.populations[0])
    theta = model.space.theta[0]
    assert sp.expand(fs.mean_rhs[0] - (-fs.mean[0] + sp.cos(theta) + fs.lam)) == 0


def test_multiplicative_model_is_refused_and_closure_is_labelled():
    X, s = sp.symbols("x s")
    model = Model(name="mult_field", state=[X], space=Point(),
                  populations=[Population("Inh", drift=-X, diffusion=s * X, gain=Phi(X))],
                  parameters={s: 0.3})
    pop = model.populations[0]
    ok, why = field.linear_additive(model, pop)
    assert not ok and "diffusion" in why
    with pytest.raises(field.NotLinearAdditiveError, match=r"model 'mult_field', population Inh"):
        field.field_system(model, pop)
    fs = field.field_system(model, pop, closure=True)
    assert fs.approximate is True
    ss = next(iter(model.parameters))
    # noise evaluated at the mean: d_t C = -2 C + s^2 m^2
    assert sp.expand(fs.cov_rhs[0] - (-2 * fs.cov[0, 0] + ss ** 2 * fs.mean[0] ** 2)) == 0


def test_nonlinear_drift_is_refused():
    X = sp.Symbol("x")
    model = Model(name="well_field", state=[X], space=Point(),
                  populations=[Population("E", drift=X - X ** 3, diffusion=1, gain=Phi(X))])
    pop = model.populations[0]
    with pytest.raises(field.NotLinearAdditiveError, match=r"model 'well_field', population E.*drift"):
        field.field_system(model, pop)
    fs = field.field_system(model, pop, closure=True)
    assert fs.approximate is True
    # linearised at the mean: A = 1 - 3 m^2
    assert sp.expand(fs.A[0, 0] - (1 - 3 * fs.mean[0] ** 2)) == 0
