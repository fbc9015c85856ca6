"""End points of fast flows (the initial layer of DESIGN.md §3, and balance solves that must pick
the equilibrium the flow reaches rather than any root)."""
from __future__ import annotations

import numpy as np


def follow_flow(F, c, tol=1e-13, max_iter=200):
    """End point of the flow dc/ds = F(c) by pseudo-transient continuation: implicit Euler
    steps  (I/ds - J) dc = F  with a growing pseudo-time step ds, so that the iteration
    follows the flow while ds is small and becomes Newton's method near the end point
    (J by forward differences).  Returns (c, F(c))."""
    f = F(c)
    r = c.size
    ds = None
    for _ in range(max_iter):
        if np.abs(f).max() < tol:
            return c, f
        eps = 1e-7 * (1 + np.abs(c))
        J = np.empty((r, r))
        for k in range(r):
            ck = c.copy()
            ck[k] += eps[k]
            J[:, k] = (F(ck) - f) / eps[k]
        if ds is None:
            ds = 0.1 / max(np.abs(np.linalg.eigvals(J)).max(), 1e-12)
        while True:
            dc = np.linalg.solve(np.eye(r) / ds - J, f)
            f_new = F(c + dc)
            if np.all(np.isfinite(f_new)) and np.abs(f_new).max() <= 1.5 * np.abs(f).max():
                break
            ds /= 4
            if ds < 1e-14:
                return c, f
        c, f = c + dc, f_new
        ds *= 3
    return c, f
