"""The phi functions of exponential integrators, and the accuracy limits of the coupling steps.

    phi_0(Z) = exp(Z),   phi_1(Z) = (exp(Z) - I) / Z,   phi_2(Z) = (exp(Z) - I - Z) / Z^2,

defined for any square Z (also singular) by their power series sum_k Z^k / (k + j)!.  They are read
off one matrix exponential of an augmented matrix (Higham, "Functions of Matrices", §10.7.4):

    expm( [[Z, I, 0], [0, 0, I], [0, 0, 0]] ) = [[e^Z, phi_1(Z), phi_2(Z)], [0, I, I], [0, 0, I]].

For the linear system y' = J y + b (b constant over the step h) the exact step is
y(h) = y0 + h phi_1(h J) (J y0 + b), and the time average of y - y0 over the step is
h phi_2(h J) (J y0 + b).  solvers.particles uses both on the low-rank coupling subspace.

Accuracy limits (``accurate_z``).  A fast coupling mode with eigenvalue mu (already scaled by
sqrt(n)) and step dt has z = dt mu.  For noise that is constant over the step (as Euler–Maruyama
assumes) the stationary variance of a mode is reproduced by

  * the exponential step (noise weighted by phi_1(z)):  variance ratio 2 tanh(x/2) / x for real
    z = -x and sinc^2(y/2) for z = i y, both 1 - |z|^2 / 12 + O(|z|^4); growth and frequency of the
    linear coupling mode are exact at any z;
  * explicit Euler:  amplification 1 + z against e^z, relative error of the rate
    |log(1 + z) - z| / |z| ~ |z| / 2, and variance ratio 2 / (2 - |z|) for real z.

With the tolerance ``tol`` (relative error of a fast mode's variance, rate or frequency; default 2 %)
the largest accurate |z| is sqrt(12 tol) for the exponential step and 2 tol for explicit Euler.
This module never imports SymPy.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.linalg import expm

from .blas_threads import small_matrices

#: default relative accuracy of a fast coupling mode per step (variance, rate, frequency)
DEFAULT_TOL = 0.02


@small_matrices
def phi_functions(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(exp(Z), phi_1(Z), phi_2(Z)) of a square matrix Z, from one expm of a 3r x 3r matrix."""
    Z = np.asarray(Z, float)
    r = Z.shape[0]
    A = np.zeros((3 * r, 3 * r))
    eye = np.eye(r)
    A[:r, :r] = Z
    A[:r, r:2 * r] = eye
    A[r:2 * r, 2 * r:] = eye
    E = expm(A)
    return E[:r, :r], E[:r, r:2 * r], E[:r, 2 * r:]


def accurate_z(step: str, tol: float = DEFAULT_TOL) -> float:
    """Largest |dt mu| at which the coupling step ``step`` ('exponential' or 'explicit') reproduces a
    fast mode to relative accuracy ``tol`` (see the module docstring)."""
    if not (0 < tol < 1):
        raise ValueError(f"the step accuracy tolerance must lie in (0, 1), got {tol}")
    if step == "exponential":
        return math.sqrt(12.0 * tol)
    if step == "explicit":
        return 2.0 * tol
    raise ValueError(f"unknown coupling step {step!r}: 'exponential' or 'explicit'")
