"""Balance constraints (B), the multiplier equation (M), the mean/fluctuation split and the fast
manifold matrix W D (DESIGN.md §2, §3).

With the separated kernels  w_ab = sum_{k,l} C_ab[k,l] psi_k(theta) chi_l(phi)  the connectivity
operator is  (W q)_a = sum_k psi_k(theta) sum_{b,l} B[(a,k),(b,l)] <chi_l, q_b>  with
B[(a,k),(b,l)] = alpha_b C_ab[k,l] and <chi, q> = integral chi(phi) q(phi) dphi/|Omega|.
Range(W) = { sum_k v_(a,k) psi_k(theta) e_a : v in column space of B }.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from .dsl import Point, t
from .kernels import KernelStructure, fourier_atoms
from .sde import generator, ito_drift, unit


def space_average(model, expr, angles):
    """<expr> = integral over Omega of expr d(angles)/|Omega| (identity on a Point)."""
    for v in angles:
        expr = sp.integrate(expr, (v, 0, 2 * sp.pi)) / (2 * sp.pi)
    return expr


def constraint_matrix(model, ks: KernelStructure) -> sp.Matrix:
    """B with rows (a, k) and columns (b, l), population-major."""
    P, K, L = len(model.names), len(ks.psi), len(ks.chi)
    B = sp.zeros(P * K, P * L)
    for ia, a in enumerate(model.names):
        for ib, b in enumerate(model.names):
            alpha = model.populations[ib].fraction
            C = ks.coefficients[(a, b)]
            for k in range(K):
                for l in range(L):
                    B[ia * K + k, ib * L + l] = alpha * C[k, l]
    return B


def gram(model, ks: KernelStructure) -> sp.Matrix:
    """G[l, j] = <chi_l, psi_j> = integral chi_l(phi) psi_j(phi) dphi/|Omega| (exact)."""
    sub = dict(zip(model.space.theta, model.space.phi))
    return sp.Matrix(len(ks.chi), len(ks.psi),
                     lambda l, j: sp.simplify(space_average(
                         model, ks.chi[l] * ks.psi[j].xreplace(sub), model.space.phi)))


def drive_coefficients(model, ks: KernelStructure):
    """Expand each drive h_a(theta, t) on the psi basis.  Returns (coefficients, residuals):
    coefficients[a] is a list over psi (functions of t and parameters); residuals[a] is the part of
    h_a outside span(psi) (zero when h_a lies in the span)."""
    coeffs, residuals = {}, {}
    for pop in model.populations:
        atoms = fourier_atoms(pop.drive, model.space.theta)
        coeffs[pop.name] = [atoms.pop(k, sp.Integer(0)) for k in ks.psi]
        residuals[pop.name] = sp.Add(*[c * a for a, c in atoms.items()])
    return coeffs, residuals


@dataclass
class BalanceSystem:
    """Symbolic constraints and multiplier equation.

    constraints: list of equations (B), one per (population a, psi_k): in terms of the population
    averages gbar_b(phi, t).
    multiplier: list of equations (M), linear in the unknown coefficients Lambda[(b, j)] of
    lambda_b = sum_j Lambda_(b,j) psi_j, in terms of <L g>_b(phi, t) and D_b(phi, t).
    """

    B: sp.Matrix
    gram: sp.Matrix
    drive: dict
    drive_residual: dict
    constraints: list
    multiplier: list
    lambda_symbols: dict
    gbar: dict
    slope: dict
    Lg: dict
    homogeneous_multiplier: tuple


def _pop_functions(model, prefix):
    args = model.space.phi + (t,)
    return {p.name: sp.Function(f"{prefix}_{p.name}", real=True)(*args) for p in model.populations}


def balance_system(model, ks: KernelStructure) -> BalanceSystem:
    """Derive (B) and (M) of DESIGN.md §2–3 for a model with separable kernels."""
    names = model.names
    B = constraint_matrix(model, ks)
    G = gram(model, ks)
    h, hres = drive_coefficients(model, ks)
    K, L = len(ks.psi), len(ks.chi)
    phi = model.space.phi
    gbar, slope, Lg = _pop_functions(model, "gbar"), _pop_functions(model, "D"), _pop_functions(model, "Lg")
    Lam = {(b, j): sp.Symbol(f"Lambda_{b}_{j}", real=True) for b in names for j in range(K)}
    sub = dict(zip(model.space.theta, phi))

    def avg(expr):
        if isinstance(model.space, Point):
            return expr
        for v in phi:
            expr = sp.Integral(expr, (v, 0, 2 * sp.pi)) / (2 * sp.pi)
        return expr

    constraints, multiplier = [], []
    for ia, a in enumerate(names):
        for k in range(K):
            row = ia * K + k
            lhs_b, lhs_m = h[a][k], sp.diff(h[a][k], t)
            for ib, b in enumerate(names):
                lam_b = sum(Lam[(b, j)] * ks.psi[j].xreplace(sub) for j in range(K))
                for l in range(L):
                    coef = B[row, ib * L + l]
                    if coef == 0:
                        continue
                    lhs_b += coef * avg(ks.chi[l] * gbar[b])
                    lhs_m += coef * avg(ks.chi[l] * (Lg[b] + slope[b] * lam_b))
            constraints.append(sp.Eq(lhs_b, 0))
            multiplier.append(sp.Eq(lhs_m, 0))

    # spatially homogeneous D_b (constants): the multiplier equation as a linear system
    Dsym = sp.Matrix([sp.Symbol(f"D_{b}", real=True) for b in names])
    M = fast_matrix(model, ks, Dsym, B=B, G=G)
    return BalanceSystem(B, G, h, hres, constraints, multiplier, Lam, gbar, slope, Lg, (Dsym, M))


def fast_matrix(model, ks, D, *, B=None, G=None) -> sp.Matrix:
    """The matrix of  q -> W (D q)  on span{psi_k e_a} for constant slopes D_b (DESIGN.md §2):
        M[(a,k),(b,j)] = sum_l B[(a,k),(b,l)] D_b <chi_l, psi_j>.
    Its eigenvalues on Range(W) govern the relaxation onto the balanced manifold (rate sqrt(n))."""
    B = constraint_matrix(model, ks) if B is None else B
    G = gram(model, ks) if G is None else G
    P, K, L = len(model.names), len(ks.psi), len(ks.chi)
    GD = sp.zeros(P * L, P * K)
    for ib in range(P):
        for l in range(L):
            for j in range(K):
                GD[ib * L + l, ib * K + j] = D[ib] * G[l, j]
    return (B * GD).applyfunc(sp.simplify)


def modes(model, ks, M) -> list[list[int]]:
    """Group the psi atoms into modes: connected components of the coupling pattern of M
    (e.g. {1}, {cos theta}, {sin theta} for a cosine kernel on the ring)."""
    P, K = len(model.names), len(ks.psi)
    parent = list(range(K))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for r in range(P * K):
        for c in range(P * K):
            if M[r, c] != 0:
                parent[find(r % K)] = find(c % K)
    groups: dict = {}
    for k in range(K):
        groups.setdefault(find(k), []).append(k)
    return sorted(groups.values())


def mode_blocks(model, ks, M):
    """The blocks of M per mode: list of (psi atoms, block matrix with rows/cols (a, k in mode))."""
    K = len(ks.psi)
    out = []
    for group in modes(model, ks, M):
        idx = [ia * K + k for ia in range(len(model.names)) for k in group]
        out.append(([ks.psi[k] for k in group], M.extract(idx, idx)))
    return out


def mean_fluctuation(model, pop, lam=None):
    """Mean/fluctuation split x = mbar + y of DESIGN.md §3:
        d_t mbar = <f> + (u + lambda) e,
        fluctuation drift  f(mbar + y) - <f>  (lambda does not appear).
    Returns (mean right-hand side, fluctuation drift, mbar symbols, y symbols)."""
    lam = sp.Symbol(f"lambda_{pop.name}", real=True) if lam is None else lam
    f = ito_drift(model, pop)
    mbar = [sp.Symbol(f"mbar_{s.name}", real=True) for s in model.state]
    ys = [sp.Symbol(f"y_{s.name}", real=True) for s in model.state]
    fav = [sp.Function(f"avg_f{i}_{pop.name}", real=True)(*model.space.theta, t) for i in range(model.m)]
    mean_rhs = sp.Matrix(fav) + (pop.input + lam) * unit(model)
    shift = dict(zip(model.state, [mb + y for mb, y in zip(mbar, ys)]))
    fluct = sp.Matrix([f[i].xreplace(shift) - fav[i] for i in range(model.m)])
    return mean_rhs, fluct, mbar, ys


def gain_generator(model, pop):
    """L g_a, the generator (with the input u) applied to the gain: enters (M) through <L g>."""
    return sp.expand(generator(model, pop, pop.gain))


def gain_slope(model, pop):
    """d g_a / d x_e: its population average D_a multiplies lambda in (M)."""
    return sp.diff(pop.gain, model.state[model.input_component])
