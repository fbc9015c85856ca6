"""A generated module bound to parameter values: the one object every solver works with.

It evaluates the generated per-population functions on arrays, builds position grids, and applies
the connectivity operator

    (W q)_a(theta) = sum_b alpha_b * integral w_ab(theta, phi) q_b(phi) dphi / |Omega|

on a uniform lattice (the lattice average is the quadrature; it is exact for trigonometric
polynomials of degree below the number of points per angle).
"""
from __future__ import annotations

import math
import os

import numpy as np

from .loading import load_generated


class CompiledModel:
    """A generated module plus parameter overrides.

    Attributes: name, populations (tuple of names), P, m (state dimension), e (input component),
    space ('point', 'ring', 'torus2'), pos_dim (0, 1, 2), alpha (fractions, array (P,)),
    separable (low-rank kernels available), K, L (numbers of psi / chi atoms).
    """

    def __init__(self, module, params: dict | None = None):
        if isinstance(module, (str, os.PathLike)):
            module = load_generated(module)     # a shipped model's name, or a model file (by path)
        self.module = module
        params = dict(params or {})
        unknown = sorted(set(params) - set(module.PARAMETERS))
        if unknown:
            raise ValueError(f"model {module.MODEL_NAME!r}: unknown parameter(s) {unknown}; "
                             f"parameters are {sorted(module.PARAMETERS)}")
        for k, v in params.items():
            if not math.isfinite(float(v)):
                raise ValueError(f"model {module.MODEL_NAME!r}: parameter {k} = {v} is not finite")
        self.params = {**module.PARAMETERS, **{k: float(v) for k, v in params.items()}}
        self.name = module.MODEL_NAME
        self.populations = tuple(module.POPULATIONS)
        self.P = len(self.populations)
        self.m = len(module.STATE)
        self.e = module.INPUT_COMPONENT
        self.space = module.SPACE
        self.pos_dim = len(module.POSITION)
        self.alpha = np.array(module.FRACTIONS, dtype=float)
        self.separable = bool(module.KERNEL_SEPARABLE)
        self.K = len(module.PSI)
        self.L = len(module.CHI)

    # ---- generated functions -------------------------------------------------------------
    def fn(self, kind: str, pop: str):
        """The generated function kind_pop (e.g. 'drift', 'E'), or None if the module lacks it."""
        return getattr(self.module, f"{kind}_{pop}", None)

    def call(self, kind: str, pop: str, *args):
        f = self.fn(kind, pop)
        if f is None:
            raise AttributeError(f"model {self.name!r} has no generated {kind}_{pop}")
        return f(*args, **self.params)

    def has(self, kind: str, pop: str) -> bool:
        return self.fn(kind, pop) is not None

    def uses(self, kind: str, pop: str) -> tuple:
        """The arguments the generated kind_pop actually depends on (derived at generation time:
        the free symbols of its expressions), e.g. ('x', 'theta') for a drift without t."""
        return tuple(self.module.USES[f"{kind}_{pop}"])

    def time_dependent(self, pop: str) -> bool:
        """f or u of population pop depends on t."""
        return "t" in self.uses("drift", pop) or "t" in self.uses("input", pop)

    def drive_time_dependent(self, pop: str) -> bool:
        return "t" in self.uses("drive", pop)

    def state_dependent(self, kind: str, pop: str) -> bool:
        """kind_pop depends on some state component."""
        return any(a in self.module.STATE for a in self.uses(kind, pop))

    # ---- space -----------------------------------------------------------------------------
    def grid(self, npos: int) -> tuple:
        """Uniform lattice of positions: a tuple of pos_dim arrays, each of shape (N,), with
        N = 1 (point), npos (ring) or npos**2 (torus, npos per angle)."""
        if self.pos_dim == 0:
            return ()
        th = 2 * np.pi * np.arange(npos) / npos
        if self.pos_dim == 1:
            return (th,)
        a, b = np.meshgrid(th, th, indexing="ij")
        return (a.ravel(), b.ravel())

    def n_positions_of(self, pos) -> int:
        """Number of lattice points of a grid returned by ``grid``."""
        return 1 if not pos else len(pos[0])

    def n_positions(self, npos: int) -> int:
        return 1 if self.pos_dim == 0 else npos ** self.pos_dim

    # ---- connectivity ----------------------------------------------------------------------
    def psi(self, pos) -> np.ndarray:
        """psi_k at positions: array (K, N)."""
        shape = np.broadcast_shapes(*(np.shape(p) for p in pos)) if pos else (1,)
        return np.array([np.broadcast_to(v, shape) for v in self.module.psi(*pos, **self.params)], float)

    def chi(self, pos) -> np.ndarray:
        shape = np.broadcast_shapes(*(np.shape(p) for p in pos)) if pos else (1,)
        return np.array([np.broadcast_to(v, shape) for v in self.module.chi(*pos, **self.params)], float)

    def constraint_matrix(self) -> np.ndarray:
        """B[(a,k),(b,l)] = alpha_b C_ab[k,l], shape (P K, P L)."""
        return self.module.constraint_matrix(**self.params)

    def kernel_matrix(self, a: str, b: str, pos_theta, pos_phi) -> np.ndarray:
        """w_ab(theta_i, phi_j) as a dense array (N_theta, N_phi)."""
        th = [np.asarray(p)[:, None] for p in pos_theta]
        ph = [np.asarray(p)[None, :] for p in pos_phi]
        shape = (len(pos_theta[0]) if pos_theta else 1, len(pos_phi[0]) if pos_phi else 1)
        w = getattr(self.module, f"kernel_{a}_{b}")(*th, *ph, **self.params)
        return np.broadcast_to(np.asarray(w, float), shape)

    def apply_W(self, q: np.ndarray, pos) -> np.ndarray:
        """(W q)_a at the lattice positions: q has shape (P, N) on the lattice ``pos``."""
        q = np.asarray(q, float)
        N = q.shape[1]
        if self.separable:
            chi, psi = self.chi(pos), self.psi(pos)            # (L, N), (K, N)
            mom = q @ chi.T / N                                # (P, L): <chi_l, q_b>
            B = self.constraint_matrix()                       # (P K, P L)
            v = B @ mom.reshape(-1)                            # (P K)
            return v.reshape(self.P, self.K) @ psi             # (P, N)
        out = np.zeros_like(q)
        for ia, a in enumerate(self.populations):
            for ib, b in enumerate(self.populations):
                out[ia] += self.alpha[ib] * self.kernel_matrix(a, b, pos, pos) @ q[ib] / N
        return out

    def drive(self, pos, t: float = 0.0) -> np.ndarray:
        """h_a at positions, shape (P, N)."""
        N = len(pos[0]) if pos else 1
        return np.array([np.broadcast_to(self.call("drive", a, *pos, t), (N,)) for a in self.populations])

    def input(self, pos, t: float = 0.0) -> np.ndarray:
        N = len(pos[0]) if pos else 1
        return np.array([np.broadcast_to(self.call("input", a, *pos, t), (N,)) for a in self.populations])
