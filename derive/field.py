"""The neural-field reduction for linear dynamics with additive noise (DESIGN.md §5).

If f_a = A_a x + c_a and sigma_a does not depend on x, Gaussian densities stay Gaussian:
    d_t m = A m + c + (u + lambda) e,     d_t C = A C + C A^T + sigma sigma^T,
    gbar = G(m, C) = E[ g(m + C^(1/2) Z) ].
G is derived in closed form for gains that are sums of (coefficient) x (polynomial, exp(affine),
erf(affine) [probit], Max(0, affine) [ReLU]) in one state component; otherwise it is flagged for
Gauss–Hermite quadrature.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .dsl import ModelError
from .sde import diffusion_tensor, ito_drift, unit


class NotLinearAdditiveError(ModelError):
    """The neural field was requested for a model whose dynamics are not linear with additive noise."""


def linear_additive(model, pop) -> tuple[bool, str]:
    """True when the Itô drift is affine in the state and the diffusion does not depend on it."""
    x = model.state
    f = ito_drift(model, pop)
    for i in range(model.m):
        for j in range(model.m):
            d = sp.simplify(sp.diff(f[i], x[j]))
            if d.free_symbols & set(x):
                return False, f"drift component {f[i]} is not linear in the state ({x[j].name})"
    for e in pop.diffusion:
        if sp.simplify(e).free_symbols & set(x):
            return False, f"diffusion entry {e} depends on the state (multiplicative noise)"
    return True, ""


@dataclass
class FieldSystem:
    """Mean and covariance equations of one population (symbols m_i, C_i_j, lambda)."""

    approximate: bool           # True: a Gaussian closure of a non-linear/multiplicative model
    A: sp.Matrix
    c: sp.Matrix
    Q: sp.Matrix                # sigma sigma^T
    mean: sp.Matrix             # symbols m_x ...
    cov: sp.Matrix              # symmetric symbols C_x_x ...
    lam: sp.Symbol
    mean_rhs: sp.Matrix
    cov_rhs: sp.Matrix
    gain_component: int | None  # the state component the gain depends on (None: several)
    G: sp.Expr | None           # closed form E[g] in (mean, cov); None: quadrature


def mean_cov_symbols(model):
    names = [s.name for s in model.state]
    mean = sp.Matrix([sp.Symbol(f"m_{n}", real=True) for n in names])
    cov = sp.Matrix(model.m, model.m, lambda i, j: sp.Symbol(f"C_{names[min(i, j)]}_{names[max(i, j)]}",
                                                             real=True))
    return mean, cov


def field_system(model, pop, *, closure=False) -> FieldSystem:
    """The neural-field equations of ``pop``.  Raises NotLinearAdditiveError for a model that is not
    linear/additive unless ``closure`` (then the result is labelled approximate: the drift is
    replaced by its linearisation at the mean and the noise by its value at the mean)."""
    ok, why = linear_additive(model, pop)
    if not ok and not closure:
        raise NotLinearAdditiveError(
            f"model {model.name!r}, population {pop.name}: the neural field is exact only for linear "
            f"drift and additive noise, but {why}; ask for the Gaussian closure explicitly "
            "(closure=True) to get a labelled approximation")
    x = model.state
    mean, cov = mean_cov_symbols(model)
    lam = sp.Symbol(f"lambda_{pop.name}", real=True)
    f = ito_drift(model, pop)
    at_mean = dict(zip(x, mean))
    A = f.jacobian(x).xreplace(at_mean).applyfunc(sp.simplify)
    c = (f.xreplace(at_mean) - A * mean).applyfunc(sp.simplify)
    Q = diffusion_tensor(pop).xreplace(at_mean)
    mean_rhs = (A * mean + c + (pop.input + lam) * unit(model)).applyfunc(sp.expand)
    cov_rhs = (A * cov + cov * A.T + Q).applyfunc(sp.expand)
    comps = [i for i, s in enumerate(x) if pop.gain.has(s)]
    G = None
    comp = comps[0] if len(comps) == 1 else None
    if comp is not None:
        G = gaussian_expectation(pop.gain, x[comp], mean[comp], cov[comp, comp])
    return FieldSystem(not ok, A, c, Q, mean, cov, lam, mean_rhs, cov_rhs, comp, G)


def _affine(expr, x):
    """(a, b) with expr = a x + b, or None."""
    if not expr.has(x) or not expr.is_polynomial(x):   # exp(sin x): no closed form, not a crash
        return None
    poly = sp.Poly(sp.expand(expr), x)
    if poly.degree() != 1:
        return None
    a, b = poly.all_coeffs()
    if (a.free_symbols | b.free_symbols) & {x}:
        return None
    return a, b


def _gauss_moment(k: int):
    return sp.Integer(0) if k % 2 else sp.factorial2(k - 1) if k else sp.Integer(1)


def gaussian_expectation(g, x, m, C):
    """E[g(m + sqrt(C) Z)], Z ~ N(0, 1), in closed form, or None if some term has none.

    Closed forms used (y = a x + b, mu = a m + b, s^2 = a^2 C):
      polynomial:  E[(m + sZ)^k] = sum_j binom(k, j) m^(k-j) s^j E[Z^j]
      exp(y):      exp(mu + s^2/2)
      erf(y):      erf(mu / sqrt(1 + 2 s^2))        (so Phi(beta x) -> Phi(beta m / sqrt(1 + beta^2 C)))
      Max(0, y):   mu Phi(mu/s) + s phi(mu/s)       (ReLU)
    """
    s = sp.sqrt(C)
    total = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(g)):
        coef, fac = term.as_independent(x, as_Add=False)
        if fac == 1:
            total += coef
            continue
        if fac.is_polynomial(x):
            poly = sp.Poly(fac, x)
            val = 0
            for (k,), ck in poly.terms():
                val += ck * sum(sp.binomial(k, j) * m ** (k - j) * s ** j * _gauss_moment(j)
                                for j in range(k + 1))
            total += coef * val
            continue
        if isinstance(fac, sp.exp) and (ab := _affine(fac.args[0], x)):
            a, b = ab
            total += coef * sp.exp(a * m + b + a ** 2 * C / 2)
            continue
        if isinstance(fac, sp.erf) and (ab := _affine(fac.args[0], x)):
            a, b = ab
            total += coef * sp.erf((a * m + b) / sp.sqrt(1 + 2 * a ** 2 * C))
            continue
        if isinstance(fac, sp.Max) and len(fac.args) == 2 and 0 in fac.args:
            arg = [u for u in fac.args if u != 0][0]
            ab = _affine(arg, x)
            if ab:
                a, b = ab
                mu, sd = a * m + b, sp.sqrt(a ** 2 * C)
                z = mu / sd
                total += coef * (mu * (1 + sp.erf(z / sp.sqrt(2))) / 2
                                 + sd * sp.exp(-z ** 2 / 2) / sp.sqrt(2 * sp.pi))
                continue
        return None
    return total
