"""Errors of the balance / stationary solvers.  Every message carries the numbers that show why
(residuals, demanded values, ranges, eigenvalues); a solver never returns NaN instead.

    StationaryError(ValueError)
    ├── InfeasibleBalance              the balanced limit (B) cannot hold
    │   ├── DriveOutsideRange          h has a component outside Range(W)
    │   ├── GainRangeExceeded          balance demands a gbar outside [inf g, sup g]
    │   └── ManifoldNotAttracting      W D on Range(W) has an eigenvalue with Re >= 0
    ├── NoConvergence                  the nonlinear solve did not converge (residual given)
    └── DensityError                   no normalisable stationary density (range search failed)
"""
from __future__ import annotations

import numpy as np


class StationaryError(ValueError):
    """Base class: a stationary state could not be computed."""


class InfeasibleBalance(StationaryError):
    """The balance equation (B) of DESIGN.md §2 has no admissible solution."""


class DriveOutsideRange(InfeasibleBalance):
    """h is not in Range(W).  ``residual`` is the rms (over the lattice and the populations) of the
    part of h that no W q can cancel; ``residual_outside_span`` the rms of the generated
    drive_residual_P (the part of h outside span psi)."""

    def __init__(self, message, residual: float | None = None, residual_outside_span: float | None = None):
        super().__init__(message)
        self.residual = residual
        self.residual_outside_span = residual_outside_span


class GainRangeExceeded(InfeasibleBalance):
    """Balance demands an average activity the gain cannot deliver."""

    def __init__(self, message, population: str, position, demanded: float, gain_range: tuple):
        super().__init__(message)
        self.population = population
        self.position = position
        self.demanded = demanded
        self.gain_range = gain_range


class ManifoldNotAttracting(InfeasibleBalance):
    """The fast matrix W D restricted to Range(W) has an eigenvalue with non-negative real part.
    ``modes`` maps a mode label to its eigenvalues."""

    def __init__(self, message, modes: dict):
        super().__init__(message)
        self.modes = modes


class NoConvergence(StationaryError):
    """Newton's method stopped before the residual reached the tolerance."""

    def __init__(self, message, residual: float | None = None, iterations: int | None = None):
        super().__init__(message)
        self.residual = residual
        self.iterations = iterations


class DensityError(StationaryError):
    """The stationary density could not be located or normalised (e.g. it does not decay)."""


def format_eigenvalues(values) -> str:
    """'-0.123+0.456j, -0.2' style list, 4 significant digits."""
    out = []
    for v in np.atleast_1d(values):
        v = complex(v)
        out.append(f"{v.real:.4g}" if abs(v.imag) < 1e-14 * max(1.0, abs(v)) else f"{v.real:.4g}{v.imag:+.4g}j")
    return "[" + ", ".join(out) + "]"
