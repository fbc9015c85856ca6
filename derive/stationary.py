"""Stationary density of one population for fixed multiplier lambda (m = 1, DESIGN.md §3).

Zero flux gives  p(x) proportional to exp(U(x)) / sigma^2(x)  with
    U(x) = integral^x 2 (f + u + lambda) / sigma^2 ds = U0(x) + lambda * U1(x),
    U0 = integral^x 2 (f + u) / sigma^2 ds,   U1 = integral^x 2 / sigma^2 ds.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.polys.polyerrors import BasePolynomialError

from .sde import ito_drift


@dataclass
class StationaryDensity:
    """log p = U0 + lambda U1 - log sigma^2 (+ const).  closed_form False means SymPy could not
    integrate and the solver must integrate the integrands by quadrature."""

    closed_form: bool
    integrand0: sp.Expr      # 2 (f + u) / sigma^2
    integrand1: sp.Expr      # 2 / sigma^2
    U0: sp.Expr | None
    U1: sp.Expr | None
    log_sigma2: sp.Expr
    lam: sp.Symbol

    def log_density(self):
        """The unnormalised log density (None when not in closed form)."""
        if not self.closed_form:
            return None
        return self.U0 + self.lam * self.U1 - self.log_sigma2


def _integrate(expr, x):
    """Antiderivative in x, or None.  Integrands with a function of x inside another function
    (log Phi, log(1 + e^x)) have no antiderivative NumPy could print (at best polylogs) and keep
    SymPy busy for minutes: None at once (the solver integrates by quadrature)."""
    inner = {f for f in expr.atoms(sp.Function) if f.has(x)}
    if any(g is not f and f.has(g) for f in inner for g in inner):
        return None
    try:
        res = sp.integrate(sp.expand(expr), x)
    except (NotImplementedError, BasePolynomialError):
        return None                  # SymPy gives up (e.g. NotInvertible on sqrt(1 + x^2/4) noise)
    if res.has(sp.Integral):
        return None
    return sp.simplify(res) if sp.count_ops(res) < 60 else res


def is_deterministic(pop) -> bool:
    """True when the diffusion of ``pop`` is identically zero (deterministic neurons)."""
    return all(sp.simplify(e) == 0 for e in pop.diffusion)


def skip_reason(model, pop) -> str:
    """Why the stationary density of ``pop`` is not derived ('' when it is, or when m != 1)."""
    if model.m == 1 and is_deterministic(pop):
        return (f"population {pop.name} is deterministic (diffusion = 0): the stationary density "
                "exp(int 2 (f + u + lambda) / sigma^2) / sigma^2 does not exist (it concentrates on "
                "the fixed points of the drift), so its closed forms are skipped")
    return ""


def _undefined(expr) -> bool:
    return expr is None or expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo)


def stationary_density(model, pop) -> StationaryDensity | None:
    """Derive the stationary density of ``pop`` for fixed lambda; None when m != 1 or when the
    population is deterministic (see ``skip_reason``).  Where sigma vanishes on part of the line
    the integrands hold zoo there (printed as nan: the density does not exist there) and a
    potential with zoo is not a closed form (the solver integrates where it is finite)."""
    if model.m != 1 or skip_reason(model, pop):
        return None
    x = model.state[0]
    s2 = sp.expand(sum(pop.diffusion[0, k] ** 2 for k in range(pop.diffusion.shape[1])))
    f = ito_drift(model, pop)[0]
    lam = sp.Symbol(f"lambda_{pop.name}", real=True)
    i0 = sp.cancel(2 * (f + pop.input) / s2)
    i1 = sp.cancel(2 / s2)
    U0, U1 = _integrate(i0, x), _integrate(i1, x)
    if _undefined(U0) or _undefined(U1):
        U0 = U1 = None
    closed = U0 is not None and U1 is not None
    # not force=True: log(x**2) is not 2 log(x) for x < 0 (sigma = x, or a negative parameter)
    return StationaryDensity(closed, i0, i1, U0, U1, sp.expand_log(sp.log(s2)), lam)
