"""Separation of connectivity kernels into low-rank form (DESIGN.md §2, "Low rank").

A kernel w(theta, phi) is written as  sum_{k,l} C[k, l] psi_k(theta) chi_l(phi)  with psi, chi
Fourier atoms (cos(k theta), sin(k theta), 1, ...): trigonometric expansion, then each term is split
into a theta-factor times a phi-factor, and products of trigonometric functions of the same angle
are turned into sums (cos^2 theta = (1 + cos 2 theta)/2), so the atoms are linearly independent.
The reconstruction is verified exactly.  A term that mixes theta and phi in a way no expansion
removes (exp(cos(theta - phi))) makes the kernel non-separable.
"""
from __future__ import annotations

from dataclasses import dataclass

import sympy as sp
from sympy.simplify.fu import TR8


@dataclass
class Separation:
    """w(theta, phi) = sum_{k,l} coefficients[(psi_k, chi_l)] psi_k(theta) chi_l(phi)."""

    kernel: sp.Expr
    separable: bool
    terms: dict            # (psi atom, chi atom) -> coefficient (free of theta, phi)
    reason: str = ""

    @property
    def psi(self):
        return sorted({k for k, _ in self.terms}, key=sp.default_sort_key)

    @property
    def chi(self):
        return sorted({l for _, l in self.terms}, key=sp.default_sort_key)

    def matrix(self):
        """Coefficient matrix C with rows psi, columns chi."""
        psi, chi = self.psi, self.chi
        return sp.Matrix(len(psi), len(chi), lambda i, j: self.terms.get((psi[i], chi[j]), 0))

    @property
    def rank(self) -> int:
        return self.matrix().rank(simplify=True) if self.separable else -1

    def reconstruct(self):
        return sp.Add(*[c * k * l for (k, l), c in self.terms.items()])


def fourier_atoms(expr, variables, keep=()):
    """Write ``expr`` as sum_i c_i * atom_i with atoms functions of ``variables`` only (products of
    trigonometric functions reduced to sums) and c_i free of them.  Returns {atom: coefficient}.
    Raises ValueError if a term does not split that way."""
    expr = sp.expand(sp.expand_trig(sp.expand(expr)))
    out: dict = {}
    for term in sp.Add.make_args(expr):
        coef, atom = term.as_independent(*variables, as_Add=False)
        if atom != 1 and atom.has(sp.sin, sp.cos):
            atom = sp.expand(TR8(atom))
        for sub in sp.Add.make_args(sp.expand(atom)):
            c2, a2 = sub.as_independent(*variables, as_Add=False)
            out[a2] = out.get(a2, 0) + coef * c2
    return {a: sp.simplify(c) for a, c in out.items() if sp.simplify(c) != 0}


def separate(w, theta, phi) -> Separation:
    """Split a kernel w(theta, phi) (theta, phi tuples of angle symbols) into separable terms."""
    w = sp.sympify(w)
    th, ph = tuple(theta), tuple(phi)
    expanded = sp.expand(sp.expand_trig(sp.expand(w)))
    terms: dict = {}
    for term in sp.Add.make_args(expanded):
        coef, rest = term.as_independent(*(th + ph), as_Add=False)
        ft, fp = sp.Integer(1), sp.Integer(1)
        for factor in sp.Mul.make_args(rest):
            syms = factor.free_symbols
            if syms & set(th) and syms & set(ph):
                return Separation(w, False, {}, f"the factor {factor} mixes {th} and {ph}")
            if syms & set(th):
                ft *= factor
            else:
                fp *= factor
        try:
            at = fourier_atoms(ft, th)
            ap = fourier_atoms(fp, ph)
        except ValueError as exc:  # pragma: no cover - fourier_atoms splits any product
            return Separation(w, False, {}, str(exc))
        for a, ca in at.items():
            for b, cb in ap.items():
                terms[(a, b)] = terms.get((a, b), 0) + coef * ca * cb
    terms = {k: sp.simplify(v) for k, v in terms.items()}
    terms = {k: v for k, v in terms.items() if v != 0}
    sep = Separation(w, True, terms)
    residual = sp.simplify(sp.expand_trig(sp.expand(sep.reconstruct() - w)))
    if residual != 0:
        return Separation(w, False, {}, f"reconstruction left the residual {residual}")
    return sep


@dataclass
class KernelStructure:
    """The low-rank structure of all kernels of a model.

    psi, chi: global lists of atoms (functions of theta, of phi); coefficients[a][b] is the
    len(psi) x len(chi) matrix C_ab with  w_ab = sum_{k,l} C_ab[k,l] psi_k(theta) chi_l(phi).
    separable is False if any kernel does not split; ``failures`` says which and why.
    """

    psi: list
    chi: list
    coefficients: dict
    separations: dict
    separable: bool
    failures: dict

    @property
    def rank(self):
        return len(self.psi)


def kernel_structure(model) -> KernelStructure:
    """Separate every kernel w_ab of ``model`` and merge the atoms into one basis."""
    sp_ = model.space
    seps, failures = {}, {}
    for (a, b), w in sorted(model.kernel.items()):
        s = separate(w, sp_.theta, sp_.phi)
        seps[(a, b)] = s
        if not s.separable:
            failures[(a, b)] = s.reason
    if failures:
        return KernelStructure([], [], {}, seps, False, failures)
    psi = sorted({k for s in seps.values() for k in s.psi}, key=sp.default_sort_key)
    chi = sorted({l for s in seps.values() for l in s.chi}, key=sp.default_sort_key)
    if not psi:  # no coupling at all
        psi, chi = [sp.Integer(1)], [sp.Integer(1)]
    coeffs = {}
    for a in model.names:
        for b in model.names:
            s = seps.get((a, b))
            coeffs[(a, b)] = sp.Matrix(len(psi), len(chi),
                                       lambda i, j: s.terms.get((psi[i], chi[j]), 0) if s else 0)
    return KernelStructure(psi, chi, coeffs, seps, True, {})
