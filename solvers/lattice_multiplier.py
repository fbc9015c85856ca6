"""What the kinetic solvers (m = 1: solvers.kinetic, m = 2: solvers.kinetic2d) share about the
multiplier on the lattice of positions: the drive h at the lattice points (cached when it does not
depend on t), W applied to a lattice field, and the admissible directions of lambda.

The balance constraint W gbar + h = 0 (balanced limit) or W gbar + h = lambda / sqrt(n) (finite n)
fixes lambda on the directions U = an orthonormal basis of Range(W) on the lattice; at finite n the
drive's component outside Range(W) is one more admissible direction.  A solver using this mixin sets
self.model (CompiledModel), self.pos (lattice coordinates), self.Npos, self.W ((P Npos)^2 matrix),
self.U ((P Npos, r) basis), self.n (None: balanced) and self._drive_static = None.
"""
from __future__ import annotations

import numpy as np


class LatticeMultiplier:
    """Mixin: drive(t), W_apply(q), _basis(t) on the lattice of positions (see the module docstring)."""

    def drive(self, t: float) -> np.ndarray:
        """h at the lattice positions, (P, Npos) (cached when h does not depend on t)."""
        if self._drive_static is not None:
            return self._drive_static
        h = self.model.drive(self.pos, t)
        if not any(self.model.drive_time_dependent(a) for a in self.model.populations):
            self._drive_static = h
        return h

    def W_apply(self, q):
        """(W q) for q of shape (P, Npos) or (P, Npos, r)."""
        P, N = self.model.P, self.Npos
        if q.ndim == 2:
            return (self.W @ q.reshape(P * N)).reshape(P, N)
        return (self.W @ q.reshape(P * N, -1)).reshape(P, N, -1)

    def _basis(self, t):
        """Admissible lambda directions on the lattice: ((P, Npos, r), (P Npos, r)); at finite n the
        drive's part outside Range(W) is appended (normalised)."""
        U = self.U
        if self.n is not None:
            hv = self.drive(t).reshape(-1)
            extra = hv - U @ (U.T @ hv)
            if np.linalg.norm(extra) > 1e-12 * max(1.0, np.linalg.norm(hv)):
                U = np.concatenate([U, (extra / np.linalg.norm(extra))[:, None]], axis=1)
        return U.reshape(self.model.P, self.Npos, -1), U
