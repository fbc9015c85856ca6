"""Stochastic calculus of one population: Itô drift, generator, Fokker–Planck operator, Milstein.

Notation (DESIGN.md §1, §3): state x in R^m, drift f (m-vector), diffusion sigma (m x q),
e the unit vector of the input component, u the O(1) input, lambda the multiplier.
"""
from __future__ import annotations

import sympy as sp


class NonCommutativeNoiseError(ValueError):
    """Milstein's scheme without Lévy areas needs commutative noise."""


def stratonovich_correction(sigma: sp.Matrix, state) -> sp.Matrix:
    """The drift correction  c_i = 1/2 sum_k sum_j sigma_jk d_j sigma_ik  that turns a
    Stratonovich SDE into the equivalent Itô SDE."""
    m, q = sigma.shape
    return sp.Matrix([sp.Rational(1, 2) * sum(sigma[j, k] * sp.diff(sigma[i, k], state[j])
                                              for k in range(q) for j in range(m))
                      for i in range(m)])


def ito_drift(model, pop) -> sp.Matrix:
    """The Itô drift f_a of population ``pop`` (the Stratonovich correction added if needed)."""
    if model.noise == "stratonovich":
        return (pop.drift + stratonovich_correction(pop.diffusion, model.state)).applyfunc(sp.simplify)
    return pop.drift


def unit(model) -> sp.Matrix:
    e = sp.zeros(model.m, 1)
    e[model.input_component] = 1
    return e


def diffusion_tensor(pop) -> sp.Matrix:
    """D = sigma sigma^T (the Itô diffusion matrix; the generator carries 1/2 D)."""
    return (pop.diffusion * pop.diffusion.T).applyfunc(sp.expand)


def generator(model, pop, expr, *, include_input=True, lam=0):
    """The generator  L phi = (f + (u + lam) e) . grad phi + 1/2 tr(sigma sigma^T Hess phi)."""
    f = ito_drift(model, pop)
    if include_input:
        f = f + (pop.input + lam) * unit(model)
    elif lam != 0:
        f = f + lam * unit(model)
    x = model.state
    D = diffusion_tensor(pop)
    first = sum(f[i] * sp.diff(expr, x[i]) for i in range(model.m))
    second = sp.Rational(1, 2) * sum(D[i, j] * sp.diff(expr, x[i], x[j])
                                     for i in range(model.m) for j in range(model.m))
    return first + second


def fp_velocity(model, pop, lam=0) -> sp.Matrix:
    """Advection velocity of the flux form:  V_i = f_i + (u + lam) e_i - sum_j d_j (1/2 D_ij)."""
    f = ito_drift(model, pop) + (pop.input + lam) * unit(model)
    D = diffusion_tensor(pop)
    x = model.state
    return sp.Matrix([sp.expand(f[i] - sp.Rational(1, 2) * sum(sp.diff(D[i, j], x[j])
                                                               for j in range(model.m)))
                      for i in range(model.m)])


def fp_flux(model, pop, p, lam=0) -> sp.Matrix:
    """The probability flux  J_i = V_i p - sum_j (1/2 D_ij) d_j p,  so that  d_t p = -div J."""
    V = fp_velocity(model, pop, lam)
    D = diffusion_tensor(pop)
    x = model.state
    return sp.Matrix([V[i] * p - sp.Rational(1, 2) * sum(D[i, j] * sp.diff(p, x[j])
                                                         for j in range(model.m))
                      for i in range(model.m)])


def fokker_planck(model, pop, p, lam=0):
    """The Fokker–Planck operator applied to a density p:
        -div[(f + (u + lam) e) p] + 1/2 sum_ij d_i d_j (D_ij p)  =  -div J."""
    J = fp_flux(model, pop, p, lam)
    return -sum(sp.diff(J[i], model.state[i]) for i in range(model.m))


def is_commutative(model, pop) -> bool:
    """Commutative noise:  L^j sigma_k = L^k sigma_j  for all j, k, with L^j = sum_l sigma_lj d_l."""
    s = pop.diffusion
    m, q = s.shape
    x = model.state
    for j in range(q):
        for k in range(j + 1, q):
            for i in range(m):
                a = sum(s[l, j] * sp.diff(s[i, k], x[l]) for l in range(m))
                b = sum(s[l, k] * sp.diff(s[i, j], x[l]) for l in range(m))
                if sp.simplify(a - b) != 0:
                    return False
    return True


def milstein_terms(model, pop):
    """The Milstein tensor  M[i][j][k] = L^j sigma_ik = sum_l sigma_lj d_l sigma_ik.

    The Milstein step for commutative noise is
        x_i += f_i dt + sum_k sigma_ik dW_k + 1/2 sum_jk M[i][j][k] (dW_j dW_k - delta_jk dt).
    Raises NonCommutativeNoiseError when the noise is not commutative (Lévy areas would be needed).
    """
    if not is_commutative(model, pop):
        raise NonCommutativeNoiseError(
            f"model {model.name!r}, population {pop.name}: diffusion {pop.diffusion.tolist()} is not "
            "commutative (L^j sigma_k != L^k sigma_j); the Milstein scheme would need Lévy areas, "
            "use Euler–Maruyama")
    s = pop.diffusion
    m, q = s.shape
    x = model.state
    return [[[sp.expand(sum(s[l, j] * sp.diff(s[i, k], x[l]) for l in range(m)))
              for k in range(q)] for j in range(q)] for i in range(m)]
